"""Where a cluster's traffic goes: discovery type and endpoints per (service, port, subset).

Sources (all already collected by :mod:`meshroute.config.registry`): Kubernetes
``Endpoints``/``EndpointSlice``, ``WorkloadEntry`` objects selected by a Kubernetes Service's
``selector`` or a ServiceEntry's ``workloadSelector``, and ServiceEntry ``endpoints``.

Weights: a WorkloadEntry's ``weight`` (standalone, or as a ServiceEntry endpoint), read by the
registry into ``Endpoint.weight``, becomes the endpoint's ``load_balancing_weight``, as Istio sets
it; 0 or unset leaves Envoy's default, 1. Kubernetes endpoints carry none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from meshroute.config.hosts import is_ip
from meshroute.config.registry import Endpoint, Service, ServicePort
from meshroute.envoy.common import Json, endpoint_address, pipe_path


@dataclass
class Discovery:
    """The ``type`` of an Envoy cluster plus its ``lb_endpoints`` (unused for ORIGINAL_DST)."""

    cluster_type: str  # STATIC | STRICT_DNS | LOGICAL_DNS | ORIGINAL_DST
    lb_endpoints: list[Json] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def dns(self) -> bool:
        return self.cluster_type in ("STRICT_DNS", "LOGICAL_DNS")


def endpoint_port(ep: Endpoint, port: ServicePort) -> int:
    """The port an endpoint listens on for ``port``: its own ``ports[<service port name>]`` (a
    WorkloadEntry/ServiceEntry endpoint, or the Kubernetes Endpoints port of that name), else the
    service ``targetPort`` when it is a number, else the service port itself."""
    own = ep.ports.get(port.name)
    if own:
        return own
    if isinstance(port.target_port, int) and not isinstance(port.target_port, bool):
        return port.target_port
    return port.number


def selected(endpoints: tuple[Endpoint, ...], subset_labels: Mapping[str, str] | None) -> list[Endpoint]:
    """Endpoints of a subset: those whose labels include all the subset's labels.

    Endpoints without labels (Kubernetes ``Endpoints``/``EndpointSlice`` addresses carry none, nor
    do DNS hosts) can therefore only serve the subset-less cluster and label-less subsets; a subset
    with labels over such endpoints is empty, so Envoy answers 503 ``UH`` as Istio would for a
    subset that selects no pods.
    """
    if not subset_labels:
        return list(endpoints)
    return [ep for ep in endpoints if all(ep.labels.get(k) == v for k, v in subset_labels.items())]


def _lb_endpoint(address: str, port: int, weight: int | None = None) -> Json:
    out: Json = {"endpoint": {"address": endpoint_address(address, port)}}
    if weight:
        out["load_balancing_weight"] = weight
    return out


def discover(svc: Service, port: ServicePort, subset_labels: Mapping[str, str] | None) -> Discovery:
    """Discovery for the cluster of ``svc`` on ``port`` (optionally restricted to a subset).

    Kubernetes services and ServiceEntry ``STATIC`` → STATIC; ``DNS`` → STRICT_DNS over the
    endpoint addresses, or the host itself when the entry has none; ``DNS_ROUND_ROBIN`` →
    LOGICAL_DNS (one address); ``NONE`` (and ``DYNAMIC_DNS``, approximated) → ORIGINAL_DST.
    Each endpoint's ``weight`` is its ``load_balancing_weight``.
    """
    eps = [ep for ep in selected(svc.endpoints, subset_labels) if ep.address]
    if svc.origin == "Kubernetes":
        return _static(eps, port, "Kubernetes endpoints must be IP addresses")
    resolution = (svc.resolution or "NONE").upper()
    if resolution == "NONE":
        return Discovery("ORIGINAL_DST")
    if resolution == "DYNAMIC_DNS":
        return Discovery(
            "ORIGINAL_DST",
            warnings=["resolution DYNAMIC_DNS is approximated by an ORIGINAL_DST cluster"],
        )
    if resolution == "STATIC":
        return _static(eps, port, "resolution STATIC needs IP (or unix://) endpoint addresses")
    if resolution not in ("DNS", "DNS_ROUND_ROBIN"):
        return Discovery(
            "STATIC", warnings=[f"unknown resolution {resolution}; the cluster has no endpoints"]
        )
    if not svc.endpoints and not svc.selector:
        if svc.host.startswith("*"):
            return Discovery("STATIC", warnings=[f"cannot resolve the wildcard host {svc.host} with DNS"])
        # Istio resolves the host itself when a DNS entry lists no endpoints (semantics §5).
        eps = [Endpoint(svc.host)] if not subset_labels else []
    out = Discovery("STRICT_DNS" if resolution == "DNS" else "LOGICAL_DNS")
    for ep in eps:
        if pipe_path(ep.address) is not None:
            out.warnings.append(f"endpoint {ep.address} is a unix socket, which DNS resolution cannot use")
            continue
        out.lb_endpoints.append(_lb_endpoint(ep.address, endpoint_port(ep, port), ep.weight))
    if out.cluster_type == "LOGICAL_DNS" and len(out.lb_endpoints) > 1:
        out.warnings.append("resolution DNS_ROUND_ROBIN uses only the first endpoint")
        del out.lb_endpoints[1:]
    if not out.lb_endpoints:
        # Envoy rejects an endpoint-less LOGICAL_DNS cluster; an empty STATIC one is equivalent
        # (no hosts: 503 UH).
        out.cluster_type = "STATIC"
    return out


def _static(eps: list[Endpoint], port: ServicePort, why: str) -> Discovery:
    out = Discovery("STATIC")
    for ep in eps:
        if is_ip(ep.address) or pipe_path(ep.address) is not None:
            out.lb_endpoints.append(_lb_endpoint(ep.address, endpoint_port(ep, port), ep.weight))
        else:
            out.warnings.append(f"endpoint {ep.address!r} skipped: {why}")
    return out
