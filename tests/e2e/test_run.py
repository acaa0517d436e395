"""``meshroute run``: a real Envoy (+ serve with the extproc engine, or the dynamic module with the
embedded engine) following the config files live: routes (serve's copy / IR + ECDS), clusters
(CDS) and Gateway listeners (LDS) change without an Envoy restart and without a failed request;
a bad config keeps the last good one serving; SIGTERM stops everything with exit 0.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from meshroute.procs import LOOPBACK, Proc, ProcessGroup, free_port
from tests.e2e.echo import Echo
from tests.e2e.feature_stack import Response, request

# Gateway server ports added live, each bound on a free port (--bind-port): HTTP, TCP, HTTPS.
NEW_GATEWAY_PORT, TCP_PORT, TLS_PORT = 8090, 8091, 8092
START_TIMEOUT = 60.0
CHANGE_TIMEOUT = 15.0  # bounded waits for a change to show; the measured times are printed

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v1, namespace: default}}
spec: {{address: 127.0.0.1, ports: {{http: {v1}}}, labels: {{app: echo, version: v1}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v2, namespace: default}}
spec: {{address: 127.0.0.1, ports: {{http: {v2}}}, labels: {{app: echo, version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo.test
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""
ROUTE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.test]
  http:
  - route: [{{destination: {{host: echo.test, subset: {subset}}}}}]
"""
# A new service (its own cluster) reached through the mesh and through a new Gateway port.
NEW_SERVICE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: fresh, namespace: default}}
spec:
  hosts: [fresh.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {v2}}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - {{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: ["*"]}}
  - {{port: {{number: {tcp_port}, name: tcp, protocol: TCP}}, hosts: ["*"]}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: fresh, namespace: default}}
