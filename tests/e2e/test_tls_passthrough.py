"""Istio's ingress SNI passthrough through a real Envoy: a Gateway PASSTHROUGH server routed by SNI.

Two TLS servers on 127.0.0.1 stand in for the backends, each with its own self-signed certificate
(``a.example.com``, ``b.example.com``) and answering a line with its name; ServiceEntries (STATIC)
point at them and a VirtualService routes each SNI to one. Envoy holds no certificate: a client
that trusts only a backend's own certificate completing the handshake proves the TLS went through
untouched. No serve: the connections never reach HTTP (the ext_proc cluster points at a socket
nobody listens on; with the embedded engine, the mesh listener's module is loaded but never
called). Both engines: the TLS listener must not care which one decides HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshroute.config import analyze
from meshroute.envoy import Options
from meshroute.envoy.process import start_envoy
from meshroute.procs import LOOPBACK, ProcessGroup, free_port
from tests.e2e.engines import bootstrap
from tests.envoy.tls_helpers import self_signed

GATEWAY_PORT = 443
CONNECT_TIMEOUT = 5.0  # per connection, so a broken route fails fast instead of hanging
HOSTS = ("a.example.com", "b.example.com")


class TlsBackend:
    """A TLS server on 127.0.0.1 (daemon threads) that answers the first line with ``name``."""

    def __init__(self, name: str, cert: Path, key: Path) -> None:
        self.cert = cert
        self.connections = 0  # handshakes completed
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        lock = threading.Lock()
        backend = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = CONNECT_TIMEOUT  # a silent client cannot hold a thread forever

            def setup(self) -> None:
                self.request.settimeout(CONNECT_TIMEOUT)
                # The wrapper takes over the socket: it is closed here, whatever the handshake does.
                self.request = context.wrap_socket(
                    self.request, server_side=True, do_handshake_on_connect=False
                )
                try:
                    self.request.do_handshake()
                except BaseException:
                    self.request.close()
                    raise
                with lock:
                    backend.connections += 1
                super().setup()

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    self.request.close()

            def handle(self) -> None:
                with contextlib.suppress(OSError):
                    if self.rfile.readline(1024):
                        self.wfile.write(f"{name}\n".encode())
                        self.wfile.flush()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a failed handshake is the client's business; the tests check what it saw

        self.server = Server((LOOPBACK, 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def config(ports: dict[str, int]) -> str:
    """The Gateway, one ServiceEntry per backend and the VirtualService routing each SNI."""
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "sni-gateway", "namespace": "default"},
            "spec": {
                "servers": [
                    {
                        "port": {"number": GATEWAY_PORT, "name": "tls", "protocol": "TLS"},
                        "hosts": list(HOSTS),
                        "tls": {"mode": "PASSTHROUGH"},
                    }
                ]
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "sni-routes", "namespace": "default"},
            "spec": {
                "hosts": list(HOSTS),
                "gateways": ["sni-gateway"],
                "tls": [
                    {
                        "match": [{"port": GATEWAY_PORT, "sniHosts": [host]}],
                        "route": [{"destination": {"host": host, "port": {"number": 443}}}],
                    }
                    for host in HOSTS
                ],
            },
        },
    ]
    docs += [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": host.split(".")[0], "namespace": "default"},
            "spec": {
                "hosts": [host],
                "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
                "resolution": "STATIC",
                "location": "MESH_EXTERNAL",
                "endpoints": [{"address": LOOPBACK, "ports": {"tls": port}}],
            },
        }
        for host, port in ports.items()
    ]
    return yaml.safe_dump_all(docs)


class SniStack:
    """The two backends and one Envoy."""

    def __init__(self, work: Path, group: ProcessGroup, engine: str) -> None:
        self.backends: dict[str, TlsBackend] = {}
        for host in HOSTS:
            self.backends[host] = TlsBackend(host.split(".")[0], *self_signed(work, host))
        path = work / "config.yaml"
        path.write_text(config({host: b.port for host, b in self.backends.items()}))
        analysis = analyze([path])
        assert analysis.ok, [d.render() for d in analysis.errors]
        self.port, admin = free_port(), free_port()
        options = Options(
            extproc=(f"unix:{work}/no-serve.sock",),
            mesh_port=free_port(),
            admin_port=admin,
            bind_ports={GATEWAY_PORT: self.port},
            access_log=str(work / "access.log"),
        )
        envoy_yaml, warnings = bootstrap([path], work / "envoy.yaml", options, engine)
        assert warnings == [d.code for d in analysis.diagnostics] == []
        start_envoy(group, envoy_yaml, admin)

    def exchange(self, sni: str | None, context: ssl.SSLContext) -> tuple[bytes, str]:
        """One TLS connection through the gateway port with ``sni``: (the server's certificate
        in DER, the answer line, "" when the connection is closed after the handshake)."""
        data = b""
        with (
            socket.create_connection((LOOPBACK, self.port), timeout=CONNECT_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname=sni) as conn,
        ):
            cert = conn.getpeercert(binary_form=True)
            assert cert is not None
            conn.sendall(b"hello meshroute\n")
            with contextlib.suppress(ConnectionResetError, ssl.SSLEOFError):
                while not data.endswith(b"\n") and len(data) < 4096:  # bounded: timeout or size
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        return cert, data.decode(errors="replace")

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()


def trusting(cert: Path) -> ssl.SSLContext:
    """A client context that trusts ``cert`` alone and checks the host name."""
    return ssl.create_default_context(cafile=str(cert))


def trusting_anything() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture(scope="module")
def sni_stack(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SniStack]:
    work = tmp_path_factory.mktemp(f"tls-passthrough-{engine}")
    with ProcessGroup(work / "logs") as group:  # stops Envoy whatever happens
        stack: SniStack | None = None
        try:
            stack = SniStack(work, group, engine)
            yield stack
        finally:
            if stack is not None:
                stack.close()


@pytest.mark.parametrize("host", HOSTS)
def test_sni_reaches_its_backend_with_the_backends_own_certificate(sni_stack: SniStack, host: str) -> None:
    backend = sni_stack.backends[host]
    before = backend.connections
    for _ in range(3):
        cert, answer = sni_stack.exchange(host, trusting(backend.cert))
        assert cert == ssl.PEM_cert_to_DER_cert(backend.cert.read_text())
        assert answer == f"{host.split('.')[0]}\n"
    assert backend.connections == before + 3


def test_certificate_is_the_backends_not_the_others(sni_stack: SniStack) -> None:
    """SNI a.example.com while trusting only b's certificate: the handshake reaches a, whose
    certificate b's does not vouch for."""
    with pytest.raises(ssl.SSLCertVerificationError):
        sni_stack.exchange("a.example.com", trusting(sni_stack.backends["b.example.com"].cert))


@pytest.mark.parametrize("sni", ["c.example.com", None])
def test_unknown_or_missing_sni_is_closed(sni_stack: SniStack, sni: str | None) -> None:
    """No filter chain names the SNI: Envoy closes the connection during the handshake, and no
    backend sees it (the client does not even check certificates here)."""
    before = {h: b.connections for h, b in sni_stack.backends.items()}
    for _ in range(3):
        with pytest.raises(OSError) as failure:
            sni_stack.exchange(sni, trusting_anything())
        # Closed (reset or EOF), not a timeout or a certificate the client refused.
        assert isinstance(failure.value, (ConnectionError, ssl.SSLEOFError)), repr(failure.value)
    assert {h: b.connections for h, b in sni_stack.backends.items()} == before
