"""Cross-resource diagnostics: references between resources that single-resource validation cannot
check (istioctl analyze IST0101, IST0109, IST0112, IST0173, IST0174; semantics §8.8).

All are reported at once, each on the resource and field that holds the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from meshroute.config.diagnostics import Diagnostic, Path
from meshroute.config.hosts import MESH, intersect, is_wildcard, matches

if TYPE_CHECKING:
    from meshroute.config.httpmodel import Destination, HTTPRoute
    from meshroute.config.index import ConfigIndex
    from meshroute.config.policy import DestinationRuleInfo
    from meshroute.config.virtualservice import VirtualServiceInfo


def check_all(index: ConfigIndex) -> list[Diagnostic]:
    """Every cross-resource diagnostic, in this order: each VS's own references (config order),
    the conflicts between VSs, each DR's own references (:mod:`meshroute.config.session`
    recomputes one resource's part and relies on that order)."""
    out: list[Diagnostic] = []
    for vs in index.model.virtual_services:
        out.extend(check_virtual_service(vs, index))
    out.extend(_duplicate_mesh_hosts(index))
    for dr in index.model.destination_rules:
        out.extend(check_destination_rule(dr, index))
    return out


def check_virtual_service(vs: VirtualServiceInfo, index: ConfigIndex) -> list[Diagnostic]:
    """A VS's gateway and destination references."""
    return [*_gateways(vs, index), *_destinations(vs, index)]


