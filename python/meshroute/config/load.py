"""Reading YAML: files, directories, multi-document streams and ``kind: List`` into raw resources.

No semantics here: a :class:`Resource` is a document as the user wrote it, plus where each field
came from (so diagnostics can name a line). Problems become diagnostics, never exceptions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from meshroute.config.diagnostics import Diagnostic, Path, Severity

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1alpha3", "v1beta1", "v1")
ISTIO_KINDS = frozenset(
    {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "WorkloadEntry", "Sidecar"}
)
YAML_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 16 * 1024 * 1024
# Alias expansion ("billion laughs") and deep nesting are bounded so no input can hang or crash us.
MAX_NODES = 2_000_000
MAX_DEPTH = 200

try:  # the C composer is ~10x faster; node marks (lines) are the same
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Resource:
    """One Kubernetes-style object exactly as written.

    ``positions`` maps a field path from the document root (``("spec", "http", 0)``) to its
    1-based line, for diagnostics.
    """

    api_version: str
    kind: str
    name: str
    namespace: str
    metadata: Mapping[str, Any]
    spec: Any
    file: str
    line: int
    positions: Mapping[Path, int] = field(default_factory=dict, repr=False, compare=False)
    # The whole document: Kubernetes kinds such as Endpoints keep their data outside `spec`.
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def is_istio(self) -> bool:
        """An Istio networking resource of a kind meshroute understands."""
        return self.kind in ISTIO_KINDS and self.api_version.startswith(ISTIO_GROUP + "/")

    def line_of(self, path: Path) -> int:
        """Line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.positions.get(tuple(path[:end]))
            if line is not None:
                return line
        return self.line

    def diag(self, severity: Severity, code: str, path: Path, message: str) -> Diagnostic:
        """A diagnostic about ``path`` (a path from the document root) in this resource."""
        return Diagnostic(
            severity=severity,
            code=code,
            message=message,
            file=self.file,
            line=self.line_of(path),
            kind=self.kind,
            namespace=self.namespace,
            name=self.name,
            path=path,
        )

    def error(self, code: str, path: Path, message: str) -> Diagnostic:
        return self.diag(Severity.ERROR, code, path, message)

    def warning(self, code: str, path: Path, message: str) -> Diagnostic:
        return self.diag(Severity.WARNING, code, path, message)


@dataclass
class LoadResult:
    resources: list[Resource] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _TooBig(Exception):
    pass


class _Converter:
    """Turns a composed YAML node tree into plain Python data, recording each field's line.

    Works on PyYAML and ruamel.yaml nodes alike (both carry ``id``, ``value`` and ``start_mark``).
    """

    def __init__(self, constructor: Any) -> None:
        self._constructor = constructor
        self.budget = MAX_NODES
        self.positions: dict[Path, int] = {}
        self.duplicates: list[tuple[Path, int]] = []

    def convert(self, node: Any, path: Path, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig("document too large (alias expansion or size)")
        if depth > MAX_DEPTH:
            raise _TooBig(f"document nested deeper than {MAX_DEPTH} levels")
        self.positions.setdefault(path, node.start_mark.line + 1)
        if node.id == "mapping":
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node) if key_node.id == "scalar" else None
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    key = str(key) if key is not None else "null"
                key_path = (*path, str(key))
                if key in out:
                    self.duplicates.append((key_path, key_node.start_mark.line + 1))
                self.positions[key_path] = key_node.start_mark.line + 1
                out[key] = self.convert(value_node, key_path, depth + 1)
            return out
        if node.id == "sequence":
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: Any) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception:  # any constructor failure: keep the text, validation reports the type
            return node.value


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[str, str | None]]:
    """Yield ``(path, problem)``: YAML files under directories (recursively, sorted), files as given."""
    for raw in paths:
        path = os.fspath(raw)
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.endswith(YAML_SUFFIXES) and not name.startswith("."):
                        yield os.path.join(root, name), None
        elif os.path.isfile(path):
            yield path, None
        else:
            yield path, "no such file or directory"


def load_paths(paths: Iterable[str | os.PathLike[str]]) -> LoadResult:
    """Read every YAML document under ``paths`` into resources; problems become diagnostics."""
    result = LoadResult()
    for path, problem in iter_files(paths):
        if problem:
            result.diagnostics.append(_file_diag(path, None, "file-unreadable", problem))
            continue
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            result.diagnostics.append(_file_diag(path, None, "file-unreadable", str(exc.strerror)))
            continue
        if len(data) > MAX_FILE_BYTES:
            msg = f"file larger than {MAX_FILE_BYTES} bytes"
            result.diagnostics.append(_file_diag(path, None, "file-too-large", msg))
            continue
        load_text(data, path, result)
    return result


