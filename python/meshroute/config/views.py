"""Client-context views: one host index per sidecar context and per gateway port, of a Gateway
resource or of a gateway workload (docs/ir.md "View"), following semantics §2.16 step 1
(sidecars: one VS per host; gateways: merge per host, catch-all routes last), §1.1 (which vhost a
domain belongs to; wildcard VirtualService hosts), §4 (gateway server host binding, gateway
workloads) and §13 (ExternalName aliases).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.gateway import GatewayInfo, Server
from meshroute.config.hosts import (
    MESH,
    alias_namespace,
    alt_hosts,
    intersect,
    is_wildcard,
    matches,
    narrower,
    overlaps_any,
    vhost_domains,
)
from meshroute.config.httproute import Block, CompiledRoute, SourceCheck
from meshroute.config.index import ConfigIndex, HostPicker
from meshroute.config.model import Model
from meshroute.config.registry import Service
from meshroute.config.sidecar import SidecarInfo
from meshroute.config.tables import Tables
from meshroute.config.virtualservice import VirtualServiceInfo
from meshroute.config.workloads import GatewayWorkload

Compiled = Mapping[str, Sequence[CompiledRoute]]  # "ns/name" -> routes of that root VS
OTHER_NAMESPACE = "*"  # what the view of "any namespace not in the config" reports


@dataclass(frozen=True)
class Context:
    """Who is asking: the namespace used for visibility and DR lookup, and the Sidecar in force;
    for a gateway view, the Gateway resource (``gateway``) or the gateway workload (``workload``,
    the proxy merging every Gateway that selects it, §4)."""

    namespace: str
    sidecar: SidecarInfo | None
    gateway: GatewayInfo | None = None
    workload: GatewayWorkload | None = None
    # A mesh view for the workloads a DestinationRule ``workloadSelector`` of the namespace selects
    # (those labels): its scope takes that DR for the hosts it names (§3.1).
    dr_labels: tuple[tuple[str, str], ...] = ()


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
    - ``vhosts``: a vhost per (service, VS chosen, client namespace when it is one its names
      have short forms in — the service's, or an alias's — else any other, domains another vhost
      claims): the short names are the only part of a service's domains that depends on the
      client's namespace (:func:`~meshroute.config.hosts.alt_hosts`);
    - ``domains``: a service's :class:`_Domains` per (service, client namespace as above);
    - ``covered``: whether a wildcard VS host overlaps a service of a view (§1.1), per (what the
      view sees, host); ``ports``: the listener ports of a VS's non-service hosts (and
      ``by_host``, the services a view sees by host), per (what the view sees, VS);
    - ``plain``: the vhosts of a client that sees every service and only the public mesh VSs
      (:class:`_Plain`): a namespace view that sees every service copies that list and replaces
      what differs for it — its own services (short name) and the hosts of the VSs exported to
      its namespace in particular.
    """

    def __init__(self) -> None:
        self.route_ids: dict[str, list[int]] = {}
        self.vhosts: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.domains: dict[tuple[int, str], _Domains] = {}
        self.covered: dict[tuple[Any, str], bool] = {}
        self.ports: dict[tuple[Any, ...], list[int]] = {}  # _vs_ports
        self.by_host: dict[Any, dict[str, Service]] = {}  # what a view sees, by host
        self.plain: _Plain | None = None


_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Domains:
    """A service's domains on a sidecar (:func:`vhost_domains`), which of them are alternative
    names (Istio drops one equal to another service's host), and the alias each domain coming
    from an ExternalName alias belongs to (§13)."""

    listed: list[str]
    alternatives: frozenset[str]
    owners: Mapping[str, str]