def _gateways(vs: VirtualServiceInfo, index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-gateway-unknown``: a VS (or one of its match blocks) names a Gateway that does not exist."""
    refs: list[tuple[Path, str]] = []
    if vs.gateways != (MESH,):
        refs += [(("spec", "gateways", i), g) for i, g in enumerate(vs.gateways)]
    for i, route in enumerate(vs.http):
        for j, m in enumerate(route.match):
            gateways = m.gateways if m is not None else ()
            refs += [(("spec", "http", i, "match", j, "gateways", k), g) for k, g in enumerate(gateways)]
    for path, ref in refs:
        if ref != MESH and ref not in index.model.gateways:
            # A warning, as in istioctl analyze's spirit: Istio admits it and the rule simply binds nowhere.
            yield vs.resource.warning(
                "vs-gateway-unknown", path, f"gateway {ref} does not exist; rules bound to it are never used"
            )


def destination_refs(route: HTTPRoute, i: int) -> Iterator[tuple[Path, Destination]]:
    """The destinations and mirrors of HTTP route ``i``, each with its field path."""
    for j, d in enumerate(route.route):
        if d is not None and d.destination is not None:
            yield ("spec", "http", i, "route", j, "destination"), d.destination
    if route.mirror is not None:
        yield ("spec", "http", i, "mirror"), route.mirror
    for j, m in enumerate(route.mirrors or ()):
        if m is not None and m.destination is not None:
            yield ("spec", "http", i, "mirrors", j, "destination"), m.destination


def _destinations(vs: VirtualServiceInfo, index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-host-unknown``, ``vs-subset-undefined`` and ``vs-port-required`` for every destination
    and mirror, checked from the VS's own namespace."""
    for i, route in enumerate(vs.http):
        for path, dest in destination_refs(route, i):
            host, subset = dest.host, dest.subset
            svc = index.model.registry.lookup(host)
            if not index.model.registry.knows(host):
                yield vs.resource.warning(
                    "vs-host-unknown",
                    (*path, "host"),
                    f"host {host} is not a known service or ServiceEntry host; "
                    "requests routed there fail with 503",
                )
            if subset is not None and not index.model.rules.defines_subset(
                host, subset, vs.namespace, svc.namespace if svc else None
            ):
                # A warning, not an error: Istio admits the VS and answers 503 until a DR defines the
                # subset ("make-before-break"); meshroute must load it to show that outcome.
                yield vs.resource.warning(
                    "vs-subset-undefined",
                    (*path, "subset"),
                    f"no DestinationRule visible from {vs.namespace} defines subset "
                    f"{subset!r} of {host}; requests routed there get 503",
                )
            if svc is not None and len(svc.ports) > 1 and not dest.port:  # (0: a port without a number)
                numbers = ", ".join(str(p.number) for p in svc.ports)
                yield vs.resource.warning(
                    "vs-port-required", path, f"{host} has several ports ({numbers}); set destination.port"
                )


def _scopes(vs: VirtualServiceInfo) -> frozenset[str]:
    """The namespaces a VS is exported to, ``*`` for all (``.`` is its own; the mesh config's
    default already stands in for an empty ``exportTo``)."""
    if not vs.export_to or "*" in vs.export_to:
        return frozenset({"*"})
    return frozenset(vs.namespace if e == "." else e for e in vs.export_to)


def _duplicate_mesh_hosts(index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-duplicate-mesh-host`` (IST0109, Istio's ``ConflictingMeshGatewayHostsAnalyzer``):
    VirtualServices bound to ``mesh`` (their own ``gateways``, empty meaning mesh) conflict
    when one is exported to a namespace another is exported to too and they name the same host;
    a VS exported everywhere also conflicts with one exported to particular namespaces whose
    host overlaps its host (wildcards included). Every VS of a conflict is reported once, at its
    first conflicting host: sidecars take one VS per host, so only one of them applies."""
    scoped: dict[tuple[str, str], list[tuple[VirtualServiceInfo, int]]] = {}
    for vs in sorted(index.roots(), key=lambda v: v.order):
        if MESH not in vs.gateways:
            continue
        for scope in sorted(_scopes(vs)):
            for i, host in enumerate(vs.hosts):
                scoped.setdefault((scope, host), []).append((vs, i))
    # The VSs exported everywhere, by exact host and (the few) wildcard hosts, so that a VS
    # exported to particular namespaces finds those its host overlaps without a scan of them all.
    exact: dict[str, list[tuple[VirtualServiceInfo, int]]] = {}
    wildcards: list[tuple[str, list[tuple[VirtualServiceInfo, int]]]] = []
    for (scope, host), claims in scoped.items():
        if scope == "*":
            if is_wildcard(host):
                wildcards.append((host, claims))
            else:
                exact[host] = claims
    reported: set[int] = set()
    for (scope, host), claims in scoped.items():
        rivals = list(claims)
        if scope != "*":
            rivals += exact.get(host, [])
            rivals += [c for other, group in wildcards if intersect(host, other) for c in group]
            if is_wildcard(host):
                rivals += [c for other, group in exact.items() if matches(host, other) for c in group]
        if len({id(vs) for vs, _ in rivals}) < 2:
            continue
        names = ", ".join(dict.fromkeys(f"{vs.namespace}/{vs.name}" for vs, _ in rivals))
        where = "all namespaces" if scope == "*" else f"namespace {scope}"
        for vs, i in rivals:
            if id(vs) in reported:
                continue
            reported.add(id(vs))
            yield vs.resource.warning(
                "vs-duplicate-mesh-host",
                ("spec", "hosts", i),
                f"VirtualServices {names} define host {host} for {where}; sidecars use only one "
                "VirtualService per host (no merging)",
            )


def check_destination_rule(dr: DestinationRuleInfo, index: ConfigIndex) -> list[Diagnostic]:
    """``dr-host-unknown`` (IST0174) and ``dr-subset-no-workload`` (IST0173)."""
    known = (
        index.model.registry.knows(dr.host)
        if not is_wildcard(dr.host)
        else index.model.registry.covers(dr.host)
    )
    if not known:
        message = f"host {dr.host} matches no service or ServiceEntry; the rule is unused"
        return [dr.resource.warning("dr-host-unknown", ("spec", "host"), message)]
    svc = index.model.registry.lookup(dr.host)
    out = []
    for sub in dr.subsets:
        if svc is not None and index.model.registry.selects_workload(svc, sub.labels) is False:
            out.append(
                dr.resource.warning(
                    "dr-subset-no-workload",
                    (*sub.path, "labels"),
                    f"subset {sub.name!r} selects no known workload of {dr.host}; "
                    "requests routed to it get 503 (no healthy upstream)",
                )
            )
    return out
