"""A config kept loaded between edits: each :meth:`ConfigSession.refresh` redoes only what the
edit changed (docs/incremental.md).

- Files whose bytes did not change are not read again into resources; in a changed file only the
  documents whose text changed are parsed (:class:`~meshroute.config.documents.DocumentCache`),
  and only their resources validated.
- An edit of one VirtualService or DestinationRule that keeps its *shape* (what decides who sees
  it and what it names: hosts, exportTo, gateways, order; a DestinationRule's host, exportTo and
  selector) is compiled alone (:mod:`meshroute.config.incremental`): its routes or rules, the
  vhosts that use them, the scopes of the hosts whose clusters change. The result is an IR
  *patch* that the Rust table applies (docs/ir.md "Patch").
- Anything else compiles everything again from the cached resources.

Either way the diagnostics are those of :func:`meshroute.config.analyze` on the same files (the
tests compare them after random edits), and the IR routes every request as a full compile's does.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshroute.config import Analysis, _gc_paused, _order, admit
from meshroute.config.diagnostics import Diagnostic, has_errors
from meshroute.config.documents import DocumentCache, Parsed
from meshroute.config.load import Resource, iter_files, read_file
from meshroute.config.model import Model

_VALIDATED = "validate"


@dataclass
class Update:
    """What one refresh found: ``kind`` is ``unchanged``, ``patch`` (``patch`` holds the IR
    patch to apply to the previous table) or ``full`` (build the table from ``analysis.ir``).
    ``seconds``: the time each step took."""

    analysis: Analysis
    kind: str
    patch: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    why: str = ""  # why a full compile was needed (empty for the first one)
    # A patch: the edited resource before and after, and a DestinationRule's host.
    edited: tuple[Resource, Resource] | None = None
    host: str | None = None


_Flat = tuple[list[Resource], list[Diagnostic], list[Diagnostic], list[Resource]]


@dataclass
class _File:
    data: bytes | None  # None: unreadable (``problem`` says why)
    docs: list[Parsed]
    problem: Diagnostic | None = None
    flat: _Flat | None = None  # what _flatten takes from it, once


class ConfigSession:
    """Config files loaded once and refreshed incrementally.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp, "c.yaml")
    ...     _ = path.write_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
    ...                         "spec: {ports: [{port: 80, name: http}]}\\n")
    ...     session = ConfigSession([tmp])
    ...     first, again = session.refresh(), session.refresh()
    >>> first.kind, first.analysis.ok, again.kind
    ('full', True, 'unchanged')
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]], *, domain: str = "cluster.local") -> None:
        self.paths = [os.fspath(p) for p in paths]
        self.domain = domain
        self.documents = DocumentCache()
        self._files: dict[str, _File] = {}
        self._analysis: Analysis | None = None
        self._state: Any = None  # the Compilation of the IR being patched (None: not compiled)
        self._incremental: Any = None
        # (lineage, version) names the IR a patch applies to: a new session is a new lineage and
        # every refresh that changes something a new version.
        self.lineage = uuid.uuid4().hex
        self.version = 0

    @property
    def tag(self) -> tuple[str, int]:
        return (self.lineage, self.version)

    def digest(self) -> str:
        """A hash of the files as last read (their names and bytes)."""
        h = hashlib.sha256()
        for path in sorted(self._files):
            data = self._files[path].data
            h.update(f"{path}\0{-1 if data is None else len(data)}\0".encode())
            h.update(data or b"")
        return h.hexdigest()

    @property
    def model(self) -> Model | None:
        """The :class:`~meshroute.config.model.Model` of the last compile (None before one), kept
        up to date by patches: what envoy-config builds listeners and clusters from."""
        return self._state.index.model if self._state is not None else None

    @property
    def analysis(self) -> Analysis | None:
        return self._analysis

    def refresh(self) -> Update:
        """Read the files again; compile what changed."""
        from meshroute.config.validate.fields import shared_normalization

        with _gc_paused(), shared_normalization():
            update = self._refresh()
            # The config's objects live until the next full compile: moved out of the collector's
            # sight, a collection does not scan them again (at 10 000 services the first one after
            # a refresh took 0.9 s). Before a full compile they are given back, so that the old
            # compilation's cycles can be collected.
            if update.kind != "unchanged":
                gc.freeze()
                self.version += 1
        return update

    def refresh_for(self, base: tuple[str, int] | None) -> Update:
        """:meth:`refresh` for a caller holding the config tagged ``base`` (None: none): a patch,
        or ``unchanged``, only when ``base`` is the config it is relative to; otherwise ``full``
        (the analysis' IR is always the whole IR)."""
        before = self.tag
        update = self.refresh()
        if update.kind != "full" and base != before:
            why = "the caller holds another config"
            update = dataclasses.replace(update, kind="full", patch=None, edited=None, host=None, why=why)
        return update

    def _refresh(self) -> Update:
        clock = time.perf_counter
        t0 = clock()
        files, changed = self._read()
        t1 = clock()
        if not changed and self._analysis is not None:
            return Update(self._analysis, "unchanged", seconds={"read": t1 - t0})
        old_files, self._files = self._files, files
        resources, load_diags, validation, admitted = _flatten(files)
        t2 = clock()
        seconds = {"read": t1 - t0, "parse_validate": t2 - t1}
        update: Update | None = None
        why = "first load" if self._analysis is None else "the previous config has errors"
        if self._state is not None and self._incremental is not None:
            from meshroute.config.incremental import NotIncremental

            try:
                patch, cross = self._incremental.apply(old_files, files, changed)
            except NotIncremental as exc:
                why = str(exc)
            except Exception as exc:  # a bug here must cost a full compile, never the reload
                why = f"incremental compile failed: {exc!r}"
            else:
                diags = load_diags + validation + cross
                diags.sort(key=_order)
                analysis = Analysis(resources=resources, diagnostics=diags, ir=self._state.ir)
                inc = self._incremental
                update = Update(analysis, "patch", patch, edited=inc.edited, host=inc.host)
        if update is None:
            update = self._full(resources, load_diags + validation, admitted)
            update.why = why
        seconds["compile"] = clock() - t2
        update.seconds = seconds
        self._analysis = update.analysis
        return update

    def _full(self, resources: list[Resource], diags: list[Diagnostic], admitted: list[Resource]) -> Update:
        gc.unfreeze()  # see refresh()
        from meshroute.compile import try_compile
        from meshroute.config.incremental import Incremental

        state, ir, cross = try_compile(admitted, self.domain)
        analysis = Analysis(resources=resources, diagnostics=sorted(diags + cross, key=_order), ir=ir)
        self._state = state
        self._incremental = Incremental(state) if state is not None and analysis.ok else None
        return Update(analysis, "full")

    def _read(self) -> tuple[dict[str, _File], set[str]]:
        """Every file under the paths, and the names of those whose content changed (new and
        removed files included)."""
        files: dict[str, _File] = {}
        changed: set[str] = set()
        for path, problem in iter_files(self.paths):
            data = read_file(path, problem)
            old = self._files.get(path)
            if isinstance(data, Diagnostic):
                files[path] = _File(None, [], data)
                if old is None or old.problem != data:
                    changed.add(path)
                continue
            if old is not None and old.data == data:
                files[path] = old
                continue
            changed.add(path)
            files[path] = _File(data, self.documents.load(data, path))
        for path in self._files.keys() - files.keys():
            changed.add(path)
            self.documents.forget(path)
        return files, changed


