"""Gateway TCP servers, routed by Envoy's own ``tcp_proxy`` (Istio's TCP traffic shifting).

ext_proc only sees HTTP requests, so serve cannot route a TCP connection: the route is chosen
here, when the bootstrap is generated, exactly as istiod does for a gateway
(``buildGatewayNetworkFiltersFromTCPRoutes``): the VirtualServices bound to the Gateway whose
hosts overlap the server's hosts (loosely: a TCP connection carries no host, so the hosts only
select VirtualServices, never routes), in gateway merge order; the first ``tcp`` route with a
match block that holds at this gateway wins (semantics §2.15). Its destinations become the
listener's ``tcp_proxy`` cluster, or ``weighted_clusters`` chosen per connection.

Changing the route therefore needs a new bootstrap: serve's hot reload covers HTTP only. TLS
PASSTHROUGH servers (:mod:`.passthrough`) reuse this selection with ``tls`` routes.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.gateway import GatewayInfo
from meshroute.config.hosts import intersect, visibility_class
from meshroute.config.model import Model
from meshroute.config.streamroute import L4Destination, L4Match, L4Route
from meshroute.config.virtualservice import VirtualServiceInfo
from meshroute.envoy.clusters import cluster_name
from meshroute.envoy.common import Json, typed
from meshroute.envoy.http import access_log
from meshroute.envoy.options import Options
from meshroute.extproc import BLACKHOLE_CLUSTER

# Opaque-TCP protocols at a gateway: Istio gives MONGO/MYSQL/REDIS the same tcp_proxy (their own
# protocol filters are off by default).
TCP_PROTOCOLS = frozenset({"TCP", "MONGO", "MYSQL", "REDIS"})
TCP_PROXY = "envoy.filters.network.tcp_proxy"
TCP_LOG_FORMAT = (
    "[%START_TIME%] TCP %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION%ms listener=%DOWNSTREAM_LOCAL_PORT%\n"
)


@dataclass(frozen=True)
class TcpServer:
    """One Gateway server routed by Envoy alone: an opaque-TCP port, or a TLS PASSTHROUGH server."""

    gateway: GatewayInfo
    index: int  # position in spec.servers (for diagnostics)
    port: int  # the Gateway's port, not the bind port
    hosts: tuple[tuple[str, str], ...]  # (namespace part: "*" or a name, host)


@dataclass(frozen=True)
class Chosen:
    """The route a server's connections take: (cluster, weight) pairs, weight 0 for a single one."""

    vs: VirtualServiceInfo
    route_index: int
    destinations: tuple[tuple[str, int], ...]


def _hosts_overlap(vs: VirtualServiceInfo, server: TcpServer) -> bool:
    """Istio's ``pickMatchingGatewayHosts``: any VS host overlaps any server host whose namespace
    part admits the VS's namespace."""
    return any(
        ns in ("*", vs.namespace) and intersect(host, vs_host)
        for ns, host in server.hosts
        for vs_host in vs.hosts
    )


def candidates(model: Model, server: TcpServer, kind: str = "tcp") -> list[VirtualServiceInfo]:
    """VirtualServices with ``kind`` routes that may route this server, in gateway merge order
    (§2.16 step 1).

    Not ``ConfigIndex.gateway_virtual_services``: that binds through HTTP routes only, and a TCP-only
    VirtualService may name the gateway in a ``tcp`` (``tls``) match alone.
    """
    ns = server.gateway.namespace
    found = [
        vs
        for vs in model.roots()
        if vs.visible_from(ns) and _hosts_overlap(vs, server) and (vs.tls if kind == "tls" else vs.tcp)
    ]
    return sorted(found, key=lambda vs: (visibility_class(vs.export_to, vs.namespace, ns), vs.order))


def match_holds(match: L4Match, vs: VirtualServiceInfo, server: TcpServer) -> bool:
    """A match block holds at this gateway server (``port`` absent or its own, ``gateways``)."""
    if match.port is not None and match.port != server.port:
        return False
    # A match-level gateways list replaces the VirtualService's for this block (semantics §2.1).
    return server.gateway.ref in (match.gateways or vs.gateways)


def choose(model: Model, server: TcpServer, diagnostics: list[Diagnostic]) -> Chosen | None:
    """The first tcp route of the first candidate VirtualService with a block that holds here."""
    for vs in candidates(model, server):
        for i, route in enumerate(vs.tcp):
            holding = [j for j, m in enumerate(route.matches) if match_holds(m, vs, server)]
            if route.matches and not holding:
                continue
            if not route.matches and server.gateway.ref not in vs.gateways:
                continue
            for j in holding:
                diagnostics.extend(match_ignored(route.matches[j], vs, server, ("tcp", i, "match", j)))
            return Chosen(vs, i, route_clusters(route, vs, server, model))
    return None


