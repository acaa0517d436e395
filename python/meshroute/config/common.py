"""What every resource type's parser shares: a resource's normalised spec, string lists, the
precedence order of resources (oldest first), and duplicate-resource handling.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource
from meshroute.config.validate.fields import normalize_spec as normalize

Order = tuple[str, int]  # (creationTimestamp or "", position in the input): oldest first


def strings(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def string_map(value: Any) -> dict[str, str]:
    """A label map (``sourceLabels``, a selector, ``metadata.labels``) with keys and values as
    strings; {} when ``value`` is no mapping."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def spec_of(res: Resource) -> dict[str, Any]:
    spec = normalize(res.kind, res.spec)
    return spec if isinstance(spec, dict) else {}


def order_of(res: Resource, position: int) -> Order:
    ts = res.metadata.get("creationTimestamp")
    return (str(ts) if ts is not None else "", position)


def dedupe(resources: Sequence[Resource]) -> tuple[list[Resource], list[Diagnostic]]:
    """The later of two resources with the same group/kind/namespace/name replaces the earlier one,
    like ``kubectl apply``; it keeps the earlier one's place (its creation time does not change)."""
    kept: dict[tuple[str, str, str, str], int] = {}
    out: list[Resource] = []
    diags: list[Diagnostic] = []
    for res in resources:
        key = (res.api_version.split("/")[0], res.kind, res.namespace, res.name)
        if key in kept:
            earlier = out[kept[key]]
            diags.append(
                res.warning(
                    "duplicate-resource",
                    ("metadata", "name"),
                    f"{res.kind} {res.namespace}/{res.name} is defined again; this definition replaces the "
                    f"one at {earlier.file}:{earlier.line}",
                )
            )
            out[kept[key]] = res
        else:
            kept[key] = len(out)
            out.append(res)
    return out, diags