@dataclass
class _Claims:
    """What may claim a service's alternative domain before its own vhost does, in one view
    (Istio ``dedupeDomains``, which keeps the first vhost's claim): the hosts of the services the
    view sees (an alternative name equal to another service's host is that service's), the
    VirtualService hosts that are no service (Istio builds each VS's non-service hosts before its
    services, and VSs before services without one), and the ExternalName aliases with a vhost of
    their own here, each with the VS routing it (§13)."""

    services: Container[str]
    picker: HostPicker
    candidates: Sequence[VirtualServiceInfo]
    aliases: Mapping[str, VirtualServiceInfo] = field(default_factory=dict)
    _rank: dict[int, int] | None = field(default=None, repr=False)

    def vs_host(self, host: str) -> VirtualServiceInfo | None:
        """The VS whose ``hosts`` name ``host`` exactly (the first in precedence order)."""
        found = self.picker.exact.get(host)
        if found is None and self.picker.base is not None:
            found = self.picker.base.get(host)
        return found

    def rank(self, vs: VirtualServiceInfo) -> int:
        if self._rank is None:
            self._rank = {id(v): i for i, v in enumerate(self.candidates)}
        return self._rank.get(id(vs), len(self.candidates))

    def first(
        self, vs: VirtualServiceInfo, host: str, other: VirtualServiceInfo | None, other_host: str
    ) -> bool:
        """Whether the vhost of ``host`` routed by ``vs`` is built before that of ``other_host``
        (routed by ``other``, None: no VS): VSs in precedence order, services without one last;
        the services of one VS in the order it names them, those only a wildcard of it covers
        after (Istio leaves their order open; here by host)."""
        if other is None:
            return True
        if vs is not other:
            return self.rank(vs) < self.rank(other)
        hosts = vs.hosts

        def position(h: str) -> tuple[int, str]:
            return (hosts.index(h) if h in hosts else len(hosts), h)

        return position(host) < position(other_host)


@dataclass
class _Plain:
    """A service list every client sees, with what a client seeing only public VSs gets."""

    services: list[Service]
    picks: list[VirtualServiceInfo | None]  # the VS of each, among the public VSs
    positions: dict[str, int]  # host -> position
    own: dict[str, list[int]]  # namespace -> positions of the services named under it
    taken: set[str]  # every domain of those vhosts
    foreign: list[dict[str, Any] | None]  # the vhosts, interned when a view first needs them
    missing: set[int]  # positions of ``foreign`` still None
    drops: list[frozenset[str]]  # the domains each foreign vhost leaves to another
    claims: _Claims  # what claims domains for a client seeing only the public VSs
    domain_positions: dict[str, int] | None = None  # alternative domain -> position, on demand


def _plain_ok(index: ConfigIndex, ctx: Context) -> list[VirtualServiceInfo] | None:
    """The mesh VSs exported to the client's namespace in particular, when its view can start
    from :class:`_Plain`: it sees every service (all exported everywhere; no Sidecar, or one
    importing everything) and none of those VSs has a wildcard host. Else None."""
    sidecar = ctx.sidecar
    if (sidecar is not None and sidecar.egress is not None) or not index.model.registry.all_public:
        return None
    if index.model.registry.has_aliases:  # an alias's vhost depends on the VS the view picks for it
        return None
    local = index.mesh_local_candidates(ctx.namespace, sidecar)
    if any(is_wildcard(host) for vs in local for host in vs.hosts):
        return None
    return local


