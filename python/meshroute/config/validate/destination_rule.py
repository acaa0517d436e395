"""DestinationRule rules (semantics §8.3, D1-D5; policies in :mod:`.traffic_policy`)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, routes
from meshroute.config.validate.context import Ctx, items, mapping, strings
from meshroute.config.validate.traffic_policy import check_traffic_policy

# meshroute's own annotation: a load balancer Istio does not have, for every cluster of the
# DestinationRule whose loadBalancer is `simple` or unset (docs/client.md, "PEAK_EWMA").
LOAD_BALANCER_ANNOTATION = "meshroute.io/load-balancer"
LOAD_BALANCERS = ("PEAK_EWMA",)


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """D1-D16 for one DestinationRule, and meshroute's load-balancer annotation."""
    _check_load_balancer_annotation(ctx)
    path: Path = ("spec",)
    host = spec.get("host")
    if isinstance(host, str):
        problem = common.wildcard_domain_problem(host)
        if problem:
            ctx.error("host-invalid", (*path, "host"), problem)
    if "trafficPolicy" in spec:
        check_traffic_policy(ctx, spec["trafficPolicy"], (*path, "trafficPolicy"))
    _check_subsets(ctx, spec.get("subsets"), (*path, "subsets"))
    _check_export_to(ctx, spec)
    selector = spec.get("workloadSelector")
    if isinstance(selector, dict):
        check_selector(ctx, selector.get("matchLabels"), (*path, "workloadSelector", "matchLabels"))


def _check_load_balancer_annotation(ctx: Ctx) -> None:
    """``meshroute.io/load-balancer`` names one of :data:`LOAD_BALANCERS` (Istio ignores the
    annotation; a value meshroute does not know would silently change nothing)."""
    annotations = ctx.res.metadata.get("annotations")
    if not isinstance(annotations, dict) or LOAD_BALANCER_ANNOTATION not in annotations:
        return
    value = annotations[LOAD_BALANCER_ANNOTATION]
    if value not in LOAD_BALANCERS:
        known = ", ".join(LOAD_BALANCERS)
        ctx.error(
            "dr-load-balancer-annotation-invalid",
            ("metadata", "annotations", LOAD_BALANCER_ANNOTATION),
            f"annotation {LOAD_BALANCER_ANNOTATION!r} is {value!r}: meshroute knows {known} "
            "(Istio's own policies go in trafficPolicy.loadBalancer.simple)",
        )


def _check_subsets(ctx: Ctx, subsets: Any, path: Path) -> None:
    """D3: names unique DNS-1123 labels, labels C7, subset policies validated like the top level."""
    seen: dict[str, int] = {}
    for i, subset in items(subsets):
        name = subset.get("name")
        if isinstance(name, str):
            if not common.is_dns_label(name):
                ctx.error(
                    "dr-subset-name-invalid",
                    (*path, i, "name"),
                    f"subset name {name!r} must be a DNS-1123 label (lower-case letters, digits, '-')",
                )
            if name in seen:
                ctx.error(
                    "dr-subset-duplicate",
                    (*path, i, "name"),
                    f"subset {name!r} is already defined at subsets[{seen[name]}]",
                )
            seen.setdefault(name, i)
        routes.check_labels(ctx, subset.get("labels"), (*path, i, "labels"))
        if "trafficPolicy" in subset:
            check_traffic_policy(ctx, subset["trafficPolicy"], (*path, i, "trafficPolicy"))


def _check_export_to(ctx: Ctx, spec: dict[str, Any]) -> None:
    """D4: C8; with a workloadSelector only the DR's own namespace."""
    entries = [e for _, e in strings(spec.get("exportTo"))]
    for i, message in common.export_to_problems(entries, ctx.namespace, allow_tilde=False):
        ctx.error("export-to-invalid", ("spec", "exportTo", i), message)
    if (
        "workloadSelector" in spec
        and entries
        and (len(entries) > 1 or entries[0] not in (".", ctx.namespace))
    ):
        ctx.error(
            "dr-export-to-selector",
            ("spec", "exportTo"),
            "a DestinationRule with a workloadSelector can only be exported to its own namespace (`.`)",
        )


def check_selector(ctx: Ctx, labels: Any, path: Path) -> None:
    """D5 / S1 / SC1: selector keys non-empty, no ``*`` in keys or values; otherwise C7."""
    for key, value in mapping(labels).items():
        if key == "" or "*" in key or (isinstance(value, str) and "*" in value):
            ctx.error(
                "selector-invalid",
                (*path, key),
                "wildcards are not supported in selectors and keys must not be empty",
            )
            continue
        problem = common.label_key_problem(key) or (
            common.label_value_problem(value) if isinstance(value, str) else None
        )
        if problem:
            ctx.error("label-invalid", (*path, key), problem)
