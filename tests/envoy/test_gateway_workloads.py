"""envoy-config and gateway workloads (semantics §4, docs/envoy.md): each port's listener serves the
servers every gateway proxy keeps once it merges the Gateways selecting it, and a gateway-listener
request is decided by the merged view of the proxy whose servers claim its host."""

from __future__ import annotations

from pathlib import Path

import meshroute
from meshroute._core import ListenerContext
from tests.envoy.helpers import generate, hcm, listeners

HTTP = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: default, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [foo.bar]
"""
TCP_THEN_HTTP = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: beta, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: tcp, protocol: TCP}
    hosts: [foo.bar]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: alpha, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [foo.bar]
"""


def test_a_port_no_gateway_server_uses_has_no_listener(tmp_path: Path) -> None:
    # TestHTTPGateway "no virtual services", call "undefined port": ErrNoListener on port 81.
    generated = generate(tmp_path, HTTP)
    assert set(listeners(generated.config)) == {"mesh_outbound", "gateway_80"}


def test_the_merged_proxy_decides_which_protocol_takes_a_port(tmp_path: Path) -> None:
    # TestGatewayConflicts "multiple protocols on a port - http first": beta (TCP) comes first in
    # the config, alpha (HTTP) first in the proxy's merge (by name): the port is HTTP.
    generated = generate(tmp_path, TCP_THEN_HTTP)
    (chain,) = listeners(generated.config)["gateway_80"]["filter_chains"]
    assert hcm(chain)["route_config"]["virtual_hosts"][0]["domains"] == ["*"]
    assert all(f["name"] != "envoy.filters.network.tcp_proxy" for f in chain["filters"])
    [(code, path, message)] = [(w.code, w.path, w.message) for w in generated.warnings]
    assert (code, path) == ("envoy-server-skipped", ("spec", "servers", 0))
    assert message.startswith(
        "port 80 already has a server of protocol HTTP: the gateway proxy merging Gateway default/beta"
    )


MERGED = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: more, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http-login, protocol: HTTP}
    hosts: [login.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8080, name: http-more, protocol: HTTP}
    hosts: ["*.more.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: more, namespace: default}
spec:
  hosts: [api.more.example.com, login.example.com]
  gateways: [more]
  http:
  - directResponse: {status: 200, body: {string: more}}
"""


def test_one_listener_serves_the_merged_gateways(tmp_path: Path) -> None:
    generated = generate(tmp_path, MERGED)
    (chain,) = listeners(generated.config)["gateway_8080"]["filter_chains"]
    redirect, plain = hcm(chain)["route_config"]["virtual_hosts"]
    assert redirect["domains"] == ["login.example.com"]
    assert redirect["routes"][-1]["redirect"] == {"https_redirect": True}
    assert plain["domains"] == ["*"]
    assert generated.warnings == []
    # The decision (both engines call exchange): a host under edge's *.example.com that a VS of
    # the other Gateway routes is decided by the proxy's merged view, not by edge alone.
    path = tmp_path / "config.yaml"
    mesh = meshroute.load(path)
    context = ListenerContext(8080)
    answer = mesh.table.exchange(context, [(b":authority", b"api.more.example.com"), (b":path", b"/")], 1)
    assert answer[:3] == ("reply", "direct_response", 200)
    answer = mesh.table.exchange(context, [(b":authority", b"login.example.com"), (b":path", b"/x")], 1)
    assert answer[:3] == ("reply", "redirect", 301)
    answer = mesh.table.exchange(context, [(b":authority", b"other.example.com"), (b":path", b"/")], 1)
    assert answer[:3] == ("reply", "no_route", 404)
