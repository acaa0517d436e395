"""Pieces shared by HTTP, TLS and TCP routes: destinations (V33), weighted destination lists (V31),
gateway names (V2), match attributes common to all three route kinds (V30, V34, V35)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, headers
from meshroute.config.validate.context import Ctx, items, mapping, strings

MAX_TOTAL_WEIGHT = 2**32 - 1


@dataclass(frozen=True)
class VsInfo:
    """What route-level rules need to know about the enclosing VirtualService."""

    hosts: tuple[str, ...]
    gateway_only: bool  # bound to gateways only (no `mesh`): JWT claim routing allowed (V3)
    delegate: bool  # no hosts: a delegate VirtualService (V1, V12)


def check_gateway_names(ctx: Ctx, names: Any, path: Path) -> None:
    """V2: ``ns/name`` with both parts DNS labels, or a plain/FQDN name (dotted ones warn)."""
    for i, name in strings(names):
        ns, slash, gw = name.partition("/")
        if not slash:
            problem = common.fqdn_problem(name)
            if problem:
                ctx.error("vs-gateway-invalid", (*path, i), f"invalid gateway name {name!r}: {problem}")
            elif "." in name:
                parts = name.split(".")
                ctx.warning(
                    "vs-gateway-legacy-name",
                    (*path, i),
                    f"using legacy gateway name format {name!r}; prefer <namespace>/<name>: "
                    f"{parts[1]}/{parts[0]}",
                )
            continue
        if not ns or not gw:
            ctx.error(
                "vs-gateway-invalid", (*path, i), f"{name!r}: namespace and gateway name cannot be empty"
            )
            continue
        # "./name" means the VirtualService's own namespace (semantics §1.1)
        if ns != "." and not common.is_dns_label(ns):
            ctx.error("vs-gateway-invalid", (*path, i), f"{name!r}: namespace {ns!r} is not a DNS-1123 label")
        if not common.is_dns_label(gw):
            ctx.error(
                "vs-gateway-invalid", (*path, i), f"{name!r}: gateway name {gw!r} is not a DNS-1123 label"
            )


def check_labels(ctx: Ctx, labels: Any, path: Path) -> None:
    """C7 for every key and value of a label map."""
    for key, value in mapping(labels).items():
        problem = common.label_key_problem(key) or (
            common.label_value_problem(value) if isinstance(value, str) else None
        )
        if problem:
            ctx.error("label-invalid", (*path, key), problem)


def check_destination(ctx: Ctx, dest: dict[str, Any], path: Path) -> None:
    """V33: host not ``*`` and C3 (short names fine); subset a DNS label; port C2."""
    host = dest.get("host")
    if host == "*":
        ctx.error("host-invalid", (*path, "host"), "destination host cannot be `*`; name a service")
    elif isinstance(host, str):
        problem = common.wildcard_domain_problem(host)
        if problem:
            ctx.error("host-invalid", (*path, "host"), problem)
    subset = dest.get("subset")
    if isinstance(subset, str) and not common.is_dns_label(subset):
        ctx.error(
            "vs-subset-invalid",
            (*path, "subset"),
            f"subset {subset!r} must be a DNS-1123 label (lower-case letters, digits, '-')",
        )
    port = mapping(dest.get("port"))
    if "number" in port:
        problem = common.port_problem(port["number"])
        if problem:
            ctx.error("port-invalid", (*path, "port", "number"), problem)
    elif "port" in dest:
        ctx.require(port, "number", (*path, "port"), "`port` needs a `number` (1-65535)")


def check_route_destinations(ctx: Ctx, route: Any, path: Path, *, http: bool) -> None:
    """V31: each destination valid, weights >= 0, with several destinations a total above 0."""
    total, count = 0, 0
    for i, entry in items(route):
        count += 1
        dest = entry.get("destination")
        if isinstance(dest, dict):
            check_destination(ctx, dest, (*path, i, "destination"))
        weight = entry.get("weight", 0)
        if weight < 0:
            ctx.error(
                "vs-weight-negative", (*path, i, "weight"), f"weight {weight} is negative; use 0 or more"
            )
        else:
            total += weight
        if http and "headers" in entry:
            check_header_operations(ctx, entry["headers"], (*path, i, "headers"))
    if count > 1 and total == 0:
        ctx.error(
            "vs-weight-zero-total",
            path,
            "the weights of all destinations are 0; give at least one a positive weight",
        )
    if total > MAX_TOTAL_WEIGHT:
        ctx.error("vs-weight-overflow", path, f"total weight {total} exceeds {MAX_TOTAL_WEIGHT}")


def check_header_operations(ctx: Ctx, ops: Any, path: Path) -> int:
    """V17 for a ``headers`` block; returns how many authority rewrites it contains (for V18)."""
    rewrites = 0
    for side in ("request", "response"):
        block = mapping(mapping(ops).get(side))
        for verb in ("set", "add"):
            for name, value in mapping(block.get(verb)).items():
                where = (*path, side, verb, name)
                problem = headers.operation_name_problem(name, setting=side == "request")
                if problem:
                    ctx.error("vs-header-op-invalid", where, problem)
                elif side == "request" and name.lower() in ("host", ":authority"):
                    rewrites += 1
                value_problem = headers.value_problem(value) if isinstance(value, str) else None
                if value_problem:
                    ctx.error("header-value-invalid", where, value_problem)
        for i, name in strings(block.get("remove")):
            problem = headers.operation_name_problem(name, setting=False)
            if problem:
                ctx.error("vs-header-op-invalid", (*path, side, "remove", i), problem)
    return rewrites


def check_l4_match(ctx: Ctx, match: dict[str, Any], path: Path) -> None:
    """V34/V35: subnets (C6), port (C2), source labels (C7), gateways (V2), source namespace."""
    for i, subnet in strings(match.get("destinationSubnets")):
        problem = common.ip_or_cidr_problem(subnet)
        if problem:
            ctx.error("cidr-invalid", (*path, "destinationSubnets", i), problem)
    check_match_common(ctx, match, path)


def check_match_common(ctx: Ctx, match: dict[str, Any], path: Path) -> None:
    """The config-time filters every match kind has: port, sourceLabels, gateways, sourceNamespace."""
    port = match.get("port", 0)
    if port != 0:
        problem = common.port_problem(port)
        if problem:
            ctx.error("port-invalid", (*path, "port"), problem)
    check_labels(ctx, match.get("sourceLabels"), (*path, "sourceLabels"))
    check_gateway_names(ctx, match.get("gateways"), (*path, "gateways"))
    namespace = match.get("sourceNamespace")
    if isinstance(namespace, str) and namespace and not common.is_dns_label(namespace):
        ctx.error(
            "vs-source-namespace-invalid",
            (*path, "sourceNamespace"),
            f"sourceNamespace {namespace!r} must be a namespace name (DNS-1123 label)",
        )


def require_routes(ctx: Ctx, route: Any, path: Path, what: str) -> None:
    """``route`` must be a non-empty list (TLS and TCP routes forward only)."""
    if isinstance(route, list) and route:
        return
    if (*path, "route") not in ctx.bad:
        ctx.error("vs-route-missing", (*path, "route"), f"a {what} route needs at least one destination")
