"""Reading YAML: files, directories, multi-document streams and ``kind: List`` into raw resources.

No semantics here: a :class:`Resource` is a document as the user wrote it, plus where each field
came from (so diagnostics can name a line). Problems become diagnostics, never exceptions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    _BaseLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, resolving the implicit tag of each distinct scalar once per stream.

    PyYAML calls ``resolve`` (Python regexes) for every scalar and ``descend_resolver`` /
    ``ascend_resolver`` for every node, even from the C composer. Without path resolvers (the
    safe loader has none) a tag depends on the node kind, text and implicit flags alone, so the
    answers are remembered and the path bookkeeping, which would find nothing, is skipped.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._tags: dict[tuple[Any, Any, Any], str] = {}
        self._plain = not self.yaml_path_resolvers

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if not self._plain:  # pragma: no cover - only if someone adds path resolvers to PyYAML's loader
            return super().resolve(kind, value, implicit)
        key = (kind, value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        if not self._plain:  # pragma: no cover
            super().descend_resolver(current_node, current_index)

    def ascend_resolver(self) -> None:
        if not self._plain:  # pragma: no cover
            super().ascend_resolver()


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


_STR_TAG = "tag:yaml.org,2002:str"
# Scalars whose value depends on their text only and whose objects may be shared (floats are left
# out: two NaN keys must stay two keys).
_SHARED_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


class _NeedsLines(Exception):
    """A document the fast pass leaves to :class:`_Converter`: a duplicate key, whose warning
    needs lines at once."""


class _FastConverter:
    """:class:`_Converter` without the line bookkeeping: the same data, budget and depth limits,
    built in one pass that records nothing. Lines are computed again, only for a file whose
    resources need them (:class:`_FileLines`), which is rare: a diagnostic needs them."""

    def __init__(self, constructor: Any, shared: dict[tuple[str, str], Any]) -> None:
        self._constructor = constructor
        self._shared = shared
        self.budget = MAX_NODES

    def convert(self, node: Any, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooBig("document too large (alias expansion or size)")
        if depth > MAX_DEPTH:
            raise _TooBig(f"document nested deeper than {MAX_DEPTH} levels")
        kind = node.id
        if kind == "mapping":
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalar(key_node) if key_node.id == "scalar" else None
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    key = str(key) if key is not None else "null"
                if key in out:
                    raise _NeedsLines
                out[key] = self.convert(value_node, depth + 1)
            return out
        if kind == "sequence":
            return [self.convert(item, depth + 1) for item in node.value]
        return self.scalar(node)

    def scalar(self, node: Any) -> Any:
        """What ``_Converter._scalar`` returns: a plain string is its text (``construct_yaml_str``)
        and ints, booleans and nulls are constructed once per distinct text."""
        tag = node.tag
        if tag == _STR_TAG:
            return node.value
        key = (tag, node.value)
        if tag in _SHARED_TAGS and key in self._shared:
            return self._shared[key]
        try:
            value = self._constructor.construct_object(node, deep=True)
        except Exception:  # any constructor failure: keep the text, validation reports the type
            return node.value
        if tag in _SHARED_TAGS:
            self._shared[key] = value
        return value


class _FileLines:
    """The field lines of one file's documents (what :class:`_Converter` records), computed on
    first use by composing the text again, then kept; the text is dropped."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._documents: list[dict[Path, int]] | None = None
        self._items: dict[int, dict[int, dict[Path, int]]] = {}

    def document(self, index: int) -> dict[Path, int]:
        """Lines of the ``index``-th node of the stream."""
        if self._documents is None:
            constructor = SafeConstructor()
            documents = []
            for node in yaml.compose_all(self._text, Loader=_Loader):
                conv = _Converter(constructor)
                if node is not None:
                    with contextlib.suppress(_TooBig):  # the fast pass reported it already
                        conv.convert(node, (), 0)
                documents.append(conv.positions)
            self._documents, self._text = documents, ""
        return self._documents[index]

    def item(self, index: int, item: int) -> dict[Path, int]:
        """Lines inside ``items[item]`` of a ``kind: List`` document, relative to the item."""
        groups = self._items.get(index)
        if groups is None:
            groups = {}
            for path, line in self.document(index).items():
                if len(path) >= 2 and path[0] == "items" and isinstance(path[1], int):
                    groups.setdefault(path[1], {})[path[2:]] = line
            self._items[index] = groups
        return groups.get(item, {})


class _LazyLines(Mapping[Path, int]):
    """A resource's ``positions``, read from its file's :class:`_FileLines` on first use."""

    __slots__ = ("_document", "_item", "_lines", "_map")

    def __init__(self, lines: _FileLines, document: int, item: int | None = None) -> None:
        self._lines, self._document, self._item = lines, document, item
        self._map: Mapping[Path, int] | None = None

    def _get(self) -> Mapping[Path, int]:
        if self._map is None:
            if self._item is None:
                self._map = self._lines.document(self._document)
            else:
                self._map = self._lines.item(self._document, self._item)
        return self._map

    def __getitem__(self, key: Path) -> int:
        return self._get()[key]

    def __iter__(self) -> Iterator[Path]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


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
        data = read_file(path, problem)
        if isinstance(data, Diagnostic):
            result.diagnostics.append(data)
        else:
            load_text(data, path, result)
    return result


