"""Config pipeline: read YAML → validate each resource → cross-reference and compile to the IR."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


def analyze(
    paths: Iterable[str | os.PathLike[str]],
    *,
    domain: str = "cluster.local",
    timings: dict[str, float] | None = None,
) -> Analysis:
    """Load, validate and compile ``paths`` (files or directories). Never raises on bad input.

    ``domain`` is the cluster domain unless a mesh config document sets ``clusterDomain``
    (semantics §12).

    ``timings``, if given, receives the seconds spent in each step: ``parse``, ``validate``,
    ``compile`` (``meshroute bench --scale``)."""
    from meshroute.config.validate.fields import shared_normalization

    with _gc_paused(), shared_normalization():
        return _analyze(paths, domain, timings)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a config is analysed: everything it allocates stays
    alive until the end, so each full collection would only re-scan a growing heap (a 10 000-service
    mesh spent half its load time there). The collector runs again as usual afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _analyze(
    paths: Iterable[str | os.PathLike[str]], domain: str, timings: dict[str, float] | None
) -> Analysis:
    from meshroute.compile import compile_config

    clock = time.perf_counter
    started = clock()
    loaded = load_paths(paths)
    parsed = clock()
    out = Analysis(resources=loaded.resources, diagnostics=list(loaded.diagnostics))
    admitted: list[Resource] = []
    for res in loaded.resources:
        found, ok = admit(res)
        out.diagnostics.extend(found)
        if ok:
            admitted.append(res)
    validated = clock()
    ir, cross = compile_config(admitted, domain=domain)
    out.diagnostics.extend(cross)
    out.ir = ir
    out.diagnostics.sort(key=_order)
    if timings is not None:
        timings.update(parse=parsed - started, validate=validated - parsed, compile=clock() - validated)
    return out


def admit(res: Resource) -> tuple[list[Diagnostic], bool]:
    """A resource's own validation diagnostics, and whether the compiler gets it: as Istio's
    webhook admits, a resource without errors of its own. Only Istio resources and mesh config
    documents are validated; a mesh config with errors is left out too (istiod keeps its
    defaults for one it cannot read). A kind that changes traffic in Istio but that meshroute does
    not read gets a warning (:mod:`meshroute.config.validate.unread`)."""
    from meshroute.config.validate import validate_resource
    from meshroute.config.validate.mesh_config import is_mesh_config
    from meshroute.config.validate.unread import unread_kind

    if not res.is_istio and not is_mesh_config(res):
        return unread_kind(res), True
    found = validate_resource(res)
    return found, not has_errors(found)


def _order(d: Diagnostic) -> tuple[str, int, str]:
    return (d.file or "", d.line or 0, d.code)
