"""A VirtualService as the model holds it: names resolved in its own namespace, hosts expanded
and lower-cased, HTTP routes with destinations and match gateways resolved.

Istio semantics cited from docs/semantics.md: §1.1 (names), §2.1/§2.7 (VS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.config.common import Order, order_of, spec_of, strings
from meshroute.config.hosts import MESH, exported_to, fqdn, gateway_ref
from meshroute.config.load import Resource
from meshroute.config.streamroute import L4Route, parse_l4_routes


@dataclass(frozen=True)
class VirtualServiceInfo:
    resource: Resource
    order: Order
    hosts: tuple[str, ...]  # expanded with the VS namespace, lower-case
    gateways: tuple[str, ...]  # resolved refs; omitted/empty = (mesh,)
    export_to: tuple[str, ...]
    http: tuple[Mapping[str, Any], ...]  # resolved routes (see resolve_route)
    tcp: tuple[L4Route, ...] = ()  # positions kept: diagnostics name tcp[i]
    tls: tuple[L4Route, ...] = ()

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def is_delegate(self) -> bool:
        """A VS without hosts can only be used as a delegate (§2.1)."""
        return not self.hosts

    def visible_from(self, namespace: str) -> bool:
        return exported_to(self.export_to, self.namespace, namespace)


def _resolve_dest(raw: Any, ns: str, domain: str) -> Any:
    if isinstance(raw, Mapping) and isinstance(raw.get("host"), str):
        return {**raw, "host": fqdn(raw["host"], ns, domain)}
    return raw


def _resolve_item(item: Any, ns: str, domain: str) -> Any:
    """A route destination or mirror entry with its ``destination.host`` expanded."""
    if not isinstance(item, Mapping):
        return item
    return {**item, "destination": _resolve_dest(item.get("destination"), ns, domain)}


def resolve_route(route: Mapping[str, Any], ns: str, domain: str) -> dict[str, Any]:
    """A copy of an HTTPRoute with every name resolved in the namespace of its own VS (§1.1):
    destination and mirror hosts expanded, match ``gateways`` turned into ``ns/name``."""
    out = dict(route)
    out["route"] = [_resolve_item(d, ns, domain) for d in route.get("route") or []]
    if "mirror" in route:
        out["mirror"] = _resolve_dest(route["mirror"], ns, domain)
    if isinstance(route.get("mirrors"), list):
        out["mirrors"] = [_resolve_item(m, ns, domain) for m in route["mirrors"]]
    if isinstance(route.get("match"), list):
        out["match"] = [
            {**m, "gateways": [gateway_ref(g, ns, domain) for g in strings(m.get("gateways"))]}
            if isinstance(m, Mapping) and m.get("gateways")
            else m
            for m in route["match"]
        ]
    return out


def parse_virtual_service(
    res: Resource, position: int, domain: str, default_export_to: Sequence[str] = ()
) -> VirtualServiceInfo:
    """``default_export_to``: the mesh config's ``defaultVirtualServiceExportTo`` (§12)."""
    spec = spec_of(res)
    ns = res.namespace
    gateways = tuple(gateway_ref(g, ns, domain) for g in strings(spec.get("gateways"))) or (MESH,)
    http = tuple(
        resolve_route(r, ns, domain) if isinstance(r, Mapping) else {} for r in spec.get("http") or []
    )
    return VirtualServiceInfo(
        resource=res,
        order=order_of(res, position),
        hosts=tuple(fqdn(h, ns, domain) for h in strings(spec.get("hosts"))),
        gateways=gateways,
        export_to=tuple(strings(spec.get("exportTo"))) or tuple(default_export_to),
        http=http,
        tcp=parse_l4_routes(spec.get("tcp"), ns, domain),
        tls=parse_l4_routes(spec.get("tls"), ns, domain),
    )
