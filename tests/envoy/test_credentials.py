"""Gateway ``credentialName`` from Secret manifests in the config: lookup order, Istio's two Secret
formats, the client CA for MUTUAL, and the warnings when a Secret is missing or malformed.

The PEM here is only shaped like PEM (meshroute checks structure, Envoy parses it):
test_envoy_validate and test_envoy_live use real certificates.
"""

from __future__ import annotations

import base64
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshroute.cli import main
from meshroute.envoy import Generated
from meshroute.envoy.credentials import KeyPair
from tests.envoy.helpers import generate, listeners
from tests.envoy.tls_helpers import secret_yaml


def _pem(label: str, body: bytes) -> bytes:
    return f"-----BEGIN {label}-----\n{base64.b64encode(body).decode()}\n-----END {label}-----\n".encode()


KEY_BODY = b"very-secret-private-key-material"
KEY = _pem("PRIVATE KEY", KEY_BODY)
CA = _pem("CERTIFICATE", b"client-ca")
OTHER_CA = _pem("CERTIFICATE", b"other-ca")
CRL = _pem("X509 CRL", b"revoked")
# Everything a leak could look like: the key's PEM body, and the base64 of the whole PEM.
KEY_FORMS = [base64.b64encode(KEY_BODY).decode(), base64.b64encode(KEY).decode()[8:40]]


def cert(tag: str) -> bytes:
    return _pem("CERTIFICATE", tag.encode())


def tls_secret(name: str, namespace: str | None, tag: str = "x", **more: bytes) -> str:
    return secret_yaml(name, namespace, {"tls.crt": cert(tag), "tls.key": KEY, **more})


def gateway(namespace: str = "default", tls: str = "{mode: SIMPLE, credentialName: web-cert}") -> str:
    return textwrap.dedent(
        f"""\
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {{name: web, namespace: {namespace}}}
        spec:
          servers:
          - port: {{number: 443, name: https, protocol: HTTPS}}
            hosts: [web.example.com]
            tls: {tls}
        """
    )


def context(generated: Generated) -> dict[str, Any]:
    (chain,) = listeners(generated.config)["gateway_443"]["filter_chains"]
    typed: dict[str, Any] = chain["transport_socket"]["typed_config"]
    return typed


def inline(source: dict[str, Any]) -> bytes:
    assert set(source) == {"inline_bytes"}
    return base64.b64decode(source["inline_bytes"], validate=True)


def served_cert(generated: Generated) -> bytes:
    (pair,) = context(generated)["common_tls_context"]["tls_certificates"]
    assert inline(pair["private_key"]) == KEY
    return inline(pair["certificate_chain"])


def skipped(generated: Generated) -> str:
    """The one warning of a skipped credentialName server (and that it got no listener)."""
    assert "gateway_443" not in listeners(generated.config)
    (warning,) = generated.warnings
    assert warning.code == "envoy-server-skipped"
    assert warning.path == ("spec", "servers", 0)
    text = warning.render()
    for leak in KEY_FORMS:
        assert leak not in text
    return warning.message


# --- lookup order --------------------------------------------------------------------------------


def test_gateway_namespace_first_then_istio_system(tmp_path: Path) -> None:
    secrets = tls_secret("web-cert", "default", "d") + tls_secret("web-cert", "istio-system", "i")
    secrets += tls_secret("web-cert", "prod", "p")
    assert served_cert(generate(tmp_path, gateway("default") + secrets)) == cert("d")
    assert served_cert(generate(tmp_path, gateway("staging") + secrets)) == cert("i")


def test_any_namespace_when_only_one_has_it(tmp_path: Path) -> None:
    # `kubectl create secret tls --dry-run=client -o yaml` writes no namespace: it loads as default.
    generated = generate(tmp_path, gateway("istio-system") + tls_secret("web-cert", None, "k"))
    assert generated.warnings == []
    assert served_cert(generated) == cert("k")


