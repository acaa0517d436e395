"""Gateway workloads: the gateway proxies a config's Gateways select, and how each proxy merges
the Gateways it gets (semantics §4, "Gateway workloads").

A gateway proxy gets every Gateway whose ``selector`` its labels carry (any namespace), and every
Gateway without a selector; it merges their servers per port, in Istio's order (creation time,
then name, then namespace), dropping the servers Istio drops (:func:`merge_servers`). meshroute
knows a gateway proxy from the workloads of the config (Pods, Deployments, …, WorkloadEntries)
that a Gateway selects; a selector no known workload carries stands for a proxy of its own, with
exactly those labels, in the namespace of the first Gateway (config order) that has it.

Each workload is a client context of its own, named ``workload:<namespace>/<k=v,…>`` (labels
sorted by key): the compiler gives it one view per server port (``gateway_views``), and
:func:`resolve` finds the name for the labels and namespace a caller knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from meshroute.config.common import order_of
from meshroute.config.gateway import GatewayInfo, Server
from meshroute.config.model import Model

PREFIX = "workload:"
# Protocols Istio's protocol.IsHTTP() accepts.
HTTP_FAMILY = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"})
PASSTHROUGH_MODES = frozenset({"PASSTHROUGH", "AUTO_PASSTHROUGH"})

Labels = Mapping[str, str]


def workload_name(namespace: str, labels: Labels) -> str:
    """The client-context name of a gateway workload.

    >>> workload_name("istio-system", {"istio": "ingressgateway", "app": "gw"})
    'workload:istio-system/app=gw,istio=ingressgateway'
    """
    return f"{PREFIX}{namespace}/" + ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def parse_name(name: str) -> tuple[str, dict[str, str]] | None:
    """(namespace, labels) of a :func:`workload_name`, else None.

    >>> parse_name("workload:istio-system/app=gw,istio=ingressgateway")
    ('istio-system', {'app': 'gw', 'istio': 'ingressgateway'})
    >>> parse_name("default/gw") is None, parse_name("workload:ns/")
    (True, ('ns', {}))
    """
    if not name.startswith(PREFIX):
        return None
    namespace, sep, rest = name[len(PREFIX) :].partition("/")
    if not sep:
        return None
    labels = dict(item.split("=", 1) for item in rest.split(",") if "=" in item)
    return namespace, labels


def selects(selector: Labels, labels: Labels) -> bool:
    """Whether a Gateway with ``selector`` applies to a proxy with ``labels`` (no selector: every
    gateway proxy)."""
    return all(labels.get(k) == v for k, v in selector.items())


def merge_order(gateways: Iterable[GatewayInfo]) -> list[GatewayInfo]:
    """Gateways in the order a proxy merges them (Istio ``sortConfigByCreationTime``): oldest
    ``creationTimestamp`` first (none counts as oldest), then by name, then by namespace."""
    return sorted(gateways, key=lambda gw: (order_of(gw.resource, 0)[0], gw.resource.name, gw.namespace))


@dataclass(frozen=True)
class Skipped:
    """A server a workload's merge drops, and why (Istio logs and ignores it)."""

    gateway: GatewayInfo
    server: Server
    reason: str


