"""The exceptions meshroute raises."""

from __future__ import annotations

from collections.abc import Sequence

from meshroute.config.diagnostics import Diagnostic


class ConfigError(ValueError):
    """The config has errors; ``diagnostics`` lists every problem found (errors and warnings)."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        head = f"{len(errors)} error(s) in config"
        lines = [d.render() for d in errors[:20]]
        if len(errors) > 20:
            lines.append(f"... and {len(errors) - 20} more")
        super().__init__("\n".join([head, *lines]))