def read_file(path: str, problem: str | None = None) -> bytes | Diagnostic:
    """The bytes of a config file, or the diagnostic that says why there are none (``problem``:
    what :func:`iter_files` found wrong with the path)."""
    if problem:
        return _file_diag(path, None, "file-unreadable", problem)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        return _file_diag(path, None, "file-unreadable", str(exc.strerror))
    if len(data) > MAX_FILE_BYTES:
        return _file_diag(path, None, "file-too-large", f"file larger than {MAX_FILE_BYTES} bytes")
    return data


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
        if _load_fast(text, file, result):
            return result
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
        _add_document(doc, file, node.start_mark.line + 1, conv.positions, conv.duplicates, result)
    return result


def load_fast(text: str, file: str) -> LoadResult | None:
    """:func:`load_text` of ``text`` when PyYAML alone can parse it, else None (then
    :func:`load_text` would parse the whole stream with ruamel, which may read every document of
    it differently): what a per-document reader needs to agree with a whole-file one."""
    result = LoadResult()
    try:
        return result if _load_fast(text, file, result) else None
    except Exception:  # any other parser failure: load_text reports it
        return None


def _load_fast(text: str, file: str, result: LoadResult) -> bool:
    """The usual case, in one pass: PyYAML composes one document at a time and
    :class:`_FastConverter` turns it into data; field lines are left to :class:`_FileLines`.
    False (nothing added) when PyYAML cannot parse the text: :func:`_compose` then tries ruamel.
    A document with a duplicate key goes through :class:`_Converter` at once."""
    lines = _FileLines(text)
    constructor = SafeConstructor()
    shared: dict[tuple[str, str], Any] = {}
    staged = LoadResult()
    try:
        for index, node in enumerate(yaml.compose_all(text, Loader=_Loader)):
            if node is None:
                continue
            line = node.start_mark.line + 1
            fast = _FastConverter(constructor, shared)
            try:
                doc = fast.convert(node, 0)
            except _TooBig as exc:
                staged.diagnostics.append(_file_diag(file, line, "yaml-too-large", str(exc)))
                continue
            except _NeedsLines:
                conv = _Converter(constructor)
                try:
                    doc = conv.convert(node, (), 0)
                except _TooBig as exc:  # pragma: no cover - the fast pass would have said so
                    staged.diagnostics.append(_file_diag(file, line, "yaml-too-large", str(exc)))
                    continue
                _add_document(doc, file, line, conv.positions, conv.duplicates, staged)
                continue
            item_lines = _item_lines(node, doc, fast)
            positions = _LazyLines(lines, index)
            _add_document(doc, file, line, positions, [], staged, item_lines, lines, index)
    except yaml.MarkedYAMLError:
        return False
    result.resources.extend(staged.resources)
    result.diagnostics.extend(staged.diagnostics)
    return True


def _item_lines(node: Any, doc: Any, fast: _FastConverter) -> list[int]:
    """Lines of the ``items`` of a ``kind: List`` document (else ``[]``), from its nodes."""
    if not (isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list)):
        return []
    for key_node, value_node in node.value:  # keys are unique here (else _NeedsLines)
        if key_node.id == "scalar" and fast.scalar(key_node) == "items" and value_node.id == "sequence":
            return [item.start_mark.line + 1 for item in value_node.value]
    return []  # pragma: no cover - doc["items"] is a list, so its node is a sequence


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


def _add_document(
    doc: Any,
    file: str,
    line: int,
    positions: Mapping[Path, int],
    duplicates: list[tuple[Path, int]],
    result: LoadResult,
    item_lines: Sequence[int] = (),
    lines: _FileLines | None = None,
    index: int = 0,
) -> None:
    """Add one document's resource(s). ``positions`` are the document's field lines; for a lazy
    (fast-pass) document, ``lines``/``index`` locate it and ``item_lines`` are its List items'."""
    if doc is None:
        return
    if not isinstance(doc, dict):
        result.diagnostics.append(
            _file_diag(file, line, "document-not-object", "a YAML document must be a mapping")
        )
        return
    if doc.get("kind") == "List" and isinstance(doc.get("items"), list):
        groups: dict[int, dict[Path, int]] = {}
        if lines is None:  # one pass over the lines, not one per item
            for path, ln in positions.items():
                if len(path) >= 2 and path[0] == "items" and isinstance(path[1], int):
                    groups.setdefault(path[1], {})[path[2:]] = ln
        for i, item in enumerate(doc["items"]):
            if lines is None:
                _add_object(item, file, positions.get(("items", i), line), groups.get(i, {}), [], result)
            else:
                sub = _LazyLines(lines, index, i)
                _add_object(item, file, item_lines[i] if i < len(item_lines) else line, sub, [], result)
        return
    _add_object(doc, file, line, positions, duplicates, result)


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
        positions=positions,
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
