"""Per-resource validation of Istio networking resources (semantics §8).

Every problem is reported at once as a :class:`~meshroute.config.diagnostics.Diagnostic` with a
stable code and the field path from the document root; nothing here raises, whatever the input.
Cross-resource checks (unknown subsets, hosts, gateways) live in ``meshroute.config.index``.

>>> from meshroute.config.load import load_text
>>> doc = '''
... apiVersion: networking.istio.io/v1
... kind: VirtualService
... metadata: {name: reviews}
... spec:
...   hosts: [reviews]
...   http:
...   - timeout: 0s
...     route: [{destination: {host: reviews}, weight: -1}]
... '''
>>> for d in validate_resources(load_text(doc, "vs.yaml").resources):
...     print(d.code, d.path)
duration-too-short ('spec', 'http', 0, 'timeout')
vs-weight-negative ('spec', 'http', 0, 'route', 0, 'weight')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource
from meshroute.config.validate import (
    destination_rule,
    gateway,
    service_entry,
    sidecar,
    virtual_service,
    workload_entry,
)
from meshroute.config.validate.common import parse_duration_ms, parse_duration_ns
from meshroute.config.validate.context import Ctx
from meshroute.config.validate.fields import normalize_spec, remember_normalized, walk_spec
from meshroute.config.validate.mesh_config import is_mesh_config, validate_mesh_config

__all__ = [
    "normalize_spec",
    "parse_duration_ms",
    "parse_duration_ns",
    "validate_resource",
    "validate_resources",
]

_VALIDATORS: dict[str, Callable[[Ctx, dict[str, Any]], None]] = {
    "VirtualService": virtual_service.validate,
    "DestinationRule": destination_rule.validate,
    "Gateway": gateway.validate,
    "ServiceEntry": service_entry.validate,
    "WorkloadEntry": workload_entry.validate,
    "Sidecar": sidecar.validate,
}
_FORBIDDEN_ANNOTATIONS = ("istio.io/dry-run", "istio.io/alwaysReject")


def validate_resource(res: Resource) -> list[Diagnostic]:
    """Errors and warnings for one resource (an Istio networking resource, or a mesh config
    document: :mod:`meshroute.config.meshconfig`); ``[]`` for kinds meshroute does not validate."""
    if is_mesh_config(res):
        try:
            return validate_mesh_config(res)
        except Exception as exc:  # a validator bug must not hide the rest of the config's problems
            message = f"validation failed unexpectedly ({type(exc).__name__}: {exc}); please report this"
            return [res.error("internal-error", (), message)]
    validator = _VALIDATORS.get(res.kind)
    if validator is None or not res.is_istio:
        return []
    ctx = Ctx(res)
    try:
        _check_annotations(ctx)
        if res.spec is None:
            ctx.error("required-field", ("spec",), f"a {res.kind} needs a `spec`")
            return ctx.diagnostics
        spec = walk_spec(ctx, res.kind, res.spec)
        if spec is not None:
            # the same data normalize_spec would return: the walk only reports besides
            remember_normalized(res.kind, res.spec, spec)
            validator(ctx, spec)
    except Exception as exc:  # a validator bug must not hide the rest of the config's problems
        ctx.error(
            "internal-error",
            (),
            f"validation failed unexpectedly ({type(exc).__name__}: {exc}); please report this",
        )
    return ctx.diagnostics


def validate_resources(resources: Iterable[Resource]) -> list[Diagnostic]:
    """:func:`validate_resource` for each resource, in order."""
    out: list[Diagnostic] = []
    for res in resources:
        out.extend(validate_resource(res))
    return out


def _check_annotations(ctx: Ctx) -> None:
    """C9: dry-run is for AuthorizationPolicy only; internal annotations are set by Istio itself."""
    annotations = ctx.res.metadata.get("annotations")
    if not isinstance(annotations, dict):
        return
    for key in annotations:
        if not isinstance(key, str):
            continue
        if key in _FORBIDDEN_ANNOTATIONS or key.startswith("internal.istio.io/"):
            ctx.error(
                "annotation-forbidden",
                ("metadata", "annotations", key),
                f"annotation {key!r} is not allowed on a {ctx.res.kind}",
            )
