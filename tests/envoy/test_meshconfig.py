"""envoy-config follows the mesh config document (semantics §12): cluster names under its
``clusterDomain``, short names of TCP routes expanded with it, and the embedded engine's route
table with its outbound policy, retries and timeout."""

from __future__ import annotations

import json
from pathlib import Path

from meshroute.envoy import Options
from meshroute.envoy.live import generate as generate_live
from meshroute.envoy.options import EMBEDDED
from tests.envoy.helpers import clusters, generate, listeners

CONFIG = """
apiVersion: meshroute.io/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  clusterDomain: corp.local
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
  defaultHttpRetryPolicy: {attempts: 5}
  defaultHttpRouteTimeout: 15s
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80, name: http}, {port: 9000, name: tcp-db}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets: [{addresses: [{ip: 127.0.0.1}], ports: [{port: 18080, name: http}, {port: 19000, name: tcp-db}]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: shop}
spec:
  servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: shop}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp: [{route: [{destination: {host: web, port: {number: 9000}}}]}]
"""


def test_clusters_and_tcp_routes_use_the_cluster_domain(tmp_path: Path) -> None:
    generated = generate(tmp_path, CONFIG, Options(bind_ports={31400: 18400}))
    names = set(clusters(generated.config))
    assert {"outbound|80||web.shop.svc.corp.local", "outbound|9000||web.shop.svc.corp.local"} <= names
    assert not any("cluster.local" in n for n in names)
    (chain,) = listeners(generated.config)["gateway_31400"]["filter_chains"]
    tcp = chain["filters"][0]["typed_config"]
    assert tcp["cluster"] == "outbound|9000||web.shop.svc.corp.local"  # the short name `web`, expanded


def test_embedded_route_table_carries_the_mesh_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    options = Options(engine=EMBEDDED, files_dir=str(tmp_path / "files"), bind_ports={31400: 18400})
    compiled = generate_live([str(path)], options)
    assert compiled.config is not None and compiled.config.ir_json is not None
    ir = json.loads(compiled.config.ir_json)
    assert {view["unknown_host"] for view in ir["views"] if view["gateway"] == 0} == {"blackhole"}
    assert ir["default_extra"]["retries"]["attempts"] == 5
    assert ir["default_extra"]["timeout_ms"] == 15000
    assert {t["host"] for t in ir["targets"]} == {"web.shop.svc.corp.local"}
