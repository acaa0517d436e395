"""A VirtualService's L4 routes (``tcp`` and ``tls``) as the model holds them: parsed once from the
normalised spec, names resolved in the VirtualService's namespace (§1.1), so consumers
(:mod:`meshroute.config.tcproute`, :mod:`meshroute.envoy.tcp`) never read raw dicts again.

Istio semantics cited from docs/semantics.md: §2.1 (match gateways), §2.5 (weights), §2.15 (TCP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.common import string_map, strings
from meshroute.config.hosts import fqdn, gateway_ref


@dataclass(frozen=True)
class L4Match:
    """One ``match`` block of a ``tcp`` (L4MatchAttributes) or ``tls`` (TLSMatchAttributes) route."""

    port: int | None = None  # None: any port (absent, or 0 as proto3 reads it)
    gateways: tuple[str, ...] = ()  # resolved refs; () = the VirtualService's own gateways
    destination_subnets: tuple[str, ...] = ()  # as written: consumers skip what is not a network
    source_labels: Mapping[str, str] = field(default_factory=dict)
    source_namespace: str | None = None
    source_subnet: str | None = None  # tcp only; no consumer can check it, they only report it
    sni_hosts: tuple[str, ...] = ()  # tls only: stripped, lower-cased, first occurrence kept


@dataclass(frozen=True)
class L4Destination:
    """One ``route`` entry: where a connection goes, and how often."""

    host: str  # expanded with the VirtualService namespace
    subset: str | None  # None: no subset (absent or "")
    port: int | None  # ``port.number``; None: absent or 0, the consumer picks the port
    weight: int  # 0 when absent or not positive: the consumer drops it among several (§2.5)


@dataclass(frozen=True)
class L4Route:
    """One ``tcp``/``tls`` route; no matches: it holds wherever the VirtualService is bound."""

    matches: tuple[L4Match, ...] = ()
    route: tuple[L4Destination, ...] = ()


def _positive(value: Any) -> int | None:
    # bool is an int subclass: ``true`` is no port or weight
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _sni_hosts(raw: Any) -> tuple[str, ...]:
    out: list[str] = []
    for host in strings(raw):
        name = host.strip().lower()
        if name and name not in out:
            out.append(name)
    return tuple(out)


def parse_l4_match(raw: Mapping[str, Any], namespace: str, domain: str) -> L4Match:
    """A match block with its ``gateways`` resolved in ``namespace``."""
    return L4Match(
        port=_positive(raw.get("port")),
        gateways=tuple(gateway_ref(g, namespace, domain) for g in strings(raw.get("gateways"))),
        destination_subnets=tuple(strings(raw.get("destinationSubnets"))),
        source_labels=string_map(raw.get("sourceLabels")),
        source_namespace=_text(raw.get("sourceNamespace")),
        source_subnet=_text(raw.get("sourceSubnet")),
        sni_hosts=_sni_hosts(raw.get("sniHosts")),
    )


def _destination(item: Any, namespace: str, domain: str) -> L4Destination | None:
    dest = item.get("destination") if isinstance(item, Mapping) else None
    if not isinstance(dest, Mapping) or not isinstance(dest.get("host"), str):
        return None  # nowhere to send a connection: consumers skip it
    port = dest.get("port")
    return L4Destination(
        host=fqdn(dest["host"], namespace, domain),
        subset=_text(dest.get("subset")),
        port=_positive(port.get("number")) if isinstance(port, Mapping) else None,
        weight=_positive(item.get("weight")) or 0,
    )


def parse_l4_route(raw: Any, namespace: str, domain: str) -> L4Route:
    """One route; a non-mapping entry is an empty route, so later routes keep their index."""
    if not isinstance(raw, Mapping):
        return L4Route()
    matches = raw.get("match")
    dests = raw.get("route")
    return L4Route(
        matches=tuple(parse_l4_match(m, namespace, domain) for m in matches or [] if isinstance(m, Mapping)),
        route=tuple(d for d in (_destination(i, namespace, domain) for i in dests or []) if d is not None),
    )


def parse_l4_routes(spec_routes: Any, namespace: str, domain: str) -> tuple[L4Route, ...]:
    """A normalised spec's ``tcp`` or ``tls`` list, positions kept (diagnostics name ``tcp[i]``)."""
    if not isinstance(spec_routes, list):
        return ()
    return tuple(parse_l4_route(r, namespace, domain) for r in spec_routes)
