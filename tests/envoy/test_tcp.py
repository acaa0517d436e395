"""Gateway TCP servers: tcp_proxy listeners routed at generation time (Istio's TCP traffic shifting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshroute.config import analyze
from meshroute.envoy import Generated, Options, build
from tests.conftest import SAMPLES
from tests.envoy.helpers import assert_valid, generate, listeners

TCP_ECHO = SAMPLES / "tcp-echo"
V1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
V2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"


def tcp_echo(*names: str, options: Options | None = None) -> Generated:
    analysis = analyze([TCP_ECHO / "tcp-echo-services.yaml", *(TCP_ECHO / n for n in names)])
    assert analysis.ok, [d.render() for d in analysis.errors]
    return build(analysis, options or Options(bind_ports={31400: 23140}))


def proxy(generated: Generated, port: int = 31400) -> dict[str, Any]:
    """The tcp_proxy config of the gateway listener on ``port`` (its only filter)."""
    (chain,) = listeners(generated.config)[f"gateway_{port}"]["filter_chains"]
    assert "filter_chain_match" not in chain
    (network_filter,) = chain["filters"]
    assert network_filter["name"] == "envoy.filters.network.tcp_proxy"
    config: dict[str, Any] = network_filter["typed_config"]
    assert config["@type"].endswith("envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy")
    return config


def target(config: dict[str, Any]) -> Any:
    """``cluster`` or the weighted list as (name, weight) pairs."""
    if "cluster" in config:
        assert "weighted_clusters" not in config
        return config["cluster"]
    return [(c["name"], c["weight"]) for c in config["weighted_clusters"]["clusters"]]


def codes(generated: Generated) -> list[str]:
    return [w.code for w in generated.warnings]


def test_all_v1_sends_every_connection_to_v1(tmp_path: Path) -> None:
    generated = tcp_echo("tcp-echo-all-v1.yaml")
    listener = listeners(generated.config)["gateway_31400"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 23140}
    assert "listener_filters" not in listener
    assert target(proxy(generated)) == V1
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_20_v2_is_weighted_per_connection(tmp_path: Path) -> None:
    # Applied over all-v1 as in the task: the second VirtualService replaces the first.
    generated = tcp_echo("tcp-echo-all-v1.yaml", "tcp-echo-20-v2.yaml")
    assert target(proxy(generated)) == [(V1, 80), (V2, 20)]
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


NO_ROUTE = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: other-port, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{port: 31401}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
"""


def test_no_matching_route_closes_connections(tmp_path: Path) -> None:
    generated = generate(tmp_path, NO_ROUTE, Options(bind_ports={31400: 23140}))
    config = proxy(generated)
    assert target(config) == "BlackHoleCluster"
    (warning,) = generated.warnings
    assert (warning.code, warning.path) == ("envoy-tcp-no-route", ("spec", "servers", 0))
    assert "connections are closed" in warning.message
    assert_valid(tmp_path, generated.config)


BASE = """
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5000}]
---
apiVersion: v1
kind: Service
metadata: {name: two-ports, namespace: default}
spec:
  ports: [{name: tcp-a, port: 7000}, {name: tcp-b, port: 7001}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: [{server_host}]
"""