@dataclass(frozen=True)
class GatewayWorkload:
    """A gateway proxy: its labels and namespace, the Gateways it gets in merge order, and their
    servers per port after the merge (``servers``, each with its Gateway)."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    gateways: tuple[GatewayInfo, ...]
    servers: Mapping[int, tuple[tuple[Server, GatewayInfo], ...]] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def http_servers(self, port: int) -> list[tuple[Server, GatewayInfo]]:
        """The kept servers of ``port`` that carry HTTP (:func:`is_http_server`), merge order."""
        return [(s, gw) for s, gw in self.servers.get(port, ()) if is_http_server(s)]

    @property
    def http_ports(self) -> list[int]:
        return sorted(p for p in self.servers if self.http_servers(p))


def is_passthrough(server: Server) -> bool:
    return server.tls and server.tls_mode in PASSTHROUGH_MODES


def is_http_server(server: Server) -> bool:
    """Istio ``IsHTTPServer``: an HTTP-family server, or HTTPS terminating TLS."""
    if server.protocol in HTTP_FAMILY:
        return True
    return server.protocol == "HTTPS" and server.tls and not is_passthrough(server)


def is_tls_server(server: Server) -> bool:
    """Istio ``IsTLSServer``: a ``tls`` block on a server that is not HTTP-family."""
    return server.tls and server.protocol not in HTTP_FAMILY


def _route_name(server: Server, gw: GatewayInfo) -> str:
    """Istio's RDS route name of a server ("" for servers without HTTP routes)."""
    bind = f".{server.bind}" if server.bind else ""
    if server.protocol in HTTP_FAMILY:
        return f"http.{server.port}{bind}"
    if server.protocol == "HTTPS" and not is_passthrough(server):
        return f"https.{server.port}.{server.name}.{gw.resource.name}.{gw.namespace}{bind}"
    return ""


def _can_merge(new: str, current: str) -> bool:
    return (new in HTTP_FAMILY or new == current) and current in HTTP_FAMILY


def _tls_keys(server: Server) -> list[str]:
    """A server's hosts as Istio compares them for duplicate SNI: ``ns/host``, bare when any."""
    return [host if ns == "*" else f"{ns}/{host}" for ns, host in server.hosts]


def merge_servers(
    gateways: Sequence[GatewayInfo],
) -> tuple[dict[int, list[tuple[Server, GatewayInfo]]], list[Skipped]]:
    """Istio's ``mergeGateways`` for one proxy (``gateways`` in merge order): the servers kept on
    each port, and those dropped. Service-port to target-port translation is not done: a server
    listens on its own port.

    - A server with a ``tls`` block (``httpsRedirect`` included) naming a host an earlier such
      server on the port (same ``bind``) named is dropped whole.
    - The first server on a port decides: after a plain-text one, a server whose protocol cannot
      merge with it (HTTP family with HTTP family) or that has no HTTP routes is dropped (same
      ``bind``); after a TLS one, an HTTP server repeating an HTTP route name (``http.PORT``, or
      an HTTPS server's own) is dropped, and so is a server without ``tls`` on a ``bind`` an
      earlier server other than the first already took (Istio records a TLS port's binds from
      its second server on, so the first plain server after a TLS one stays).
    """
    ports: set[int] = set()
    plain: dict[int, tuple[str, str]] = {}  # port -> (protocol, bind) of its first plain-text server
    binds: dict[int, set[str]] = {}  # port -> binds of the non-plain-text servers after the first
    routes: set[str] = set()
    tls_hosts: dict[int, dict[str, str]] = {}  # port -> host -> bind
    kept: dict[int, list[tuple[Server, GatewayInfo]]] = {}
    skipped: list[Skipped] = []

    def skip(gw: GatewayInfo, server: Server, reason: str) -> None:
        skipped.append(Skipped(gw, server, reason))

    for gw in gateways:
        for server in gw.servers:
            port, bind = server.port, server.bind
            route = _route_name(server, gw)
            if server.tls:
                known = tls_hosts.setdefault(port, {})
                keys = _tls_keys(server)
                duplicates = [h for h in keys if h in known and known[h] == bind]
                if duplicates:
                    skip(gw, server, f"an earlier server on port {port} has TLS host {duplicates[0]}")
                    continue
                known.update(dict.fromkeys(keys, bind))
            if port not in ports:
                ports.add(port)
                if not is_tls_server(server):
                    plain[port] = (server.protocol, bind)
                if is_http_server(server):
                    routes.add(route)
                kept[port] = [(server, gw)]
                continue
            current = plain.get(port)
            if current is not None:
                protocol, current_bind = current
                if current_bind == bind and not _can_merge(server.protocol, protocol):
                    skip(gw, server, f"port {port} already has a server of protocol {protocol}")
                    continue
                if current_bind == bind and not route:
                    skip(gw, server, f"port {port} already has a server of protocol {protocol}")
                    continue
                routes.add(route)
                kept[port].append((server, gw))
                continue
            if is_http_server(server):
                if not route or route in routes:
                    skip(gw, server, f"port {port} already has the HTTP routes {route}")
                    continue
                routes.add(route)
            seen = binds.get(port)
            if seen is None:
                binds[port] = {bind}
                new_bind = True
            else:
                new_bind = bind not in seen
                seen.add(bind)
            if not server.tls and not new_bind:
                skip(gw, server, f"port {port} already has TLS servers; this server has no tls")
                continue
            kept[port].append((server, gw))
    return kept, skipped


