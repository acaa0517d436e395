"""``envoy --mode validate`` accepts what envoy-config generates (~0.3 s per config)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import meshroute
from meshroute.cli import main
from meshroute.config import analyze
from meshroute.envoy import Options, build
from meshroute.envoy.process import envoy_binary, validate_config
from tests.conftest import SAMPLES
from tests.envoy.helpers import assert_valid, embedded_module, generate, hcm
from tests.envoy.tls_helpers import (
    CREDENTIAL_GATEWAY,
    TLS_GATEWAY,
    credential_config,
    secret_yaml,
    self_signed,
)

SAMPLE_SETS = {
    "bookinfo": [meshroute.bookinfo_path()],
    "bookinfo-samples": [str(SAMPLES / "bookinfo")],
    "httpbin-circuit-breaker": [
        str(SAMPLES / "httpbin"),
        str(SAMPLES / "istio-io-task-snippets/circuit-breaking/httpbin-destination-rule.yaml"),
    ],
    "serviceentry-dns": [str(SAMPLES / "bookinfo/networking/egress-rule-google-apis.yaml")],
    "serviceentry-valid": [str(SAMPLES / "validation-testdata/serviceentry-valid.yaml")],
    "destinationrule-valid": [str(SAMPLES / "validation-testdata/destinationrule-valid.yaml")],
    "egress-gateway-tls": [str(SAMPLES / "istio-io-task-snippets/egress-gateway")],
}


def test_envoy_binary_exists() -> None:
    assert Path(envoy_binary()).is_file()


@pytest.mark.parametrize("name", sorted(SAMPLE_SETS))
def test_samples_validate(name: str, tmp_path: Path) -> None:
    analysis = analyze(SAMPLE_SETS[name])
    assert analysis.ok, [d.render() for d in analysis.errors]
    generated = build(analysis, Options(extproc=("unix:/tmp/mr.sock.0", "unix:/tmp/mr.sock.1")))
    assert_valid(tmp_path, generated.config)


def test_tls_gateway_with_real_certificate_validates(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "secure.example.com")
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(TLS_GATEWAY.format(cert=cert, key=key))
    analysis = analyze([config_path])
    assert analysis.ok, [d.render() for d in analysis.errors]
    generated = build(analysis, Options(bind_ports={443: 18443, 80: 18080}))
    assert generated.warnings == []
    assert_valid(tmp_path, generated.config)


def test_a_missing_certificate_leaves_only_its_server_out(tmp_path: Path) -> None:
    """Envoy rejects a whole bootstrap naming a certificate file that does not exist; Istio loses
    only the server whose files are missing. envoy-config checks the files it names: that server
    is left out with a warning naming it and the file, the rest validates."""
    cert, key = self_signed(tmp_path, "other.example.com")
    config_path = tmp_path / "gateway.yaml"
    text = TLS_GATEWAY.format(cert=tmp_path / "no.crt", key=key)
    text += f"""  - port: {{number: 443, name: https-other, protocol: HTTPS}}
    hosts: [other.example.com]
    tls: {{mode: SIMPLE, serverCertificate: "{cert}", privateKey: "{key}"}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  ports: [{{number: 443, name: https, protocol: HTTPS}}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.example.com
  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: "{tmp_path / "no-ca.pem"}"}}}}
