"""Registry endpoints carry their ``weight`` and ``locality`` (meshroute.config.registry), read once
from each source: WorkloadEntries (selected by a Kubernetes Service or a ServiceEntry), ServiceEntry
``endpoints``, Kubernetes ``Endpoints`` and ``EndpointSlice`` with their ``Node``."""

from __future__ import annotations

from meshroute.config.load import load_text
from meshroute.config.registry import Registry, build_registry

CONFIG = """
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    topology.kubernetes.io/region: eu
    topology.kubernetes.io/zone: eu-b
    topology.istio.io/subzone: r1
---
apiVersion: v1
kind: Service
metadata: {name: k, namespace: a}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: k, namespace: a}
subsets:
- addresses: [{ip: 10.0.0.1, nodeName: node-1}, {ip: 10.0.0.2}, {ip: 10.0.0.3, nodeName: unknown}]
  ports: [{name: http, port: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: k-1, namespace: a, labels: {kubernetes.io/service-name: k}}
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.0.0.2], zone: eu-c}
- {addresses: [10.0.0.4], nodeName: node-1, zone: not-read-when-the-node-says}
---
apiVersion: v1
kind: Service
metadata: {name: w, namespace: a}
spec: {selector: {app: w}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w-1, namespace: a}
spec: {address: 10.1.0.1, labels: {app: w}, weight: 3, locality: us/us-a/rack-1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w-2, namespace: a}
spec:
  address: 10.1.0.2
  labels: {app: w, topology.kubernetes.io/region: asia, topology.kubernetes.io/zone: asia-a}
  weight: 0
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w-3, namespace: a}
spec: {address: 10.1.0.3, labels: {app: w, istio-locality: us.us-b}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: selecting, namespace: a}
spec:
  hosts: [w.internal]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  workloadSelector: {labels: {app: w}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: inline, namespace: a}
spec:
  hosts: [inline.internal]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 10.2.0.1, weight: 7, locality: eu/eu-a}
  - {address: 10.2.0.2, labels: {topology.kubernetes.io/region: sa}}
  - {address: 10.2.0.3, weight: 0}
"""


def endpoints(registry: Registry, host: str) -> list[tuple[str, int | None, str]]:
    svc = registry.lookup(host)
    assert svc is not None
    return [(ep.address, ep.weight, ep.locality) for ep in svc.endpoints]


def test_weight_and_locality_of_each_source() -> None:
    registry = build_registry(load_text(CONFIG, "x.yaml").resources)
    # Kubernetes: the Node's topology labels, else the slice's zone alone; an address listed by
    # both Endpoints and an EndpointSlice takes the locality either gives. No weights.
    assert endpoints(registry, "k.a.svc.cluster.local") == [
        ("10.0.0.1", None, "eu/eu-b/r1"),
        ("10.0.0.2", None, "/eu-c"),
        ("10.0.0.3", None, ""),
        ("10.0.0.2", None, "/eu-c"),
        ("10.0.0.4", None, "eu/eu-b/r1"),
    ]
    # WorkloadEntries: ``locality``, else the topology or istio-locality labels; weight 0 is unset.
    workload_entries = [
        ("10.1.0.1", 3, "us/us-a/rack-1"),
        ("10.1.0.2", None, "asia/asia-a"),
        ("10.1.0.3", None, "us/us-b"),
    ]
    assert endpoints(registry, "w.a.svc.cluster.local") == workload_entries
    assert endpoints(registry, "w.internal") == workload_entries
    # ServiceEntry endpoints: the same fields as a WorkloadEntry's.
    assert endpoints(registry, "inline.internal") == [
        ("10.2.0.1", 7, "eu/eu-a"),
        ("10.2.0.2", None, "sa"),
        ("10.2.0.3", None, ""),
    ]
