"""Client-context views: one host index per sidecar context and per gateway port (docs/ir.md
"View"), following semantics §2.16 step 1 (sidecars: one VS per host; gateways: merge per host,
catch-all routes last) and §4 (gateway server host binding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.config.hosts import MESH, intersect, is_wildcard, k8s_aliases, narrower
from meshroute.config.httproute import CompiledRoute
from meshroute.config.index import ConfigIndex, HostPicker
from meshroute.config.model import GatewayInfo, Server, SidecarInfo, VirtualServiceInfo
from meshroute.config.registry import Service
from meshroute.config.tables import Tables

Compiled = Mapping[str, Sequence[CompiledRoute]]  # "ns/name" -> routes of that root VS
OTHER_NAMESPACE = "*"  # what the view of "any namespace not in the config" reports


@dataclass(frozen=True)
class Context:
    """Who is asking: the namespace used for visibility and DR lookup, and the Sidecar in force."""

    namespace: str
    sidecar: SidecarInfo | None
    gateway: GatewayInfo | None = None


def _key(vs: VirtualServiceInfo) -> str:
    return f"{vs.namespace}/{vs.name}"


def _mesh_routes(tables: Tables, routes: Sequence[CompiledRoute]) -> list[int]:
    # Whole routes: Rust evaluates each block's gateways/port/source filters, which keeps match
    # indices as written. Routes that never apply to the mesh are left out.
    return [tables.route(r.ir(r.blocks if r.blocks else None)) for r in routes if r.bound_to(MESH)]


class Shared:
    """What the views of one compile have in common, built once and reused by every view that
    needs it (the IR then holds the same objects, so it serialises to the same text):

    - ``route_ids``: a VS's mesh route ids (they do not depend on the client);
    - ``vhosts``: a vhost per (service, VS chosen, client in the service's namespace or not) —
      the short-name domain is the only part of a service's vhost that depends on the client;
    - ``plain``: the vhosts of a client that sees every service and only the public mesh VSs
      (:class:`_Plain`): a namespace view that sees every service copies that list and replaces
      what differs for it — its own services (short name) and the hosts of the VSs exported to
      its namespace in particular.
    """

    def __init__(self) -> None:
        self.route_ids: dict[str, list[int]] = {}
        self.vhosts: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.plain: _Plain | None = None


@dataclass
class _Plain:
    """A service list every client sees, with what a client seeing only public VSs gets."""

    services: list[Service]
    picks: list[VirtualServiceInfo | None]  # the VS of each, among the public VSs
    positions: dict[str, int]  # host -> position
    own: dict[str, list[int]]  # namespace -> positions of its services
    taken: set[str]  # every domain of those vhosts
    foreign: list[dict[str, Any] | None]  # the vhosts, interned when a view first needs them
    missing: set[int]  # positions of ``foreign`` still None


def _plain_ok(index: ConfigIndex, ctx: Context) -> list[VirtualServiceInfo] | None:
    """The mesh VSs exported to the client's namespace in particular, when its view can start
    from :class:`_Plain`: it sees every service (all exported everywhere; no Sidecar, or one
    importing everything) and none of those VSs has a wildcard host. Else None."""
    sidecar = ctx.sidecar
    if (sidecar is not None and sidecar.egress is not None) or not index.registry.all_public:
        return None
    local = index.mesh_local_candidates(ctx.namespace, sidecar)
    if any(is_wildcard(host) for vs in local for host in vs.hosts):
        return None
    return local


class _Builder:
    """Vhosts of mesh views, interned in :class:`Shared`."""

    def __init__(self, index: ConfigIndex, tables: Tables, compiled: Compiled, memo: Shared) -> None:
        self.index, self.tables, self.compiled, self.memo = index, tables, compiled, memo

    def routes_of(self, vs: VirtualServiceInfo) -> list[int]:
        key = _key(vs)
        ids = self.memo.route_ids.get(key)
        if ids is None:
            ids = self.memo.route_ids[key] = _mesh_routes(self.tables, self.compiled.get(key, ()))
        return ids

    def service(self, svc: Service, vs: VirtualServiceInfo | None, ns: str) -> dict[str, Any]:
        """The vhost of ``svc`` routed by ``vs`` for clients in ``ns``."""
        key = (id(svc), id(vs), svc.namespace == ns)  # both live as long as the index
        vhost = self.memo.vhosts.get(key)
        if vhost is None:
            domains = (
                k8s_aliases(svc.host, svc.namespace, ns, self.index.domain)
                if svc.origin == "Kubernetes"
                else [svc.host]
            )
            vhost = self.memo.vhosts[key] = {
                "domains": domains,
                "routes": self.routes_of(vs) if vs else [],
                "default_target": self.tables.target(svc.host, None, None),
                "default_port": svc.single_port,
            }
        return vhost

    def host(self, host: str, vs: VirtualServiceInfo) -> dict[str, Any]:
        """The vhost of a VS host that is no service."""
        key = (host, id(vs))
        vhost = self.memo.vhosts.get(key)
        if vhost is None:
            vhost = self.memo.vhosts[key] = {
                "domains": [host],
                "routes": self.routes_of(vs),
                "default_target": None,
                "default_port": None,
            }
        return vhost


def _extra_hosts(
    candidates: Sequence[VirtualServiceInfo], picker: HostPicker, taken: set[str]
) -> list[tuple[str, VirtualServiceInfo]]:
    """VS hosts that are not services (external names, wildcards): the first VS by precedence.
    Adds them to ``taken``."""
    out = []
    for vs in candidates:
        for host in vs.hosts:
            if host in taken or (not is_wildcard(host) and picker.pick(host) is not vs):
                continue
            taken.add(host)
            out.append((host, vs))
    return out


def _plain(index: ConfigIndex) -> _Plain:
    """The :class:`_Plain` pieces; nothing interned yet (views intern in their own order)."""
    services = index.visible_services(OTHER_NAMESPACE, None)
    _, picker = index.mesh_candidates(OTHER_NAMESPACE, None)  # the public VSs only
    own: dict[str, list[int]] = {}
    taken: set[str] = set()
    for i, svc in enumerate(services):
        own.setdefault(svc.namespace, []).append(i)
        if svc.origin == "Kubernetes":
            taken.update(k8s_aliases(svc.host, svc.namespace, OTHER_NAMESPACE, index.domain))
        else:
            taken.add(svc.host)
    return _Plain(
        services=services,
        picks=[picker.pick(svc.host) for svc in services],
        positions={svc.host: i for i, svc in enumerate(services)},
        own=own,
        taken=taken,
        foreign=[None] * len(services),
        missing=set(range(len(services))),
    )


def mesh_view(
    index: ConfigIndex,
    tables: Tables,
    compiled: Compiled,
    ctx: Context,
    shared: Shared | None = None,
) -> dict[str, Any]:
    """The view of sidecars in ``ctx.namespace`` under ``ctx.sidecar``; ``shared`` lets the views
    of one compile share their pieces (:class:`Shared`)."""
    ns = ctx.namespace
    memo = shared if shared is not None else Shared()
    build = _Builder(index, tables, compiled, memo)
    candidates, picker = index.mesh_candidates(ns, ctx.sidecar)
    local = _plain_ok(index, ctx)
    if local is not None:
        vhosts, taken = _plain_vhosts(index, build, ns, local, picker)
    else:
        vhosts, taken = [], set()
        for svc in index.visible_services(ns, ctx.sidecar):
            vhost = build.service(svc, picker.pick(svc.host), ns)
            vhosts.append(vhost)
            taken.update(vhost["domains"])
    vhosts += [build.host(host, vs) for host, vs in _extra_hosts(candidates, picker, taken)]
    return {
        "gateway": 0,
        "namespace": ns if ns in index.namespaces else OTHER_NAMESPACE,
        "scope": -1,  # filled in once all targets are known
        "ports": [],
        "https_redirect_hosts": [],
        "unknown_host": ctx.sidecar.unknown_host if ctx.sidecar else "passthrough",
        "vhosts": vhosts,
    }


def _plain_vhosts(
    index: ConfigIndex, build: _Builder, ns: str, local: list[VirtualServiceInfo], picker: HostPicker
) -> tuple[list[dict[str, Any]], set[str]]:
    """The service vhosts of a view that starts from :class:`_Plain` (see :func:`_plain_ok`), and
    their domains: the shared list, with the namespace's own services (short name added) and the
    services its ``local`` VSs claim replaced. The same objects, in the same order, as the
    general loop; a vhost is interned at the same point as there (position order)."""
    plain = build.memo.plain
    if plain is None:
        plain = build.memo.plain = _plain(index)
    changed = set(plain.own.get(ns, ()))
    changed.update(plain.positions[h] for vs in local for h in vs.hosts if h in plain.positions)
    vhosts = list(plain.foreign)
    taken = set(plain.taken)
    for i in sorted(changed | plain.missing):
        svc = plain.services[i]
        if i in changed:
            vhost = build.service(svc, picker.pick(svc.host), ns)
            taken.update(vhost["domains"])  # adds the short name of an own service
        else:
            vhost = plain.foreign[i] = build.service(svc, plain.picks[i], OTHER_NAMESPACE)
            plain.missing.discard(i)
        vhosts[i] = vhost
    return vhosts, taken  # type: ignore[return-value]  # no None left: every gap was filled


def gateway_pieces(
    routes: Sequence[CompiledRoute], ref: str, port: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ordinary routes, catch-all routes) of one VS on one gateway port.

    Istio stops emitting a VS's routes after its first catch-all match and then moves catch-all
    routes behind every other VS's routes. A route whose catch-all block is not its first block is
    split: its earlier blocks stay in place, and the moved copy keeps them too (they cannot match
    there, having failed already) so the catch-all block keeps its match index.
    """
    normal: list[dict[str, Any]] = []
    for route in routes:
        if not route.blocks:
            if route.bound_to(ref):
                return normal, [route.ir(None)]
            continue
        usable = route.usable_blocks(ref, port)
        if not usable:
            continue
        catch = next((i for i, b in enumerate(route.blocks) if b in usable and b.catch_all), None)
        if catch is None:
            normal.append(route.ir(route.blocks))
            continue
        if any(b in usable for b in route.blocks[:catch]):
            normal.append(route.ir(route.blocks[:catch]))
        return normal, [route.ir(route.blocks[: catch + 1])]
    return normal, []


def _domains(vs: VirtualServiceInfo, servers: Sequence[Server]) -> list[str]:
    """Vhost domains a VS gets on a gateway port: each VS host that intersects a server host whose
    namespace part admits the VS, narrowed to the more specific of the two patterns (§4)."""
    out: list[str] = []
    for host in vs.hosts:
        for server in servers:
            for ns, server_host in server.hosts:
                if ns in ("*", vs.namespace) and intersect(host, server_host):
                    domain = narrower(host, server_host)
                    if domain not in out:
                        out.append(domain)
    return out


def _redirect_hosts(servers: Sequence[Server]) -> list[str]:
    """Host patterns of the servers with ``tls.httpsRedirect``: Istio requires TLS on the virtual
    hosts of that server only, so other servers on the port keep plain http. The ``ns/`` part of a
    server host only filters VirtualServices (§4); it plays no part here."""
    out: list[str] = []
    for server in servers:
        for _, host in server.hosts if server.https_redirect else ():
            if host not in out:
                out.append(host)
    return out


def gateway_views(
    index: ConfigIndex, tables: Tables, compiled: Compiled, gw: GatewayInfo
) -> dict[int, dict[str, Any]]:
    """One view per server port of a Gateway; VSs merged per host, catch-alls last (§2.16, §4)."""
    out: dict[int, dict[str, Any]] = {}
    candidates = index.gateway_virtual_services(gw)
    for port in sorted({s.port for s in gw.servers}):
        servers = [s for s in gw.servers if s.port == port]
        by_domain: dict[str, list[VirtualServiceInfo]] = {}
        for vs in candidates:
            for domain in _domains(vs, servers):
                group = by_domain.setdefault(domain, [])
                if vs not in group:
                    group.append(vs)
        vhosts = []
        for domain, group in by_domain.items():
            normal: list[dict[str, Any]] = []
            last: list[dict[str, Any]] = []
            for vs in group:
                pieces, catch_all = gateway_pieces(compiled.get(_key(vs), ()), gw.ref, port)
                normal += pieces
                last += catch_all
            vhosts.append(
                {
                    "domains": [domain],
                    "routes": [tables.route(r) for r in normal + last],
                    "default_target": None,
                    "default_port": None,
                }
            )
        out[port] = {
            "gateway": tables.gateway(gw.ref),
            "namespace": gw.namespace,
            "scope": -1,
            "ports": [port],
            "https_redirect_hosts": _redirect_hosts(servers),
            "unknown_host": "not_found",
            "vhosts": vhosts,
        }
    return out
