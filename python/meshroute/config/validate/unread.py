"""Kinds that change where or whether traffic flows in a mesh with Istio, but that meshroute does
not read: one warning each, so that a config relying on them is not silently answered without
them (docs/diagnostics.md ``kind-not-modelled``). Other kinds (Deployments, Secrets, telemetry)
do not change routing and pass without a word.
"""

from __future__ import annotations

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource

# (API group, kind) -> what Istio does with it that route() and envoy-config leave out.
_UNREAD: dict[tuple[str, str], str] = {
    ("networking.k8s.io", "Ingress"): "Istio's ingress gateway routes Kubernetes Ingress resources",
    ("gateway.networking.k8s.io", "Gateway"): "Istio deploys and programs Gateway API gateways",
    ("gateway.networking.k8s.io", "HTTPRoute"): "Istio routes Gateway API HTTPRoutes",
    ("gateway.networking.k8s.io", "GRPCRoute"): "Istio routes Gateway API GRPCRoutes",
    ("gateway.networking.k8s.io", "TCPRoute"): "Istio routes Gateway API TCPRoutes",
    ("gateway.networking.k8s.io", "TLSRoute"): "Istio routes Gateway API TLSRoutes",
    ("networking.istio.io", "EnvoyFilter"): "an EnvoyFilter patches the proxies' Envoy config directly",
    ("security.istio.io", "AuthorizationPolicy"): "Istio's proxies deny requests by it (403)",
    ("security.istio.io", "PeerAuthentication"): "Istio's proxies accept or refuse plaintext by it",
}


def unread_kind(res: Resource) -> list[Diagnostic]:
    """``kind-not-modelled`` for a resource of a kind listed above; ``[]`` otherwise."""
    group = res.api_version.rpartition("/")[0]
    why = _UNREAD.get((group, res.kind))
    if why is None:
        return []
    message = f"not read by meshroute, while {why}: decisions here leave it out"
    return [res.warning("kind-not-modelled", (), message)]
