"""Kinds that change traffic in Istio but that meshroute does not read get one warning each; the
rest of a mixed manifest passes without a word, and routing is unchanged."""

from __future__ import annotations

from pathlib import Path

from meshroute.config import analyze

MANIFEST = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec: {rules: [{host: example.com}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec: {}
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: e}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: a}
spec: {}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: t}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80, name: http}]}
"""


def test_traffic_kinds_meshroute_does_not_read_are_named(tmp_path: Path) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(MANIFEST)
    analysis = analyze([path])
    assert analysis.ok
    found = [(d.code, d.severity.value, d.line) for d in analysis.diagnostics]
    assert found == [
        ("kind-not-modelled", "warning", 2),
        ("kind-not-modelled", "warning", 7),
        ("kind-not-modelled", "warning", 12),
        ("kind-not-modelled", "warning", 17),
    ]
    assert "Ingress" in analysis.diagnostics[0].render()
    assert analysis.ir is not None and analysis.ir["views"], "the Service still compiles"