class _Builder:
    """Vhosts of mesh views, interned in :class:`Shared`."""

    def __init__(
        self,
        index: ConfigIndex,
        tables: Tables,
        compiled: Compiled,
        memo: Shared,
        sidecar: SidecarInfo | None = None,
    ) -> None:
        self.index, self.tables, self.compiled, self.memo = index, tables, compiled, memo
        self.sidecar = sidecar  # the view's, for its egress listeners per port

    def routes_of(self, vs: VirtualServiceInfo) -> list[int]:
        key = _key(vs)
        ids = self.memo.route_ids.get(key)
        if ids is None:
            ids = self.memo.route_ids[key] = _mesh_routes(self.tables, self.compiled.get(key, ()))
        return ids

    def client(self, svc: Service, ns: str) -> str:
        """``ns`` when some name of ``svc`` (its host, an alias's) has short forms there, else
        :data:`OTHER_NAMESPACE`: the client namespaces that see the same domains of ``svc``."""
        domain = self.index.model.domain
        if alias_namespace(svc.host, domain) == ns:
            return ns
        if any(alias_namespace(alias, domain) == ns for alias in svc.aliases):
            return ns
        return OTHER_NAMESPACE

    def domains(self, svc: Service, ns: str) -> _Domains:
        """The domains of ``svc`` on a sidecar of ``ns`` (:func:`vhost_domains`), its
        alternative names (:func:`alt_hosts`) and the alias of each domain an alias gives it."""
        domain = self.index.model.domain
        client = self.client(svc, ns)
        key = (id(svc), client)  # the service lives as long as the index
        found = self.memo.domains.get(key)
        if found is None:
            listed = vhost_domains(
                svc.host,
                client,
                domain,
                headless=svc.headless,
                addresses=svc.addresses,
                aliases=svc.aliases,
            )
            alternatives = set(alt_hosts(svc.host, client, domain))
            owners: dict[str, str] = {}
            for alias in svc.aliases:
                names = alt_hosts(alias, client, domain)
                alternatives.update(names)
                for name in (alias, *names):
                    owners.setdefault(name, alias)
            found = self.memo.domains[key] = _Domains(listed, frozenset(alternatives), owners)
        return found

    def dropped(
        self, svc: Service, vs: VirtualServiceInfo | None, ns: str, claims: _Claims
    ) -> frozenset[str]:
        """The domains of ``svc`` another vhost of the view claims first (:class:`_Claims`): an
        alternative name that is another service's host, a domain that is a VS's non-service
        host when that VS comes before the one routing ``svc`` (or ``svc`` has none), and the
        names of an alias of ``svc`` whose own vhost comes first (§13)."""
        found = self.domains(svc, ns)
        out: list[str] = []
        for name in found.listed[1:]:
            alias = found.owners.get(name)
            alias_vs = claims.aliases.get(alias) if alias is not None else None
            if alias is not None and alias_vs is not None and claims.first(alias_vs, alias, vs, svc.host):
                out.append(name)
                continue
            if name in claims.services:
                if name in found.alternatives:
                    out.append(name)
                continue
            owner = claims.vs_host(name)
            if owner is not None and (vs is None or claims.rank(owner) <= claims.rank(vs)):
                out.append(name)
        return frozenset(out) if out else _NONE

    def service_ports(self, svc: Service, ns: str) -> list[int]:
        """The ports of ``svc`` whose egress listener imports it (all of them without egress
        listeners per port, §6)."""
        ports = sorted({p.number for p in svc.ports})
        sidecar = self.sidecar
        if sidecar is not None and sidecar.by_port:
            ports = [p for p in ports if sidecar.imports_on_port(svc.namespace, svc.host, ns, p)]
        return ports

    def service(
        self,
        svc: Service,
        vs: VirtualServiceInfo | None,
        ns: str,
        drop: frozenset[str] = _NONE,
        only: Sequence[int] | None = None,
    ) -> dict[str, Any]:
        """The vhost of ``svc`` routed by ``vs`` for clients in ``ns``, without ``drop``, on its
        imported ports (``only``: those of them). An ExternalName alias's default route is that
        of the service it names (§13)."""
        ports = self.service_ports(svc, ns)
        if only is not None:
            ports = [p for p in ports if p in only]
        key = (id(svc), id(vs), self.client(svc, ns), drop, tuple(ports))  # both live as long as the index
        vhost = self.memo.vhosts.get(key)
        if vhost is None:
            listed = self.domains(svc, ns).listed
            target = self.index.model.registry.alias_target(svc.host) if svc.is_alias else svc
            vhost = self.memo.vhosts[key] = {
                "domains": [d for d in listed if d not in drop] if drop else list(listed),
                "routes": self.routes_of(vs) if vs else [],
                "default_target": self.tables.target(target.host, None, None) if target else None,
                "default_port": target.single_port if target else None,
            }
            if svc.ports:  # Istio: a route table per port of the service (docs/ir.md "VHost")
                vhost["ports"] = ports
        return vhost

    def host(self, host: str, vs: VirtualServiceInfo, ports: Sequence[int]) -> dict[str, Any]:
        """The vhost of a VS host that is no service, on the listener ``ports`` (:func:`_vs_ports`)."""
        key = (host, id(vs), tuple(ports))
        vhost = self.memo.vhosts.get(key)
        if vhost is None:
            vhost = self.memo.vhosts[key] = {
                "domains": [host],
                "routes": self.routes_of(vs),
                "default_target": None,
                "default_port": None,
                "ports": list(ports),
            }
        return vhost


def _extra_hosts(
    candidates: Sequence[VirtualServiceInfo],
    picker: HostPicker,
    taken: set[str],
    covered: Callable[[str], bool],
) -> list[tuple[str, VirtualServiceInfo]]:
    """VS hosts that are not services (external names, wildcards): the first VS by precedence.
    A wildcard host that ``covered`` says overlaps a service of the view is none: the services
    it covers take its routes, other names under it go to the catch-all (§1.1). Adds them to
    ``taken``."""
    out = []
    for vs in candidates:
        for host in vs.hosts:
            if host in taken or (covered(host) if is_wildcard(host) else picker.pick(host) is not vs):
                continue
            taken.add(host)
            out.append((host, vs))
    return out


