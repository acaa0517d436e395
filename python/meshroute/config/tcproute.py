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

from meshroute.config.hosts import fqdn, gateway_ref, is_wildcard, matches, vhost_domains, visibility_class
from meshroute.config.index import ConfigIndex
from meshroute.config.registry import Service, ServicePort
from meshroute.config.tables import Tables
from meshroute.config.validate.fields import normalize_spec
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


def tcp_routes(vs: VirtualServiceInfo) -> list[Mapping[str, Any]]:
    spec = normalize_spec(vs.resource.kind, vs.resource.spec)
    routes = spec.get("tcp") if isinstance(spec, Mapping) else None
    return [r if isinstance(r, Mapping) else {} for r in routes] if isinstance(routes, list) else []


def _blocks(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in route.get("match") or [] if isinstance(m, Mapping)]


def _bound_to_mesh(vs: VirtualServiceInfo, route: Mapping[str, Any], domain: str) -> bool:
    blocks = _blocks(route)
    if not blocks:
        return "mesh" in vs.gateways
    for b in blocks:
        raw = b.get("gateways")
        refs = [gateway_ref(g, vs.namespace, domain) for g in raw if isinstance(g, str)] if raw else []
        if "mesh" in (refs or vs.gateways):
            return True
    return False


def candidates(index: ConfigIndex, svc: Service, ns: str) -> list[VirtualServiceInfo]:
    """VirtualServices with ``tcp`` routes for ``svc`` seen from ``ns``, in precedence order
    (Istio ``getConfigsForHost``: every VS one of whose hosts covers the service host)."""
    found = [
        vs
        for vs in index.roots()
        if vs.visible_from(ns) and tcp_routes(vs) and any(matches(h, svc.host) for h in vs.hosts)
    ]
    return sorted(found, key=lambda vs: (visibility_class(vs.export_to, vs.namespace, ns), vs.order))


def _in_subnets(subnets: Sequence[Any], addresses: Sequence[str]) -> bool:
    for raw in subnets:
        try:
            net = ipaddress.ip_network(str(raw), strict=False)
        except ValueError:
            continue
        for addr in addresses:
            try:
                if ipaddress.ip_address(addr.split("/")[0]) in net:
                    return True
            except ValueError:
                continue
    return False


