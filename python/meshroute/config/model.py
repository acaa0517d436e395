"""The typed model of one config: every validated resource parsed once into the object its
consumers read (raw YAML → :class:`Model` → compiled IR and Envoy config).

Services and endpoints are in the :class:`~meshroute.config.registry.Registry`, DestinationRules
in :class:`~meshroute.config.policy.DestinationRules`, VirtualServices, Gateways and Sidecars in
their own types (``virtualservice.py``, ``gateway.py``, ``sidecar.py``). Nothing downstream reads
a resource's raw ``spec`` again. Who sees what (exportTo, Sidecar imports, VS precedence) is a
question about the model, answered by :class:`~meshroute.config.index.ConfigIndex`.

The model does not change once built, with one exception: :mod:`meshroute.config.incremental`
swaps one VirtualService or DestinationRule for its edited version in place (same position).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.common import dedupe
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.gateway import GatewayInfo, parse_gateway
from meshroute.config.load import Resource
from meshroute.config.meshconfig import DEFAULT_DOMAIN, MeshSettings, mesh_settings
from meshroute.config.policy import DestinationRuleInfo, DestinationRules, parse_destination_rule
from meshroute.config.registry import Registry, Service, build_registry
from meshroute.config.sidecar import SidecarInfo, parse_sidecar
from meshroute.config.virtualservice import VirtualServiceInfo, parse_virtual_service


@dataclass
class Model:
    """Every resource of one config as a typed object, built once by :func:`build_model`."""

    domain: str
    resources: list[Resource]  # deduplicated; Secrets and Nodes are read from here
    registry: Registry
    rules: DestinationRules
    destination_rules: list[DestinationRuleInfo]
    gateways: dict[str, GatewayInfo]  # by "ns/name"
    virtual_services: list[VirtualServiceInfo]  # in input order
    sidecars: list[SidecarInfo]  # in Istio's precedence order (oldest first)
    namespaces: list[str]
    mesh: MeshSettings = field(default_factory=MeshSettings)
    diagnostics: list[Diagnostic] = field(default_factory=list)  # duplicates, mesh config
    # (client namespace, id(Sidecar)) -> the services it sees; edits never change who sees which
    # service (config/incremental.py replaces VirtualServices and DestinationRules only).
    _visible: dict[tuple[str, int], tuple[Service, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _roots: list[VirtualServiceInfo] | None = field(default=None, repr=False, compare=False)

    def roots(self) -> list[VirtualServiceInfo]:
        """The VirtualServices with hosts (the others are only delegates, §2.7)."""
        if self._roots is None:
            self._roots = [vs for vs in self.virtual_services if not vs.is_delegate]
        return list(self._roots)

    # --- Edits (config/incremental.py): one resource replaced by its edited version -------------

    def replace_virtual_service(self, old: VirtualServiceInfo, new: VirtualServiceInfo) -> None:
        """``new`` takes ``old``'s place (same hosts, exportTo and gateways: who sees it is unchanged)."""
        swap(self.virtual_services, old, new)
        self._roots = None

    def replace_destination_rule(self, old: DestinationRuleInfo, new: DestinationRuleInfo) -> None:
        """``new`` takes ``old``'s place, in the list and in the rule lookup."""
        swap(self.destination_rules, old, new)
        self.rules.replace(old, new)

    # --- Sidecars (§6) -------------------------------------------------------------------------

    def default_sidecar(self, namespace: str) -> SidecarInfo | None:
        """The namespace's selector-less Sidecar, else the root namespace's (the mesh default)."""
        for ns in (namespace, self.mesh.root_namespace):
            for sc in self.sidecars:
                if sc.namespace == ns and not sc.selector:
                    return sc
        return None

    def selector_sidecars(self, namespace: str) -> list[SidecarInfo]:
        return [sc for sc in self.sidecars if sc.namespace == namespace and sc.selector]

    def visible_services(self, client_ns: str, sidecar: SidecarInfo | None) -> list[Service]:
        """Services a client sees: exported to its namespace and imported by its Sidecar."""
        key = (client_ns, id(sidecar))
        known = self._visible.get(key)
        if known is None:
            known = self._visible[key] = tuple(
                svc
                for svc in self.registry.visible(client_ns)
                if sidecar is None or sidecar.imports(svc.namespace, [svc.host], client_ns)
            )
        return list(known)


def build_model(resources: Iterable[Resource], domain: str = DEFAULT_DOMAIN) -> Model:
    """Parse ``resources`` (already validated) into a :class:`Model`.

    A mesh config among them (:mod:`meshroute.config.meshconfig`) supplies the mesh-wide
    defaults; its ``clusterDomain``, when set, replaces ``domain`` (semantics §12).

    >>> from meshroute.config.load import load_text
    >>> m = build_model(load_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
    ...                           "spec: {ports: [{port: 80}]}", "x.yaml").resources)
    >>> [s.host for s in m.registry.services], m.namespaces
    (['a.default.svc.cluster.local'], ['default'])
    """
    deduped, diags = dedupe(list(resources))
    mesh, mesh_diags = mesh_settings(deduped)
    diags += mesh_diags
    domain = mesh.cluster_domain or domain
    istio = [r for r in deduped if r.is_istio]
    drs = [
        d
        for d in (
            parse_destination_rule(r, domain, mesh.destination_rule_export_to)
            for r in istio
            if r.kind == "DestinationRule"
        )
        if d
    ]
    namespaces = {r.namespace for r in deduped} | {"default"}
    namespaces |= {r.name for r in deduped if r.kind == "Namespace" and r.api_version == "v1" and r.name}
    return Model(
        domain=domain,
        resources=deduped,
        registry=build_registry(deduped, domain, mesh.service_export_to),
        rules=DestinationRules(drs, mesh.root_namespace),
        destination_rules=drs,
        gateways={g.ref: g for g in (parse_gateway(r) for r in istio if r.kind == "Gateway")},
        virtual_services=[
            parse_virtual_service(r, i, domain, mesh.virtual_service_export_to)
            for i, r in enumerate(deduped)
            if r.is_istio and r.kind == "VirtualService"
        ],
        # Istio initSidecarScopes: oldest first (then name, namespace); a workload gets the first
        # selecting Sidecar of its namespace that matches it, else the first namespace-wide one (§6).
        sidecars=sorted(
            (parse_sidecar(r, mesh.unknown_host) for r in istio if r.kind == "Sidecar"),
            key=lambda sc: (
                str(sc.resource.metadata.get("creationTimestamp") or ""),
                sc.resource.name,
                sc.namespace,
            ),
        ),
        namespaces=sorted(namespaces),
        mesh=mesh,
        diagnostics=diags,
    )


def swap(items: list[Any], old: Any, new: Any) -> None:
    """Replace ``old`` (by identity; it must be there) with ``new`` in ``items``, in its place."""
    items[next(i for i, x in enumerate(items) if x is old)] = new
