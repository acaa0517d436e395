"""Endpoint localities as the registry reads them (``Endpoint.locality``), for every source the
client places endpoints by: WorkloadEntry field and labels, Kubernetes addresses with their Node
or EndpointSlice zone."""

from __future__ import annotations

from meshroute.config.load import load_text
from meshroute.config.registry import build_registry

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: r, namespace: default}
spec:
  selector: {app: r}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels: {topology.kubernetes.io/region: eu-west1, topology.kubernetes.io/zone: eu-west1-b}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: r-abc, namespace: default, labels: {kubernetes.io/service-name: r}}
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.0.0.1], nodeName: node-1, zone: ignored-when-the-node-says}
- {addresses: [10.0.0.2], zone: eu-west1-c}
- {addresses: [10.0.0.3]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: default}
spec: {address: 10.0.1.1, labels: {app: r}, locality: us-east1/us-east1-a/rack-7}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: default}
spec:
  address: 10.0.1.2
  labels: {app: r, topology.kubernetes.io/region: asia, topology.kubernetes.io/zone: asia-a}
"""


def test_every_source_gives_its_locality() -> None:
    resources = load_text(CONFIG, "x.yaml").resources
    svc = build_registry(resources).lookup("r.default.svc.cluster.local")
    assert svc is not None
    got = {ep.address: ep.locality for ep in svc.endpoints}
    assert got == {
        "10.0.0.1": "eu-west1/eu-west1-b",
        "10.0.0.2": "/eu-west1-c",
        "10.0.0.3": "",
        "10.0.1.1": "us-east1/us-east1-a/rack-7",
        "10.0.1.2": "asia/asia-a",
    }
