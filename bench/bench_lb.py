"""The proxyless client (``meshroute.client``): load balancing through the Python binding, and the
transport's overhead over a plain httpx request.

Targets (bench/README.md, "Proxyless client"): an LB pick ≤ 100 ns and a ring / Maglev build for
1 000 endpoints ≤ 5 ms — measured in Rust by criterion (``cargo bench -p meshroute-lb --bench
lb``: the ``pick/*/1000`` and ``rebuild/*_1000`` rows); here the same picks and builds through
``meshroute._core.Balancer``, Python call included — and ``MeshTransport`` ≤ +15 % over plain
httpx against the same local upstream. Targets are recorded in ``extra_info``, never asserted
(shared, noisy machine); correctness is asserted.

Run: ``.venv/bin/python -m pytest bench/bench_lb.py --benchmark-enable --benchmark-only -q -p
no:cacheprovider``.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import meshroute
from meshroute._core import Balancer
from meshroute.bookinfo import workload_entries
from meshroute.client import MeshTransport

N = 1000
ENDPOINTS = [(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}:8080", 1) for i in range(N)]
WEIGHTED = [(address, 1 + i % 5) for i, (address, _) in enumerate(ENDPOINTS)]
HASH = {"httpHeaderName": "x-user"}
POLICIES: dict[str, tuple[dict[str, Any], list[tuple[str, int]]]] = {
    "least_request_p2c": ({}, ENDPOINTS),
    "round_robin_weighted_edf": ({"loadBalancer": {"simple": "ROUND_ROBIN"}}, WEIGHTED),
    "ring_hash": ({"loadBalancer": {"consistentHash": HASH}}, ENDPOINTS),
    "maglev": ({"loadBalancer": {"consistentHash": {**HASH, "maglev": {"tableSize": 65537}}}}, ENDPOINTS),
}
PICKS = 1000  # picks per benchmark round, so the round's timer overhead is amortised


@pytest.mark.parametrize("name", list(POLICIES))
def test_pick_1000_endpoints(benchmark: Any, name: str) -> None:
    policy, endpoints = POLICIES[name]
    balancer = Balancer(endpoints, json.dumps(policy), seed=1)
    keys = [f"user-{i}" for i in range(PICKS)]
    for i in range(0, N, 3):  # some load, for least-request to compare
        balancer.start(i)
    pick = balancer.pick
    assert pick(keys[0], 0.0) is not None  # builds the schedule / ring / table

    def picks() -> None:
        for key in keys:
            pick(key, 0.0)

    benchmark(picks)
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["ns_per_pick_with_python_call"] = round(stats.stats.median / PICKS * 1e9, 1)
    benchmark.extra_info["target"] = "pick <= 100 ns (Rust, criterion pick/*/1000)"
    benchmark.extra_info["correct"] = len({pick(k, 0.0) for k in keys[:50]}) > 1


@pytest.mark.parametrize("name", ["ring_hash", "maglev"])
def test_build_1000_endpoints(benchmark: Any, name: str) -> None:
    policy, endpoints = POLICIES[name]
    text = json.dumps(policy)

    def build() -> int | None:
        return Balancer(endpoints, text, seed=1).pick("k", 0.0)

    got = benchmark(build)
    benchmark.extra_info["target"] = "build <= 5 ms"
    benchmark.extra_info["correct"] = got is not None
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["ms_per_build"] = round(stats.stats.median * 1e3, 3)


# --- The transport's overhead -------------------------------------------------------------------


# The upstream runs in a process of its own: in this one it would compete with the client for
# the GIL and make the client's own cost look larger or smaller than it is.
ECHO = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tests.e2e.echo import Echo; "
    "e = Echo('reviews-v1'); print(e.port, flush=True); sys.stdin.read()"
)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, meshroute.Mesh]]:
    """An echo server (tests/e2e/echo.py) as reviews v1 of Bookinfo, in its own process."""
    repo = str(Path(__file__).resolve().parents[1])
    cmd = [sys.executable, "-c", ECHO, repo]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            port = int(proc.stdout.readline())
            work = tmp_path_factory.mktemp("lb-bench")
            shutil.copytree(meshroute.bookinfo_path(), work / "bookinfo")
            (work / "endpoints.yaml").write_text(workload_entries({"reviews-v1": port}))
            yield port, meshroute.load(work)
        finally:
            proc.stdin.close()  # the server's stdin.read() returns: it exits


def _per_request(get: Callable[[], httpx.Response], n: int) -> tuple[float, float]:
    """Seconds per request: wall clock, and this process's CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        get()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def test_transport_overhead(benchmark: Any, upstream: tuple[int, meshroute.Mesh]) -> None:
    """MeshTransport vs plain httpx to the same upstream, interleaved in rounds: the ratios of
    the medians (wall clock, and the client's CPU) are the figures; the benchmark itself times
    the routed request."""
    port, mesh = upstream
    plain = httpx.Client()
    routed = httpx.Client(transport=MeshTransport(mesh, seed=1))
    direct_url = f"http://127.0.0.1:{port}/reviews/0"
    mesh_url = "http://reviews:9080/reviews/0"
    try:
        assert plain.get(direct_url).status_code == 200
        response = routed.get(mesh_url)
        correct = response.status_code == 200 and response.extensions["meshroute"].endpoint.endswith(
            f":{port}"
        )
        rounds: list[tuple[tuple[float, float], tuple[float, float]]] = []
        for _ in range(9):
            rounds.append(
                (
                    _per_request(lambda: plain.get(direct_url), 300),
                    _per_request(lambda: routed.get(mesh_url), 300),
                )
            )
        benchmark(lambda: routed.get(mesh_url))
    finally:
        plain.close()
        routed.close()
    for i, what in ((0, "wall"), (1, "cpu")):
        benchmark.extra_info[f"plain_{what}_us"] = round(statistics.median(a[i] for a, _ in rounds) * 1e6, 1)
        benchmark.extra_info[f"mesh_{what}_us"] = round(statistics.median(b[i] for _, b in rounds) * 1e6, 1)
        ratio = statistics.median(b[i] / a[i] for a, b in rounds)
        benchmark.extra_info[f"overhead_{what}_pct"] = round((ratio - 1) * 100, 1)
    benchmark.extra_info.update(target="transport <= +15 %", correct=correct)