spec:
  hosts: [fresh.test]
  gateways: [edge, mesh]
  http:
  - route: [{{destination: {{host: fresh.test}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: fresh-tcp, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [edge]
  tcp:
  - route: [{{destination: {{host: {tcp_host}, {tcp_subset}port: {{number: 80}}}}}}]
"""
# Envoy, not validation, rejects this one: the certificate file exists but holds no certificate.
# (A file that does not exist never reaches Envoy: envoy-config leaves that server out with a
# warning, tests/envoy/test_envoy_validate.py.)
BOGUS_CERTIFICATE = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: https, protocol: HTTPS}}
    hosts: ["*"]
    tls: {{mode: SIMPLE, serverCertificate: "{cert}", privateKey: "{key}"}}
"""
INVALID_ROUTE = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  http:
  - route:
    - {destination: {host: echo.test, subset: v1}, weight: 70}
    - {destination: {host: echo.test, subset: v2}, weight: 70}
    timeout: -1s
"""


@dataclass
class Traffic:
    """Requests sent in a background thread; every answer's (status, server)."""

    answers: list[tuple[int, str | None]] = field(default_factory=list)

    @property
    def failed(self) -> list[tuple[int, str | None]]:
        return [a for a in self.answers if a[0] != 200]


class Run:
    """``meshroute run`` on a config directory, two echo upstreams, and the files it watches."""

    def __init__(self, engine: str, work: Path, group: ProcessGroup, workers: int = 1) -> None:
        self.engine = engine
        self.work = work
        self.v1, self.v2 = Echo("v1"), Echo("v2")
        self.config = work / "config"
        self.config.mkdir()
        self.write("services.yaml", SERVICES.format(v1=self.v1.port, v2=self.v2.port))
        self.write("routes.yaml", ROUTE.format(subset="v1"))
        self.mesh_port, self.admin_port, self.gateway_port = free_port(), free_port(), free_port()
        self.tcp_port, self.tls_port = free_port(), free_port()
        args = [sys.executable, "-m", "meshroute", "run", str(self.config), "--engine", engine,
                "--mesh-port", str(self.mesh_port), "--admin-port", str(self.admin_port),
                "--bind-port", f"{NEW_GATEWAY_PORT}={self.gateway_port}",
                "--bind-port", f"{TCP_PORT}={self.tcp_port}", "--bind-port", f"{TLS_PORT}={self.tls_port}",
                "--work-dir", str(work / "run"), "--workers", str(workers)]  # fmt: skip
        self.proc: Proc = group.start(f"run-{engine}", args)
        self.proc.wait_until(lambda: self.served_by("echo.test") == "v1", START_TIMEOUT, "serving echo.test")

    def write(self, name: str, text: str) -> None:
        """Replace a config file atomically (written beside the watched directory, then renamed)."""
        tmp = self.work / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(self.config / name)

    def mesh(self, host: str, path: str = "/") -> Response:
        return request(self.mesh_port, host, path)

    def served_by(self, host: str, port: int | None = None) -> str | None:
        """Which echo answered (None: no 200 answer, or no listener)."""
        try:
            r = request(port or self.mesh_port, host, "/")
        except (OSError, http.client.HTTPException):
            return None
        return r.header("x-echo-server") if r.status == 200 else None

    def wait_for(self, ready: Callable[[], bool], what: str) -> float:
        """Seconds until ``ready`` (bounded); fails with run's log."""
        start = time.monotonic()
        self.proc.wait_until(ready, CHANGE_TIMEOUT, what)
        return time.monotonic() - start

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")

    @contextlib.contextmanager
    def traffic(self, host: str, min_requests: int = 50, max_seconds: float = 30) -> Iterator[Traffic]:
        """Mesh requests back to back in a thread while the block runs (and at least ``min_requests``)."""
        result = Traffic()
        stop = threading.Event()

        def loop() -> None:
            deadline = time.monotonic() + max_seconds
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    r = self.mesh(host)
                    result.answers.append((r.status, r.header("x-echo-server")))
                except (OSError, http.client.HTTPException) as exc:
                    result.answers.append((0, type(exc).__name__))

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield result
            deadline = time.monotonic() + 10
            while len(result.answers) < min_requests and thread.is_alive() and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            stop.set()
            thread.join(20)

    def envoy_clusters(self) -> set[str]:
        with urllib.request.urlopen(
            f"http://{LOOPBACK}:{self.admin_port}/clusters?format=json", timeout=5
        ) as r:
            data = json.loads(r.read())
        return {c["name"] for c in data.get("cluster_statuses", [])}

    def envoy_pids(self) -> set[int]:
        return {p for p in descendants(self.proc.pid) if "envoy" in _cmdline(p)}

    def close(self) -> None:
        self.v1.close()
        self.v2.close()


@pytest.fixture(scope="module")
def running(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    work = tmp_path_factory.mktemp(f"run-{engine}")
    with ProcessGroup(work / "logs") as group:
        run = Run(engine, work, group)
        try:
            yield run
        finally:
            run.close()


def test_route_change_is_live_without_failed_requests(running: Run) -> None:
    envoy = running.envoy_pids()
    with running.traffic("echo.test") as traffic:
        start = time.monotonic()
        running.write("routes.yaml", ROUTE.format(subset="v2"))
        running.wait_for(lambda: bool(traffic.answers) and traffic.answers[-1][1] == "v2", "routing to v2")
        switched = time.monotonic() - start
        after = len(traffic.answers)
        running.wait_for(lambda: len(traffic.answers) >= after + 30, "30 more requests")
    print(f"{running.engine}: edit -> v2 answers in {switched:.2f} s, {len(traffic.answers)} requests")
    assert traffic.failed == []
    # once switched it stays switched (the old routes never come back)
    assert {server for _, server in traffic.answers[after:]} == {"v2"}
    assert running.envoy_pids() == envoy  # the same Envoy: no restart
    assert switched < 3.0  # within a second when the machine is idle; printed above
    if running.engine == "embedded":  # the edit reached the module as a patch of its table
        assert list((running.work / "run" / "live").glob("patch-*-*.json"))
    # back to v1 for the next tests
    running.write("routes.yaml", ROUTE.format(subset="v1"))
    running.wait_for(lambda: running.served_by("echo.test") == "v1", "routing to v1 again")


def _fresh(run: Run, tcp_to_echo_v1: bool = False) -> str:
    host, subset = ("echo.test", "subset: v1, ") if tcp_to_echo_v1 else ("fresh.test", "")
    return NEW_SERVICE.format(
        v2=run.v2.port, port=NEW_GATEWAY_PORT, tcp_port=TCP_PORT, tcp_host=host, tcp_subset=subset
    )


def test_new_cluster_and_gateway_ports_follow_the_files(running: Run) -> None:
    assert running.served_by("fresh.test", running.gateway_port) is None  # no such listener yet
    with running.traffic("echo.test") as traffic:
        start = time.monotonic()
        running.write("fresh.yaml", _fresh(running))
        running.wait_for(
            lambda: running.served_by("fresh.test", running.gateway_port) == "v2", "new Gateway port"
        )
        appeared = time.monotonic() - start
        # the running mesh listener had the new routes before the new listener existed
        assert running.served_by("fresh.test") == "v2"
        assert "outbound|80||fresh.test" in running.envoy_clusters()
        # the TCP listener (tcp_proxy, routed when the files are written) carries HTTP just as well
        assert running.served_by("anything", running.tcp_port) == "v2"
        running.write("fresh.yaml", _fresh(running, tcp_to_echo_v1=True))
        running.wait_for(lambda: running.served_by("anything", running.tcp_port) == "v1", "TCP route changed")
        # requests in flight on the cluster and the listener that go away complete
        slow: list[tuple[str, Response]] = []
        threads = [
            threading.Thread(
                target=lambda p=port: slow.append((str(p), request(p, "fresh.test", "/sleep/1500")))
            )
            for port in (running.mesh_port, running.gateway_port)
        ]
        for thread in threads:
            thread.start()
        running.wait_for(lambda: running.v2.count("/sleep/1500") == 2, "slow requests upstream")
        start = time.monotonic()
        os.unlink(running.config / "fresh.yaml")
        running.wait_for(lambda: "outbound|80||fresh.test" not in running.envoy_clusters(), "cluster removed")
        running.wait_for(
            lambda: running.served_by("fresh.test", running.gateway_port) is None, "listener gone"
        )
        running.wait_for(lambda: running.served_by("anything", running.tcp_port) is None, "TCP listener gone")
        gone = time.monotonic() - start
        for thread in threads:
            thread.join(15)
    assert sorted((r.status, r.header("x-echo-server")) for _, r in slow) == [(200, "v2"), (200, "v2")]
    print(f"{running.engine}: new port + cluster live in {appeared:.2f} s, removed in {gone:.2f} s")
    assert traffic.failed == []
    log = running.log()
    assert "listeners +gateway_8090 +gateway_8091" in log and "clusters +outbound|80||fresh.test" in log
    assert "listeners ~gateway_8091" in log  # the TCP route change updated the listener in place


def test_config_envoy_rejects_is_reported(running: Run) -> None:
    before = running.log().count("Envoy rejected lds.yaml")
    with running.traffic("echo.test") as traffic:
        bogus = running.work / "bogus"
        bogus.mkdir(exist_ok=True)
        for name in ("cert.pem", "key.pem"):
            (bogus / name).write_text("not PEM\n")
        cert, key = bogus / "cert.pem", bogus / "key.pem"
        running.write("secure.yaml", BOGUS_CERTIFICATE.format(port=TLS_PORT, cert=cert, key=key))
        running.wait_for(
            lambda: running.log().count("Envoy rejected lds.yaml") > before, "rejection reported"
        )
        os.unlink(running.config / "secure.yaml")
        running.wait_for(lambda: "listeners -gateway_8092" in running.log(), "rejected listener dropped")
    assert traffic.failed == []
    assert {server for _, server in traffic.answers} == {"v1"}
    # Envoy's own reason, from its log
    assert (
        "Filesystem config update rejected: Error adding/updating listener(s) gateway_8092" in running.log()
    )
    assert "/bogus/" in running.log()
    running.write("routes.yaml", ROUTE.format(subset="v2"))
    running.wait_for(lambda: running.served_by("echo.test") == "v2", "changes apply again")
    running.write("routes.yaml", ROUTE.format(subset="v1"))
    running.wait_for(lambda: running.served_by("echo.test") == "v1", "routing to v1 again")


def test_invalid_config_keeps_the_last_good_one(running: Run) -> None:
    before = running.log().count("config change rejected")
    with running.traffic("echo.test") as traffic:
        running.write("routes.yaml", INVALID_ROUTE)
        running.wait_for(lambda: running.log().count("config change rejected") > before, "rejection reported")
    assert traffic.failed == []
    assert {server for _, server in traffic.answers} == {"v1"}
    log = running.log()
    assert "error[" in log and "routes.yaml" in log and "still serving generation" in log
    running.write("routes.yaml", ROUTE.format(subset="v2"))
    running.wait_for(lambda: running.served_by("echo.test") == "v2", "a good config after the bad one")
    running.write("routes.yaml", ROUTE.format(subset="v1"))
    running.wait_for(lambda: running.served_by("echo.test") == "v1", "routing to v1 again")


def test_two_workers_then_sigterm_stops_everything(engine: str, tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "logs")
    run = Run(engine, tmp_path, group, workers=2)
    try:
        # a change with two serve workers: run waits for both to load it
        run.write("routes.yaml", ROUTE.format(subset="v2"))
        run.wait_for(lambda: run.served_by("echo.test") == "v2", "routing to v2")
        assert "config change not applied" not in run.log()
        children = descendants(run.proc.pid)
        assert run.envoy_pids(), children
        if engine == "extproc":
            assert any("meshroute serve" in _cmdline(p) for p in children), children
        run.proc.signal(signal.SIGTERM)
        code = run.proc.popen.wait(30)
        assert code == 0, run.log()
        assert "meshroute run: stopped" in run.log()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [p for p in children if _alive(p)]:
            time.sleep(0.05)
        assert [(p, _cmdline(p)) for p in children if _alive(p)] == []
    finally:
        group.stop_all()
        run.close()


# === processes ===


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