def load_text(data: bytes | str, file: str, result: LoadResult | None = None) -> LoadResult:
    """Parse one YAML stream (several documents allowed) into ``result``."""
    result = result if result is not None else LoadResult()
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            result.diagnostics.append(
                _file_diag(file, None, "yaml-invalid", f"not UTF-8 text (byte {exc.start})")
            )
            return result
    else:
        text = data
    try:
        nodes, constructor = _compose(text)
    except Exception as exc:  # every parser failure is a diagnostic, never a traceback
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        parts = (getattr(exc, "context", None), getattr(exc, "problem", None))
        msg = " ".join(str(p) for p in parts if p) or str(exc) or "invalid YAML"
        result.diagnostics.append(_file_diag(file, line, "yaml-invalid", msg))
        return result
    for node in nodes:
        if node is None:
            continue
        conv = _Converter(constructor)
        try:
            doc = conv.convert(node, (), 0)
        except _TooBig as exc:
            result.diagnostics.append(_file_diag(file, node.start_mark.line + 1, "yaml-too-large", str(exc)))
            continue
        _add_document(doc, file, node.start_mark.line + 1, conv, result)
    return result


def _compose(text: str) -> tuple[list[Any], Any]:
    """Compose with PyYAML (YAML 1.1, like Kubernetes' go-yaml); if it cannot parse the text, retry
    with ruamel.yaml (YAML 1.2), which accepts what go-yaml also accepts, e.g. ``[001:db8::]``."""
    try:
        return list(yaml.compose_all(text, Loader=_Loader)), SafeConstructor()
    except yaml.MarkedYAMLError as first:
        from ruamel.yaml import YAML

        try:
            # the YAML object's own constructor: a bare SafeConstructor has no resolver and fails on ints
            ruamel = YAML(typ="safe", pure=True)
            return list(ruamel.compose_all(text)), ruamel.constructor
        except Exception:
            raise first from None


def _add_document(doc: Any, file: str, line: int, conv: _Converter, result: LoadResult) -> None:
    if doc is None:
        return
    if not isinstance(doc, dict):
        result.diagnostics.append(
            _file_diag(file, line, "document-not-object", "a YAML document must be a mapping")
        )
        return
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        for i, item in enumerate(doc["items"]):
            prefix: Path = ("items", i)
            sub = {p[2:]: ln for p, ln in conv.positions.items() if p[:2] == prefix}
            _add_object(item, file, conv.positions.get(prefix, line), sub, [], result)
        return
    _add_object(doc, file, line, conv.positions, conv.duplicates, result)


def _add_object(
    doc: Any,
    file: str,
    line: int,
    positions: Mapping[Path, int],
    duplicates: list[tuple[Path, int]],
    result: LoadResult,
) -> None:
    if not isinstance(doc, dict):
        result.diagnostics.append(_file_diag(file, line, "document-not-object", "list item is not a mapping"))
        return
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        result.diagnostics.append(
            _file_diag(file, line, "missing-kind", "document has no string `apiVersion` and `kind`")
        )
        return
    metadata = doc.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace") or "default"
    res = Resource(
        api_version=api_version,
        kind=kind,
        name=name if isinstance(name, str) else "",
        namespace=namespace if isinstance(namespace, str) else str(namespace),
        metadata=metadata,
        spec=doc.get("spec"),
        file=file,
        line=line,
        positions=dict(positions),
        document=doc,
    )
    if api_version.startswith(ISTIO_GROUP + "/") and kind in ISTIO_KINDS:
        version = api_version.split("/", 1)[1]
        if version not in ISTIO_VERSIONS:
            result.diagnostics.append(
                res.error(
                    "unsupported-api-version",
                    ("apiVersion",),
                    f"{api_version} is not served; use {ISTIO_GROUP}/v1, v1beta1 or v1alpha3",
                )
            )
            return
        if not res.name:
            result.diagnostics.append(
                res.error("missing-name", ("metadata", "name"), "metadata.name is required")
            )
            return
    for path, dup_line in duplicates:
        result.diagnostics.append(
            Diagnostic(
                Severity.WARNING,
                "yaml-duplicate-key",
                "duplicate key: the last value is used",
                file,
                dup_line,
                kind,
                res.namespace,
                res.name,
                path,
            )
        )
    result.resources.append(res)


def _file_diag(file: str, line: int | None, code: str, message: str) -> Diagnostic:
    return Diagnostic(Severity.ERROR, code, message, file=file, line=line)
