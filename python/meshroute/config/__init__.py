"""Config pipeline: read YAML → validate each resource → cross-reference and compile to the IR."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.diagnostics import Diagnostic, Severity, has_errors
from meshroute.config.load import Resource, load_paths


@dataclass
class Analysis:
    """Everything known about a set of config files.

    ``ir`` is the compiled route-table IR (a JSON-able dict), built from the resources that have no
    errors of their own — as Istio's webhook would admit them.
    """

    resources: list[Resource] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    ir: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not has_errors(self.diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]


def analyze(paths: Iterable[str | os.PathLike[str]], *, domain: str = "cluster.local") -> Analysis:
    """Load, validate and compile ``paths`` (files or directories). Never raises on bad input."""
    from meshroute.compile import compile_config
    from meshroute.config.validate import validate_resource

    loaded = load_paths(paths)
    out = Analysis(resources=loaded.resources, diagnostics=list(loaded.diagnostics))
    admitted: list[Resource] = []
    for res in loaded.resources:
        if not res.is_istio:
            admitted.append(res)
            continue
        found = validate_resource(res)
        out.diagnostics.extend(found)
        if not has_errors(found):
            admitted.append(res)
    ir, cross = compile_config(admitted, domain=domain)
    out.diagnostics.extend(cross)
    out.ir = ir
    out.diagnostics.sort(key=_order)
    return out


def _order(d: Diagnostic) -> tuple[str, int, str]:
    return (d.file or "", d.line or 0, d.code)
