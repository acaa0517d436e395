"""Gateway TLS PASSTHROUGH servers: tcp_proxy filter chains chosen by SNI (Istio's ingress SNI
passthrough)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshroute.envoy import Generated, Options
from tests.envoy.helpers import assert_valid, generate, hcm, listeners
from tests.envoy.tls_helpers import self_signed

BASE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backends, namespace: default}
spec:
  hosts: [a.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: 9443}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend-b, namespace: default}
spec:
  hosts: [b.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: 9444}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [{server_hosts}]
    tls: {mode: PASSTHROUGH}
"""
A = "outbound|443||a.example.com"
B = "outbound|443||b.example.com"
OPTIONS = Options(bind_ports={443: 24443})


def vs(tls: str, name: str = "sni", hosts: str = '["*.example.com"]', gateways: str = "[gw]") -> str:
    return f"""
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: {hosts}
  gateways: {gateways}
  tls: {tls}
"""


def route(sni: str, host: str = "a.example.com", extra: str = "") -> str:
    """One tls route: ``sni`` (and ``extra`` match fields) to ``host`` port 443."""
    destination = f"{{destination: {{host: {host}, port: {{number: 443}}}}}}"
    return f"{{match: [{{sniHosts: [{sni}]{extra}}}], route: [{destination}]}}"


def build(tmp_path: Path, server_hosts: str, *virtual_services: str) -> Generated:
    return generate(
        tmp_path, BASE.replace("{server_hosts}", server_hosts) + "".join(virtual_services), OPTIONS
    )


def chains(generated: Generated, port: int = 443) -> list[tuple[Any, Any]]:
    """(server_names or None, cluster or [(name, weight)]) of each chain, checking they pass TLS
    through: transport_protocol tls, no transport socket, tcp_proxy as the only filter."""
    listener = listeners(generated.config)[f"gateway_{port}"]
    assert [f["name"] for f in listener["listener_filters"]] == ["envoy.filters.listener.tls_inspector"]
    assert "default_filter_chain" not in listener  # no chain matches → Envoy closes the connection
    out = []
    for chain in listener["filter_chains"]:
        assert chain["filter_chain_match"]["transport_protocol"] == "tls"
        assert "transport_socket" not in chain
        (network_filter,) = chain["filters"]
        assert network_filter["name"] == "envoy.filters.network.tcp_proxy"
        config = network_filter["typed_config"]
        if "cluster" in config:
            target: Any = config["cluster"]
        else:
            target = [(c["name"], c["weight"]) for c in config["weighted_clusters"]["clusters"]]
        out.append((chain["filter_chain_match"].get("server_names"), target))
    return out


def warnings(generated: Generated) -> list[tuple[str, tuple[str | int, ...]]]:
    return [(w.code, w.path) for w in generated.warnings]


def test_one_chain_per_sni_route(tmp_path: Path) -> None:
    generated = build(
        tmp_path,
        '"*.example.com"',
        vs(f"[{route('a.example.com')}, {route('b.example.com', 'b.example.com')}]"),
    )
    listener = listeners(generated.config)["gateway_443"]
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 24443}
    assert chains(generated) == [(["a.example.com"], A), (["b.example.com"], B)]
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_weighted_wildcard_and_several_virtual_services(tmp_path: Path) -> None:
    weighted = (
        "[{match: [{sniHosts: ['*.example.com', c.example.com]}, {port: 9, sniHosts: [d.example.com]}],"
        " route: [{destination: {host: a.example.com, port: {number: 443}}, weight: 75},"
        " {destination: {host: b.example.com, port: {number: 443}}, weight: 25}]}]"
    )
    generated = build(
        tmp_path,
        '"*"',
        vs(f"[{route('a.example.com', extra=', port: 443')}]", name="first"),
        vs(weighted, name="second"),
    )
    # The port-9 block does not hold at port 443; the rest of the route does.
    assert chains(generated) == [
        (["a.example.com"], A),
        (["*.example.com", "c.example.com"], [(A, 75), (B, 25)]),
    ]
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_sni_outside_the_server_hosts_is_dropped_with_a_warning(tmp_path: Path) -> None:
    tls = (
        "[{match: [{sniHosts: [a.example.com, b.example.com]}],"
        " route: [{destination: {host: a.example.com, port: {number: 443}}}]}]"
    )
    generated = build(tmp_path, "a.example.com", vs(tls, hosts="[a.example.com, b.example.com]"))
    assert chains(generated) == [(["a.example.com"], A)]
    (warning,) = generated.warnings
    assert (warning.code, warning.path) == (
        "envoy-tls-sni-outside",
        ("spec", "tls", 0, "match", 0, "sniHosts"),
    )
    assert "SNI b.example.com is not within the hosts" in warning.message
    assert_valid(tmp_path, generated.config)


