"""Diagnostics: every problem found in config, as data (severity, stable code, location, message)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

PathPart = str | int
Path = tuple[PathPart, ...]


class Severity(enum.StrEnum):
    """How bad a diagnostic is: errors reject the config, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


def format_path(path: Sequence[PathPart]) -> str:
    """Render a field path the way kubectl does: ``spec.http[0].route[1].weight``.

    >>> format_path(("spec", "http", 0, "route", 1, "weight"))
    'spec.http[0].route[1].weight'
    >>> format_path(())
    ''
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass(frozen=True)
class Diagnostic:
    """One problem in the config.

    ``code`` is a slug that never changes (tests and users match on it); ``path`` is the field path
    from the document root (``("spec", "http", 0, "timeout")``).
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    path: Path = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    @property
    def resource(self) -> str | None:
        """``Kind ns/name`` of the resource, or None for file-level problems."""
        if self.kind is None:
            return None
        return f"{self.kind} {self.namespace}/{self.name}"

    def render(self) -> str:
        """One line for people: ``file:line: error[code] Kind ns/name field.path: message``."""
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        parts = [f"{where}: {self.severity.value}[{self.code}]"]
        if self.resource:
            parts.append(self.resource)
        if self.path:
            parts.append(format_path(self.path))
        return " ".join(parts) + f": {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity.value,
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "resource": self.resource,
            "path": format_path(self.path),
        }


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)