def vs(tcp: str, hosts: str = '["*"]', gateways: str = "[gw]") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: r, namespace: default}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  tcp: {tcp}
"""


DB = "outbound|5000||db.default.svc.cluster.local"
CASES = {
    # no match = catch-all; the single-port service gives the port
    "no-match": ('"*"', vs("[{route: [{destination: {host: db}}]}]"), DB),
    "port-absent": ('"*"', vs("[{match: [{}], route: [{destination: {host: db}}]}]"), DB),
    "first-route-that-holds": (
        '"*"',
        vs(
            "[{match: [{port: 1}], route: [{destination: {host: two-ports, port: {number: 7000}}}]},"
            " {match: [{port: 9}, {port: 31400}], route: [{destination: {host: db}}]}]"
        ),
        DB,
    ),
    # a match-level gateways list replaces the VirtualService's
    "match-gateways-bind": (
        '"*"',
        vs("[{match: [{gateways: [gw]}], route: [{destination: {host: db}}]}]", "[db]", "[mesh]"),
        DB,
    ),
    "match-gateways-exclude": (
        '"*"',
        vs("[{match: [{gateways: [mesh]}], route: [{destination: {host: db}}]}]"),
        "BlackHoleCluster",
    ),
    "not-bound": (
        '"*"',
        vs("[{route: [{destination: {host: db}}]}]", gateways="[other]"),
        "BlackHoleCluster",
    ),
    # hosts only have to overlap (TCP carries no host to pick a route with)
    "hosts-overlap": (
        '"*.example.com"',
        vs("[{route: [{destination: {host: db}}]}]", '["a.example.com"]'),
        DB,
    ),
    "hosts-disjoint": (
        "a.example.com",
        vs("[{route: [{destination: {host: db}}]}]", '["b.example.com"]'),
        "BlackHoleCluster",
    ),
    "server-namespace": ('"prod/*"', vs("[{route: [{destination: {host: db}}]}]"), "BlackHoleCluster"),
    # a service with several ports and no destination port: the listener's port, as Istio
    "multi-port-service": (
        '"*"',
        vs("[{route: [{destination: {host: two-ports}}]}]"),
        "outbound|31400||two-ports.default.svc.cluster.local",
    ),
    # several destinations drop weight 0; one left is a plain cluster
    "zero-weight": (
        '"*"',
        vs(
            "[{route: [{destination: {host: db}, weight: 100},"
            " {destination: {host: two-ports, port: {number: 7000}}, weight: 0}]}]"
        ),
        DB,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_route_selection(case: str, tmp_path: Path) -> None:
    server_host, config, expected = CASES[case]
    generated = generate(tmp_path, BASE.replace("{server_host}", server_host) + config)
    assert target(proxy(generated)) == expected
    expected_codes = ["envoy-tcp-no-route"] if expected == "BlackHoleCluster" else []
    if case == "multi-port-service":
        expected_codes = ["envoy-tcp-cluster"]
    assert codes(generated) == expected_codes, [w.render() for w in generated.warnings]


def test_runtime_conditions_are_ignored_with_a_warning(tmp_path: Path) -> None:
    tcp = "[{match: [{port: 31400, sourceLabels: {app: x}, destinationSubnets: [10.0.0.0/8]}], route: [{destination: {host: db}}]}]"  # noqa: E501
    generated = generate(tmp_path, BASE.replace("{server_host}", '"*"') + vs(tcp))
    assert target(proxy(generated)) == DB
    (warning,) = generated.warnings
    assert (warning.code, warning.path) == ("envoy-tcp-match-ignored", ("spec", "tcp", 0, "match", 0))
    assert "sourceLabels, destinationSubnets" in warning.message


def test_tcp_family_and_port_sharing(tmp_path: Path) -> None:
    text = """
    apiVersion: v1
    kind: Service
    metadata: {name: db, namespace: default}
    spec: {ports: [{name: mongo, port: 27017}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: default}
    spec:
      servers:
      - port: {number: 27017, name: mongo, protocol: MONGO}
        hosts: ["*"]
      - port: {number: 27017, name: http, protocol: HTTP}
        hosts: ["*"]
      - port: {number: 8080, name: http-b, protocol: HTTP}
        hosts: ["*"]
      - port: {number: 8080, name: tcp, protocol: TCP}
        hosts: ["*"]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: db, namespace: default}
    spec:
      hosts: ["*"]
      gateways: [gw]
      tcp: [{route: [{destination: {host: db}}]}]
    """
    generated = generate(tmp_path, text, Options(bind_ports={27017: 23017, 8080: 28080}))
    assert target(proxy(generated, 27017)) == "outbound|27017||db.default.svc.cluster.local"
    assert listeners(generated.config)["gateway_8080"]["filter_chains"][0]["filters"][0]["name"] == (
        "envoy.filters.network.http_connection_manager"
    )
    skipped = [(w.code, w.path, w.message) for w in generated.warnings]
    assert skipped == [
        (
            "envoy-server-skipped",
            ("spec", "servers", 1),
            "port 27017 is already taken by an earlier TCP server; a TCP port cannot be shared",
        ),
        (
            "envoy-server-skipped",
            ("spec", "servers", 3),
            "port 8080 is already taken by an earlier HTTP server; a TCP port cannot be shared",
        ),
        (  # db's own MONGO port would get a mesh TCP listener (envoy/meshtcp.py) on the same bind port
            "envoy-port-conflict",
            (),
            "mesh TCP port 27017 (db.default.svc.cluster.local) would bind 23017, already used by "
            "gateway_27017; it gets no listener (use --bind-port)",
        ),
    ]
    assert_valid(tmp_path, generated.config)
