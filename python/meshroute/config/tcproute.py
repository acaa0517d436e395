"""Sidecar TCP routing: the IR's ``tcp`` section (docs/ir.md, "TCP services"; semantics §2.15).

Istio builds one outbound TCP listener per TCP service port (Kubernetes port named ``tcp-*`` or
``appProtocol: tcp``, ServiceEntry protocol ``TCP``; MONGO/MYSQL/REDIS alike) and routes each
connection by the ``tcp`` routes of the VirtualServices for the service's host
(``buildSidecarOutboundTCPTLSFilterChainOpts``): VirtualServices in precedence order, their routes
in order; a route without ``match`` ends the walk, as does a route with a block whose
config-time conditions hold (``port``, ``sourceLabels``, ``sourceNamespace``, ``gateways``
including ``mesh``) and that has no ``destinationSubnets`` (or the service has no address). A
block whose ``destinationSubnets`` contain one of the service's addresses holds too; one whose
subnets contain none never sees a connection to the service. No route holding: the service's own
cluster (``outbound|port||host``) — TCP has no 404.

Each entry lists the pool RouteIds to walk (every route's ``extra`` is ``{"protocol": "tcp"}``:
no retries, timeouts or other HTTP fields), the last one the service's default route; Rust
(``rust/meshroute-core/src/tcp.rs``) takes the first route with no block or a block that holds
for the client, and picks its destination by weight per connection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from meshroute.config.hosts import (
    MESH,
    is_wildcard,
    matches,
    proxy_addresses,
    vhost_domains,
    visibility_class,
)
from meshroute.config.model import Model
from meshroute.config.registry import Service, ServicePort
from meshroute.config.streamroute import L4Match, L4Route
from meshroute.config.tables import Tables
from meshroute.config.virtualservice import VirtualServiceInfo

if TYPE_CHECKING:
    from meshroute.config.views import Context

# Opaque TCP on a sidecar: Istio gives MONGO/MYSQL/REDIS the same tcp_proxy (filters off by default).
TCP_PROTOCOLS = frozenset({"TCP", "MONGO", "MYSQL", "REDIS"})
EXTRA = {"protocol": "tcp"}
_EMPTY_OPS: dict[str, list[Any]] = {"set": [], "add": [], "remove": []}


def tcp_ports(svc: Service) -> list[ServicePort]:
    """The service's ports that Istio routes as opaque TCP (protocol ``""`` is sniffed: HTTP here)."""
    return [p for p in svc.ports if p.protocol in TCP_PROTOCOLS]


def sniffed_ports(svc: Service) -> list[ServicePort]:
    """The service's ports declared without a protocol: Istio sniffs each connection, routing an
    HTTP one by the port's route table and any other by the ``tcp`` routes, as on a TCP port
    (``buildSidecarOutboundListener``, protocol auto: an HTTP and a TCP filter chain)."""
    return [p for p in svc.ports if p.protocol == ""]


def _bound_to_mesh(vs: VirtualServiceInfo, route: L4Route) -> bool:
    if not route.matches:
        return MESH in vs.gateways
    # A match-level gateways list replaces the VirtualService's for this block (semantics §2.1).
    return any(MESH in (m.gateways or vs.gateways) for m in route.matches)


def candidates(model: Model, svc: Service, ns: str) -> list[VirtualServiceInfo]:
    """VirtualServices with ``tcp`` routes for ``svc`` seen from ``ns``, in precedence order
    (Istio ``getConfigsForHost``: every VS one of whose hosts covers the service host)."""
    found = [
        vs
        for vs in model.roots()
        if vs.visible_from(ns) and vs.tcp and any(matches(h, svc.host) for h in vs.hosts)
    ]
    return sorted(found, key=lambda vs: (visibility_class(vs.export_to, vs.namespace, ns), vs.order))


def _in_subnets(subnets: Sequence[str], addresses: Sequence[str]) -> bool:
    for raw in subnets:
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            continue
        for addr in addresses:
            try:
                if ipaddress.ip_address(addr.split("/")[0]) in net:
                    return True
            except ValueError:
                continue
    return False


def _subnets_hold(match: L4Match, svc: Service) -> bool:
    """No ``destinationSubnets``, a service without address, or one of its addresses inside."""
    return (
        not match.destination_subnets
        or not svc.addresses
        or _in_subnets(match.destination_subnets, svc.addresses)
    )


