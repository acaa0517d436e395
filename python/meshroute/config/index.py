"""The cross-referenced config model: who sees which VirtualService, DestinationRule and service
(semantics §2.1 exportTo, §2.7 delegates, §2.16 VS selection, §3.1 DR lookup, §4 gateways, §6
Sidecar), and the diagnostics that need more than one resource to find.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config import delegate as delegation
from meshroute.config.crosscheck import check_all
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import MESH, ROOT_NAMESPACE, is_wildcard, matches, visibility_class
from meshroute.config.load import Resource
from meshroute.config.model import (
    GatewayInfo,
    SidecarInfo,
    VirtualServiceInfo,
    dedupe,
    parse_gateway,
    parse_sidecar,
    parse_virtual_service,
)
from meshroute.config.policy import DestinationRuleInfo, DestinationRules, parse_destination_rule
from meshroute.config.registry import Registry, Service, build_registry

Route = Mapping[str, Any]


@dataclass
class ConfigIndex:
    """Everything the compiler asks about the config, built once by :func:`build_index`."""

    domain: str
    resources: list[Resource]
    registry: Registry
    rules: DestinationRules
    destination_rules: list[DestinationRuleInfo]
    gateways: dict[str, GatewayInfo]
    virtual_services: list[VirtualServiceInfo]
    sidecars: list[SidecarInfo]
    namespaces: list[str]
    # Root VSs (key "ns/name") -> their HTTP routes with delegates merged: (root index, route).
    merged: dict[str, list[tuple[int, Route]]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    # --- Sidecars (§6) -------------------------------------------------------------------------

    def default_sidecar(self, namespace: str) -> SidecarInfo | None:
        """The namespace's selector-less Sidecar, else the root namespace's (the mesh default)."""
        for ns in (namespace, ROOT_NAMESPACE):
            for sc in self.sidecars:
                if sc.namespace == ns and not sc.selector:
                    return sc
        return None

    def selector_sidecars(self, namespace: str) -> list[SidecarInfo]:
        return [sc for sc in self.sidecars if sc.namespace == namespace and sc.selector]

    # --- Visibility ----------------------------------------------------------------------------

    def visible_services(self, client_ns: str, sidecar: SidecarInfo | None) -> list[Service]:
        """Services a client sees: exported to its namespace and imported by its Sidecar."""
        return [
            svc
            for svc in self.registry.visible(client_ns)
            if sidecar is None or sidecar.imports(svc.namespace, [svc.host], client_ns)
        ]

    def roots(self) -> list[VirtualServiceInfo]:
        return [vs for vs in self.virtual_services if not vs.is_delegate]

    def bound_gateways(self, vs: VirtualServiceInfo) -> set[str]:
        """Every gateway some route of the VS applies to (per-match gateways override the VS's)."""
        out: set[str] = set()
        for _, route in self.merged.get(_key(vs), []):
            blocks = [m for m in route.get("match") or [] if isinstance(m, Mapping)]
            if not blocks:
                out.update(vs.gateways)
            for m in blocks:
                out.update(m.get("gateways") or vs.gateways)
        return out

    def mesh_virtual_services(self, client_ns: str, sidecar: SidecarInfo | None) -> list[VirtualServiceInfo]:
        """Mesh-bound VSs visible to a client, in sidecar precedence order (§2.16 refinement):
        own-namespace-only, then explicitly exported, then public; oldest first in each group."""
        found = [
            vs
            for vs in self.roots()
            if MESH in self.bound_gateways(vs)
            and vs.visible_from(client_ns)
            and (sidecar is None or sidecar.imports(vs.namespace, vs.hosts, client_ns))
        ]
        return sorted(found, key=lambda v: (visibility_class(v.export_to, v.namespace, client_ns), v.order))

    def gateway_virtual_services(self, gateway: GatewayInfo) -> list[VirtualServiceInfo]:
        """VSs bound to a gateway and exported to its namespace, in merge order (§2.16 step 1)."""
        ns = gateway.namespace
        found = [vs for vs in self.roots() if gateway.ref in self.bound_gateways(vs) and vs.visible_from(ns)]
        return sorted(found, key=lambda vs: (visibility_class(vs.export_to, vs.namespace, ns), vs.order))


def _key(vs: VirtualServiceInfo) -> str:
    return f"{vs.namespace}/{vs.name}"


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


def build_index(resources: Iterable[Resource], domain: str = "cluster.local") -> ConfigIndex:
    """Cross-reference ``resources`` (already validated) and collect cross-resource diagnostics.

    >>> from meshroute.config.load import load_text
    >>> idx = build_index(load_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
    ...                             "spec: {ports: [{port: 80}]}", "x.yaml").resources)
    >>> [s.host for s in idx.visible_services("default", None)], idx.namespaces
    (['a.default.svc.cluster.local'], ['default'])
    """
    deduped, diags = dedupe(list(resources))
    istio = [r for r in deduped if r.is_istio]
    drs = [d for d in (parse_destination_rule(r, domain) for r in istio if r.kind == "DestinationRule") if d]
    namespaces = {r.namespace for r in deduped} | {"default"}
    namespaces |= {r.name for r in deduped if r.kind == "Namespace" and r.api_version == "v1" and r.name}
    index = ConfigIndex(
        domain=domain,
        resources=deduped,
        registry=build_registry(deduped, domain),
        rules=DestinationRules(drs),
        destination_rules=drs,
        gateways={g.ref: g for g in (parse_gateway(r) for r in istio if r.kind == "Gateway")},
        virtual_services=[
            parse_virtual_service(r, i, domain)
            for i, r in enumerate(deduped)
            if r.is_istio and r.kind == "VirtualService"
        ],
        sidecars=[parse_sidecar(r) for r in istio if r.kind == "Sidecar"],
        namespaces=sorted(namespaces),
        diagnostics=diags,
    )
    for vs in index.roots():
        index.merged[_key(vs)] = merge_delegates(vs, index, index.diagnostics)
    index.diagnostics.extend(check_all(index))
    return index


def merge_delegates(
    root: VirtualServiceInfo, index: ConfigIndex, diags: list[Diagnostic]
) -> list[tuple[int, Route]]:
    """The root's HTTP routes with each ``delegate`` route replaced in place by the delegate's
    routes (§2.7). A missing or invisible delegate drops the root route (``delegate-missing``); a
    delegate route whose matches fall outside the root's is dropped (``delegate-conflict``)."""
    out: list[tuple[int, Route]] = []
    for i, route in enumerate(root.http):
        ref = route.get("delegate")
        if not isinstance(ref, Mapping):
            out.append((i, route))
            continue
        target = _find_delegate(root, ref, index)
        if target is None:
            diags.append(
                root.resource.warning(
                    "delegate-missing",
                    ("spec", "http", i, "delegate"),
                    f"delegate VirtualService {ref.get('namespace') or root.namespace}/{ref.get('name')}"
                    " does "
                    f"not exist, has hosts, or is not exported to {root.namespace}; this route is dropped",
                )
            )
            continue
        for j, leaf in enumerate(target.http):
            merged = delegation.merge_route(dict(route), dict(leaf))
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


def _find_delegate(
    root: VirtualServiceInfo, ref: Mapping[str, Any], index: ConfigIndex
) -> VirtualServiceInfo | None:
    ns = ref.get("namespace") or root.namespace
    for vs in index.virtual_services:
        if vs.namespace == ns and vs.name == ref.get("name"):
            return vs if vs.is_delegate and vs.visible_from(root.namespace) else None
    return None
