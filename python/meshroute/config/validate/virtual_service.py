"""VirtualService rules (semantics §8.2): hosts, gateways, delegation, TLS and TCP routes.
HTTP routes are in :mod:`.vs_http`, unreachable-rule warnings in :mod:`.unreachable`."""

from __future__ import annotations

import re
from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, routes, unreachable, vs_http
from meshroute.config.validate.context import Ctx, items, strings
from meshroute.config.validate.routes import VsInfo

# Gateway auto-SNI form accepted in sniHosts of gateway-only VSs (V4): outbound_.<port>_._.<host>
_AUTO_SNI = re.compile(r"outbound_\.[0-9]+_\.[^.]*_\.(.+)\Z")


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """All per-resource VirtualService rules, V1-V35."""
    path: Path = ("spec",)
    hosts = tuple(h for _, h in strings(spec.get("hosts")))
    gateways = [g for _, g in strings(spec.get("gateways"))]
    info = VsInfo(
        hosts=hosts, gateway_only=bool(gateways) and "mesh" not in gateways, delegate=not spec.get("hosts")
    )
    _check_hosts(ctx, spec, info)
    routes.check_gateway_names(ctx, spec.get("gateways"), (*path, "gateways"))
    if info.delegate:
        _check_delegate_vs(ctx, spec)
    if not any(spec.get(k) for k in ("http", "tcp", "tls")):
        ctx.error("vs-no-routes", path, "a VirtualService needs at least one of http, tcp or tls routes (V7)")
    for i, message in common.export_to_problems(
        [e for _, e in strings(spec.get("exportTo"))], ctx.namespace, allow_tilde=False
    ):
        ctx.error("export-to-invalid", (*path, "exportTo", i), message)
    for i, route in items(spec.get("http")):
        vs_http.check_http_route(ctx, route, (*path, "http", i), info)
    for i, route in items(spec.get("tls")):
        _check_tls_route(ctx, route, (*path, "tls", i), info)
    for i, route in items(spec.get("tcp")):
        _check_tcp_route(ctx, route, (*path, "tcp", i))
    unreachable.analyze(ctx, spec)


def _check_hosts(ctx: Ctx, spec: dict[str, Any], info: VsInfo) -> None:
    """V4 (C3, IPs accepted), V5 (``*`` only on gateway-only VSs), V6 (no overlapping hosts)."""
    path: Path = ("spec", "hosts")
    seen: list[tuple[int, str]] = []
    for i, host in strings(spec.get("hosts")):
        problem = common.wildcard_domain_problem(host)
        if problem and not common.is_ip(host):
            ctx.error("host-invalid", (*path, i), problem)
        if host == "*" and not info.gateway_only:
            ctx.error(
                "vs-host-wildcard-mesh",
                (*path, i),
                "host `*` is not allowed for a VirtualService that applies to sidecars (`mesh`); "
                "list the services, or bind it to gateways only",
            )
        for j, other in seen:
            if hosts_overlap(host, other):
                ctx.error(
                    "vs-host-duplicate",
                    (*path, i),
                    f"host {host!r} overlaps hosts[{j}] {other!r}; each host may appear once",
                )
                break
        seen.append((i, host))


def hosts_overlap(a: str, b: str) -> bool:
    """Istio ``host.Name.Matches``: equal, or one wildcard's suffix covers the other (case-insensitive).

    >>> hosts_overlap("a.foo.com", "*.foo.com"), hosts_overlap("*.foo.com", "*.com"), hosts_overlap("a", "b")
    (True, True, False)
    """
    a, b = a.lower(), b.lower()
    if a.startswith("*") and b.startswith("*"):
        return a[1:].endswith(b[1:]) or b[1:].endswith(a[1:])
    if a.startswith("*"):
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """Istio ``host.Name.SubsetOf``: every name ``a`` matches is matched by ``b``."""
    a, b = a.lower(), b.lower()
    if a.startswith("*"):
        return b.startswith("*") and a[1:].endswith(b[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def _check_delegate_vs(ctx: Ctx, spec: dict[str, Any]) -> None:
    """V1: a VS without hosts is a delegate: no gateways, tls or tcp."""
    for key in ("gateways", "tls", "tcp"):
        if spec.get(key):
            ctx.error(
                "vs-delegate-invalid",
                ("spec", key),
                f"a VirtualService without hosts is a delegate and cannot set `{key}`; add `hosts` "
                "if this is not a delegate",
            )


def _check_tls_route(ctx: Ctx, route: dict[str, Any], path: Path, info: VsInfo) -> None:
    """V34: at least one match, each with SNI hosts inside the VS hosts; destinations as V31."""
    matches = route.get("match")
    if isinstance(matches, list) and not matches:
        ctx.error("vs-tls-match-missing", (*path, "match"), "a TLS route needs at least one match (sniHosts)")
    for i, match in items(matches):
        mpath = (*path, "match", i)
        sni_hosts = match.get("sniHosts")
        if isinstance(sni_hosts, list) and not sni_hosts:
            ctx.error("vs-sni-missing", (*mpath, "sniHosts"), "a TLS match needs at least one SNI host")
        for j, sni in strings(sni_hosts):
            _check_sni(ctx, sni, (*mpath, "sniHosts", j), info)
        routes.check_l4_match(ctx, match, mpath)
    routes.require_routes(ctx, route.get("route"), path, "TLS")
    routes.check_route_destinations(ctx, route.get("route"), (*path, "route"), http=False)


def _check_sni(ctx: Ctx, sni: str, path: Path, info: VsInfo) -> None:
    auto = _AUTO_SNI.match(sni) if info.gateway_only else None
    name = auto.group(1) if auto else sni
    problem = common.wildcard_domain_problem(name)
    if problem:
        if common.is_ip(sni):
            ctx.warning(
                "vs-sni-ip", path, f"SNI host {sni!r} is an IP address; clients do not send IPs as SNI"
            )
        else:
            ctx.error("host-invalid", path, problem)
        return
    if not any(host_subset_of(name, host) for host in info.hosts):
        ctx.error(
            "vs-sni-not-in-hosts",
            path,
            f"SNI host {sni!r} is not a subset of any of the VirtualService hosts {list(info.hosts)}",
        )


def _check_tcp_route(ctx: Ctx, route: dict[str, Any], path: Path) -> None:
    """V35: match attributes, at least one destination, destinations as V31."""
    for i, match in items(route.get("match")):
        routes.check_l4_match(ctx, match, (*path, "match", i))
    routes.require_routes(ctx, route.get("route"), path, "TCP")
    routes.check_route_destinations(ctx, route.get("route"), (*path, "route"), http=False)
