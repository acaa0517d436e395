"""`meshroute serve` as a subprocess: start-up errors, SIGTERM, hot reload, several workers."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshroute.extproc import CLUSTER_HEADER
from meshroute.procs import Proc

from .conftest import PROCESS, TASKS, headers_request, mutation, write_config

SERVE = [sys.executable, "-m", "meshroute", "serve"]
BAD_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: default}
spec:
  hosts: [details]
  http:
  - redirect: {uri: /x, redirectCode: 200}
"""


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory for unix sockets (sun_path is limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="mr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.stop()


def start(procs: list[Proc], tmp_path: Path, args: list[str], name: str = "serve") -> Proc:
    proc = Proc(name, [*SERVE, *args], tmp_path / f"{name}.log")
    procs.append(proc)
    return proc


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        status: dict[str, Any] = json.loads(path.read_text())
        return status
    except (OSError, ValueError):
        return None


def wait_status(proc: Proc, path: Path, check: Any = lambda s: True, timeout: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def ready() -> bool:
        status = read_status(path)
        if status is not None and check(status):
            found.update(status)
            return True
        return False

    proc.wait_until(ready, timeout, what=f"status {path.name}")
    return found


def cluster_for(target: str, user: str | None = None) -> str:
    headers = [("end-user", user)] if user else []
    with grpc.insecure_channel(target) as channel:
        [raw] = list(
            channel.stream_stream(PROCESS)(
                iter([headers_request(headers=headers).SerializeToString()]), timeout=5
            )
        )
    sets, _ = mutation(pb.ProcessingResponse.FromString(raw))
    [(value, _append)] = sets[CLUSTER_HEADER]
    return value


def test_bad_initial_config_exits_1_with_diagnostics(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "cfg")
    (cfg / "broken.yaml").write_text(BAD_VS)
    out = subprocess.run(
        [*SERVE, str(cfg), "--listen", f"unix:{tmp_path}/s.sock"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "vs-redirect-code-invalid" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_listen_address_exits_2(tmp_path: Path) -> None:
    out = subprocess.run(
        [*SERVE, str(tmp_path), "--listen", "nowhere"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "listen address" in out.stderr


def test_sigterm_lets_an_in_flight_stream_finish_then_exits_0(
    tmp_path: Path, sock_dir: Path, procs: list[Proc]
) -> None:
    cfg = write_config(tmp_path / "cfg", "virtual-service-reviews-test-v2.yaml")
    status = tmp_path / "status.json"
    target = f"unix:{sock_dir}/s.sock"
    proc = start(procs, tmp_path, [str(cfg), "--listen", target, "--status-file", str(status)])
    wait_status(proc, status)
    requests: queue.Queue[bytes | None] = queue.Queue()

    def feed() -> Iterator[bytes]:
        while (item := requests.get()) is not None:
            yield item

    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        assert (
            health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        call = channel.stream_stream(PROCESS)(feed(), timeout=10)
        # The stream is open on the server once it shows in the counters (refreshed every second).
        wait_status(proc, status, lambda s: s["counters"]["streams_started"] >= 1)
        proc.signal(signal.SIGTERM)
        # past the drain, the server is stopping: only the in-flight stream keeps serve alive now
        # (Proc.wait_until fails if serve exits first)
        proc.wait_until(lambda: "in-flight streams get" in proc.log_tail(5), what="stopping")
        assert proc.alive(), "the in-flight stream must hold the shutdown (grace period)"
        requests.put(headers_request(headers=[("end-user", "jason")]).SerializeToString())
        resp = pb.ProcessingResponse.FromString(next(call))
        requests.put(None)
    sets, _ = mutation(resp)
    assert sets[CLUSTER_HEADER] == [("outbound|9080|v2|reviews.default.svc.cluster.local", False)]
    assert proc.popen.wait(10) == 0
    assert "Traceback" not in proc.log_tail(100)


def test_hot_reload_applies_good_changes_and_rejects_bad_ones(
    tmp_path: Path, sock_dir: Path, procs: list[Proc]
) -> None:
    cfg = write_config(tmp_path / "cfg")
    status = tmp_path / "status.json"
    target = f"unix:{sock_dir}/s.sock"
    args = [str(cfg), "--listen", target, "--status-file", str(status), "--reload-interval", "0.1"]
    proc = start(procs, tmp_path, args)
    first = wait_status(proc, status)
    assert (first["generation"], first["ok"], first["errors"]) == (1, True, [])
    v1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
    v2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert cluster_for(target, "jason") == v1

    # A good change (a new file): applied.
    vs_file = cfg / "zz-reviews-test-v2.yaml"
    vs_file.write_text((TASKS / "virtual-service-reviews-test-v2.yaml").read_text())  # replaces VS reviews
    second = wait_status(proc, status, lambda s: s["generation"] == 2)
    assert second["ok"] is True
    assert cluster_for(target, "jason") == v2

    # A bad change: rejected, reported, and the last good config keeps serving.
    (cfg / "broken.yaml").write_text(BAD_VS)
    third = wait_status(proc, status, lambda s: s["attempts"] == 3)
    assert third["ok"] is False and third["generation"] == 2
    assert any("vs-redirect-code-invalid" in e for e in third["errors"])
    assert third["counters"]["reloads_rejected"] == 1
    assert cluster_for(target, "jason") == v2
    assert "config change rejected" in proc.log_tail(200)

    # Removing the bad file is a change too.
    (cfg / "broken.yaml").unlink()
    fourth = wait_status(proc, status, lambda s: s["generation"] == 3)
    assert fourth["ok"] is True and fourth["errors"] == []


def test_two_workers_serve_two_sockets(tmp_path: Path, sock_dir: Path, procs: list[Proc]) -> None:
    cfg = write_config(tmp_path / "cfg", "virtual-service-reviews-test-v2.yaml")
    status = tmp_path / "status.json"
    listen = f"unix:{sock_dir}/s.sock"
    proc = start(
        procs, tmp_path, [str(cfg), "--listen", listen, "--workers", "2", "--status-file", str(status)]
    )
    statuses = [wait_status(proc, Path(f"{status}.{i}")) for i in range(2)]
    assert {s["address"] for s in statuses} == {f"{listen}.0", f"{listen}.1"}
    assert len({s["pid"] for s in statuses} | {proc.pid}) == 3
    for i in range(2):
        assert cluster_for(f"{listen}.{i}", "jason") == "outbound|9080|v2|reviews.default.svc.cluster.local"
    proc.signal(signal.SIGTERM)
    assert proc.popen.wait(15) == 0


def test_a_worker_that_cannot_bind_fails_the_whole_serve(tmp_path: Path, procs: list[Proc]) -> None:
    cfg = write_config(tmp_path / "cfg")
    proc = start(procs, tmp_path, [str(cfg), "--listen", "unix:/nonexistent-dir/s.sock", "--workers", "2"])
    assert proc.popen.wait(30) != 0
    assert "cannot listen" in proc.log_tail(50)


# === operations: JSON logs, /metrics, the drain Envoy's health checks see ===


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_json_logs_and_metrics_of_one_worker(tmp_path: Path, sock_dir: Path, procs: list[Proc]) -> None:
    from meshroute.procs import free_port

    cfg = write_config(tmp_path / "cfg", "virtual-service-reviews-test-v2.yaml")
    status, target, port = tmp_path / "status.json", f"unix:{sock_dir}/s.sock", free_port()
    args = [str(cfg), "--listen", target, "--status-file", str(status), "--log-format", "json",
            "--metrics", f"127.0.0.1:{port}"]  # fmt: skip
    proc = start(procs, tmp_path, args)
    wait_status(proc, status)
    assert cluster_for(target, "jason") == "outbound|9080|v2|reviews.default.svc.cluster.local"
    samples = scrape(port)
    assert samples[("meshroute_streams_total", ())] == 1
    assert samples[("meshroute_decisions_total", (("outcome", "route"),))] == 1
    assert samples[("meshroute_decisions_total", (("outcome", "no_route"),))] == 0
    assert samples[("meshroute_reloads_total", (("result", "ok"),))] == 1
    assert samples[("meshroute_config_generation", (("worker", "0"),))] == 1
    assert samples[("meshroute_compile_seconds_count", ())] == 1
    proc.signal(signal.SIGTERM)
    assert proc.popen.wait(15) == 0
    lines = [json.loads(line) for line in proc.log.read_text().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg", "pid"} <= set(line) for line in lines), lines
    serving = [line for line in lines if line["msg"].startswith("serving ext_proc")]
    assert serving and serving[0]["worker"] == 0 and serving[0]["address"] == target
    assert any(line["msg"].startswith("compiled config: ok") and "compile_ms" in line for line in lines)


def test_a_metrics_port_in_use_fails_serve(tmp_path: Path, procs: list[Proc]) -> None:
    import socket

    cfg = write_config(tmp_path / "cfg")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for workers in ("1", "2"):
            args = [str(cfg), "--listen", f"unix:{tmp_path}/s{workers}.sock", "--workers", workers,
                    "--metrics", f"127.0.0.1:{port}"]  # fmt: skip
            proc = start(procs, tmp_path, args, name=f"serve{workers}")
            assert proc.popen.wait(30) == 1
            assert "cannot serve metrics" in proc.log_tail(50)


def test_sigterm_keeps_taking_streams_until_the_health_checker_saw_not_serving(
    tmp_path: Path, sock_dir: Path, procs: list[Proc]
) -> None:
    import threading

    cfg = write_config(tmp_path / "cfg", "virtual-service-reviews-test-v2.yaml")
    status, target = tmp_path / "status.json", f"unix:{sock_dir}/s.sock"
    proc = start(procs, tmp_path, [str(cfg), "--listen", target, "--status-file", str(status)])
    wait_status(proc, status)
    answers: list[int] = []
    first_not_serving, resume, stop = threading.Event(), threading.Event(), threading.Event()

    def checker() -> None:  # Envoy's health checker, faster than Envoy's interval
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while not stop.wait(0.05):
                try:
                    answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status
                except grpc.RpcError:
                    return  # the server stopped
                answers.append(answer)
                if answer == health_pb2.HealthCheckResponse.NOT_SERVING and not first_not_serving.is_set():
                    first_not_serving.set()
                    resume.wait(10)  # hold the second NOT_SERVING until the test's stream is done

    thread = threading.Thread(target=checker, daemon=True)
    thread.start()
    try:
        wait_status(proc, status, lambda s: len(answers) >= 2)  # the worker knows it is checked
        proc.signal(signal.SIGTERM)
        assert first_not_serving.wait(10)
        # Draining: NOT_SERVING, yet a new stream is still answered (Envoy may not know yet).
        assert cluster_for(target, "jason") == "outbound|9080|v2|reviews.default.svc.cluster.local"
        assert proc.alive()
        resume.set()
        assert proc.popen.wait(15) == 0
    finally:
        resume.set()
        stop.set()
        thread.join(10)
    assert answers[0] == health_pb2.HealthCheckResponse.SERVING
    assert answers.count(health_pb2.HealthCheckResponse.NOT_SERVING) >= 2
    assert "stopping (Envoy's health check saw NOT_SERVING)" in proc.log_tail(50)
    assert read_status(status)["draining"] is True  # type: ignore[index]