def test_several_other_namespaces_take_none(tmp_path: Path) -> None:
    secrets = tls_secret("web-cert", "team-a", "a") + tls_secret("web-cert", "team-b", "b")
    message = skipped(generate(tmp_path, gateway("prod") + secrets))
    assert message == (
        "port 443: credentialName web-cert: no Secret web-cert in namespaces prod and istio-system, "
        "and several in other namespaces (team-a/web-cert, team-b/web-cert): which one the gateway "
        "workload reads is unknown, so none is used; put it in prod"
    )


def test_missing_secret(tmp_path: Path) -> None:
    other = secret_yaml("other-cert", "istio-system", {"tls.crt": cert("o"), "tls.key": KEY})
    message = skipped(generate(tmp_path, gateway("istio-system") + other))
    assert message == (
        "port 443: credentialName web-cert: the config has no Secret web-cert (looked in namespace "
        "istio-system, then in every other namespace); add its manifest (kubectl create secret tls "
        "web-cert -n istio-system --cert=FILE --key=FILE --dry-run=client -o yaml) or give "
        "serverCertificate/privateKey files"
    )


def test_only_v1_secrets_count(tmp_path: Path) -> None:
    text = gateway() + tls_secret("web-cert", "default").replace(
        "apiVersion: v1", "apiVersion: example.com/v1"
    )
    assert "the config has no Secret web-cert" in skipped(generate(tmp_path, text))


def test_kubernetes_prefix_and_unsupported_sources(tmp_path: Path) -> None:
    ok = gateway(tls="{mode: SIMPLE, credentialName: 'kubernetes://web-cert'}") + tls_secret("web-cert", None)
    assert served_cert(generate(tmp_path, ok)) == cert("x")
    other = gateway(tls="{mode: SIMPLE, credentialName: 'sds://web-cert'}") + tls_secret("web-cert", None)
    assert "only a Kubernetes Secret name" in skipped(generate(tmp_path, other))


# --- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "string_data"),
    [
        (("tls.crt", "tls.key"), False),  # kubernetes.io/tls
        (("cert", "key"), False),  # Istio's generic format
        (("tls.crt", "tls.key"), True),
        (("cert", "key"), True),
    ],
)
def test_secret_formats(tmp_path: Path, keys: tuple[str, str], string_data: bool) -> None:
    secret = secret_yaml(
        "web-cert",
        "default",
        {keys[0]: cert("f"), keys[1]: KEY},
        string_data=string_data,
        secret_type="kubernetes.io/tls" if keys[0] == "tls.crt" else "Opaque",
    )
    generated = generate(tmp_path, gateway() + secret)
    assert generated.warnings == []
    assert served_cert(generated) == cert("f")
    common = context(generated)["common_tls_context"]
    assert common["tls_params"] == {"tls_minimum_protocol_version": "TLSv1_2"}
    assert "validation_context" not in common  # SIMPLE: no client certificates asked for


def test_string_data_wins_and_generic_keys_first(tmp_path: Path) -> None:
    doc = yaml.safe_load(secret_yaml("web-cert", "default", {"tls.crt": cert("data"), "tls.key": KEY}))
    doc["stringData"] = {"tls.crt": cert("string").decode()}
    text = gateway() + "---\n" + yaml.safe_dump(doc)
    assert served_cert(generate(tmp_path, text)) == cert("string")
    both = secret_yaml(
        "web-cert", "default", {"tls.crt": cert("tls"), "tls.key": KEY, "cert": cert("generic"), "key": KEY}
    )
    assert served_cert(generate(tmp_path, gateway() + both)) == cert("generic")


def test_base64_with_line_breaks(tmp_path: Path) -> None:
    doc = yaml.safe_load(tls_secret("web-cert", "default", "wrapped"))
    encoded = doc["data"]["tls.crt"]
    doc["data"]["tls.crt"] = "\n".join(encoded[i : i + 64] for i in range(0, len(encoded), 64))
    assert served_cert(generate(tmp_path, gateway() + "---\n" + yaml.safe_dump(doc))) == cert("wrapped")