class TcpCompiler:
    """Builds the ``tcp`` entries of the mesh views of one compile."""

    def __init__(self, model: Model, tables: Tables, vs_ids: Mapping[str, int]) -> None:
        self.model = model
        self.tables = tables
        self.vs_ids = vs_ids
        self.entries: dict[str, dict[str, Any]] = {}  # canonical key -> entry (views appended)

    def destinations(self, route: L4Route, listen_port: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for dest in route.route:
            number = dest.port
            if number is None:
                svc = self.model.registry.lookup(dest.host)
                number = (svc.single_port if svc else None) or listen_port
            target = self.tables.target(dest.host, dest.subset, number)
            out.append({"target": target, "weight": dest.weight})
        if len(out) > 1:
            out = [d for d in out if d["weight"] > 0]
        elif out:
            out[0]["weight"] = 1
        return out

    def _route(
        self, vs_id: int | None, index: int, matches_: list[dict[str, Any]], dests: list[dict[str, Any]]
    ) -> int:
        return self.tables.route(
            {
                "vs": vs_id,
                "index": index,
                "name": None,
                "matches": matches_,
                "action": {"route": {"destinations": dests}},
                "rewrite": None,
                "fault": None,
                "response_headers": _EMPTY_OPS,
                "extra": EXTRA,
            }
        )

    def _block(self, match: L4Match, vs: VirtualServiceInfo) -> dict[str, Any]:
        return {
            "gateways": sorted({self.tables.gateway(r) for r in (match.gateways or vs.gateways)}),
            "port": match.port,
            "source_labels": dict(match.source_labels),
            "source_namespace": match.source_namespace,
        }

    def routes_for(self, svc: Service, port: int, ns: str) -> list[int]:
        """RouteIds to walk for a connection to ``svc:port`` from ``ns``; the default route last."""
        out: list[int] = []
        for vs in candidates(self.model, svc, ns):
            vs_id = self.vs_ids.get(f"{vs.namespace}/{vs.name}")
            for i, route in enumerate(vs.tcp):
                if not _bound_to_mesh(vs, route):
                    continue
                dests = self.destinations(route, port)
                if not dests:
                    continue
                kept = [self._block(m, vs) for m in route.matches if _subnets_hold(m, svc)]
                if route.matches and not kept:
                    continue
                out.append(self._route(vs_id, i, kept, dests))
        default = self.tables.target(svc.host, None, port)
        out.append(self._route(None, 0, [], [{"target": default, "weight": 1}]))
        return out

    def add_view(self, view_id: int, ctx: Context) -> None:
        ns = ctx.namespace
        for svc in self.model.visible_services(ns, ctx.sidecar):
            if svc.is_alias:
                continue
            ports = [(p, False) for p in tcp_ports(svc)] + [(p, True) for p in sniffed_ports(svc)]
            if not ports:
                continue
            domains = [
                d
                for d in vhost_domains(
                    svc.host, ns, self.model.domain, addresses=svc.addresses, aliases=svc.aliases
                )
                # Rust ignores a trailing dot; a network is no name (it goes into ``subnets``)
                if not is_wildcard(d) and not d.endswith(".") and "/" not in d
            ]
            subnets = [a for a in proxy_addresses(svc.addresses) if "/" in a]
            if svc.headless:  # Istio: one outbound listener per endpoint address (no cluster IP)
                domains += [a for a in dict.fromkeys(ep.address for ep in svc.endpoints) if a not in domains]
            for p, sniffed in ports:
                entry: dict[str, Any] = {
                    "domains": domains,
                    "port": p.number,
                    "only_port": len(svc.ports) == 1,
                    "routes": self.routes_for(svc, p.number, ns),
                }
                if sniffed:  # only a connection route() is told is not HTTP takes it
                    entry["sniffed"] = True
                if subnets:  # ServiceEntry CIDRs: an address inside them, longest prefix first
                    entry["subnets"] = subnets
                key = repr(sorted(entry.items()))
                self.entries.setdefault(key, {"views": [], **entry})["views"].append(view_id)

    def section(self) -> list[dict[str, Any]]:
        return list(self.entries.values())


def tcp_section(
    model: Model, tables: Tables, vs_ids: Mapping[str, int], contexts: Sequence[Context]
) -> list[dict[str, Any]]:
    """The IR's ``tcp`` entries for every mesh view (``contexts`` by ViewId)."""
    compiler = TcpCompiler(model, tables, vs_ids)
    for view_id, ctx in enumerate(contexts):
        if ctx.gateway is None and ctx.workload is None:
            compiler.add_view(view_id, ctx)
    return compiler.section()


def _holds(
    match: L4Match, vs: VirtualServiceInfo, svc: Service, port: int, ns: str, labels: Mapping[str, str]
) -> bool:
    """A block holds for a mesh client (namespace ``ns``, ``labels``) connecting to ``svc:port``."""
    return (
        MESH in (match.gateways or vs.gateways)
        and match.port in (None, port)
        and all(labels.get(k) == v for k, v in match.source_labels.items())
        and match.source_namespace in (None, ns)
        and _subnets_hold(match, svc)
    )


def mesh_choice(
    model: Model, svc: Service, port: int, ns: str, labels: Mapping[str, str]
) -> tuple[VirtualServiceInfo, int, list[tuple[str, str | None, int, int]]] | None:
    """The ``tcp`` route a mesh client's connection to ``svc:port`` takes, evaluated in Python for
    one fixed client (``envoy-config``'s mesh TCP listeners): (VS, route index, destinations as
    (host, subset, port, weight), weight 0 for a single one); None = the service's own cluster."""
    for vs in candidates(model, svc, ns):
        for i, route in enumerate(vs.tcp):
            if route.matches:
                if not any(_holds(m, vs, svc, port, ns, labels) for m in route.matches):
                    continue
            elif MESH not in vs.gateways:
                continue
            compiler = TcpCompiler(model, Tables(), {})
            dests = compiler.destinations(route, port)
            if not dests:
                continue
            out = []
            for d in dests:
                host, subset, number = compiler.tables.targets[d["target"]]
                out.append((host, subset, number or port, d["weight"] if len(dests) > 1 else 0))
            return vs, i, out
    return None
