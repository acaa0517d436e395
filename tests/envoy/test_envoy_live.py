"""A real Envoy with a generated bootstrap: TLS termination on a Gateway port (certificate files,
or credentialName with the Secrets in the config), httpsRedirect, and fail-closed ext_proc (serve
is deliberately not running)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from meshroute.config import analyze
from meshroute.envoy import Options, build
from meshroute.envoy.http import STATUS_ON_ERROR
from meshroute.envoy.process import start_envoy
from meshroute.procs import LOOPBACK, ProcessGroup, free_port, wait_until
from tests.envoy.tls_helpers import TLS_GATEWAY, Credentials, credential_config, self_signed

HOST = "secure.example.com"


@dataclass
class LiveEnvoy:
    https_port: int
    http_port: int
    mesh_port: int
    cert: Path
    access_log: Path


@pytest.fixture
def envoy(tmp_path: Path) -> Iterator[LiveEnvoy]:
    cert, key = self_signed(tmp_path, HOST)
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(TLS_GATEWAY.format(cert=cert, key=key))
    live = LiveEnvoy(free_port(), free_port(), free_port(), cert, tmp_path / "access.log")
    admin = free_port()
    options = Options(
        extproc=(f"unix:{tmp_path}/serve-not-running.sock",),
        mesh_port=live.mesh_port,
        admin_port=admin,
        bind_ports={443: live.https_port, 80: live.http_port},
        access_log=str(live.access_log),
    )
    generated = build(analyze([config_path]), options)
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(yaml.safe_dump(generated.config))
    group = ProcessGroup(tmp_path / "logs")
    try:
        start_envoy(group, bootstrap, admin)
        yield live
    finally:
        group.stop_all()


def _request(sock: socket.socket, host: str, path: str = "/", extra: str = "") -> tuple[int, dict[str, str]]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode())
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def test_https_gateway_terminates_tls_and_fails_closed(envoy: LiveEnvoy) -> None:
    context = ssl.create_default_context(cafile=str(envoy.cert))
    with (
        socket.create_connection((LOOPBACK, envoy.https_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=HOST) as tls,
    ):
        # The handshake verified Envoy's certificate for the SNI name against our CA.
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.getpeercert()["subject"] == ((("commonName", HOST),),)
        status, _ = _request(tls, HOST, "/productpage")
    # serve is not running: ext_proc fails closed with status_on_error.
    assert status == STATUS_ON_ERROR == 503
    # Envoy flushes file access logs about once a second.
    wait_until(lambda: "ext_proc_error" in envoy.access_log.read_text(), 10, "ext_proc_error logged")


def test_https_redirect_answers_301(envoy: LiveEnvoy) -> None:
    with socket.create_connection((LOOPBACK, envoy.http_port), timeout=10) as sock:
        status, headers = _request(sock, f"{HOST}:{envoy.http_port}", "/productpage?x=1")
    assert status == 301
    assert headers["location"].startswith(f"https://{HOST}")
    assert headers["location"].endswith("/productpage?x=1")


def test_https_redirect_ignores_a_client_claiming_https(envoy: LiveEnvoy) -> None:
    # The gateway listener takes x-forwarded-proto from the connection (use_remote_address), so a
    # plain-HTTP client cannot skip the redirect by sending "x-forwarded-proto: https".
    with socket.create_connection((LOOPBACK, envoy.http_port), timeout=10) as sock:
        status, headers = _request(sock, HOST, "/", extra="x-forwarded-proto: https\r\n")
    assert status == 301
    assert headers["location"].startswith(f"https://{HOST}")


def test_plain_host_on_redirect_port_goes_to_ext_proc(envoy: LiveEnvoy) -> None:
    with socket.create_connection((LOOPBACK, envoy.http_port), timeout=10) as sock:
        status, _ = _request(sock, "plain.example.com", "/")
    assert status == 503


def test_mesh_listener_fails_closed(envoy: LiveEnvoy) -> None:
    with socket.create_connection((LOOPBACK, envoy.mesh_port), timeout=10) as sock:
        status, _ = _request(sock, "reviews:9080", "/")
    assert status == 503


@dataclass
class LiveCredentialEnvoy:
    https_port: int
    credentials: Credentials
    log: Path


@pytest.fixture
def credential_envoy(tmp_path: Path) -> Iterator[LiveCredentialEnvoy]:
    credentials = credential_config(tmp_path)
    config_path = tmp_path / "gateway.yaml"
    config_path.write_text(credentials.config)
    https_port, admin = free_port(), free_port()
    options = Options(
        extproc=(f"unix:{tmp_path}/serve-not-running.sock",),
        mesh_port=free_port(),
        admin_port=admin,
        bind_ports={443: https_port},
        access_log="",
    )
    generated = build(analyze([config_path]), options)
    assert generated.warnings == []
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(yaml.safe_dump(generated.config))
    group = ProcessGroup(tmp_path / "logs")
    try:
        proc = start_envoy(group, bootstrap, admin)
        yield LiveCredentialEnvoy(https_port, credentials, proc.log)
    finally:
        group.stop_all()


def _https(
    port: int, host: str, ca: Path, client: tuple[Path, Path] | None = None
) -> tuple[int, tuple[object, ...]]:
    """(status of GET /, the server certificate's subject) over TLS with SNI ``host``."""
    context = ssl.create_default_context(cafile=str(ca))
    if client:
        context.load_cert_chain(str(client[0]), str(client[1]))
    with (
        socket.create_connection((LOOPBACK, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        subject = tls.getpeercert()["subject"]
        status, _ = _request(tls, host)
    return status, subject


def test_credential_name_serves_the_secret_certificate(credential_envoy: LiveCredentialEnvoy) -> None:
    live = credential_envoy
    # The handshake verifies the certificate from Secret istio-system/secure-cert for the SNI name.
    status, subject = _https(live.https_port, "secure.example.com", live.credentials.secure[0])
    assert subject == ((("commonName", "secure.example.com"),),)
    assert status == 503  # then ext_proc fails closed: serve is not running
    # The private keys Envoy loaded from the bootstrap are not in its log.
    log = live.log.read_text()
    for _, key in (live.credentials.secure, live.credentials.mtls):
        assert not any(line in log for line in key.read_text().splitlines()[1:-1])


def test_credential_name_mutual_needs_the_client_certificate(credential_envoy: LiveCredentialEnvoy) -> None:
    live = credential_envoy
    server_ca = live.credentials.mtls[0]
    # Client CA and CRL from Secret default/mtls-cert-cacert: the client certificate is accepted...
    status, subject = _https(live.https_port, "mtls.example.com", server_ca, live.credentials.client)
    assert subject == ((("commonName", "mtls.example.com"),),)
    assert status == 503
    # ...and without one the connection is refused (TLS 1.3: reported on the first read).
    # (Envoy closes it: SSLEOFError, or the certificate_required alert, or a reset.)
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        _https(live.https_port, "mtls.example.com", server_ca)