def test_credential_names_give_two_pairs(tmp_path: Path) -> None:
    text = gateway(tls="{mode: SIMPLE, credentialNames: [rsa-cert, ecdsa-cert]}")
    text += tls_secret("rsa-cert", "default", "rsa") + tls_secret("ecdsa-cert", "default", "ecdsa")
    pairs = context(generate(tmp_path, text))["common_tls_context"]["tls_certificates"]
    assert [inline(p["certificate_chain"]) for p in pairs] == [cert("rsa"), cert("ecdsa")]


# --- client CA (MUTUAL / OPTIONAL_MUTUAL) ----------------------------------------------------------


def validation(generated: Generated) -> dict[str, Any]:
    assert generated.warnings == []
    result: dict[str, Any] = context(generated)["common_tls_context"]["validation_context"]
    return result


def test_mutual_ca_from_the_same_secret(tmp_path: Path) -> None:
    text = gateway(tls="{mode: MUTUAL, credentialName: web-cert, subjectAltNames: [client.example.com]}")
    generated = generate(tmp_path, text + tls_secret("web-cert", "default", **{"ca.crt": CA}))
    assert context(generated)["require_client_certificate"] is True
    checks = validation(generated)
    assert inline(checks["trusted_ca"]) == CA
    assert checks["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "client.example.com"}}
    ]
    generic = secret_yaml("web-cert", "default", {"cert": cert("g"), "key": KEY, "cacert": CA, "crl": CRL})
    checks = validation(generate(tmp_path, gateway(tls="{mode: MUTUAL, credentialName: web-cert}") + generic))
    assert inline(checks["trusted_ca"]) == CA
    assert inline(checks["crl"]) == CRL


def test_mutual_ca_secret_named_cacert_comes_first(tmp_path: Path) -> None:
    text = gateway("istio-system", "{mode: OPTIONAL_MUTUAL, credentialName: web-cert}")
    text += tls_secret("web-cert", "istio-system", **{"ca.crt": OTHER_CA})
    text += secret_yaml(
        "web-cert-cacert", "istio-system", {"ca.crt": CA, "ca.crl": CRL}, secret_type="Opaque"
    )
    generated = generate(tmp_path, text)
    assert context(generated)["require_client_certificate"] is False
    checks = validation(generated)
    assert inline(checks["trusted_ca"]) == CA
    assert inline(checks["crl"]) == CRL


def test_mutual_ca_cert_credential_name(tmp_path: Path) -> None:
    text = gateway(tls="{mode: MUTUAL, credentialName: web-cert, caCertCredentialName: client-ca}")
    text += tls_secret("web-cert", "default", **{"ca.crt": OTHER_CA})
    text += secret_yaml("client-ca", "default", {"cacert": CA}, secret_type="Opaque")
    assert inline(validation(generate(tmp_path, text))["trusted_ca"]) == CA


def test_mutual_without_a_ca(tmp_path: Path) -> None:
    text = gateway("istio-system", "{mode: MUTUAL, credentialName: web-cert}") + tls_secret("web-cert", None)
    assert skipped(generate(tmp_path, text)) == (
        "port 443: tls.mode MUTUAL needs a CA to verify clients: Secret default/web-cert has no ca.crt "
        "or cacert key and the config has no Secret default/web-cert-cacert"
    )
    text = gateway(tls="{mode: MUTUAL, credentialName: web-cert}") + tls_secret("web-cert", "default")
    text += secret_yaml("web-cert-cacert", "default", {"ca.crt": b"not a certificate"}, secret_type="Opaque")
    assert skipped(generate(tmp_path, text)) == (
        "port 443: Secret default/web-cert-cacert data.ca.crt is not a PEM certificate "
        "(no BEGIN CERTIFICATE block)"
    )


