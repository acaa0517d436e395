"""Istio's TCP traffic shifting task through a real Envoy: Gateway port 31400 routed by tcp_proxy.

Two TCP echo servers stand in for tcp-echo v1 and v2 (each answers a line with ``one `` / ``two ``
in front, as Istio's tcp-echo-server), reached through WorkloadEntries that the tcp-echo Service's
selector picks up. No serve: TCP is routed by Envoy alone (the ext_proc cluster points at a
socket nobody listens on; with the embedded engine, the HTTP listeners' module is loaded but
never called). Each step regenerates the bootstrap and restarts Envoy, because a TCP route is fixed
when the bootstrap is written. Both engines: their bootstraps differ in every HTTP listener and in
the clusters, and the TCP listener must not care.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from math import comb
from pathlib import Path

import pytest
import yaml

from meshroute.config import analyze
from meshroute.envoy import Options
from meshroute.envoy.process import start_envoy
from meshroute.procs import LOOPBACK, Proc, ProcessGroup, free_port
from tests.conftest import SAMPLES
from tests.e2e.engines import bootstrap

TCP_ECHO = SAMPLES / "tcp-echo"
GATEWAY_PORT = 31400
CONNECT_TIMEOUT = 5.0  # per connection, so a broken route fails fast instead of hanging


def tolerance(n: int, p: float, false_failure: float) -> int:
    """The smallest d with P(|X - np| > d) < ``false_failure`` for X ~ Binomial(n, p), exactly.

    >>> tolerance(200, 0.2, 1e-4)  # P(|X - 40| > 22) = 8.8e-5, while d = 21 gives 1.7e-4
    22
    """
    pmf = [comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    mean = n * p
    d = 0
    while sum(q for k, q in enumerate(pmf) if abs(k - mean) > d) >= false_failure:
        d += 1
    return d


SHIFT_CONNECTIONS = 200
SHIFT_SHARE = 0.2
SHIFT_TOLERANCE = tolerance(SHIFT_CONNECTIONS, SHIFT_SHARE, 1e-4)  # 22 connections = ±11 points


class TcpEcho:
    """A line echo server on 127.0.0.1 in daemon threads, answering ``<prefix> <line>``."""

    def __init__(self, prefix: str) -> None:
        self.connections = 0
        lock = threading.Lock()
        echo = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = CONNECT_TIMEOUT  # a silent client cannot hold a thread forever

            def handle(self) -> None:
                with lock:
                    echo.connections += 1
                with contextlib.suppress(OSError):
                    for line in self.rfile:
                        self.wfile.write(f"{prefix} ".encode() + line)
                        self.wfile.flush()

        self.server = socketserver.ThreadingTCPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def workload_entries(ports: dict[str, int]) -> str:
    """tcp-echo-<version> WorkloadEntries, labelled like the sample's Deployments."""
    docs = [
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "WorkloadEntry",
            "metadata": {"name": f"tcp-echo-{version}", "namespace": "default"},
            "spec": {
                "address": LOOPBACK,
                "ports": {"tcp": port},  # the Service's port named tcp (9000)
                "labels": {"app": "tcp-echo", "version": version},
            },
        }
        for version, port in ports.items()
    ]
    return yaml.safe_dump_all(docs)