def _coverage(index: ConfigIndex, memo: Shared, ctx: Context) -> Callable[[str], bool]:
    """Whether a wildcard VS host overlaps a service the view sees (Istio: a service of the
    listener's port, so one with a port; an ExternalName alias only when it declares one), each
    answer kept in ``memo`` for the views that see the same services."""
    sidecar = ctx.sidecar
    everyone = index.model.registry.all_public and (sidecar is None or sidecar.egress is None)
    seen: Any = "*" if everyone else (ctx.namespace, id(sidecar))

    def covered(host: str) -> bool:
        key = (seen, host)
        found = memo.covered.get(key)
        if found is None:
            services = index.visible_services(ctx.namespace, sidecar)
            found = memo.covered[key] = overlaps_any(host, (s.host for s in services if s.ports))
        return found

    return covered


HTTP_OR_SNIFFED = frozenset({"", "HTTP", "HTTP2", "GRPC", "GRPC-WEB"})


def _vs_ports(index: ConfigIndex, memo: Shared, ctx: Context) -> Callable[[VirtualServiceInfo], list[int]]:
    """The listener ports of the hosts of a VS that are no service (Istio
    ``buildSidecarVirtualHostsForVirtualService``): the HTTP (or auto-detected) ports of the
    services the VS's hosts name or cover among those the view sees; port 80 alone when there are
    none — each only if some service the view sees has it, as Istio builds an HTTP route table
    for those ports only (semantics §1.1). Kept in ``memo`` for the views that see the same
    services."""
    sidecar = ctx.sidecar
    everyone = index.model.registry.all_public and (sidecar is None or sidecar.egress is None)
    seen: Any = "*" if everyone else (ctx.namespace, id(sidecar))

    def ports(vs: VirtualServiceInfo) -> list[int]:
        key = (seen, "ports", id(vs))
        found = memo.ports.get(key)
        if found is None:
            by_host = memo.by_host.get(seen)
            if by_host is None:
                services = index.visible_services(ctx.namespace, sidecar)
                by_host = memo.by_host[seen] = {s.host: s for s in services}
            numbers: set[int] = set()
            for host in vs.hosts:
                if is_wildcard(host):
                    named = [s for h, s in by_host.items() if matches(host, h)]
                else:
                    named = [by_host[host]] if host in by_host else []
                for svc in named:
                    numbers.update(p.number for p in svc.ports if p.protocol in HTTP_OR_SNIFFED)
            listening = memo.ports.get((seen, "listeners"))
            if listening is None:
                listening = memo.ports[(seen, "listeners")] = sorted(
                    {p.number for s in by_host.values() for p in s.ports if p.protocol in HTTP_OR_SNIFFED}
                )
            found = memo.ports[key] = [p for p in sorted(numbers) or [80] if p in listening]
        return found

    return ports


