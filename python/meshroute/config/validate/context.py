"""The accumulator every validator writes into: the resource, its diagnostics, and the map from
normalised (camelCase) field paths back to the keys the user actually wrote."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from meshroute.config.diagnostics import Diagnostic, Path
from meshroute.config.load import Resource


class Ctx:
    """Collects every problem in one resource (never stops at the first, STYLE habit 7).

    Validators work on the normalised spec, so paths they report use camelCase names; ``renames``
    turns them back into the user's spelling (``mirror_percent``) so the line lookup and the
    message name the field as written.
    """

    def __init__(self, res: Resource) -> None:
        self.res = res
        self.diagnostics: list[Diagnostic] = []
        self.renames: dict[Path, str] = {}
        # paths that already got a type error: "required" checks stay quiet about them
        self.bad: set[Path] = set()

    @property
    def namespace(self) -> str:
        return self.res.namespace

    def original(self, path: Path) -> Path:
        """``path`` with each renamed key replaced by the user's spelling."""
        if not self.renames:
            return path
        out: list[str | int] = []
        for i, part in enumerate(path):
            out.append(self.renames.get(path[: i + 1], part))
        return tuple(out)

    def error(self, code: str, path: Path, message: str) -> None:
        self.diagnostics.append(self.res.error(code, self.original(path), message))

    def warning(self, code: str, path: Path, message: str) -> None:
        self.diagnostics.append(self.res.warning(code, self.original(path), message))

    def require(self, obj: dict[str, Any], key: str, path: Path, what: str = "") -> bool:
        """Report ``required-field`` unless ``obj[key]`` is present (or was already reported)."""
        if obj.get(key) is not None:
            return True
        if (*path, key) not in self.bad:
            self.error("required-field", (*path, key), what or f"`{key}` is required")
        return False


def items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, entry)`` for the mapping entries of a normalised list (bad entries are None)."""
    if isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                yield i, entry


def strings(value: Any) -> Iterator[tuple[int, str]]:
    """``(index, text)`` for the string entries of a normalised list."""
    if isinstance(value, list):
        for i, entry in enumerate(value):
            if isinstance(entry, str):
                yield i, entry


def mapping(value: Any) -> dict[Any, Any]:
    """``value`` if it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}