def _flatten(files: dict[str, _File]) -> _Flat:
    """Resources, load diagnostics, validation diagnostics and the admitted resources (those
    without errors of their own), in the order :func:`meshroute.config.analyze` makes them."""
    resources: list[Resource] = []
    load_diags: list[Diagnostic] = []
    validation: list[Diagnostic] = []
    admitted: list[Resource] = []
    for file in files.values():
        if file.flat is None:
            file.flat = _flatten_file(file)
        resources += file.flat[0]
        load_diags += file.flat[1]
        validation += file.flat[2]
        admitted += file.flat[3]
    return resources, load_diags, validation, admitted


def _flatten_file(file: _File) -> _Flat:
    resources: list[Resource] = []
    load_diags: list[Diagnostic] = [file.problem] if file.problem is not None else []
    validation: list[Diagnostic] = []
    admitted: list[Resource] = []
    for doc in file.docs:
        load_diags.extend(doc.diagnostics)
        resources.extend(doc.resources)
        for i, res in enumerate(doc.resources):
            key = f"{_VALIDATED}:{i}"
            found = doc.derived.get(key)
            if found is None:
                found = doc.derived[key] = admit(res)[0]
            validation.extend(found)
            if not has_errors(found):  # what admit() decides: no errors of its own
                admitted.append(res)
    return resources, load_diags, validation, admitted