def _ignored(match: L4Match) -> list[str]:
    """The match's conditions a gateway cannot evaluate: Istio's l4MultiMatch ignores them there."""
    present = {
        "sourceLabels": bool(match.source_labels),
        "sourceNamespace": match.source_namespace is not None,
        "destinationSubnets": bool(match.destination_subnets),
        "sourceSubnet": match.source_subnet is not None,
    }
    return [name for name, set_ in present.items() if set_]


def match_ignored(
    match: L4Match, vs: VirtualServiceInfo, server: TcpServer, path: tuple[str | int, ...]
) -> list[Diagnostic]:
    """``envoy-tcp-match-ignored`` (``envoy-tls-…``) for the runtime conditions a gateway skips."""
    ignored = _ignored(match)
    if not ignored:
        return []
    kind = str(path[0])
    return [
        vs.resource.warning(
            f"envoy-{kind}-match-ignored",
            ("spec", *path),
            f"{', '.join(ignored)} cannot be checked for {kind.upper()} at gateway "
            f"{server.gateway.ref} port {server.port}; the match is taken without it",
        )
    ]


def missing_clusters(
    chosen: Chosen, server: TcpServer, clusters: Collection[str], kind: str = "tcp"
) -> list[Diagnostic]:
    """``envoy-tcp-cluster`` (``envoy-tls-…``) for each destination the bootstrap does not define."""
    return [
        chosen.vs.resource.warning(
            f"envoy-{kind}-cluster",
            ("spec", kind, chosen.route_index, "route"),
            f"cluster {cluster} does not exist (unknown service, port or subset); "
            f"connections to {kind.upper()} port {server.port} sent there are closed",
        )
        for cluster, _ in chosen.destinations
        if cluster not in clusters
    ]


def route_clusters(
    route: L4Route, vs: VirtualServiceInfo, server: TcpServer, model: Model
) -> tuple[tuple[str, int], ...]:
    """Istio cluster names with their weights; several destinations drop weight 0 (§2.5)."""
    out = [(cluster_name(_port(d, server, model), d.subset, d.host), d.weight) for d in route.route]
    if len(out) > 1:
        out = [(name, w) for name, w in out if w > 0]
    return tuple(out)


def _port(dest: L4Destination, server: TcpServer, model: Model) -> int:
    """``port.number``, else the service's only port, else the listener's port (Istio's
    ``GetDestinationCluster``; the latter names a cluster that usually does not exist)."""
    if dest.port is not None:
        return dest.port
    svc = model.registry.lookup(dest.host, server.gateway.namespace) or model.registry.lookup(dest.host)
    single = svc.single_port if svc else None
    return single or server.port


def tcp_proxy(
    stat_prefix: str, targets: Sequence[tuple[str, int]], options: Options, log_format: str = TCP_LOG_FORMAT
) -> Json:
    """The ``tcp_proxy`` network filter: one cluster, or a weighted choice made per connection."""
    config = typed("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", stat_prefix=stat_prefix)
    if len(targets) == 1:
        config["cluster"] = targets[0][0]
    else:
        config["weighted_clusters"] = {"clusters": [{"name": n, "weight": w} for n, w in targets]}
    if options.access_log:
        config["access_log"] = [access_log(options.access_log, log_format)]
    return {"name": TCP_PROXY, "typed_config": config}


def tcp_filter_chain(
    name: str, server: TcpServer, model: Model, options: Options, clusters: Collection[str]
) -> tuple[Json, list[Diagnostic]]:
    """The filter chain of a TCP server's listener, and what could not be honoured."""
    diagnostics: list[Diagnostic] = []
    res, path = server.gateway.resource, ("spec", "servers", server.index)
    chosen = choose(model, server, diagnostics)
    if chosen is None or not chosen.destinations:
        # Istio leaves such a gateway port without a route: connections are closed
        # (BlackHoleCluster has no endpoints, so tcp_proxy closes right after accepting).
        diagnostics.append(
            res.warning(
                "envoy-tcp-no-route",
                path,
                f"TCP port {server.port}: no tcp route of a VirtualService bound to {server.gateway.ref} "
                "matches it; connections are closed",
            )
        )
        return {"filters": [tcp_proxy(name, [(BLACKHOLE_CLUSTER, 0)], options)]}, diagnostics
    diagnostics.extend(missing_clusters(chosen, server, clusters))
    return {"filters": [tcp_proxy(name, chosen.destinations, options)]}, diagnostics