def _remainders(
    build: _Builder,
    ns: str,
    pairs: Sequence[tuple[Service, dict[str, Any]]],
    extras: Sequence[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """A service's domain that a VS host which is no service claims first is that VS's on the
    VS's ports only: on the service's other ports it stays the service's (Istio builds a route
    table per port). Those domains go into vhosts placed after the claimers', serving the
    service's other ports (the first vhost serving a port wins, docs/ir.md "VHost")."""
    claimed = {host for host, _ in extras}
    drops: dict[str, list[dict[str, Any]]] = {}
    for svc, vhost in pairs:
        listed = build.domains(svc, ns).listed
        if len(listed) == len(vhost["domains"]):  # nothing dropped (the common case)
            continue
        for domain in listed:
            if domain in claimed and domain not in vhost["domains"]:
                drops.setdefault(domain, []).append(vhost)
    grouped: dict[tuple[int, tuple[int, ...]], tuple[dict[str, Any], list[str]]] = {}
    for host, claimer in extras:
        for vhost in drops.get(host, ()):
            rest = tuple(p for p in vhost.get("ports", ()) if p not in claimer["ports"])
            if rest:
                grouped.setdefault((id(vhost), rest), (vhost, []))[1].append(host)
    out = []
    for (_, rest), (vhost, domains) in grouped.items():
        out.append({**vhost, "domains": domains, "ports": list(rest)})
    return out


def _plain(index: ConfigIndex, build: _Builder) -> _Plain:
    """The :class:`_Plain` pieces; nothing interned yet (views intern in their own order)."""
    services = index.visible_services(OTHER_NAMESPACE, None)
    public, picker = index.mesh_candidates(OTHER_NAMESPACE, None)  # the public VSs only
    claims = _Claims(index.model.registry.hosts, picker, public)
    own: dict[str, list[int]] = {}
    taken: set[str] = set()
    picks: list[VirtualServiceInfo | None] = []
    drops: list[frozenset[str]] = []
    for i, svc in enumerate(services):
        ns = alias_namespace(svc.host, index.model.domain)
        if ns is not None:
            own.setdefault(ns, []).append(i)
        vs = picker.pick(svc.host)
        drop = build.dropped(svc, vs, OTHER_NAMESPACE, claims)
        picks.append(vs)
        drops.append(drop)
        taken.update(d for d in build.domains(svc, OTHER_NAMESPACE).listed if d not in drop)
    return _Plain(
        services=services,
        picks=picks,
        positions={svc.host: i for i, svc in enumerate(services)},
        own=own,
        taken=taken,
        foreign=[None] * len(services),
        missing=set(range(len(services))),
        drops=drops,
        claims=claims,
    )


class _PortPicks:
    """The VirtualServices of each port's route table under a Sidecar with egress listeners per
    port: Istio builds the table of a port from its egress listener's VirtualServices alone
    (``GetEgressListenerForRDS``: the listener declaring the port, else the one without a port),
    so a service's VS can differ from port to port (§6). Without such listeners every port has
    the view's VirtualServices."""

    def __init__(self, ctx: Context, candidates: Sequence[VirtualServiceInfo]) -> None:
        sidecar = ctx.sidecar
        self.sidecar = sidecar if sidecar is not None and sidecar.by_port else None
        self.namespace = ctx.namespace
        self.candidates = candidates
        self._pickers: dict[int, HostPicker] = {}

    def _imported(self, vs: VirtualServiceInfo, port: int) -> bool:
        assert self.sidecar is not None
        return self.sidecar.port_imports(vs.namespace, vs.hosts, self.namespace, port)

    def _picker(self, port: int) -> HostPicker:
        found = self._pickers.get(port)
        if found is None:
            found = self._pickers[port] = HostPicker([v for v in self.candidates if self._imported(v, port)])
        return found

    def split(
        self, svc: Service, vs: VirtualServiceInfo | None, ports: Sequence[int]
    ) -> list[tuple[VirtualServiceInfo | None, Sequence[int] | None]]:
        """``svc``'s ports grouped by the VS their route table picks for it, in port order;
        ``[(vs, None)]`` (all its ports, the view's pick) when every port picks ``vs``."""
        if self.sidecar is None:
            return [(vs, None)]
        groups: dict[int, tuple[VirtualServiceInfo | None, list[int]]] = {}
        for port in ports:
            chosen = self._picker(port).pick(svc.host)
            groups.setdefault(id(chosen), (chosen, []))[1].append(port)
        if not groups or (len(groups) == 1 and next(iter(groups.values()))[0] is vs):
            return [(vs, None)]
        return [(chosen, only) for chosen, only in groups.values()]

    def importing(self, vs: VirtualServiceInfo, ports: list[int]) -> list[int]:
        """``ports`` whose egress listener imports ``vs``."""
        if self.sidecar is None:
            return ports
        return [p for p in ports if self._imported(vs, p)]


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
    build = _Builder(index, tables, compiled, memo, ctx.sidecar)
    candidates, picker = index.mesh_candidates(ns, ctx.sidecar)
    port_picks = _PortPicks(ctx, candidates)
    local = _plain_ok(index, ctx)
    pairs: Sequence[tuple[Service, dict[str, Any]]]
    if local is not None:
        vhosts, taken = _plain_vhosts(index, build, ns, local, picker, candidates)
        pairs = list(zip(build.memo.plain.services, vhosts, strict=True)) if build.memo.plain else []
    else:
        vhosts, taken, pairs = [], set(), []
        visible = index.visible_services(ns, ctx.sidecar)
        claims = _claims(visible, picker, candidates)
        for svc in visible:
            vs = picker.pick(svc.host)
            if svc.is_alias:
                alias = _alias_vhost(index, build, svc, ns, claims)
                built = [alias] if alias is not None else []
            else:  # one vhost per VS its ports' route tables pick (one, unless listeners differ)
                built = [
                    build.service(svc, chosen, ns, build.dropped(svc, chosen, ns, claims), only)
                    for chosen, only in port_picks.split(svc, vs, build.service_ports(svc, ns))
                ]
            for vhost in built:
                if vhost.get("ports") == []:  # imported by no egress listener of its ports (§6)
                    continue
                vhosts.append(vhost)
                pairs.append((svc, vhost))
                taken.update(vhost["domains"])
    covered = _coverage(index, memo, ctx)
    vs_ports = _vs_ports(index, memo, ctx)
    extras = [
        (h, build.host(h, vs, ports))
        for h, vs in _extra_hosts(candidates, picker, taken, covered)
        # no route table on any of its ports, or no listener of them imports the VS: no vhost
        if (ports := port_picks.importing(vs, vs_ports(vs)))
    ]
    vhosts += [vhost for _, vhost in extras]
    if extras:
        vhosts += _remainders(build, ns, pairs, extras)
    return {
        "gateway": 0,
        "namespace": ns if ns in index.model.namespaces else OTHER_NAMESPACE,
        "scope": -1,  # filled in once all targets are known
        "ports": [],
        "https_redirect_hosts": [],
        "unknown_host": ctx.sidecar.unknown_host if ctx.sidecar else index.model.mesh.unknown_host,
        "vhosts": vhosts,
    }


def _claims(
    visible: Sequence[Service], picker: HostPicker, candidates: Sequence[VirtualServiceInfo]
) -> _Claims:
    """The :class:`_Claims` of a view that sees ``visible``. An ExternalName alias counts as a
    service host only when it declares a port (Istio: a service of the listener's port); one
    that also has a VS has a vhost of its own (§13)."""
    aliases = {
        svc.host: vs
        for svc in visible
        if svc.is_alias and svc.ports and (vs := picker.pick(svc.host)) is not None
    }
    hosts = {svc.host for svc in visible if svc.ports or not svc.is_alias}
    return _Claims(hosts, picker, candidates, aliases)


def _alias_vhost(
    index: ConfigIndex, build: _Builder, alias: Service, ns: str, claims: _Claims
) -> dict[str, Any] | None:
    """The vhost of an ExternalName alias, which it has only when it declares a port and a VS
    routes it, and the service it names does not claim its names first (§13); None otherwise
    (its names are then domains of the service it names)."""
    vs = claims.aliases.get(alias.host)
    if vs is None:
        return None
    target = index.model.registry.alias_target(alias.host)
    if target is not None and target.host in claims.services:
        target_vs = claims.picker.pick(target.host)
        if target_vs is not None and claims.first(target_vs, target.host, vs, alias.host):
            return None
    vhost = build.service(alias, vs, ns, build.dropped(alias, vs, ns, claims))
    return vhost if vhost["domains"] else None


def _plain_vhosts(
    index: ConfigIndex,
    build: _Builder,
    ns: str,
    local: list[VirtualServiceInfo],
    picker: HostPicker,
    candidates: Sequence[VirtualServiceInfo],
) -> tuple[list[dict[str, Any]], set[str]]:
    """The service vhosts of a view that starts from :class:`_Plain` (see :func:`_plain_ok`), and
    their domains: the shared list, with the namespace's own services (short names added), the
    services its ``local`` VSs claim and those one of whose domains a ``local`` VS names
    replaced. The same objects, in the same order, as the general loop; a vhost is interned at
    the same point as there (position order)."""
    plain = build.memo.plain
    if plain is None:
        plain = build.memo.plain = _plain(index, build)
    changed = set(plain.own.get(ns, ()))
    for vs in local:
        for h in vs.hosts:
            at = plain.positions.get(h)
            if at is None:
                at = _domain_positions(plain, build).get(h)
            if at is not None:
                changed.add(at)
    vhosts = list(plain.foreign)
    taken = set(plain.taken)
    claims = _Claims(index.model.registry.hosts, picker, candidates) if changed else plain.claims
    for i in sorted(changed | plain.missing):
        svc = plain.services[i]
        if i in changed:
            chosen = picker.pick(svc.host)
            drop = build.dropped(svc, chosen, ns, claims)
            vhost = build.service(svc, chosen, ns, drop)
            foreign = build.domains(svc, OTHER_NAMESPACE).listed
            taken.difference_update(d for d in foreign if d not in plain.drops[i])
            taken.update(vhost["domains"])  # adds the short name of an own service
        else:
            vhost = plain.foreign[i] = build.service(svc, plain.picks[i], OTHER_NAMESPACE, plain.drops[i])
            plain.missing.discard(i)
        vhosts[i] = vhost
    return vhosts, taken  # type: ignore[return-value]  # no None left: every gap was filled


def _domain_positions(plain: _Plain, build: _Builder) -> dict[str, int]:
    """Each alternative domain (every domain but the host) of the shared services -> the
    position of its service, built the first time a view needs it."""
    if plain.domain_positions is None:
        found: dict[str, int] = {}
        for i, svc in enumerate(plain.services):
            for d in build.domains(svc, OTHER_NAMESPACE).listed[1:]:
                found.setdefault(d, i)
        plain.domain_positions = found
    return plain.domain_positions


def gateway_pieces(
    routes: Sequence[CompiledRoute], ref: str, port: int, holds: SourceCheck | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ordinary routes, catch-all routes) of one VS on one gateway port.

    Istio stops emitting a VS's routes after its first catch-all match and then moves catch-all
    routes behind every other VS's routes. A route whose catch-all block is not its first block is
    split: its earlier blocks stay in place, and the moved copy keeps them too (they cannot match
    there, having failed already) so the catch-all block keeps its match index. ``holds`` says
    whether a block's source conditions hold for the gateway's proxies; a block whose conditions
    do not is left out, as Istio leaves it out of a gateway's routes (§4).
    """
    normal: list[dict[str, Any]] = []
    for route in routes:
        if not route.blocks:
            if route.bound_to(ref):
                return normal, [route.ir(None)]
            continue
        usable = route.usable_blocks(ref, port, holds)
        if not usable:
            continue
        catch = next((i for i, b in enumerate(route.blocks) if b in usable and b.catch_all), None)
        if catch is None:
            normal.append(route.ir(route.blocks, holds))
            continue
        if any(b in usable for b in route.blocks[:catch]):
            normal.append(route.ir(route.blocks[:catch], holds))
        return normal, [route.ir(route.blocks[: catch + 1], holds)]
    return normal, []


def gateway_source(model: Model, gw: GatewayInfo) -> SourceCheck:
    """Whether a match block's ``sourceLabels`` / ``sourceNamespace`` hold for the proxies of
    ``gw`` (Istio ``sourceMatchHTTP`` against the gateway proxy's labels and namespace): the labels
    of the known workloads its ``selector`` selects (Pods, Deployments, …, any namespace), else
    the selector's own labels, which every selected proxy carries; the namespace of the first such
    workload, else the Gateway's."""
    selected: list[tuple[str, Mapping[str, str]]] = [
        (ns, labels)
        for ns, pools in model.registry.workloads.items()
        for labels in pools
        if gw.selector and all(labels.get(k) == v for k, v in gw.selector.items())
    ]
    candidates = [labels for _, labels in selected] or [gw.selector]
    namespace = selected[0][0] if selected else gw.namespace
    return _source_check(candidates, namespace)


def _source_check(candidates: Sequence[Mapping[str, str]], namespace: str) -> SourceCheck:
    """Whether a block's source conditions hold for a proxy in ``namespace`` carrying one of
    the label sets ``candidates``."""

    def holds(block: Block) -> bool:
        wanted = block.ir["source_labels"]
        source_ns = block.ir["source_namespace"]
        if source_ns is not None and source_ns != namespace:
            return False
        return any(all(labels.get(k) == v for k, v in wanted.items()) for labels in candidates)

    return holds


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
    """Host patterns of the servers with ``tls.httpsRedirect``, in server order, duplicates
    dropped: Istio gives each a virtual host of its own that requires TLS (with no routes unless a
    VirtualService domain is the same name, whose vhost then requires TLS). The ``ns/`` part of a
    server host only filters VirtualServices (§4); it plays no part here."""
    out: list[str] = []
    for server in servers:
        for _, host in server.hosts if server.https_redirect else ():
            if host not in out:
                out.append(host)
    return out


def _gateway_vhost(domain: str, routes: list[int], require_tls: bool) -> dict[str, Any]:
    """A gateway view's vhost; ``require_tls`` only when set (Istio ``require_tls: ALL``: a server
    it was built for has ``tls.httpsRedirect``, §4)."""
    vhost: dict[str, Any] = {
        "domains": [domain],
        "routes": routes,
        "default_target": None,
        "default_port": None,
    }
    if require_tls:
        vhost["require_tls"] = True
    return vhost


def gateway_views(
    index: ConfigIndex, tables: Tables, compiled: Compiled, gw: GatewayInfo
) -> dict[int, dict[str, Any]]:
    """One view per server port of a Gateway; VSs merged per host, catch-alls last (§2.16, §4)."""
    out: dict[int, dict[str, Any]] = {}
    candidates = index.gateway_virtual_services(gw)
    holds = gateway_source(index.model, gw)
    for port in sorted({s.port for s in gw.servers}):
        servers = [s for s in gw.servers if s.port == port]
        by_domain: dict[str, list[VirtualServiceInfo]] = {}
        for vs in candidates:
            for domain in _domains(vs, servers):
                group = by_domain.setdefault(domain, [])
                if vs not in group:
                    group.append(vs)
        redirect_hosts = _redirect_hosts(servers)
        tls_domains = set(redirect_hosts)
        for server in servers if redirect_hosts else ():
            if server.https_redirect:
                tls_domains.update(d for vs in candidates for d in _domains(vs, [server]))
        vhosts = []
        for domain, group in by_domain.items():
            normal: list[dict[str, Any]] = []
            last: list[dict[str, Any]] = []
            for vs in group:
                pieces, catch_all = gateway_pieces(compiled.get(_key(vs), ()), gw.ref, port, holds)
                normal += pieces
                last += catch_all
            vhosts.append(
                _gateway_vhost(domain, [tables.route(r) for r in normal + last], domain in tls_domains)
            )
        out[port] = {
            "gateway": tables.gateway(gw.ref),
            "namespace": gw.namespace,
            "scope": -1,
            "ports": [port],
            "https_redirect_hosts": redirect_hosts,
            "unknown_host": "not_found",
            "vhosts": vhosts,
        }
    return out


def _rebind(route: dict[str, Any], gateway: int, workload: int) -> dict[str, Any]:
    """A Gateway's route for a workload view: the blocks that apply to the Gateway (GatewayId
    ``gateway``) apply to the workload instead, the others to ``mesh`` only (GatewayId 0, which no
    gateway view uses), so that every block keeps its match index."""
    if not route["matches"]:
        return route
    matches = [{**m, "gateways": [workload] if gateway in m["gateways"] else [0]} for m in route["matches"]]
    return {**route, "matches": matches}


def workload_views(
    index: ConfigIndex, tables: Tables, compiled: Compiled, workload: GatewayWorkload
) -> dict[int, dict[str, Any]]:
    """One view per port with HTTP servers of a gateway workload, its Gateways merged as Istio
    merges them for one proxy (§4): the servers the merge keeps, each binding the VSs of its own
    Gateway (exported to the workload's namespace) to its own hosts; the routes of every VS and
    Gateway for a host merged into one vhost, server by server, catch-alls last (§2.16);
    ``httpsRedirect`` per server."""
    wid = tables.gateway(workload.name)
    ns = workload.namespace
    holds = _source_check([workload.labels], ns)
    candidates: dict[str, list[VirtualServiceInfo]] = {}
    out: dict[int, dict[str, Any]] = {}
    for port in workload.http_ports:
        servers = workload.http_servers(port)
        by_domain: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        seen: dict[str, set[tuple[str, str]]] = {}
        pieces: dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        redirect_hosts = _redirect_hosts([s for s, _ in servers])
        tls_domains = set(redirect_hosts)
        for server, gw in servers:
            bound = candidates.get(gw.ref)
            if bound is None:
                bound = candidates[gw.ref] = index.gateway_virtual_services(gw, ns)
            for vs in bound:
                key = (_key(vs), gw.ref)
                for domain in _domains(vs, [server]):
                    if server.https_redirect:  # whichever server built the vhost first
                        tls_domains.add(domain)
                    done = seen.setdefault(domain, set())
                    if key in done:  # Istio appends them again: the copies can never match
                        continue
                    done.add(key)
                    found = pieces.get(key)
                    if found is None:
                        gid = tables.gateway(gw.ref)
                        normal, last = gateway_pieces(compiled.get(key[0], ()), gw.ref, port, holds)
                        found = pieces[key] = (
                            [_rebind(r, gid, wid) for r in normal],
                            [_rebind(r, gid, wid) for r in last],
                        )
                    routes, catch_alls = by_domain.setdefault(domain, ([], []))
                    routes += found[0]
                    catch_alls += found[1]
        out[port] = {
            "gateway": wid,
            "namespace": ns,
            "scope": -1,
            "ports": [port],
            "https_redirect_hosts": redirect_hosts,
            "unknown_host": "not_found",
            "vhosts": [
                _gateway_vhost(domain, [tables.route(r) for r in routes + catch_alls], domain in tls_domains)
                for domain, (routes, catch_alls) in by_domain.items()
            ],
        }
    return out