def test_sni_claimed_twice_stays_with_the_first(tmp_path: Path) -> None:
    generated = build(
        tmp_path,
        '"*.example.com"',
        vs(f"[{route('a.example.com')}, {route('a.example.com', 'b.example.com')}]"),
    )
    assert chains(generated) == [(["a.example.com"], A)]
    assert warnings(generated) == [("envoy-tls-sni-duplicate", ("spec", "tls", 1, "match", 0, "sniHosts"))]
    assert_valid(tmp_path, generated.config)


def test_binding_and_missing_cluster(tmp_path: Path) -> None:
    # Not bound (match-level gateways replace the VirtualService's), then an unknown destination.
    unbound = "[{match: [{sniHosts: [a.example.com], gateways: [mesh]}], route: [{destination: {host: a.example.com}}]}]"  # noqa: E501
    generated = build(
        tmp_path,
        '"*.example.com"',
        vs(unbound, name="unbound"),
        vs(f"[{route('b.example.com', 'c.example.com')}]", name="unknown"),
    )
    assert chains(generated) == [(["b.example.com"], "outbound|443||c.example.com")]
    (warning,) = generated.warnings
    assert (warning.code, warning.path) == ("envoy-tls-cluster", ("spec", "tls", 0, "route"))
    assert_valid(tmp_path, generated.config)


def test_no_route_closes_every_connection(tmp_path: Path) -> None:
    generated = build(tmp_path, '"*.example.com"', vs(f"[{route('a.example.com', extra=', port: 8443')}]"))
    (chain,) = listeners(generated.config)["gateway_443"]["filter_chains"]
    assert "filter_chain_match" not in chain
    assert chain["filters"][0]["typed_config"]["cluster"] == "BlackHoleCluster"
    assert warnings(generated) == [("envoy-tls-no-route", ("spec", "servers", 0))]
    assert_valid(tmp_path, generated.config)


MIXED = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: mixed, namespace: default}}
spec:
  servers:
  - port: {{number: 443, name: https, protocol: HTTPS}}
    hosts: [secure.example.com]
    tls: {{mode: SIMPLE, serverCertificate: "{cert}", privateKey: "{key}"}}
  - port: {{number: 443, name: auto, protocol: TLS}}
    hosts: ["*.mesh.example.com"]
    tls: {{mode: AUTO_PASSTHROUGH}}
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
---
"""


def test_terminating_and_passthrough_servers_share_the_port(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "secure.example.com")
    # The mixed Gateway's servers come first in config order.
    text = MIXED.format(cert=cert, key=key) + BASE.replace("{server_hosts}", '"*.example.com"')
    # A passthrough route for the terminating server's SNI loses it (that server came first).
    text += vs(f"[{route('a.example.com')}, {route('secure.example.com')}]", gateways="[gw, mixed]")
    generated = generate(tmp_path, text, Options(bind_ports={443: 24443, 80: 24080}))
    listener = listeners(generated.config)["gateway_443"]
    terminating, passthrough = listener["filter_chains"]
    assert terminating["filter_chain_match"] == {
        "transport_protocol": "tls",
        "server_names": ["secure.example.com"],
    }
    assert terminating["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    hcm(terminating)
    assert passthrough["filter_chain_match"] == {
        "transport_protocol": "tls",
        "server_names": ["a.example.com"],
    }
    assert passthrough["filters"][0]["typed_config"]["cluster"] == A
    assert warnings(generated) == [
        ("envoy-server-skipped", ("spec", "servers", 1)),  # AUTO_PASSTHROUGH
        ("envoy-tls-sni-duplicate", ("spec", "tls", 1, "match", 0, "sniHosts")),
    ]
    auto = next(w for w in generated.warnings if w.code == "envoy-server-skipped")
    assert "AUTO_PASSTHROUGH" in auto.message
    assert_valid(tmp_path, generated.config)


TWO_SERVERS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: second, namespace: default}
spec:
  servers:
  - port: {number: 443, name: tls-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: tcp, protocol: TCP}
    hosts: ["*"]
---
"""


def test_servers_on_one_port_each_take_their_sni(tmp_path: Path) -> None:
    # gw passes a.example.com through, second b.example.com: one route naming both warns nowhere.
    tls = (
        "[{match: [{sniHosts: [a.example.com, b.example.com]}],"
        " route: [{destination: {host: a.example.com, port: {number: 443}}}]}]"
    )
    text = BASE.replace("{server_hosts}", "a.example.com") + "---\n" + TWO_SERVERS
    generated = generate(tmp_path, text + vs(tls, gateways="[gw, second]"), OPTIONS)
    assert chains(generated) == [(["a.example.com"], A), (["b.example.com"], A)]
    skipped = [(w.code, w.path, w.message) for w in generated.warnings]
    assert skipped == [
        (
            "envoy-server-skipped",
            ("spec", "servers", 1),
            "port 443 is already taken by an earlier TLS server; a TCP port cannot be shared",
        )
    ]
    assert_valid(tmp_path, generated.config)
