"""Gateway servers parsed once (meshroute.config.gateway): the TLS settings the Envoy side reads,
the position each server keeps when an earlier one is skipped, and a redirect-only server."""

from __future__ import annotations

from meshroute.config.gateway import GatewayInfo, ServerTLS, parse_gateway
from meshroute.config.load import load_text

HEAD = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
"""


def gateway(servers: str) -> GatewayInfo:
    result = load_text(HEAD + servers, "gw.yaml")
    assert not result.diagnostics, [d.render() for d in result.diagnostics]
    (res,) = result.resources
    return parse_gateway(res)


def test_mutual_files_and_every_tls_field() -> None:
    (server,) = gateway(
        """
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [a.example.com]
    tls:
      mode: MUTUAL
      serverCertificate: /c.pem
      privateKey: /k.pem
      tlsCertificates:
      - {serverCertificate: /ecdsa.pem, privateKey: /ecdsa.key}
      - {serverCertificate: /half.pem}
      caCertificates: /ca.pem
      caCrl: /crl.pem
      subjectAltNames: [client.example.com, "spiffe://td/ns/a/sa/b"]
      verifyCertificateSpki: [spki]
      verifyCertificateHash: [hash]
      minProtocolVersion: TLSV1_3
      maxProtocolVersion: TLS_AUTO
      cipherSuites: [AES256-SHA]
"""
    ).servers
    assert server.tls and server.tls_mode == "MUTUAL"
    assert server.tls_settings == ServerTLS(
        mode="MUTUAL",
        # the top-level pair first; a pair missing its key is no pair
        key_files=(("/c.pem", "/k.pem"), ("/ecdsa.pem", "/ecdsa.key")),
        ca_certificates="/ca.pem",
        ca_crl="/crl.pem",
        subject_alt_names=("client.example.com", "spiffe://td/ns/a/sa/b"),
        verify_certificate_spki=("spki",),
        verify_certificate_hash=("hash",),
        min_protocol_version="TLSV1_3",
        max_protocol_version="TLS_AUTO",
        cipher_suites=("AES256-SHA",),
    )


def test_credential_names_win_over_credential_name() -> None:
    one, both = gateway(
        """
  - port: {number: 443, name: a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: "kubernetes://web", caCertCredentialName: client-ca}
  - port: {number: 443, name: b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: ignored, credentialNames: [rsa, ecdsa]}
"""
    ).servers
    # the prefix stays: Secret names are checked where the Secret is looked up
    assert one.tls_settings.credential_names == ("kubernetes://web",)
    assert one.tls_settings.ca_cert_credential_name == "client-ca"
    assert both.tls_settings.credential_names == ("rsa", "ecdsa")


def test_positions_survive_a_skipped_server() -> None:
    """A server without a usable port number is left out; the others keep their place in
    ``spec.servers``, which diagnostics point at."""
    servers = gateway(
        """
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 70000, name: bad, protocol: HTTP}
    hosts: ["*"]
  - port: {name: none, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["./A.example.com", "prod/a.example.com", "b.example.com"]
    tls: {mode: SIMPLE, credentialName: web}
"""
    ).servers
    assert [(s.index, s.port, s.name) for s in servers] == [(0, 80, "http"), (3, 443, "https")]
    https = servers[1]
    assert https.hosts == (("edge", "a.example.com"), ("prod", "a.example.com"), ("*", "b.example.com"))
    assert https.dns_names == ("a.example.com", "b.example.com")  # namespaces dropped, once each


def test_redirect_only_server() -> None:
    """``httpsRedirect`` alone is a tls block (Istio counts it) with no mode and nothing to
    terminate; a server without a block gets the empty settings."""
    redirect, plain = gateway(
        """
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [a.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8080, name: plain, protocol: HTTP}
    hosts: [a.example.com]
"""
    ).servers
    assert redirect.https_redirect and redirect.tls and redirect.tls_mode == "PASSTHROUGH"
    assert redirect.tls_settings == ServerTLS()  # mode "" = unset: it does not terminate TLS
    assert not plain.https_redirect and not plain.tls and plain.tls_mode == ""
    assert plain.tls_settings == ServerTLS()