class TcpStack:
    """The echo servers plus one Envoy at a time, started from a sample's config."""

    def __init__(self, work: Path, group: ProcessGroup, engine: str) -> None:
        self.work, self.group, self.engine = work, group, engine
        self.echoes = {"v1": TcpEcho("one"), "v2": TcpEcho("two")}
        self.entries = work / "workload-entries.yaml"
        self.entries.write_text(workload_entries({v: e.port for v, e in self.echoes.items()}))
        self.envoy: Proc | None = None
        self.port = 0
        self.step = 0

    def start(self, *configs: Path, warnings: tuple[str, ...] = ()) -> None:
        """(Re)generate the bootstrap from tcp-echo-services.yaml + ``configs`` and restart Envoy;
        ``warnings`` are the codes envoy-config is expected to report."""
        if self.envoy is not None:
            self.envoy.stop()
        paths = [TCP_ECHO / "tcp-echo-services.yaml", *configs, self.entries]
        analysis = analyze(paths)
        assert analysis.ok, [d.render() for d in analysis.errors]
        self.port, admin = free_port(), free_port()
        options = Options(
            extproc=(f"unix:{self.work}/no-serve.sock",),
            mesh_port=free_port(),
            admin_port=admin,
            # tcp-echo's own TCP ports get mesh listeners too (envoy/meshtcp.py): keep them off 9000/9001.
            bind_ports={GATEWAY_PORT: self.port, 9000: free_port(), 9001: free_port()},
            access_log=str(self.work / "access.log"),
        )
        self.step += 1
        step = self.step
        path, codes = bootstrap(paths, self.work / f"envoy-{step}.yaml", options, self.engine)
        assert codes == [d.code for d in analysis.diagnostics] + list(warnings)  # validation's, then ours
        self.envoy = start_envoy(self.group, path, admin, name=f"envoy-{step}")

    def reply(self) -> str:
        """One connection through the gateway port: send a line, read the answer line ("" when
        Envoy closes or resets the connection)."""
        data = b""
        with (
            socket.create_connection((LOOPBACK, self.port), timeout=CONNECT_TIMEOUT) as conn,
            contextlib.suppress(ConnectionResetError, BrokenPipeError),
        ):
            conn.sendall(b"hello meshroute\n")
            while not data.endswith(b"\n") and len(data) < 4096:  # bounded: timeout or size
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.decode(errors="replace")

    def close(self) -> None:
        for echo in self.echoes.values():
            echo.close()


@pytest.fixture(scope="module")
def tcp_stack(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TcpStack]:
    work = tmp_path_factory.mktemp(f"tcp-shifting-{engine}")
    with ProcessGroup(work / "logs") as group:  # stops every Envoy whatever happens
        stack = TcpStack(work, group, engine)
        try:
            yield stack
        finally:
            stack.close()


def test_all_v1(tcp_stack: TcpStack) -> None:
    tcp_stack.start(TCP_ECHO / "tcp-echo-all-v1.yaml")
    replies = [tcp_stack.reply() for _ in range(20)]
    assert all(r == "one hello meshroute\n" for r in replies), replies


def test_20_percent_to_v2(tcp_stack: TcpStack) -> None:
    tcp_stack.start(TCP_ECHO / "tcp-echo-all-v1.yaml", TCP_ECHO / "tcp-echo-20-v2.yaml")
    before = {v: e.connections for v, e in tcp_stack.echoes.items()}
    replies = [tcp_stack.reply() for _ in range(SHIFT_CONNECTIONS)]
    prefixes = [r.split(" ", 1)[0] for r in replies]
    assert set(prefixes) <= {"one", "two"}, sorted(set(replies))
    two = prefixes.count("two")
    expected = SHIFT_SHARE * SHIFT_CONNECTIONS
    print(f"tcp shifting: {two}/{SHIFT_CONNECTIONS} to v2 (expected {expected:.0f} ± {SHIFT_TOLERANCE})")
    assert abs(two - expected) <= SHIFT_TOLERANCE, two
    # Envoy chose per connection, and each connection reached the server its reply names.
    after = {v: e.connections - before[v] for v, e in tcp_stack.echoes.items()}
    assert after == {"v1": SHIFT_CONNECTIONS - two, "v2": two}


def test_no_matching_route_closes_connections(tcp_stack: TcpStack, tmp_path: Path) -> None:
    """A tcp route for another port leaves 31400 without a route: Envoy closes the connection
    (tcp_proxy to the endpoint-less BlackHoleCluster) and no echo server sees it."""
    other_port = tmp_path / "other-port.yaml"
    text = (TCP_ECHO / "tcp-echo-all-v1.yaml").read_text().replace("- port: 31400", "- port: 31401")
    other_port.write_text(text)
    tcp_stack.start(other_port, warnings=("envoy-tcp-no-route",))
    before = sum(e.connections for e in tcp_stack.echoes.values())
    assert [tcp_stack.reply() for _ in range(5)] == [""] * 5
    assert sum(e.connections for e in tcp_stack.echoes.values()) == before