class TcpCompiler:
    """Builds the ``tcp`` entries of the mesh views of one compile."""

    def __init__(self, index: ConfigIndex, tables: Tables, vs_ids: Mapping[str, int]) -> None:
        self.index = index
        self.tables = tables
        self.vs_ids = vs_ids
        self.entries: dict[str, dict[str, Any]] = {}  # canonical key -> entry (views appended)

    def _target(self, host: str, subset: Any, port: int | None) -> int:
        return self.tables.target(host, subset if isinstance(subset, str) and subset else None, port)

    def destinations(
        self, route: Mapping[str, Any], vs: VirtualServiceInfo, listen_port: int
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in route.get("route") or []:
            dest = item.get("destination") if isinstance(item, Mapping) else None
            if not isinstance(dest, Mapping) or not isinstance(dest.get("host"), str):
                continue
            host = fqdn(dest["host"], vs.namespace, self.index.domain)
            port = dest.get("port")
            number = port.get("number") if isinstance(port, Mapping) else None
            if not (isinstance(number, int) and not isinstance(number, bool) and number > 0):
                svc = self.index.registry.lookup(host)
                number = (svc.single_port if svc else None) or listen_port
            weight = item.get("weight")
            weight = weight if isinstance(weight, int) and not isinstance(weight, bool) and weight > 0 else 0
            out.append({"target": self._target(host, dest.get("subset"), number), "weight": weight})
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

    def _block(self, block: Mapping[str, Any], vs: VirtualServiceInfo) -> dict[str, Any]:
        raw = block.get("gateways")
        refs = (
            [gateway_ref(g, vs.namespace, self.index.domain) for g in raw if isinstance(g, str)]
            if raw
            else []
        )
        port = block.get("port")
        labels = block.get("sourceLabels")
        ns = block.get("sourceNamespace")
        return {
            "gateways": sorted({self.tables.gateway(r) for r in (refs or vs.gateways)}),
            "port": port if isinstance(port, int) and not isinstance(port, bool) and port > 0 else None,
            "source_labels": {str(k): str(v) for k, v in labels.items()}
            if isinstance(labels, Mapping)
            else {},
            "source_namespace": ns if isinstance(ns, str) and ns else None,
        }

    def routes_for(self, svc: Service, port: int, ns: str) -> list[int]:
        """RouteIds to walk for a connection to ``svc:port`` from ``ns``; the default route last."""
        out: list[int] = []
        for vs in candidates(self.index, svc, ns):
            vs_id = self.vs_ids.get(f"{vs.namespace}/{vs.name}")
            for i, route in enumerate(tcp_routes(vs)):
                if not _bound_to_mesh(vs, route, self.index.domain):
                    continue
                dests = self.destinations(route, vs, port)
                if not dests:
                    continue
                blocks = _blocks(route)
                kept = [
                    self._block(b, vs)
                    for b in blocks
                    if not b.get("destinationSubnets")
                    or not svc.addresses
                    or _in_subnets(b["destinationSubnets"], svc.addresses)
                ]
                if blocks and not kept:
                    continue
                out.append(self._route(vs_id, i, kept, dests))
        out.append(self._route(None, 0, [], [{"target": self._target(svc.host, None, port), "weight": 1}]))
        return out

    def add_view(self, view_id: int, ctx: Context) -> None:
        ns = ctx.namespace
        for svc in self.index.visible_services(ns, ctx.sidecar):
            if svc.is_alias:
                continue
            ports = tcp_ports(svc)
            if not ports:
                continue
            domains = [
                d
                for d in vhost_domains(
                    svc.host, ns, self.index.domain, addresses=svc.addresses, aliases=svc.aliases
                )
                if not is_wildcard(d) and not d.endswith(".")  # Rust ignores a trailing dot
            ]
            for p in ports:
                entry = {
                    "domains": domains,
                    "port": p.number,
                    "only_port": len(svc.ports) == 1,
                    "routes": self.routes_for(svc, p.number, ns),
                }
                key = repr(sorted(entry.items()))
                self.entries.setdefault(key, {"views": [], **entry})["views"].append(view_id)

    def section(self) -> list[dict[str, Any]]:
        return list(self.entries.values())


def tcp_section(
    index: ConfigIndex, tables: Tables, vs_ids: Mapping[str, int], contexts: Sequence[Context]
) -> list[dict[str, Any]]:
    """The IR's ``tcp`` entries for every mesh view (``contexts`` by ViewId)."""
    compiler = TcpCompiler(index, tables, vs_ids)
    for view_id, ctx in enumerate(contexts):
        if ctx.gateway is None and ctx.workload is None:
            compiler.add_view(view_id, ctx)
    return compiler.section()


def _holds(
    block: Mapping[str, Any],
    vs: VirtualServiceInfo,
    svc: Service,
    port: int,
    ns: str,
    labels: Mapping[str, str],
    domain: str,
) -> bool:
    """A block holds for a mesh client (namespace ``ns``, ``labels``) connecting to ``svc:port``."""
    raw = block.get("gateways")
    refs = [gateway_ref(g, vs.namespace, domain) for g in raw if isinstance(g, str)] if raw else []
    want_port = block.get("port")
    want_labels = block.get("sourceLabels")
    want_ns = block.get("sourceNamespace")
    subnets = block.get("destinationSubnets")
    return (
        "mesh" in (refs or vs.gateways)
        and (not isinstance(want_port, int) or not want_port or want_port == port)
        and (
            not isinstance(want_labels, Mapping)
            or all(labels.get(str(k)) == str(v) for k, v in want_labels.items())
        )
        and (not isinstance(want_ns, str) or not want_ns or want_ns == ns)
        and (not subnets or not svc.addresses or _in_subnets(subnets, svc.addresses))
    )


def mesh_choice(
    index: ConfigIndex, svc: Service, port: int, ns: str, labels: Mapping[str, str]
) -> tuple[VirtualServiceInfo, int, list[tuple[str, str | None, int, int]]] | None:
    """The ``tcp`` route a mesh client's connection to ``svc:port`` takes, evaluated in Python for
    one fixed client (``envoy-config``'s mesh TCP listeners): (VS, route index, destinations as
    (host, subset, port, weight), weight 0 for a single one); None = the service's own cluster."""
    for vs in candidates(index, svc, ns):
        for i, route in enumerate(tcp_routes(vs)):
            blocks = _blocks(route)
            if blocks:
                if not any(_holds(b, vs, svc, port, ns, labels, index.domain) for b in blocks):
                    continue
            elif "mesh" not in vs.gateways:
                continue
            compiler = TcpCompiler(index, Tables(), {})
            dests = compiler.destinations(route, vs, port)
            if not dests:
                continue
            out = []
            for d in dests:
                host, subset, number = compiler.tables.targets[d["target"]]
                out.append((host, subset, number or port, d["weight"] if len(dests) > 1 else 0))
            return vs, i, out
    return None
