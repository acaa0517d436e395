"""Cross-resource diagnostics: references between resources that single-resource validation cannot
check (istioctl analyze IST0101, IST0109, IST0112, IST0173, IST0174; semantics §8.8).

All are reported at once, each on the resource and field that holds the reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from meshroute.config.diagnostics import Diagnostic, Path
from meshroute.config.hosts import MESH, is_wildcard

if TYPE_CHECKING:
    from meshroute.config.index import ConfigIndex
    from meshroute.config.model import VirtualServiceInfo


def check_all(index: ConfigIndex) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for vs in index.virtual_services:
        out.extend(_gateways(vs, index))
        out.extend(_destinations(vs, index))
    out.extend(_duplicate_mesh_hosts(index))
    out.extend(_destination_rules(index))
    return out


def _gateways(vs: VirtualServiceInfo, index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-gateway-unknown``: a VS (or one of its match blocks) names a Gateway that does not exist."""
    refs: list[tuple[Path, str]] = []
    if vs.gateways != (MESH,):
        refs += [(("spec", "gateways", i), g) for i, g in enumerate(vs.gateways)]
    for i, route in enumerate(vs.http):
        for j, m in enumerate(route.get("match") or []):
            if isinstance(m, Mapping):
                refs += [
                    (("spec", "http", i, "match", j, "gateways", k), g)
                    for k, g in enumerate(m.get("gateways") or [])
                ]
    for path, ref in refs:
        if ref != MESH and ref not in index.gateways:
            # A warning, as in istioctl analyze's spirit: Istio admits it and the rule simply binds nowhere.
            yield vs.resource.warning(
                "vs-gateway-unknown", path, f"gateway {ref} does not exist; rules bound to it are never used"
            )


def _destination_refs(route: Mapping[str, Any], i: int) -> Iterator[tuple[Path, Mapping[str, Any]]]:
    for j, d in enumerate(route.get("route") or []):
        if isinstance(d, Mapping) and isinstance(d.get("destination"), Mapping):
            yield ("spec", "http", i, "route", j, "destination"), d["destination"]
    if isinstance(route.get("mirror"), Mapping):
        yield ("spec", "http", i, "mirror"), route["mirror"]
    for j, m in enumerate(route.get("mirrors") or []):
        if isinstance(m, Mapping) and isinstance(m.get("destination"), Mapping):
            yield ("spec", "http", i, "mirrors", j, "destination"), m["destination"]


def _destinations(vs: VirtualServiceInfo, index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-host-unknown``, ``vs-subset-undefined`` and ``vs-port-required`` for every destination
    and mirror, checked from the VS's own namespace."""
    for i, route in enumerate(vs.http):
        for path, dest in _destination_refs(route, i):
            host = dest.get("host")
            if not isinstance(host, str):
                continue
            svc = index.registry.lookup(host)
            if not index.registry.knows(host):
                yield vs.resource.warning(
                    "vs-host-unknown",
                    (*path, "host"),
                    f"host {host} is not a known service or ServiceEntry host; "
                    "requests routed there fail with 503",
                )
            subset = dest.get("subset")
            if (
                isinstance(subset, str)
                and subset
                and not index.rules.defines_subset(host, subset, vs.namespace, svc.namespace if svc else None)
            ):
                # A warning, not an error: Istio admits the VS and answers 503 until a DR defines the
                # subset ("make-before-break"); meshroute must load it to show that outcome.
                yield vs.resource.warning(
                    "vs-subset-undefined",
                    (*path, "subset"),
                    f"no DestinationRule visible from {vs.namespace} defines subset "
                    f"{subset!r} of {host}; requests routed there get 503",
                )
            port = dest.get("port")
            has_port = isinstance(port, Mapping) and bool(port.get("number"))
            if svc is not None and len(svc.ports) > 1 and not has_port:
                numbers = ", ".join(str(p.number) for p in svc.ports)
                yield vs.resource.warning(
                    "vs-port-required", path, f"{host} has several ports ({numbers}); set destination.port"
                )


def _duplicate_mesh_hosts(index: ConfigIndex) -> Iterator[Diagnostic]:
    """``vs-duplicate-mesh-host`` (IST0109): sidecars use one VS per host; later ones are ignored."""
    first: dict[str, VirtualServiceInfo] = {}
    for vs in sorted(index.roots(), key=lambda v: v.order):
        if MESH not in index.bound_gateways(vs):
            continue
        for i, host in enumerate(vs.hosts):
            winner = first.setdefault(host, vs)
            if winner is not vs:
                yield vs.resource.warning(
                    "vs-duplicate-mesh-host",
                    ("spec", "hosts", i),
                    f"host {host} is also claimed by VirtualService {winner.namespace}/{winner.name}; "
                    "sidecars use only the first one (no merging)",
                )


def _destination_rules(index: ConfigIndex) -> Iterator[Diagnostic]:
    """``dr-host-unknown`` (IST0174) and ``dr-subset-no-workload`` (IST0173)."""
    for dr in index.destination_rules:
        known = index.registry.knows(dr.host) if not is_wildcard(dr.host) else index.registry.covers(dr.host)
        if not known:
            message = f"host {dr.host} matches no service or ServiceEntry; the rule is unused"
            yield dr.resource.warning("dr-host-unknown", ("spec", "host"), message)
            continue
        svc = index.registry.lookup(dr.host)
        for sub in dr.subsets:
            if svc is not None and index.registry.selects_workload(svc, sub.labels) is False:
                yield dr.resource.warning(
                    "dr-subset-no-workload",
                    (*sub.path, "labels"),
                    f"subset {sub.name!r} selects no known workload of {dr.host}; "
                    "requests routed to it get 503 (no healthy upstream)",
                )
