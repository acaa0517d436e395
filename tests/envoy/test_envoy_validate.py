"""``envoy --mode validate`` accepts what envoy-config generates (~0.3 s per config)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import meshroute
from meshroute.config import analyze
from meshroute.envoy import Options, build
from meshroute.envoy.process import envoy_binary, validate_config
from tests.conftest import SAMPLES
from tests.envoy.helpers import assert_valid
from tests.envoy.tls_helpers import TLS_GATEWAY, self_signed

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


def test_validate_rejects_a_missing_certificate(tmp_path: Path) -> None:
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(TLS_GATEWAY.format(cert=tmp_path / "no.crt", key=tmp_path / "no.key"))
    generated = build(analyze([config_path]), Options(bind_ports={443: 18443, 80: 18080}))
    out = tmp_path / "envoy.yaml"
    out.write_text(yaml.safe_dump(generated.config))
    ok, output = validate_config(out)
    assert not ok
    assert str(tmp_path / "no.") in output  # the certificate or key path is named
