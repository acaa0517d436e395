"""Mesh-side TCP listeners (envoy/meshtcp.py; docs/envoy.md "Mesh TCP"; semantics §2.15)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshroute.envoy import Generated, Options
from tests.envoy.helpers import assert_valid, generate, listeners

V1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
V2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"
CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: tcp-echo, namespace: default}
spec:
  selector: {app: tcp-echo}
  ports: [{name: tcp, port: 9000}, {name: tcp-other, port: 9001}, {name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo, namespace: default}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo, namespace: default}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{sourceLabels: {app: canary}}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v2}}]
  - match: [{port: 9000}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}
"""
BINDS = {9000: 29000, 9001: 29001}


def tcp_target(generated: Generated, port: int) -> Any:
    listener = listeners(generated.config)[f"mesh_tcp_{port}"]
    assert listener["address"]["socket_address"]["port_value"] == BINDS[port]
    ((network_filter,),) = [c["filters"] for c in listener["filter_chains"]]
    config = network_filter["typed_config"]
    if "cluster" in config:
        return config["cluster"]
    return [(c["name"], c["weight"]) for c in config["weighted_clusters"]["clusters"]]


def test_weighted_route_per_port_and_default_cluster(tmp_path: Path) -> None:
    generated = generate(tmp_path, CONFIG, Options(bind_ports=BINDS))
    assert tcp_target(generated, 9000) == [(V1, 80), (V2, 20)]
    # No route holds on 9001 (port match 9000): the service's own cluster.
    assert tcp_target(generated, 9001) == "outbound|9001||tcp-echo.default.svc.cluster.local"
    assert "mesh_tcp_8080" not in listeners(generated.config)  # HTTP port: the mesh listener's
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_source_labels_choose_the_route(tmp_path: Path) -> None:
    options = Options(bind_ports=BINDS, source_labels={"app": "canary"})
    generated = generate(tmp_path, CONFIG, options)
    assert tcp_target(generated, 9000) == V2
    assert tcp_target(generated, 9001) == V2  # the sourceLabels block has no port


def test_route_answers_as_the_listener(tmp_path: Path) -> None:
    import meshroute

    (tmp_path / "c.yaml").write_text(CONFIG)
    mesh = meshroute.load(tmp_path / "c.yaml")
    d = mesh.route("tcp-echo", port=9001).to_dict()
    assert (d["outcome"], d["cluster"], d["protocol"], d["virtual_service"]) == (
        "route",
        "outbound|9001||tcp-echo.default.svc.cluster.local",
        "tcp",
        None,
    )
    d = mesh.route("tcp-echo", port=9000, source_labels={"app": "canary"}).to_dict()
    assert (d["cluster"], d["route_index"], d["match_index"]) == (V2, 0, 0)
    # The HTTP port keeps the HTTP vhost and its defaults (retries).
    assert "retries" in mesh.route("tcp-echo", port=8080).to_dict()
