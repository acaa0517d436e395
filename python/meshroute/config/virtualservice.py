"""A VirtualService as the model holds it: names resolved in its own namespace, hosts expanded
and lower-cased, HTTP routes with destinations and match gateways resolved.

Istio semantics cited from docs/semantics.md: §1.1 (names), §2.1/§2.7 (VS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshroute.config.common import Order, order_of, spec_of, strings
from meshroute.config.hosts import MESH, exported_to, fqdn, gateway_ref
from meshroute.config.httpmodel import HTTPRoute
from meshroute.config.httpparse import parse_http_routes
from meshroute.config.load import Resource
from meshroute.config.streamroute import L4Route, parse_l4_routes


@dataclass(frozen=True)
class VirtualServiceInfo:
    resource: Resource
    order: Order
    hosts: tuple[str, ...]  # expanded with the VS namespace, lower-case
    gateways: tuple[str, ...]  # resolved refs; omitted/empty = (mesh,)
    export_to: tuple[str, ...]
    http: tuple[HTTPRoute, ...]  # positions kept: diagnostics name http[i]
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


def parse_virtual_service(
    res: Resource, position: int, domain: str, default_export_to: Sequence[str] = ()
) -> VirtualServiceInfo:
    """``default_export_to``: the mesh config's ``defaultVirtualServiceExportTo`` (§12)."""
    spec = spec_of(res)
    ns = res.namespace
    gateways = tuple(gateway_ref(g, ns, domain) for g in strings(spec.get("gateways"))) or (MESH,)
    return VirtualServiceInfo(
        resource=res,
        order=order_of(res, position),
        hosts=tuple(fqdn(h, ns, domain) for h in strings(spec.get("hosts"))),
        gateways=gateways,
        export_to=tuple(strings(spec.get("exportTo"))) or tuple(default_export_to),
        http=parse_http_routes(spec.get("http"), ns, domain),
        tcp=parse_l4_routes(spec.get("tcp"), ns, domain),
        tls=parse_l4_routes(spec.get("tls"), ns, domain),
    )
