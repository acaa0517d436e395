"""Operating `serve --workers 2` behind a real Envoy: one /metrics endpoint counting every
decision of both workers, one compile per config change for both workers, and Envoy's gRPC health
checks draining a worker on SIGTERM without failing a request.

Extproc only, by nature: serve's workers, /metrics and health checks do not exist with the
embedded engine (its counterparts, the module's stats on Envoy's /stats/prometheus and a table
Envoy refuses, are in test_envoy_features.py and test_adversarial.py)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshroute.envoy.options import EXTPROC
from meshroute.procs import ProcessGroup, wait_until
from tests.e2e.engines import only_engine
from tests.e2e.feature_stack import OUTCOME_REQUESTS, FeatureStack, Samples

pytestmark = only_engine(EXTPROC)
SENT = OUTCOME_REQUESTS


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def compile_lines(stack: FeatureStack) -> int:
    assert stack.serve is not None
    return stack.serve.log.read_text().count("compiled config: ")


@pytest.fixture(scope="module")
def stack(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStack]:
    work = tmp_path_factory.mktemp("operations")
    with ProcessGroup(work / "logs") as group:
        stack = FeatureStack(work, group, workers=2, metrics=True, engine=engine)
        try:
            yield stack
        finally:
            stack.close()


def test_one_metrics_endpoint_counts_every_decision_of_both_workers(stack: FeatureStack) -> None:
    before = stack.metrics()
    total = 0
    for outcome, (send, status, count) in SENT.items():
        for _ in range(count):
            assert send(stack).status == status, outcome
        total += count
    # Both workers answered some of them (Envoy round-robins the ext_proc streams).
    wait_until(lambda: all(s["counters"]["streams_started"] for s in stack.statuses()), 15, "both workers")
    # Counted before the answer is written: what Envoy answered is already on the endpoint.
    after = stack.metrics()
    count_name = "meshroute_stream_seconds_count"
    for outcome, (_send, _status, count) in SENT.items():
        sent = value(after, "meshroute_decisions_total", outcome=outcome)
        assert sent - value(before, "meshroute_decisions_total", outcome=outcome) == count, outcome
    assert value(after, "meshroute_streams_total") - value(before, "meshroute_streams_total") >= total
    assert value(after, count_name) - value(before, count_name) == total
    buckets = [v for (name, labels), v in after.items() if name == "meshroute_stream_seconds_bucket"]
    assert len(buckets) == 17 and max(buckets) == value(after, count_name)  # 16 bounds + "+Inf"
    assert value(after, "meshroute_stream_failures_total") == 0
    # Each worker counts its initial load; each reports the generation it serves.
    assert value(after, "meshroute_reloads_total", result="ok") >= 2
    assert ("meshroute_reloads_total", (("result", "rejected"),)) in after
    generations = [value(after, "meshroute_config_generation", worker=str(i)) for i in range(2)]
    assert generations[0] == generations[1] >= 1
    assert value(after, "meshroute_compile_seconds_count") >= 1


def test_a_change_is_compiled_once_for_both_workers(stack: FeatureStack) -> None:
    before, lines = stack.metrics(), compile_lines(stack)
    generation = stack.status("generation")
    to_v2 = stack.config_text.replace(
        "{uri: {exact: /}}]\n    route: [{destination: {host: echo.test, subset: v1}}]",
        "{uri: {exact: /}}]\n    route: [{destination: {host: echo.test, subset: v2}}]",
    )
    assert to_v2 != stack.config_text
    try:
        stack.apply(to_v2)
        wait_until(lambda: stack.status("generation") == generation + 1, 15, "both on the new generation")
        assert {stack.mesh("echo.test", "/v1").header("x-echo-server") for _ in range(20)} == {"v2"}
        after = stack.metrics()
        assert compile_lines(stack) == lines + 1
        compiles = "meshroute_compile_seconds_count"
        assert value(after, compiles) - value(before, compiles) == 1
        for worker in ("0", "1"):
            assert value(after, "meshroute_config_generation", worker=worker) == generation + 1
        # each worker swapped: its reloads counter says so (the endpoint sums the workers)
        reloads = value(after, "meshroute_reloads_total", result="ok")
        assert reloads - value(before, "meshroute_reloads_total", result="ok") == 2

        # A bad change: compiled (and rejected) once, both workers report it and keep serving.
        stack.apply(to_v2.replace("redirectCode: 302", "redirectCode: 200"), ok=False)
        assert compile_lines(stack) == lines + 2
        assert all(s["generation"] == generation + 1 and s["errors"] for s in stack.statuses())
        assert stack.mesh("echo.test", "/redirect").status == 302
        rejected = value(stack.metrics(), "meshroute_reloads_total", result="rejected")
        assert rejected - value(before, "meshroute_reloads_total", result="rejected") == 2
    finally:
        stack.apply(stack.config_text)
    assert compile_lines(stack) == lines + 3


@pytest.fixture
def drained(engine: str, tmp_path: Path) -> Iterator[FeatureStack]:
    with ProcessGroup(tmp_path / "logs") as group:
        stack = FeatureStack(tmp_path, group, workers=2, engine=engine)
        try:
            yield stack
        finally:
            stack.close()


def test_sigterm_to_one_worker_drains_it_without_failing_a_request(drained: FeatureStack) -> None:
    stack = drained
    wait_until(lambda: stack.extproc_health() == ["healthy", "healthy"], 15, "Envoy: both workers healthy")
    first, second = stack.statuses()
    assert stack.serve is not None
    with stack.traffic("echo.test", "/v1", min_requests=40) as traffic:
        wait_until(lambda: traffic.sent >= 20, 15, "traffic through both workers")
        os.kill(first["pid"], signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{first['pid']}"), 15, "worker 0 to exit")
        wait_until(lambda: "failed_active_hc" in stack.extproc_health()[0], 15, "Envoy: worker 0 unhealthy")
        at_exit = traffic.sent
        wait_until(lambda: traffic.sent >= at_exit + 20, 15, "traffic on the remaining worker")
    assert traffic.failed == [], Counter(traffic.failed)
    log = stack.serve.log.read_text()
    assert "stopping (Envoy's health check saw NOT_SERVING)" in log, log[-3000:]
    assert "worker 0 drained and exited; 1 still serving" in log
    assert stack.serve.alive()
    # The requests after worker 0 left were answered by worker 1 (its status is rewritten each second).
    started = second["counters"]["streams_started"] + 20
    wait_until(lambda: stack.statuses()[1]["counters"]["streams_started"] >= started, 15, "worker 1's count")
    assert stack.mesh("echo.test", "/v1").status == 200
