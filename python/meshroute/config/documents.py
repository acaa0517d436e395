"""Reading a changed file again without parsing it all again: the file is cut into its YAML
documents and only the documents whose text changed are parsed; the others keep their resources
and diagnostics, moved to their new lines.

The result is what :func:`~meshroute.config.load.load_text` gives for the whole file — the same
resources (equal data, same lines) and the same diagnostics — or the cache parses the whole file
whenever it cannot promise that:

- a line starting with ``%`` (a directive) or ``...`` (a document end) is present: the cut below
  would not be where YAML cuts;
- a document fails the fast parse: :func:`load_text` then parses the *whole file* with ruamel
  (YAML 1.2), which can read every document of the file differently.

A document starts at a line ``---`` (alone or followed by a space) or at the start of the file.
YAML forbids such a line inside any scalar, so this is always where YAML itself starts the next
document.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from meshroute.config.diagnostics import Diagnostic, Path
from meshroute.config.load import LoadResult, Resource, load_fast, load_text

_MARKER = re.compile(r"^---(?:[ \t].*)?$", re.MULTILINE)
_UNSAFE = re.compile(r"^(?:%|\.\.\.(?:[ \t]|$))", re.MULTILINE)


@dataclass
class Parsed:
    """One document's resources and load diagnostics, as parsed at ``line`` (its first line)."""

    line: int
    resources: list[Resource]
    diagnostics: list[Diagnostic]
    # What the caller derived from the resources (validation diagnostics), at ``line`` too.
    derived: dict[str, list[Diagnostic]] = field(default_factory=dict)

    def moved(self, line: int) -> Parsed:
        """This document as found at ``line``: every line number moved by the same amount."""
        delta = line - self.line
        if delta == 0:
            return self
        return Parsed(
            line,
            [shift_resource(r, delta) for r in self.resources],
            shift_diagnostics(self.diagnostics, delta),
            {k: shift_diagnostics(v, delta) for k, v in self.derived.items()},
        )


def shift_diagnostics(diags: list[Diagnostic], delta: int) -> list[Diagnostic]:
    return [dataclasses.replace(d, line=d.line + delta) if d.line is not None else d for d in diags]


def shift_resource(res: Resource, delta: int) -> Resource:
    return dataclasses.replace(res, line=res.line + delta, positions=_Shifted(res.positions, delta))


class _Shifted(Mapping[Path, int]):
    """Field lines of a document that moved ``delta`` lines (read lazily from the original)."""

    __slots__ = ("_delta", "_lines")

    def __init__(self, lines: Mapping[Path, int], delta: int) -> None:
        if isinstance(lines, _Shifted):  # moved twice: one wrapper
            delta += lines._delta
            lines = lines._lines
        self._lines: Mapping[Path, int] = lines
        self._delta: int = delta

    def __getitem__(self, key: Path) -> int:
        return self._lines[key] + self._delta

    def __iter__(self) -> Iterator[Path]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)


def split_documents(text: str) -> list[tuple[int, str]] | None:
    """``(first line, text)`` of each document of ``text``; None when the cut may not be YAML's.

    >>> split_documents("a: 1\\n---\\nb: 2\\n--- # c\\nc: 3\\n")
    [(1, 'a: 1\\n'), (2, '---\\nb: 2\\n'), (4, '--- # c\\nc: 3\\n')]
    >>> split_documents("%YAML 1.2\\n---\\na: 1\\n") is None
    True
    """
    if _UNSAFE.search(text):
        return None
    out: list[tuple[int, str]] = []
    start, line = 0, 1
    for m in _MARKER.finditer(text):
        if m.start() > start:
            out.append((line, text[start : m.start()]))
            line += text.count("\n", start, m.start())
        start = m.start()
    out.append((line, text[start:]))
    return [(ln, doc) for ln, doc in out if doc]


def parse_document(text: str, line: int, file: str) -> Parsed | None:
    """``text`` (one document) as if found at ``line`` of ``file``; None when PyYAML alone cannot
    parse it (then the whole file must be parsed as one)."""
    # Blank lines in front put every mark where it is in the file (the scanner skips them).
    result = load_fast("\n" * (line - 1) + text, file)
    if result is None:
        return None
    return Parsed(line, result.resources, result.diagnostics)


def _bucket(result: LoadResult, docs: list[tuple[int, str]]) -> list[Parsed] | None:
    """A whole file's parse cut into its documents by line (each resource and diagnostic belongs
    to the document whose lines hold it); None if some diagnostic has no line."""
    if any(d.line is None for d in result.diagnostics):
        return None
    starts = [line for line, _ in docs]
    out = [Parsed(line, [], []) for line in starts]
    for res in result.resources:
        out[bisect.bisect_right(starts, res.line) - 1].resources.append(res)
    for diag in result.diagnostics:
        out[bisect.bisect_right(starts, diag.line or 0) - 1].diagnostics.append(diag)
    return out


class DocumentCache:
    """Parsed documents by text, one cache for any number of files. The first read of a file
    parses it whole (one parse is faster than one per document) and cuts the result into its
    documents; later reads parse only the documents whose text is new.

    >>> cache = DocumentCache()
    >>> first = cache.load(b"kind: A\\napiVersion: v1\\n---\\nkind: B\\napiVersion: v1\\n", "f.yaml")
    >>> [(r.kind, r.line) for d in first for r in d.resources], cache.parsed
    ([('A', 1), ('B', 4)], 1)
    >>> again = cache.load(b"# new\\nkind: A\\napiVersion: v1\\n---\\nkind: C\\napiVersion: v1\\n", "f.yaml")
    >>> [(r.kind, r.line) for d in again for r in d.resources], cache.parsed
    ([('A', 2), ('C', 5)], 3)
    """

    def __init__(self) -> None:
        self._files: dict[str, dict[str, Parsed]] = {}  # file -> document text -> parsed
        self.parsed = 0  # parses so far, of a document or a whole file (tests read it)

    def load(self, data: bytes, file: str) -> list[Parsed]:
        """The documents of ``data`` in order; a file that must be parsed as one is one entry."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = None
        docs = split_documents(text) if text is not None else None
        known = self._files.get(file)
        if docs is not None and known is not None:
            out = self._reuse(known, docs, file)
            if out is not None:
                self._files[file] = {doc: parsed for (_, doc), parsed in zip(docs, out, strict=True)}
                return out
        self.parsed += 1
        whole = load_fast(text, file) if text is not None else None
        if whole is None:  # the slow parse, or undecodable: one entry, nothing kept
            self._files.pop(file, None)
            result = load_text(data, file)
            return [Parsed(1, result.resources, result.diagnostics)]
        cut = _bucket(whole, docs) if docs is not None else None
        if cut is None:
            self._files.pop(file, None)
            return [Parsed(1, whole.resources, whole.diagnostics)]
        self._files[file] = {doc: parsed for (_, doc), parsed in zip(docs or (), cut, strict=True)}
        return cut

    def _reuse(self, known: dict[str, Parsed], docs: list[tuple[int, str]], file: str) -> list[Parsed] | None:
        out: list[Parsed] = []
        for line, doc in docs:
            found = known.get(doc)
            if found is None:
                found = parse_document(doc, line, file)
                if found is None:
                    return None
                self.parsed += 1
            out.append(found.moved(line))
        return out

    def forget(self, file: str) -> None:
        self._files.pop(file, None)
