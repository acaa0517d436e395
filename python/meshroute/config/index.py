"""Questions about the model: who sees which VirtualService, DestinationRule and service
(semantics §2.1 exportTo, §2.7 delegates, §2.16 VS selection, §3.1 DR lookup, §4 gateways, §6
Sidecar), and the diagnostics that need more than one resource to find.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from meshroute.config import delegate as delegation
from meshroute.config.crosscheck import check_all
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.gateway import GatewayInfo
from meshroute.config.hosts import MESH, is_wildcard, matches, visibility_class
from meshroute.config.httpmodel import Delegate, Destination, HTTPMirror, HTTPRoute, HTTPRouteDestination
from meshroute.config.load import Resource
from meshroute.config.meshconfig import DEFAULT_DOMAIN
from meshroute.config.model import Model, build_model
from meshroute.config.registry import Registry, Service
from meshroute.config.sidecar import SidecarInfo
from meshroute.config.virtualservice import VirtualServiceInfo

Route = HTTPRoute


@dataclass
class ConfigIndex:
    """Who sees what in a :class:`~meshroute.config.model.Model`: the visibility and precedence
    queries the compiler asks (built once by :func:`build_index`), the VirtualServices' routes
    with delegates merged, and the diagnostics that need more than one resource to find."""

    model: Model
    # Root VSs (key "ns/name") -> their HTTP routes with delegates merged: (root index, route).
    merged: dict[str, list[tuple[int, Route]]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # the model's, then cross-resource
    # Memos: the model does not change once build_index has returned it.
    _bound: dict[int, set[str]] = field(default_factory=dict, repr=False, compare=False)
    _mesh_public: tuple[list[VirtualServiceInfo], HostPicker] | None = field(
        default=None, repr=False, compare=False
    )
    _mesh_local: list[VirtualServiceInfo] = field(default_factory=list, repr=False, compare=False)
    _by_name: dict[tuple[str, str], VirtualServiceInfo] | None = field(
        default=None, repr=False, compare=False
    )

    # --- Sidecars (§6) -------------------------------------------------------------------------

    def default_sidecar(self, namespace: str) -> SidecarInfo | None:
        return self.model.default_sidecar(namespace)

    def selector_sidecars(self, namespace: str) -> list[SidecarInfo]:
        return self.model.selector_sidecars(namespace)

    # --- Visibility ----------------------------------------------------------------------------

    def visible_services(self, client_ns: str, sidecar: SidecarInfo | None) -> list[Service]:
        return self.model.visible_services(client_ns, sidecar)

    def roots(self) -> list[VirtualServiceInfo]:
        return self.model.roots()

    def named(self, namespace: str, name: str) -> VirtualServiceInfo | None:
        """The VirtualService ``namespace/name``, if any."""
        if self._by_name is None:
            self._by_name = {}
            for vs in self.model.virtual_services:
                self._by_name.setdefault((vs.namespace, vs.name), vs)
        return self._by_name.get((namespace, name))

    def bound_gateways(self, vs: VirtualServiceInfo) -> set[str]:
        """Every gateway some route of the VS applies to (per-match gateways override the VS's).
        Only asked once delegates are merged (``merged`` is complete), so it is computed once."""
        return set(self._gateways_of(vs))

    def _gateways_of(self, vs: VirtualServiceInfo) -> set[str]:
        known = self._bound.get(id(vs))
        if known is not None:
            return known
        out = self._bound[id(vs)] = routes_gateways(
            (r for _, r in self.merged.get(_key(vs), [])), vs.gateways
        )
        return out

    def mesh_virtual_services(self, client_ns: str, sidecar: SidecarInfo | None) -> list[VirtualServiceInfo]:
        """Mesh-bound VSs visible to a client, in sidecar precedence order (§2.16 refinement):
        own-namespace-only, then explicitly exported, then public; oldest first in each group."""
        return self.mesh_candidates(client_ns, sidecar)[0]

    def mesh_candidates(
        self, client_ns: str, sidecar: SidecarInfo | None
    ) -> tuple[list[VirtualServiceInfo], HostPicker]:
        """:meth:`mesh_virtual_services` and a :class:`HostPicker` over them. Public VSs come last
        in every namespace, in the same order, so they are sorted and indexed once; a client
        adds the few VSs exported to its namespace in particular (and its Sidecar filters)."""
        if self._mesh_public is None:
            mesh = [vs for vs in self.roots() if MESH in self._gateways_of(vs)]
            public = sorted((vs for vs in mesh if _public(vs.export_to)), key=lambda v: v.order)
            self._mesh_local = [vs for vs in mesh if not _public(vs.export_to)]
            self._mesh_public = (public, HostPicker(public))
        public, base = self._mesh_public
        unfiltered = sidecar is None or sidecar.egress is None  # imports everything
        local = self.mesh_local_candidates(client_ns, sidecar)
        if not unfiltered and sidecar is not None:
            public = [vs for vs in public if sidecar.imports(vs.namespace, vs.hosts, client_ns)]
            return local + public, HostPicker(local + public)
        return local + public, HostPicker(local, base) if local else base

    def mesh_local_candidates(self, client_ns: str, sidecar: SidecarInfo | None) -> list[VirtualServiceInfo]:
        """The mesh VSs a client sees that are not public (exported to its namespace in
        particular), in precedence order."""
        if self._mesh_public is None:
            self.mesh_candidates(client_ns, None)  # sorts the VSs into public and the others
        unfiltered = sidecar is None or sidecar.egress is None  # imports everything
        local = [
            vs
            for vs in self._mesh_local
            if vs.visible_from(client_ns)
            and (unfiltered or sidecar is None or sidecar.imports(vs.namespace, vs.hosts, client_ns))
        ]
        local.sort(key=lambda v: (visibility_class(v.export_to, v.namespace, client_ns), v.order))
        return local

    def gateway_virtual_services(
        self, gateway: GatewayInfo, namespace: str | None = None
    ) -> list[VirtualServiceInfo]:
        """VSs bound to a gateway and exported to the gateway proxy's namespace (``namespace``,
        default the Gateway's), in merge order (§2.16 step 1)."""
        ns = gateway.namespace if namespace is None else namespace
        found = [vs for vs in self.roots() if gateway.ref in self._gateways_of(vs) and vs.visible_from(ns)]
        return sorted(found, key=lambda vs: (visibility_class(vs.export_to, vs.namespace, ns), vs.order))


def routes_gateways(routes: Iterable[Route], gateways: Sequence[str]) -> set[str]:
    """Every gateway some of ``routes`` applies to: a match block's own ``gateways`` override the
    VS's ``gateways``, and a route without match blocks applies where the VS does."""
    out: set[str] = set()
    for route in routes:
        blocks = route.blocks
        if not blocks:
            out.update(gateways)
        for m in blocks:
            out.update(m.gateways or gateways)
    return out


def _key(vs: VirtualServiceInfo) -> str:
    return f"{vs.namespace}/{vs.name}"


def _public(export_to: Sequence[str]) -> bool:
    """Exported to every namespace: visible everywhere, precedence group 2 everywhere (§2.16)."""
    return not export_to or "*" in export_to


class HostPicker:
    """:func:`pick_for_host` over one candidate list, indexed once: an exact-host dict (the first
    candidate with the host) and the wildcard hosts in candidate order, so a pick reads one dict
    entry and the wildcards instead of every candidate's hosts.

    >>> from meshroute.config.load import load_text
    >>> from meshroute.config.virtualservice import parse_virtual_service
    >>> docs = load_text("kind: VirtualService\\napiVersion: networking.istio.io/v1\\n"
    ...     "metadata: {name: w}\\nspec: {hosts: ['*.com', '*.a.com']}\\n---\\n"
    ...     "kind: VirtualService\\napiVersion: networking.istio.io/v1\\n"
    ...     "metadata: {name: e}\\nspec: {hosts: [x.a.com]}", "x.yaml").resources
    >>> picker = HostPicker([parse_virtual_service(r, i, "cluster.local") for i, r in enumerate(docs)])
    >>> [getattr(picker.pick(h), "name", None) for h in ("x.a.com", "y.a.com", "b.com", "a.org")]
    ['e', 'w', 'w', None]
    """

    def __init__(self, candidates: Sequence[VirtualServiceInfo], base: HostPicker | None = None) -> None:
        """``base``: the picker of the candidates that follow ``candidates`` in precedence order."""
        self.exact: dict[str, VirtualServiceInfo] = {}
        self.wildcards: list[tuple[str, VirtualServiceInfo]] = []
        self.base = base.exact if base is not None else None
        for vs in candidates:
            for h in vs.hosts:
                self.exact.setdefault(h, vs)
                if is_wildcard(h):
                    self.wildcards.append((h, vs))
        if base is not None:
            self.wildcards += base.wildcards

    def pick(self, host: str) -> VirtualServiceInfo | None:
        found = self.exact.get(host)
        if found is None and self.base is not None:
            found = self.base.get(host)
        if found is not None:
            return found
        best: tuple[int, VirtualServiceInfo] | None = None
        for h, vs in self.wildcards:
            if (best is None or len(h) > best[0]) and matches(h, host):
                best = (len(h), vs)
        return best[1] if best else None


def pick_for_host(host: str, candidates: Sequence[VirtualServiceInfo]) -> VirtualServiceInfo | None:
    """The one VS a sidecar uses for a service host: an exact host beats any wildcard, the longest
    wildcard suffix beats shorter ones, precedence order breaks ties (§2.16 refinement)."""
    best: tuple[int, VirtualServiceInfo] | None = None
    for vs in candidates:  # already in precedence order: the first of equal rank wins
        for h in vs.hosts:
            if h == host:
                return vs
            if is_wildcard(h) and matches(h, host) and (best is None or len(h) > best[0]):
                best = (len(h), vs)
    return best[1] if best else None


def build_index(resources: Iterable[Resource] | Model, domain: str = DEFAULT_DOMAIN) -> ConfigIndex:
    """The :class:`ConfigIndex` of a model (built from ``resources``, already validated, when
    they are not one): delegates merged, cross-resource diagnostics collected.

    >>> from meshroute.config.load import load_text
    >>> idx = build_index(load_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
    ...                             "spec: {ports: [{port: 80}]}", "x.yaml").resources)
    >>> [s.host for s in idx.visible_services("default", None)], idx.model.namespaces
    (['a.default.svc.cluster.local'], ['default'])
    """
    model = resources if isinstance(resources, Model) else build_model(resources, domain)
    index = ConfigIndex(model, diagnostics=list(model.diagnostics))
    registry = model.registry
    for vs in index.roots():
        merged = merge_delegates(vs, index, index.diagnostics)
        if registry.has_aliases:
            merged = [(i, alias_destinations(route, registry)) for i, route in merged]
        index.merged[_key(vs)] = merged
    index.diagnostics.extend(check_all(index))
    return index


def alias_destinations(route: Route, registry: Registry) -> Route:
    """``route`` with each destination (and mirror) that names an ExternalName alias declaring
    a port sent to the host the alias names, on the alias's port when the destination gives
    none and the alias has exactly one (Istio ``GetDestinationCluster``: the cluster of the named
    service; an alias without ports is no service of the listener's port, so its own cluster,
    which does not exist, stays: 503; semantics §13). ``route`` itself when nothing changes."""
    changed = False

    def target(dest: Destination | None) -> Destination | None:
        nonlocal changed
        svc = registry.lookup(dest.host) if dest is not None else None
        if dest is None or svc is None or not svc.is_alias or not svc.ports:
            return dest
        changed = True
        port = svc.ports[0].number if dest.port is None and len(svc.ports) == 1 else dest.port
        return dataclasses.replace(dest, host=svc.external_name, port=port)

    def entry(item: HTTPRouteDestination | None) -> HTTPRouteDestination | None:
        return item if item is None else dataclasses.replace(item, destination=target(item.destination))

    def mirror(item: HTTPMirror | None) -> HTTPMirror | None:
        return item if item is None else dataclasses.replace(item, destination=target(item.destination))

    out = dataclasses.replace(
        route,
        route=tuple(entry(d) for d in route.route),
        mirror=target(route.mirror),
        mirrors=None if route.mirrors is None else tuple(mirror(m) for m in route.mirrors),
    )
    return out if changed else route


def merge_delegates(
    root: VirtualServiceInfo, index: ConfigIndex, diags: list[Diagnostic]
) -> list[tuple[int, Route]]:
    """The root's HTTP routes with each ``delegate`` route replaced in place by the delegate's
    routes (§2.7). A missing or invisible delegate drops the root route (``delegate-missing``); a
    delegate route whose matches fall outside the root's is dropped (``delegate-conflict``)."""
    out: list[tuple[int, Route]] = []
    for i, route in enumerate(root.http):
        ref = route.delegate
        if ref is None:
            out.append((i, route))
            continue
        target = _find_delegate(root, ref, index)
        if target is None:
            diags.append(
                root.resource.warning(
                    "delegate-missing",
                    ("spec", "http", i, "delegate"),
                    f"delegate VirtualService {ref.namespace or root.namespace}/{ref.name}"
                    " does "
                    f"not exist, has hosts, or is not exported to {root.namespace}; this route is dropped",
                )
            )
            continue
        for j, leaf in enumerate(target.http):
            merged = delegation.merge_route(route, leaf)
            if merged is None:
                diags.append(
                    target.resource.warning(
                        "delegate-conflict",
                        ("spec", "http", j, "match"),
                        f"no match of this route lies within the matches of {root.namespace}/{root.name} "
                        f"http[{i}]; the route is dropped from that delegation",
                    )
                )
            else:
                out.append((i, merged))
    return out


def _find_delegate(root: VirtualServiceInfo, ref: Delegate, index: ConfigIndex) -> VirtualServiceInfo | None:
    ns = ref.namespace or root.namespace
    vs = index.named(ns, ref.name) if ref.name is not None else None
    if vs is None:
        return None
    return vs if vs.is_delegate and vs.visible_from(root.namespace) else None
