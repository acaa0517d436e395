"""Endpoints per cluster and the discovery type per ServiceEntry resolution."""

from __future__ import annotations

from pathlib import Path

from tests.envoy.helpers import assert_valid, clusters, generate, lb_addresses

K8S = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9081}, {name: admin, port: 15000}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: reviews, namespace: default}
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{name: http, port: 9999}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: 18001}
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec:
  address: 127.0.0.2
  labels: {app: reviews, version: v2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-app, namespace: default}
spec:
  address: 127.0.0.9
  labels: {app: ratings, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-namespace, namespace: prod}
spec:
  address: 127.0.0.8
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""
REVIEWS = "reviews.default.svc.cluster.local"


def test_kubernetes_endpoints_and_selected_workload_entries(tmp_path: Path) -> None:
    generated = generate(tmp_path, K8S)
    by_name = clusters(generated.config)
    base = by_name[f"outbound|9080||{REVIEWS}"]
    assert base["type"] == "STATIC"
    # Endpoints port by name; WorkloadEntry ports[name]; else the Service targetPort.
    assert lb_addresses(base) == [("10.0.0.1", 9999), ("127.0.0.1", 18001), ("127.0.0.2", 9081)]
    # No targetPort on the admin port: the service port itself.
    assert lb_addresses(by_name[f"outbound|15000||{REVIEWS}"]) == [
        ("10.0.0.1", 15000),
        ("127.0.0.1", 15000),
        ("127.0.0.2", 15000),
    ]
    # Subsets only get labelled endpoints; the label-less Endpoints address stays out.
    assert lb_addresses(by_name[f"outbound|9080|v1|{REVIEWS}"]) == [("127.0.0.1", 18001)]
    assert lb_addresses(by_name[f"outbound|9080|v2|{REVIEWS}"]) == [("127.0.0.2", 9081)]
    assert lb_addresses(by_name[f"outbound|9080|v3|{REVIEWS}"]) == []
    assert_valid(tmp_path, generated.config)


def test_endpoint_slice(tmp_path: Path) -> None:
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: details, namespace: default}
    spec: {ports: [{name: http, port: 9080}]}
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: details-abc
      namespace: default
      labels: {kubernetes.io/service-name: details}
    addressType: IPv4
    ports: [{name: http, port: 8080}]
    endpoints: [{addresses: [10.1.0.1, 10.1.0.2]}]
    """
    cluster = clusters(generate(tmp_path, text).config)["outbound|9080||details.default.svc.cluster.local"]
    assert lb_addresses(cluster) == [("10.1.0.1", 8080), ("10.1.0.2", 8080)]


SERVICE_ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns, namespace: default}
spec:
  hosts: [api.example.com]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: dns-endpoints, namespace: default}
spec:
  hosts: [multi.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints:
  - {address: a.example.net, ports: {http: 8081}, labels: {zone: a}}
  - {address: b.example.net}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rr, namespace: default}
spec:
  hosts: [rr.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS_ROUND_ROBIN
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: static, namespace: default}
spec:
  hosts: [static.internal]
  addresses: [240.0.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  location: MESH_INTERNAL
  endpoints: [{address: 127.0.0.5, ports: {http: 18005}}, {address: 127.0.0.6}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: none, namespace: default}
spec:
  hosts: ["*.wild.example.com"]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: multi, namespace: default}
spec:
  host: multi.example.com
  subsets: [{name: zone-a, labels: {zone: a}}]
"""


def test_service_entry_resolutions(tmp_path: Path) -> None:
    generated = generate(tmp_path, SERVICE_ENTRIES)
    by_name = clusters(generated.config)
    dns = by_name["outbound|80||api.example.com"]
    assert dns["type"] == "STRICT_DNS"
    # No endpoints: the host itself is resolved, on the targetPort.
    assert lb_addresses(dns) == [("api.example.com", 8080)]
    assert dns["dns_lookup_family"] == "V4_ONLY"
    multi = by_name["outbound|80||multi.example.com"]
    assert lb_addresses(multi) == [("a.example.net", 8081), ("b.example.net", 80)]
    assert lb_addresses(by_name["outbound|80|zone-a|multi.example.com"]) == [("a.example.net", 8081)]
    rr = by_name["outbound|443||rr.example.com"]
    assert rr["type"] == "LOGICAL_DNS"
    assert lb_addresses(rr) == [("rr.example.com", 443)]
    static = by_name["outbound|80||static.internal"]
    assert static["type"] == "STATIC"
    assert lb_addresses(static) == [("127.0.0.5", 18005), ("127.0.0.6", 80)]
    wild = by_name["outbound|80||*.wild.example.com"]
    assert (wild["type"], wild["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert "load_assignment" not in wild
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_service_entry_workload_selector(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: vm, namespace: vms}
    spec:
      hosts: [vm.internal]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      location: MESH_INTERNAL
      workloadSelector: {labels: {app: vm}}
    ---
    apiVersion: networking.istio.io/v1
    kind: WorkloadEntry
    metadata: {name: vm-1, namespace: vms}
    spec: {address: 127.0.0.3, ports: {http: 19080}, labels: {app: vm}}
    ---
    apiVersion: networking.istio.io/v1
    kind: WorkloadEntry
    metadata: {name: vm-2, namespace: vms}
    spec: {address: vm2.example.net, labels: {app: vm}}
    """
    generated = generate(tmp_path, text)
    cluster = clusters(generated.config)["outbound|9080||vm.internal"]
    assert lb_addresses(cluster) == [("127.0.0.3", 19080)]
    # A host name cannot be a STATIC endpoint: left out, with a warning.
    assert any("vm2.example.net" in w.message for w in generated.warnings)


def test_endpoint_weights_from_workload_entries_and_service_entry_endpoints(tmp_path: Path) -> None:
    """WorkloadEntry ``weight`` (standalone or inline) is the endpoint's load_balancing_weight, as
    Istio sets it; Envoy balances by it (tests/e2e/test_lb_policy.py measures 1:3 shares)."""
    text = """
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: vm, namespace: vms}
    spec:
      hosts: [vm.internal]
      ports: [{number: 9080, name: http, protocol: HTTP}]
      resolution: STATIC
      workloadSelector: {labels: {app: vm}}
    ---
    apiVersion: networking.istio.io/v1
    kind: WorkloadEntry
    metadata: {name: vm-1, namespace: vms}
    spec: {address: 127.0.0.3, ports: {http: 19080}, labels: {app: vm}, weight: 3}
    ---
    apiVersion: networking.istio.io/v1
    kind: WorkloadEntry
    metadata: {name: vm-2, namespace: vms}
    spec: {address: 127.0.0.3, ports: {http: 19081}, labels: {app: vm}}
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: inline, namespace: vms}
    spec:
      hosts: [inline.internal]
      ports: [{number: 80, name: http, protocol: HTTP}]
      resolution: STATIC
      endpoints:
      - {address: 127.0.0.4, ports: {http: 8080}, weight: 1}
      - {address: 127.0.0.4, ports: {http: 8081}, weight: 500}
      - {address: 127.0.0.4, ports: {http: 8082}, weight: 0}
    """
    generated = generate(tmp_path, text)
    by_name = clusters(generated.config)

    def weights(name: str) -> list[int | None]:
        return [
            ep.get("load_balancing_weight")
            for ep in by_name[name]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        ]

    assert weights("outbound|9080||vm.internal") == [3, None]
    # 0 means unset (Envoy's minimum is 1).
    assert weights("outbound|80||inline.internal") == [1, 500, None]
    assert_valid(tmp_path, generated.config)
