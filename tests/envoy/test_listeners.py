"""Listeners: Gateway ports, TLS filter chains, httpsRedirect, bind-port remap, ext_proc context."""

from __future__ import annotations

from pathlib import Path

import meshroute
from meshroute.envoy import Options, build_bootstrap
from tests.envoy.helpers import ext_proc_metadata, generate, hcm, listeners

GATEWAYS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.example.com, "*.legacy.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-plain, protocol: HTTP}
    hosts: ["default/*"]
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [secure.example.com]
    tls: {mode: SIMPLE, serverCertificate: /certs/a.crt, privateKey: /certs/a.key}
  - port: {number: 443, name: https-any, protocol: HTTPS}
    hosts: ["*"]
    tls:
      mode: MUTUAL
      serverCertificate: /certs/b.crt
      privateKey: /certs/b.key
      caCertificates: /certs/ca.crt
  - port: {number: 443, name: https-secret, protocol: HTTPS}
    hosts: [other.example.com]
    tls: {mode: SIMPLE, credentialName: other-cert}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: second, namespace: default}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [app.example.com]
"""


def test_mesh_listener_metadata() -> None:
    options = Options(mesh_port=16001, source_namespace="prod", source_labels={"app": "web", "version": "v1"})
    config = build_bootstrap(meshroute.analyze([meshroute.bookinfo_path()]), options)
    mesh = listeners(config)["mesh_outbound"]
    assert mesh["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 16001}
    (chain,) = mesh["filter_chains"]
    assert ext_proc_metadata(chain) == {
        "x-meshroute-listener": "mesh",
        "x-meshroute-source-namespace": "prod",
        "x-meshroute-source-labels": "app=web,version=v1",
    }


def test_filter_chain_contract() -> None:
    config = build_bootstrap(meshroute.analyze([meshroute.bookinfo_path()]))
    (chain,) = listeners(config)["gateway_8080"]["filter_chains"]
    manager = hcm(chain)
    assert [f["name"] for f in manager["http_filters"]] == [
        "envoy.filters.http.ext_proc",
        "envoy.filters.http.fault",
        "envoy.filters.http.router",
    ]
    ext_proc = manager["http_filters"][0]["typed_config"]
    assert ext_proc["grpc_service"]["envoy_grpc"] == {"cluster_name": "meshroute_extproc"}
    assert ext_proc["failure_mode_allow"] is False
    assert ext_proc["status_on_error"] == {"code": 503}
    assert ext_proc["message_timeout"] == "1s"
    assert ext_proc["route_cache_action"] == "CLEAR"
    assert ext_proc["mutation_rules"] == {"allow_all_routing": True, "allow_envoy": True}
    assert ext_proc["allow_mode_override"] is True
    mode = ext_proc["processing_mode"]
    assert (mode["request_header_mode"], mode["response_header_mode"]) == ("SEND", "SKIP")
    assert (mode["request_body_mode"], mode["response_body_mode"]) == ("NONE", "NONE")
    fault = manager["http_filters"][1]["typed_config"]
    assert fault["delay"] == {"header_delay": {}, "percentage": {"numerator": 100}}
    assert fault["abort"] == {"header_abort": {}, "percentage": {"numerator": 100}}
    (vhost,) = manager["route_config"]["virtual_hosts"]
    assert vhost["domains"] == ["*"]
    (route,) = vhost["routes"]
    assert route["match"] == {"prefix": "/"}
    assert route["route"]["cluster_header"] == "x-meshroute-cluster"
    assert route["route"]["timeout"] == "0s"
    assert route["route"]["hash_policy"] == [
        {"header": {"header_name": "x-meshroute-hash"}, "terminal": True},
        {"connection_properties": {"source_ip": True}},
    ]
    assert route["request_headers_to_remove"] == ["x-meshroute-cluster"]
    # VirtualService mirrors: serve names up to 4 mirror clusters per request; the shadow keeps the
    # Host (Istio >= 1.28) and never carries the mirror headers (see docs/envoy.md)
    mirrors = route["route"]["request_mirror_policies"]
    headers = [f"x-meshroute-mirror-{i}" for i in range(4)]
    assert [m["cluster_header"] for m in mirrors] == headers
    for m in mirrors:
        assert m["disable_shadow_host_suffix_append"] is True
        assert m["request_headers_mutations"] == [{"remove": h} for h in headers]
        assert "runtime_fraction" not in m and "cluster" not in m  # serve draws the percentage
    # the hash key and the original destination leave after the load balancer used them (docs/envoy.md)
    upstream = manager["http_filters"][2]["typed_config"]["upstream_http_filters"]
    assert upstream[0]["typed_config"]["mutations"] == {
        "request_mutations": [{"remove": "x-meshroute-hash"}, {"remove": "x-envoy-original-dst-host"}]
    }
    assert upstream[-1]["name"] == "envoy.filters.http.upstream_codec"
    log = manager["access_log"][0]["typed_config"]
    assert log["path"] == "/dev/stdout"
    fmt = log["log_format"]["text_format_source"]["inline_string"]
    for field in ("%RESPONSE_FLAGS%", "%RESPONSE_CODE_DETAILS%", "%UPSTREAM_CLUSTER%", "%UPSTREAM_HOST%"):
        assert field in fmt


def _certificates(tmp_path: Path) -> str:
    """GATEWAYS with its certificate files made to exist: envoy-config leaves out a server whose
    files cannot be read (tests/envoy/test_envoy_validate.py)."""
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("a.crt", "a.key", "b.crt", "b.key", "ca.crt"):
        (certs / name).write_text("not read by envoy-config\n")
    return GATEWAYS.replace("/certs/", f"{certs}/")


def test_gateway_ports_tls_and_redirect(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    generated = generate(tmp_path, _certificates(tmp_path), Options(bind_ports={80: 18080, 443: 18443}))
    by_name = listeners(generated.config)
    # 31400 (TCP, no VirtualService): a tcp_proxy listener that closes connections (tests/envoy/test_tcp.py)
    assert set(by_name) == {"mesh_outbound", "gateway_80", "gateway_443", "gateway_31400"}

    http = by_name["gateway_80"]
    assert http["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 18080}
    assert "listener_filters" not in http
    (chain,) = http["filter_chains"]
    # The logical Gateway port, not the bound one.
    assert ext_proc_metadata(chain) == {"x-meshroute-listener": "gateway", "x-meshroute-port": "80"}
    route_config = hcm(chain)["route_config"]
    assert route_config["ignore_port_in_host_matching"] is True
    redirect, catch_all = route_config["virtual_hosts"]
    assert redirect["domains"] == ["secure.example.com", "*.legacy.example.com"]
    forwarded, to_https = redirect["routes"]
    # require_tls: ALL spelled out: x-forwarded-proto https goes on to serve, the rest is
    # redirected without ext_proc.
    xfp = {"name": "x-forwarded-proto", "string_match": {"exact": "https"}}
    assert forwarded["match"]["headers"] == [xfp]
    assert forwarded["route"]["cluster_header"] == "x-meshroute-cluster"
    assert to_https["redirect"] == {"https_redirect": True}
    assert to_https["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["disabled"] is True
    assert catch_all["domains"] == ["*"]
    assert catch_all["routes"][0]["route"]["cluster_header"] == "x-meshroute-cluster"

    https = by_name["gateway_443"]
    assert https["address"]["socket_address"]["port_value"] == 18443
    assert https["listener_filters"][0]["name"] == "envoy.filters.listener.tls_inspector"
    first, any_sni = https["filter_chains"]
    assert first["filter_chain_match"] == {
        "transport_protocol": "tls",
        "server_names": ["secure.example.com"],
    }
    context = first["transport_socket"]["typed_config"]
    assert context["@type"].endswith("DownstreamTlsContext")
    assert context["common_tls_context"]["tls_certificates"] == [
        {"certificate_chain": {"filename": f"{certs}/a.crt"}, "private_key": {"filename": f"{certs}/a.key"}}
    ]
    assert context["common_tls_context"]["tls_params"] == {"tls_minimum_protocol_version": "TLSv1_2"}
    assert ext_proc_metadata(first) == {"x-meshroute-listener": "gateway", "x-meshroute-port": "443"}
    # "*" server: no SNI restriction; MUTUAL requires and verifies client certificates.
    assert any_sni["filter_chain_match"] == {"transport_protocol": "tls"}
    mutual = any_sni["transport_socket"]["typed_config"]
    assert mutual["require_client_certificate"] is True
    assert mutual["common_tls_context"]["validation_context"] == {
        "trusted_ca": {"filename": f"{certs}/ca.crt"}
    }

    codes = sorted((w.code, w.path) for w in generated.warnings)
    assert codes == [
        ("envoy-server-skipped", ("spec", "servers", 4)),  # credentialName
        ("envoy-tcp-no-route", ("spec", "servers", 5)),  # TCP without a VirtualService
    ]


def test_redirect_wildcard_keeps_plain_hosts(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: default}
    spec:
      servers:
      - port: {number: 8080, name: redirect, protocol: HTTP}
        hosts: ["*"]
        tls: {httpsRedirect: true}
      - port: {number: 8080, name: plain, protocol: HTTP}
        hosts: [plain.example.com]
    """
    config = generate(tmp_path, text).config
    (chain,) = listeners(config)["gateway_8080"]["filter_chains"]
    redirect, plain = hcm(chain)["route_config"]["virtual_hosts"]
    assert redirect["domains"] == ["*"]
    assert plain["domains"] == ["plain.example.com"]


def test_port_conflicts_are_skipped_with_a_warning(tmp_path: Path) -> None:
    text = """
    apiVersion: networking.istio.io/v1
    kind: Gateway
    metadata: {name: gw, namespace: default}
    spec:
      servers:
      - port: {number: 15001, name: http, protocol: HTTP}
        hosts: ["*"]
    """
    generated = generate(tmp_path, text)
    assert set(listeners(generated.config)) == {"mesh_outbound"}
    assert [w.code for w in generated.warnings] == ["envoy-port-conflict"]
    remapped = generate(tmp_path, text, Options(bind_ports={15001: 25001}))
    assert listeners(remapped.config)["gateway_15001"]["address"]["socket_address"]["port_value"] == 25001
