"""Per-request routing cost through the Python API (the figure users see).

Targets (bench/README.md, "Route decisions from Python" and "Scale"): one ``mesh.route()`` on
Bookinfo ≤ 2 µs median; ``route_many`` ≥ 1 M decisions/s; cost roughly flat from 10 to 10 000
routes. Targets are recorded in ``extra_info`` rather than asserted: this machine is shared and
noisy, a timing assertion would be a flaky test. Correctness *is* asserted, and stored as
``extra_info["correct"]``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest
from scenarios import BOOKINFO_EXPECTED, MIXES, SIZES, Scenario, bookinfo, generated

import meshroute
from tests.oracle import Oracle, Request

BATCH = 10_000
SAMPLE = 50  # decisions per scenario checked against the oracle


@cache
def loaded(name: str) -> tuple[Scenario, meshroute.Mesh]:
    """Each scenario compiled once per session (compile cost is bench_compile's business)."""
    if name == "bookinfo":
        scenario = bookinfo(BATCH)
    else:
        mix, n = name.rsplit("-", 1)
        scenario = generated(int(n), mix, BATCH)
    return scenario, scenario.load()


def oracle_agrees(scenario: Scenario, mesh: meshroute.Mesh) -> bool:
    """The first SAMPLE distinct requests: Rust decision ∈ the oracle's allowed set."""
    oracle = Oracle(scenario.docs)
    seen: set[str] = set()
    for req in scenario.requests:
        if repr(req) in seen:
            continue
        seen.add(repr(req))
        host, path, method, headers = req
        got = mesh.route(host, path, method, headers, seed=0)
        allowed = oracle.route(Request(host, path, method, tuple(headers.items())))
        if (got.outcome, got.cluster if got.outcome == "route" else None) not in {
            (o.outcome, o.cluster) for o in allowed
        }:
            return False
        if len(seen) >= SAMPLE:
            break
    return True


def record_rate(benchmark: Any, per_round: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats:  # None when run with --benchmark-disable (plain correctness run)
        median = stats.stats.median
        benchmark.extra_info["decisions_per_s"] = round(per_round / median)
        benchmark.extra_info["ns_per_decision"] = round(median / per_round * 1e9)


def test_route_bookinfo_single(benchmark: Any) -> None:
    benchmark.group = "bookinfo"
    _, mesh = loaded("bookinfo")
    (req, cluster) = BOOKINFO_EXPECTED[0]
    host, path, method, headers = req
    route = mesh.route
    decision = benchmark(route, host, path, method, headers)
    correct = decision.cluster == cluster and all(mesh.route(*r).cluster == c for r, c in BOOKINFO_EXPECTED)
    benchmark.extra_info["correct"] = correct
    assert correct
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["target_median_us"] = 2.0
        benchmark.extra_info["target_met"] = stats.stats.median <= 2e-6


def test_route_many_bookinfo(benchmark: Any) -> None:
    benchmark.group = "bookinfo"
    scenario, mesh = loaded("bookinfo")
    decisions = benchmark(mesh.route_many, scenario.requests, seed=1)
    expected = [c for _, c in BOOKINFO_EXPECTED]
    correct = [d.cluster for d in decisions] == [expected[i % len(expected)] for i in range(BATCH)]
    benchmark.extra_info["correct"] = correct
    assert correct
    record_rate(benchmark, BATCH)
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["target_decisions_per_s"] = 1_000_000
        benchmark.extra_info["target_met"] = BATCH / stats.stats.median >= 1_000_000


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("mix", MIXES)
def test_route_many_scale(benchmark: Any, mix: str, n: int) -> None:
    """10 000 requests spread over all n routes, per round; group = match mix, one row per size."""
    benchmark.group = f"scale-{mix}"
    scenario, mesh = loaded(f"{mix}-{n}")
    assert mesh.table.route_count == n
    decisions = benchmark(mesh.route_many, scenario.requests, seed=1)
    correct = len(decisions) == BATCH and oracle_agrees(scenario, mesh)
    benchmark.extra_info["correct"] = correct
    benchmark.extra_info["routes"] = n
    assert correct
    record_rate(benchmark, BATCH)