"""
    config_path.write_text(text)
    generated = build(analyze([config_path]), Options(bind_ports={443: 18443, 80: 18080}))
    skipped = [(w.code, w.path, w.message) for w in generated.warnings if w.code == "envoy-server-skipped"]
    assert skipped == [
        (
            "envoy-server-skipped",
            ("spec", "servers", 0),
            f"port 443: server https of Gateway default/secure: certificate file {tmp_path / 'no.crt'} "
            "cannot be read (no such file); it gets no listener",
        )
    ]
    https = next(
        lis for lis in generated.config["static_resources"]["listeners"] if lis["name"] == "gateway_443"
    )
    assert [c["filter_chain_match"]["server_names"] for c in https["filter_chains"]] == [
        ["other.example.com"]
    ]
    # The DestinationRule's CA file is missing too: that cluster alone is left out (503 at runtime).
    names = {c["name"] for c in generated.config["static_resources"]["clusters"]}
    assert "outbound|443||api.example.com" not in names
    [cluster_warning] = [w.message for w in generated.warnings if w.code == "envoy-cluster"]
    assert str(tmp_path / "no-ca.pem") in cluster_warning and "left out" in cluster_warning
    assert_valid(tmp_path, generated.config)


def test_validate_rejects_a_certificate_that_is_not_one(tmp_path: Path) -> None:
    # The file exists, so envoy-config names it; Envoy reads it, rejects it and names it.
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("not a certificate\n")
    _, key = self_signed(tmp_path, "secure.example.com")
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(TLS_GATEWAY.format(cert=bogus, key=key))
    generated = build(analyze([config_path]), Options(bind_ports={443: 18443, 80: 18080}))
    assert generated.warnings == []
    out = tmp_path / "envoy.yaml"
    out.write_text(yaml.safe_dump(generated.config))
    ok, output = validate_config(out)
    assert not ok
    assert str(bogus) in output  # the certificate path is named


def test_credential_name_with_secrets_validates(tmp_path: Path) -> None:
    """Certificates, key, client CA and CRL inlined from Secrets (inline_bytes) load in Envoy."""
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(credential_config(tmp_path).config)
    analysis = analyze([config_path])
    assert analysis.ok, [d.render() for d in analysis.errors]
    generated = build(analysis, Options(bind_ports={443: 18443}))
    assert generated.warnings == []
    chains = generated.config["static_resources"]["listeners"][1]["filter_chains"]
    assert [c["filter_chain_match"]["server_names"] for c in chains] == [
        ["secure.example.com"],
        ["mtls.example.com"],
    ]
    assert set(chains[1]["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]) == {
        "trusted_ca",
        "crl",
    }
    assert_valid(tmp_path, generated.config)


def test_validate_rejects_a_secret_whose_key_does_not_match(tmp_path: Path) -> None:
    # meshroute checks the PEM structure only; Envoy finds the mismatch, without printing the key.
    cert, _ = self_signed(tmp_path, "secure.example.com")
    _, other_key = self_signed(tmp_path, "other.example.com")
    config_path = tmp_path / "gateway.yaml"
    (simple, _mutual) = CREDENTIAL_GATEWAY.split("  - port: {number: 443, name: https-mtls")
    secret = secret_yaml(
        "secure-cert", None, {"tls.crt": cert.read_bytes(), "tls.key": other_key.read_bytes()}
    )
    config_path.write_text(simple + secret)
    generated = build(analyze([config_path]), Options(bind_ports={443: 18443}))
    assert generated.warnings == []
    out = tmp_path / "envoy.yaml"
    out.write_text(yaml.safe_dump(generated.config))
    ok, output = validate_config(out)
    assert not ok
    assert "Failed to load private key from <inline>" in output
    assert "KEY_VALUES_MISMATCH" in output
    key_lines = other_key.read_text().splitlines()[1:-1]
    assert not any(line in output for line in key_lines)


def _inline_filter_configs(config: dict[str, Any], resources: list[dict[str, Any]] | None = None) -> None:
    """Put each listener's ECDS filter config in the listener itself: ``--mode validate`` checks that
    an ECDS file exists but does not read it, while an inline config makes Envoy load the module,
    which loads its table. ``resources``: listeners and clusters to make static (live mode)."""
    if resources is not None:
        config.pop("dynamic_resources")
        static: dict[str, list[dict[str, Any]]] = {"listeners": [], "clusters": []}
        for item in resources:
            kind = "listeners" if item.pop("@type").endswith("Listener") else "clusters"
            static[kind].append(item)
        config["static_resources"] = static
    inlined = 0
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            if chain["filters"][0]["name"] != "envoy.filters.network.http_connection_manager":
                continue
            filters = hcm(chain)["http_filters"]
            path = filters[0]["config_discovery"]["config_source"]["path_config_source"]["path"]
            (resource,) = yaml.safe_load(Path(path).read_text())["resources"]
            assert resource["name"] == filters[0]["name"]
            filters[0] = {"name": resource["name"], "typed_config": resource["typed_config"]}
            inlined += 1
    assert inlined


@pytest.mark.parametrize("live", [False, True], ids=["static", "live-dir"])
def test_embedded_engine_validates(live: bool, tmp_path: Path) -> None:
    embedded_module()
    out = tmp_path / "envoy.yaml"
    args = ["envoy-config", str(SAMPLES / "bookinfo"), "--engine", "embedded", "-o", str(out)]
    if live:
        args += ["--live-dir", str(tmp_path / "live")]
    assert main(args) == 0
    ok, output = validate_config(out)
    assert ok, output
    config = yaml.safe_load(out.read_text())
    resources = None
    if live:
        live_dir = tmp_path / "live"
        resources = [
            *yaml.safe_load((live_dir / "lds.yaml").read_text())["resources"],
            *yaml.safe_load((live_dir / "cds.yaml").read_text())["resources"],
        ]
    _inline_filter_configs(config, resources)
    assert_valid(tmp_path, config, "inlined.yaml")


def test_embedded_module_rejects_a_missing_table(tmp_path: Path) -> None:
    """The inlined check above is a real one: the module refuses a config whose table is missing."""
    embedded_module()
    out = tmp_path / "envoy.yaml"
    assert main(["envoy-config", meshroute.bookinfo_path(), "--engine", "embedded", "-o", str(out)]) == 0
    (tmp_path / "envoy.yaml.d" / "ir-1.json").unlink()
    config = yaml.safe_load(out.read_text())
    _inline_filter_configs(config)
    path = tmp_path / "inlined.yaml"
    path.write_text(yaml.safe_dump(config))
    ok, output = validate_config(path)
    assert not ok
    assert "ir-1.json" in output


LB_POLICIES = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default}
spec: {selector: {app: httpbin}, ports: [{name: http, port: 8000, targetPort: 80}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, minHealthPercent: 30}
  subsets:
  - {name: random, labels: {v: a}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
  - {name: least, labels: {v: b}, trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}}
  - name: ring
    labels: {v: c}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 0s}, ringHash: {minimumRingSize: 64}}}
  - name: maglev
    labels: {v: d}
    trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1031}}}}
"""


def test_lb_rust_clusters_validate_and_the_module_checks_their_config(tmp_path: Path) -> None:
    """``--mode validate`` creates every cluster's load balancer config: Envoy loads the module,
    which parses each ``lb_policy_config`` (and refuses one it cannot build)."""
    module = embedded_module()
    generated = generate(tmp_path, LB_POLICIES, Options(lb="rust", lb_module=str(module)))
    assert_valid(tmp_path, generated.config)
    config = generated.config
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "outbound|8000|maglev|httpbin.default.svc.cluster.local":
            typed = cluster["load_balancing_policy"]["policies"][0]["typed_extension_config"]["typed_config"]
            typed["lb_policy_config"]["value"] = json.dumps({"policy": "MAGLEV", "table_size": 1032})
    path = tmp_path / "bad-lb.yaml"
    path.write_text(yaml.safe_dump(config))
    ok, output = validate_config(path)
    assert not ok
    assert "meshroute: load balancer config rejected: lb_policy_config: maglev tableSize 1032" in output, (
        output
    )
