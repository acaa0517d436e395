"""The service registry (meshroute.config.registry): Kubernetes services, ServiceEntries, endpoints."""

from __future__ import annotations

from meshroute.config.registry import build_registry

# compile_helpers first: it makes meshroute importable while the Rust extension is not built.
from tests.compile_helpers import BOOKINFO_APP, files, resources, service


def test_bookinfo_services_hosts_ports_and_workloads() -> None:
    reg = build_registry(files(BOOKINFO_APP))
    hosts = sorted(s.host for s in reg.services)
    assert hosts == [
        f"{n}.default.svc.cluster.local" for n in ("details", "productpage", "ratings", "reviews")
    ]
    reviews = reg.lookup("reviews.default.svc.cluster.local")
    assert reviews is not None
    assert reviews.single_port == 9080
    assert reviews.ports[0].name == "http" and reviews.ports[0].protocol == "HTTP"
    assert reviews.selector == {"app": "reviews"}
    assert reg.selects_workload(reviews, {"version": "v2"}) is True
    assert reg.selects_workload(reviews, {"version": "v9"}) is False


def test_export_to_annotation_hides_service() -> None:
    text = service("secret", "a", extra=", annotations: {networking.istio.io/exportTo: '.'}")
    reg = build_registry(resources(text))
    assert [s.host for s in reg.visible("a")] == ["secret.a.svc.cluster.local"]
    assert reg.visible("b") == []
    assert reg.lookup("secret.a.svc.cluster.local", "b") is None


def test_service_entry_hosts_ports_export_and_wildcards() -> None:
    se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: a}
spec:
  hosts: [api.Example.com, "*.wiki.org"]
  ports: [{number: 443, name: https, protocol: https}, {number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  exportTo: ["~"]
"""
    reg = build_registry(resources(se))
    api = reg.lookup("api.example.com")
    assert api is not None and api.origin == "ServiceEntry"
    assert [p.number for p in api.ports] == [443, 80] and api.ports[0].protocol == "HTTPS"
    assert api.single_port is None
    assert api.resolution == "DNS" and api.location == "MESH_EXTERNAL"
    assert reg.visible("a") == []  # "~": visible to no one
    assert reg.knows("en.wiki.org") and not reg.knows("wiki.org")


def test_service_entry_workload_selector_uses_workload_entries_of_its_namespace() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: a}
spec:
  hosts: [vm.internal]
  ports: [{number: 80, name: http}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1, namespace: a}
spec: {address: 10.0.0.1, labels: {app: vm, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm2, namespace: b}
spec: {address: 10.0.0.2, labels: {app: vm}}
"""
    reg = build_registry(resources(text))
    svc = reg.lookup("vm.internal")
    assert svc is not None
    assert [e.address for e in svc.endpoints] == ["10.0.0.1"]
    assert reg.selects_workload(svc, {"version": "v1"}) is True
    assert reg.selects_workload(svc, {"version": "v2"}) is False


def test_kubernetes_service_wins_over_service_entry_for_same_host() -> None:
    se = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: deco, namespace: default}
spec: {hosts: [r.default.svc.cluster.local], ports: [{number: 1, name: x}]}
"""
    reg = build_registry(resources(se, service("r", ports=(9080,))))
    svc = reg.lookup("r.default.svc.cluster.local")
    assert svc is not None and svc.origin == "Kubernetes" and svc.single_port == 9080


def test_static_service_entry_endpoints_and_unknown_workloads() -> None:
    text = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [s.ext]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 1.1.1.1, ports: {http: 8080}, labels: {v: a}}, {address: 2.2.2.2}]
"""
    reg = build_registry(resources(text, service("plain")))
    svc = reg.lookup("s.ext")
    assert svc is not None
    assert [(e.address, dict(e.ports)) for e in svc.endpoints] == [
        ("1.1.1.1", {"http": 8080}),
        ("2.2.2.2", {}),
    ]
    plain = reg.lookup("plain.default.svc.cluster.local")
    assert plain is not None
    assert reg.selects_workload(plain, {"version": "v1"}) is None  # nothing known about workloads


EXTERNAL_NAMES = """
apiVersion: v1
kind: Service
metadata: {name: a, namespace: x}
spec: {type: ExternalName, externalName: b.y.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: y}
spec: {type: ExternalName, externalName: Concrete.default.svc.cluster.local, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: concrete, namespace: default}
spec: {clusterIP: 10.0.0.1, ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: loop1, namespace: x}
spec: {type: ExternalName, externalName: loop2.x.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: loop2, namespace: x}
spec: {type: ExternalName, externalName: loop1.x.svc.cluster.local}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: x}
spec: {type: ExternalName, externalName: concrete.default.svc.cluster.local, clusterIP: None}
"""


def test_external_name_services_are_aliases_of_what_they_resolve_to() -> None:
    # semantics §13: chains are followed, loops resolve to nothing, aliases listed by (ns, host);
    # clusterIP None makes a headless service of it, as in Istio.
    reg = build_registry(resources(EXTERNAL_NAMES))
    concrete = reg.lookup("concrete.default.svc.cluster.local")
    assert concrete is not None and not concrete.is_alias
    assert concrete.aliases == ("a.x.svc.cluster.local", "b.y.svc.cluster.local")
    alias = reg.lookup("b.y.svc.cluster.local")
    assert (
        alias is not None and alias.is_alias and alias.external_name == "concrete.default.svc.cluster.local"
    )
    assert reg.alias_target("a.x.svc.cluster.local") is concrete
    assert reg.alias_target("loop1.x.svc.cluster.local") is None
    assert "loop1.x.svc.cluster.local" not in reg.alias_targets
    headless = reg.lookup("headless.x.svc.cluster.local")
    assert headless is not None and headless.headless and not headless.is_alias
    assert reg.has_aliases
    assert not build_registry(resources(service("plain"))).has_aliases