def gateway_workloads(model: Model) -> list[GatewayWorkload]:
    """The gateway proxies of a config, in the config order of the first Gateway selecting each:
    every known workload a Gateway's selector selects, a proxy with exactly the selector's labels
    for a selector no known workload carries, and, when no Gateway has a selector, one proxy
    without labels for the selector-less Gateways."""
    gateways = list(model.gateways.values())
    known: list[tuple[str, Labels]] = [
        (ns, labels) for ns, pools in model.registry.workloads.items() for labels in pools
    ]
    # (namespace or None for a selector's own proxy, labels) -> (namespace, labels)
    found: dict[tuple[str | None, frozenset[tuple[str, str]]], tuple[str, Labels]] = {}
    for gw in gateways:
        if not gw.selector:
            continue
        chosen = [(ns, labels) for ns, labels in known if selects(gw.selector, labels)]
        for ns, labels in chosen:
            found.setdefault((ns, frozenset(labels.items())), (ns, dict(labels)))
        if not chosen:
            found.setdefault((None, frozenset(gw.selector.items())), (gw.namespace, dict(gw.selector)))
    if not found:
        unselected = [gw for gw in gateways if not gw.selector]
        if unselected:
            found[(None, frozenset())] = (unselected[0].namespace, {})
    out: list[GatewayWorkload] = []
    for ns, labels in found.values():
        mine = merge_order(gw for gw in gateways if selects(gw.selector, labels))
        servers, skipped = merge_servers(mine)
        out.append(
            GatewayWorkload(
                name=workload_name(ns, labels),
                namespace=ns,
                labels=labels,
                gateways=tuple(mine),
                servers={port: tuple(entries) for port, entries in servers.items()},
                skipped=tuple(skipped),
            )
        )
    return out


def resolve(
    names: Iterable[str], gateways: Iterable[GatewayInfo], labels: Labels, namespace: str | None = None
) -> str:
    """The workload view (one of ``names``, the compiled ``gateway_views`` keys) for a gateway
    proxy with ``labels`` in ``namespace`` (None: any): the workload with exactly those labels,
    else one that gets the same Gateways. LookupError when there is none."""
    gateways = list(gateways)
    workloads = [(name, parsed) for name in names if (parsed := parse_name(name)) is not None]
    local = [(name, lbls) for name, (ns, lbls) in workloads if namespace is None or ns == namespace]
    for name, lbls in local:
        if lbls == dict(labels):
            return name

    def chosen(lbls: Labels) -> set[str]:
        return {gw.ref for gw in gateways if selects(gw.selector, lbls)}

    wanted = chosen(labels)
    if wanted:
        for name, lbls in local:
            if chosen(lbls) == wanted:
                return name
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "no labels"
    where = f" in namespace {namespace}" if namespace is not None else ""
    known = ", ".join(name for name, _ in workloads) or "none"
    if not wanted:
        raise LookupError(f"no Gateway selects a gateway proxy with {shown}; gateway workloads: {known}")
    raise LookupError(f"no gateway workload with {shown}{where}; gateway workloads: {known}")
