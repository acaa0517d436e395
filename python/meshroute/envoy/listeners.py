"""Listeners: one per distinct Gateway server port, and the mesh (sidecar-style outbound) one.

The servers are those the gateway proxies keep when each merges the Gateways selecting it
(semantics §4, :mod:`meshroute.config.workloads`): a server Istio's merge drops gets no listener
(warning ``envoy-server-skipped``). A port's listener serves every proxy with servers on it, and
the decision picks the proxy (its merged view) by the request host (docs/envoy.md). With
``Options.gateway_workload`` the listeners are those of that one proxy: its merged servers alone,
and a listener context naming the proxy (:func:`gateway_listeners`).

A Gateway port's listener binds the server's port number unless ``--bind-port PORT=BIND`` remaps
it; ext_proc is always told the Gateway's own port. Plain HTTP servers share one filter chain
(``httpsRedirect`` hosts get a redirect virtual host in it); each TLS-terminating server gets a
filter chain of its own, chosen by SNI. A TCP server (also MONGO/MYSQL/REDIS) gets a ``tcp_proxy``
listener routed here, at generation time (:mod:`.tcp`): serve only sees HTTP. A TLS PASSTHROUGH
server adds ``tcp_proxy`` chains chosen by SNI from ``tls`` routes (:mod:`.passthrough`), next to
the TLS-terminating chains of the same port. Other servers (AUTO_PASSTHROUGH, TLS terminated into
``tcp`` routes, …) are left out with a warning.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.config.gateway import GatewayInfo, Server
from meshroute.config.hosts import matches
from meshroute.config.load import Resource
from meshroute.config.model import Model
from meshroute.config.workloads import GatewayWorkload, gateway_workloads, parse_name, resolve
from meshroute.envoy.common import Json, socket_address, typed
from meshroute.envoy.credentials import Secrets
from meshroute.envoy.http import (
    LISTENER_KEY,
    PORT_KEY,
    SOURCE_LABELS_KEY,
    SOURCE_NAMESPACE_KEY,
    catch_all_vhost,
    connection_manager,
    redirect_vhost,
)
from meshroute.envoy.options import Options
from meshroute.envoy.passthrough import PASSTHROUGH_MODES, passthrough_chains
from meshroute.envoy.tcp import (
    TCP_PROTOCOLS,
    TcpServer,
    tcp_filter_chain,
    tcp_proxy,
)
from meshroute.envoy.tls import server_tls
from meshroute.extproc import BLACKHOLE_CLUSTER

HTTP_PROTOCOLS = frozenset({"HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB"})
# Protocols whose servers may pass TLS through (Istio: a server with a tls block in a passthrough mode).
PASSTHROUGH_PROTOCOLS = frozenset({"HTTPS", "TLS"})
MESH_LISTENER = "mesh_outbound"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


@dataclass
class _Port:
    """What the servers on one port ask for, in config order."""

    plain_hosts: list[str] = field(default_factory=list)
    redirect_hosts: list[str] = field(default_factory=list)
    # TLS servers in config order, each chosen by SNI: terminating (hosts, transport socket,
    # resource, server index) or PASSTHROUGH (routed by tls routes).
    tls: list[tuple[list[str], Json, Resource, int] | TcpServer] = field(default_factory=list)
    # A TCP port carries exactly one server: its connections hold no host or SNI to tell two
    # apart, so (as in Istio's gateway merge) the first server on the port takes it.
    tcp: TcpServer | None = None

    @property
    def http(self) -> bool:
        return bool(self.plain_hosts or self.redirect_hosts or self.tls)


@dataclass
class Built:
    listeners: list[Json] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    inline_keys: bool = False  # a private key from a Secret is inlined in a listener


def _tcp_conflict(previous: _Port | None, protocol: str) -> str | None:
    """What already holds a port that a TCP, HTTP or TLS server cannot share ("TCP" / "HTTP" /
    "TLS")."""
    if previous is None or protocol not in TCP_PROTOCOLS | HTTP_PROTOCOLS | PASSTHROUGH_PROTOCOLS:
        return None
    if previous.tcp is not None:
        return "TCP"
    if protocol not in TCP_PROTOCOLS or not previous.http:
        return None
    terminating = any(not isinstance(entry, TcpServer) for entry in previous.tls)
    return "HTTP" if previous.plain_hosts or previous.redirect_hosts or terminating else "TLS"


def _merged_away(model: Model) -> dict[tuple[str, int], str]:
    """(Gateway ref, server index) -> why, for each server that no gateway proxy keeps when it
    merges its Gateways (Istio drops it: semantics §4)."""
    workloads = gateway_workloads(model)
    kept = {(gw.ref, s.index) for w in workloads for entries in w.servers.values() for s, gw in entries}
    return {
        (sk.gateway.ref, sk.server.index): sk.reason
        for w in workloads
        for sk in w.skipped
        if (sk.gateway.ref, sk.server.index) not in kept
    }


def chosen_workload(model: Model, name: str) -> GatewayWorkload:
    """The gateway workload ``name`` (``Options.gateway_workload``) of ``model``: the one
    :func:`~meshroute.config.workloads.resolve` finds for the name's labels and namespace, as
    ``Mesh.gateway_for`` does (the workload of that name, else one that gets the same Gateways:
    the config may have changed since the name was resolved). LookupError when there is none."""
    parsed = parse_name(name)
    if parsed is None:
        raise LookupError(f"{name!r} is not a gateway workload name (workload:<namespace>/<k=v,...>)")
    namespace, labels = parsed
    workloads = gateway_workloads(model)
    found = resolve([w.name for w in workloads], model.gateways.values(), labels, namespace)
    return next(w for w in workloads if w.name == found)


def _collect(model: Model, out: Built, workload: GatewayWorkload | None = None) -> dict[int, _Port]:
    """The servers of every gateway proxy (config order), or those of ``workload`` alone (merge
    order): each Gateway selecting it, every server kept or warned about as merged away."""
    ports: dict[int, _Port] = {}
    secrets = Secrets(model.resources)
    if workload is None:
        merged_away = _merged_away(model)
        gateways = list(model.gateways.values())
    else:
        merged_away = {(sk.gateway.ref, sk.server.index): sk.reason for sk in workload.skipped}
        gateways = list(workload.gateways)
    for gw in gateways:
        for server in gw.servers:
            _add_server(gw, server, ports, secrets, merged_away, out)
    return {n: p for n, p in ports.items() if p.http or p.tcp}


def _add_server(
    gw: GatewayInfo,
    server: Server,
    ports: dict[int, _Port],
    secrets: Secrets,
    merged_away: Mapping[tuple[str, int], str],
    out: Built,
) -> None:
    """Put one Gateway server on its port, or warn why it gets no listener."""
    res, number, protocol = gw.resource, server.port, server.protocol
    path = ("spec", "servers", server.index)  # the position in the raw list, for diagnostics
    owner = _tcp_conflict(ports.get(number), protocol)
    if owner:
        out.diagnostics.append(
            res.warning(
                "envoy-server-skipped",
                path,
                f"port {number} is already taken by an earlier {owner} server; a TCP port cannot be shared",
            )
        )
        return
    why = merged_away.get((gw.ref, server.index))
    if why is not None:
        out.diagnostics.append(
            res.warning(
                "envoy-server-skipped",
                path,
                f"{why}: the gateway proxy merging Gateway {gw.ref} with the other Gateways "
                "selecting it drops this server, as Istio does; it gets no listener",
            )
        )
        return
    if protocol in TCP_PROTOCOLS:
        ports.setdefault(number, _Port()).tcp = TcpServer(gw, server.index, number, server.hosts)
        return
    mode = server.tls_mode
    skipped = _not_generated(protocol, mode)
    if skipped:
        out.diagnostics.append(
            res.warning("envoy-server-skipped", path, f"{skipped} on port {number}; it gets no listener")
        )
        return
    port = ports.setdefault(number, _Port())
    if protocol in PASSTHROUGH_PROTOCOLS and mode == "PASSTHROUGH":
        port.tls.append(TcpServer(gw, server.index, number, server.hosts))
        return
    hosts = list(server.dns_names)
    tls = server.tls_settings
    # An explicit tls.mode terminates TLS on any HTTP-family server, unless it only redirects.
    if protocol == "HTTPS" or (tls.mode and not server.https_redirect):
        result = server_tls(tls, secrets, res.namespace)
        if result.socket is None:
            why = result.warning
            if result.missing:  # Istio loses only this server, not the whole gateway
                name = server.name or f"servers[{server.index}]"
                why = f"server {name} of Gateway {gw.ref}: {why}; it gets no listener"
            out.diagnostics.append(res.warning("envoy-server-skipped", path, f"port {number}: {why}"))
            return
        port.tls.append((hosts, result.socket, res, server.index))
        out.inline_keys |= bool(tls.credential_names)
    elif server.https_redirect:
        port.redirect_hosts.extend(h for h in hosts if h not in port.redirect_hosts)
    else:
        port.plain_hosts.extend(h for h in hosts if h not in port.plain_hosts)


def _not_generated(protocol: str, mode: str) -> str | None:
    """Why a (non-TCP) server gets no listener, or None."""
    if protocol in PASSTHROUGH_PROTOCOLS and mode == "AUTO_PASSTHROUGH":
        return (
            f"{protocol} server with tls.mode AUTO_PASSTHROUGH (Istio's multi-cluster SNI "
            "outbound_.PORT_.SUBSET_.HOST) is not generated"
        )
    if protocol == "TLS" and mode not in PASSTHROUGH_MODES:
        return (
            f"TLS server with tls.mode {mode or 'unset'} (terminated, then routed by tcp routes) "
            "is not generated"
        )
    if protocol not in HTTP_PROTOCOLS | PASSTHROUGH_PROTOCOLS:
        return f"{protocol} server is neither HTTP, TCP nor TLS"
    return None


def _plain_vhosts(port: _Port) -> list[Json]:
    """The redirect vhost (the ``httpsRedirect`` servers' hosts, first-come) and the catch-all,
    which the decision answers. Istio requires TLS per virtual host and Envoy picks the most
    specific domain (semantics §4), so a plain server host inside a redirect pattern
    (``a.example.com`` under ``*.example.com``) is named in the catch-all, which then wins for
    it; a plain host equal to a redirect host stays redirected (Istio marks that vhost). The
    catch-all takes ``*`` unless a redirect server has it."""
    vhosts: list[Json] = []
    redirect = list(port.redirect_hosts)
    plain = [h for h in port.plain_hosts if h not in redirect]
    if redirect:
        vhosts.append(redirect_vhost(redirect))
    if "*" not in redirect:
        inside = [h for h in plain if h != "*" and any(matches(r, h) for r in redirect)]
        vhosts.append(catch_all_vhost(["*", *inside]))
    elif plain:
        vhosts.append(catch_all_vhost(plain))
    return vhosts


def gateway_listeners(
    model: Model,
    options: Options,
    taken: dict[int, str],
    clusters: Collection[str],
    workload: GatewayWorkload | None = None,
) -> Built:
    """One listener per Gateway server port; ``taken`` maps bound ports to their owner,
    ``clusters`` are the cluster names the bootstrap defines (TCP routes are checked against them).

    ``workload`` (``options.gateway_workload`` as :func:`chosen_workload` finds it): only that
    gateway proxy's merged servers get listeners, and the HTTP listeners' context names the
    proxy, its namespace and labels as ``x-meshroute-source-*`` (the module's
    ``source_namespace`` / ``source_labels``): a request for a host none of the proxy's servers
    on the port claims is answered 404, even where another proxy serves it."""
    out = Built()
    proxy = source_metadata(workload.namespace, dict(sorted(workload.labels.items()))) if workload else []
    for number, port in sorted(_collect(model, out, workload).items()):
        name = f"gateway_{number}"
        bind = options.bind_port(number)
        if bind in taken:
            out.diagnostics.append(
                Diagnostic(
                    severity=Severity.WARNING,
                    code="envoy-port-conflict",
                    message=f"Gateway port {number} would bind {bind}, already used by {taken[bind]}; "
                    "it gets no listener (use --bind-port)",
                )
            )
            continue
        taken[bind] = name
        if port.tcp is not None:
            chain, warnings = tcp_filter_chain(name, port.tcp, model, options, clusters)
            out.diagnostics.extend(warnings)
            address = socket_address(options.bind_address, bind)
            out.listeners.append({"name": name, "address": address, "filter_chains": [chain]})
            continue
        metadata = [(LISTENER_KEY, "gateway"), (PORT_KEY, str(number)), *proxy]
        chains: list[Json] = []
        claimed: set[str] = set()
        outside: list[tuple[str, Diagnostic]] = []
        passed: set[str] = set()  # server names of the PASSTHROUGH chains ("*": none)
        for entry in port.tls:
            if isinstance(entry, TcpServer):
                passthrough = passthrough_chains(name, entry, model, options, clusters, claimed)
                chains.extend(passthrough.chains)
                passed.update(
                    n for c in passthrough.chains for n in c["filter_chain_match"].get("server_names", ["*"])
                )
                out.diagnostics.extend(passthrough.diagnostics)
                outside.extend(passthrough.outside)
                continue
            hosts, socket, res, i = entry
            # A "*" server takes connections with any (or no) SNI; otherwise its hosts are its
            # server names. Envoy rejects two chains with the same match, so first come wins.
            names = [] if "*" in hosts else [h for h in hosts if h not in claimed]
            if ("*" in hosts and "*" in claimed) or ("*" not in hosts and not names):
                out.diagnostics.append(
                    res.warning(
                        "envoy-server-skipped",
                        ("spec", "servers", i),
                        f"port {number}: its hosts are served by an earlier TLS server on this port",
                    )
                )
                continue
            claimed.update(names or ["*"])
            match: Json = {"transport_protocol": "tls"}
            if names:
                match["server_names"] = names
            chains.append(
                {
                    "filter_chain_match": match,
                    "filters": [connection_manager(f"{name}_https", [catch_all_vhost()], metadata, options)],
                    "transport_socket": socket,
                }
            )
        # An SNI outside one PASSTHROUGH server's hosts may be another's on this port.
        out.diagnostics.extend(warning for sni, warning in outside if sni not in passed)
        if port.plain_hosts or port.redirect_hosts:
            plain: Json = {"filters": [connection_manager(name, _plain_vhosts(port), metadata, options)]}
            if chains:
                plain["filter_chain_match"] = {"transport_protocol": "raw_buffer"}
            chains.append(plain)
        if not chains:
            # Only PASSTHROUGH servers without a route: Envoy needs a chain, and this one closes
            # every connection (BlackHoleCluster has no endpoints), as no chain at all would.
            chains.append({"filters": [tcp_proxy(f"{name}_passthrough", [(BLACKHOLE_CLUSTER, 0)], options)]})
        listener: Json = {
            "name": name,
            "address": socket_address(options.bind_address, bind),
            "filter_chains": chains,
        }
        if port.tls:
            # SNI and the TLS/plaintext split are only known after peeking at the ClientHello.
            listener["listener_filters"] = [
                {
                    "name": TLS_INSPECTOR,
                    "typed_config": typed("envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"),
                }
            ]
        out.listeners.append(listener)
    return out


def mesh_listener(options: Options) -> Json:
    """The sidecar-style outbound listener: any host, routed as the mesh client of
    ``--source-namespace`` / ``--source-label`` would be."""
    metadata = [(LISTENER_KEY, "mesh"), *source_metadata(options.source_namespace, options.source_labels)]
    return {
        "name": MESH_LISTENER,
        "address": socket_address(options.bind_address, options.mesh_port),
        "filter_chains": [
            {"filters": [connection_manager(MESH_LISTENER, [catch_all_vhost()], metadata, options)]}
        ],
    }


def source_metadata(namespace: str | None, labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The ``x-meshroute-source-*`` listener metadata of a client workload (the mesh listener's)
    or of a gateway proxy: its namespace, its labels as ``k=v,...`` in ``labels``' order."""
    out: list[tuple[str, str]] = []
    if namespace:
        out.append((SOURCE_NAMESPACE_KEY, namespace))
    if labels:
        out.append((SOURCE_LABELS_KEY, ",".join(f"{k}={v}" for k, v in labels.items())))
    return out