# --- malformed Secrets ----------------------------------------------------------------------------


def _raw_data(entries: dict[str, str]) -> str:
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-cert"}, "data": entries}
    return "---\n" + yaml.safe_dump(doc)


GOOD_CERT = base64.b64encode(cert("c")).decode()
GOOD_KEY = base64.b64encode(KEY).decode()


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (
            _raw_data({"tls.crt": GOOD_CERT, "tls.key": GOOD_KEY[:-3] + "!!!"}),
            "Secret default/web-cert data.tls.key is not valid base64",
        ),
        (
            _raw_data({"tls.crt": GOOD_CERT}),
            "Secret default/web-cert has tls.crt but no tls.key",
        ),
        (
            _raw_data({"key": GOOD_KEY}),
            "Secret default/web-cert has key but no cert",
        ),
        (
            _raw_data({"ca.crt": GOOD_CERT, "token": "eA=="}),
            "Secret default/web-cert holds no certificate: it needs tls.crt and tls.key "
            "(type kubernetes.io/tls) or cert and key; its keys: ca.crt, token",
        ),
        (
            secret_yaml("web-cert", None, {"tls.crt": b"not pem", "tls.key": KEY}),
            "Secret default/web-cert data.tls.crt is not a PEM certificate (no BEGIN CERTIFICATE block)",
        ),
        (
            secret_yaml("web-cert", None, {"tls.crt": cert("c"), "tls.key": cert("wrong")}),
            "Secret default/web-cert data.tls.key is not a PEM private key (no BEGIN PRIVATE KEY block)",
        ),
        (
            secret_yaml("web-cert", None, {"tls.crt": cert("c"), "tls.key": KEY + KEY}),
            "Secret default/web-cert data.tls.key holds 2 private keys, not one",
        ),
        (
            secret_yaml(
                "web-cert", None, {"tls.crt": cert("c"), "tls.key": _pem("ENCRYPTED PRIVATE KEY", KEY_BODY)}
            ),
            "Secret default/web-cert data.tls.key: the private key is encrypted; Envoy needs it unencrypted",
        ),
        (
            secret_yaml(
                "web-cert",
                None,
                {"tls.crt": cert("c"), "tls.key": KEY.replace(b"\n-----END", b"*not-base64*\n-----END")},
            ),
            "Secret default/web-cert data.tls.key is not PEM: a PRIVATE KEY block is not valid base64",
        ),
        (
            secret_yaml("web-cert", None, {"tls.crt": cert("c"), "tls.key": b""}, string_data=True),
            "Secret default/web-cert stringData.tls.key is empty",
        ),
        (
            _raw_data({"tls.crt": GOOD_CERT, "tls.key": 12345}),  # type: ignore[dict-item]
            "Secret default/web-cert data.tls.key is not a base64 string",
        ),
    ],
)
def test_malformed_secret_skips_the_server(tmp_path: Path, secret: str, problem: str) -> None:
    generated = generate(tmp_path, gateway("istio-system") + secret)
    assert skipped(generated) == f"port 443: credentialName web-cert: {problem}"


def test_private_key_not_in_repr() -> None:
    assert repr(KEY) not in repr(KeyPair(cert("c"), KEY))


def test_cli_keeps_a_bootstrap_with_inlined_keys_private(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(gateway() + tls_secret("web-cert", "default"))
    out = tmp_path / "envoy.yaml"
    out.write_text("")
    out.chmod(0o644)
    assert main(["envoy-config", str(config), "-o", str(out)]) == 0
    assert os.stat(out).st_mode & 0o777 == 0o600
    plain = tmp_path / "plain.yaml"
    plain.write_text(gateway(tls="{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}"))
    assert main(["envoy-config", str(plain), "-o", str(tmp_path / "plain-envoy.yaml")]) == 0
    assert os.stat(tmp_path / "plain-envoy.yaml").st_mode & 0o077 != 0  # the umask decides, as before
