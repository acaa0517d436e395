"""Gateway TLS PASSTHROUGH servers, routed by SNI to ``tcp_proxy`` (Istio's ingress SNI passthrough).

The client's TLS goes through untouched: Envoy only reads the SNI of the ClientHello
(``tls_inspector``) and picks a filter chain by ``server_names``, as istiod does for a gateway
(``buildGatewayNetworkFiltersFromTLSRoutes``). The VirtualServices are selected as for TCP
(:func:`.tcp.candidates`, with ``tls`` routes); each route whose match blocks hold here (``port``
absent or the server's, ``gateways``) becomes one chain for the blocks' ``sniHosts``. An SNI
outside the server's hosts is dropped, and an SNI already claimed (by an earlier route, or by a
TLS-terminating server on the same port) stays with the first. A connection whose SNI no chain
names matches no chain, and Envoy closes it.

Like TCP routes, these are fixed when the bootstrap is generated.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import matches
from meshroute.config.model import Model
from meshroute.config.virtualservice import VirtualServiceInfo
from meshroute.envoy.common import Json
from meshroute.envoy.options import Options
from meshroute.envoy.tcp import (
    Chosen,
    TcpServer,
    candidates,
    match_holds,
    match_ignored,
    missing_clusters,
    route_clusters,
    tcp_proxy,
)

PASSTHROUGH_MODES = frozenset({"PASSTHROUGH", "AUTO_PASSTHROUGH"})
PASSTHROUGH_LOG_FORMAT = (
    "[%START_TIME%] TLS %RESPONSE_FLAGS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION%ms listener=%DOWNSTREAM_LOCAL_PORT% "
    "sni=%REQUESTED_SERVER_NAME%\n"
)


@dataclass
class Chains:
    """A PASSTHROUGH server's filter chains and what could not be honoured.

    ``outside`` holds the warnings for SNI hosts outside this server's hosts: the listener only
    reports those that no other PASSTHROUGH server on the port serves (several servers, one each).
    """

    chains: list[Json] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    outside: list[tuple[str, Diagnostic]] = field(default_factory=list)


def _within(sni: str, vs: VirtualServiceInfo, server: TcpServer) -> bool:
    return any(ns in ("*", vs.namespace) and matches(host, sni) for ns, host in server.hosts)


def passthrough_chains(
    name: str,
    server: TcpServer,
    model: Model,
    options: Options,
    clusters: Collection[str],
    claimed: set[str],
) -> Chains:
    """One chain per ``tls`` route that holds here, matched on its SNI hosts; ``claimed`` holds the
    server names already taken on this listener (``*`` for the chain without server names) and
    is updated."""
    out = Chains()
    ref = server.gateway.ref
    for vs in candidates(model, server, "tls"):
        for i, route in enumerate(vs.tls):
            names: list[str] = []
            for j, block in enumerate(route.matches):
                if not match_holds(block, vs, server):
                    continue
                out.diagnostics.extend(match_ignored(block, vs, server, ("tls", i, "match", j)))
                path = ("spec", "tls", i, "match", j, "sniHosts")
                for sni in block.sni_hosts:
                    if sni in names:
                        continue
                    if not _within(sni, vs, server):
                        message = (
                            f"SNI {sni} is not within the hosts of {ref}'s TLS PASSTHROUGH server "
                            f"on port {server.port}; it gets no filter chain there"
                        )
                        out.outside.append((sni, vs.resource.warning("envoy-tls-sni-outside", path, message)))
                    elif sni in claimed:
                        out.diagnostics.append(
                            vs.resource.warning(
                                "envoy-tls-sni-duplicate",
                                path,
                                f"SNI {sni} on port {server.port} is already routed by an earlier tls "
                                "route or TLS server; the first one keeps it",
                            )
                        )
                    else:
                        names.append(sni)
            chosen = Chosen(vs, i, route_clusters(route, vs, server, model))
            if not names or not chosen.destinations:
                continue
            claimed.update(names)
            out.diagnostics.extend(missing_clusters(chosen, server, clusters, "tls"))
            match: Json = {"transport_protocol": "tls"}
            if "*" not in names:  # "*" is any SNI: the chain without server names
                match["server_names"] = names
            prefix = f"{name}_passthrough"
            out.chains.append(
                {
                    "filter_chain_match": match,
                    "filters": [tcp_proxy(prefix, chosen.destinations, options, PASSTHROUGH_LOG_FORMAT)],
                }
            )
    if not out.chains:
        out.diagnostics.append(
            server.gateway.resource.warning(
                "envoy-tls-no-route",
                ("spec", "servers", server.index),
                f"TLS PASSTHROUGH port {server.port}: no tls route of a VirtualService bound to {ref} "
                "matches an SNI of its hosts; its connections are closed",
            )
        )
    return out
