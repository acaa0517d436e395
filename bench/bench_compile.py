"""Load + validate + compile time by config size (``meshroute.load`` on a YAML file).

This is the cost of a reload: YAML parsing, validation, the Python compiler producing the IR,
JSON across the boundary and the Rust table build. It is paid once per config change, never per
request, so it is reported per route rather than held to a per-request budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scenarios import SIZES, bookinfo, generated

import meshroute


@pytest.mark.parametrize("n", SIZES)
def test_compile_generated(benchmark: Any, tmp_path: Path, n: int) -> None:
    benchmark.group = "compile"
    path = generated(n, "mixed", n_requests=0).write(tmp_path)
    rounds = 1 if n >= 10_000 else 5  # 10 000 routes take tens of seconds (see README)
    mesh = benchmark.pedantic(meshroute.load, args=(path,), rounds=rounds, iterations=1, warmup_rounds=0)
    correct = mesh.table.route_count == n and mesh.route("svc", "/p0/x").subset == "v1"
    benchmark.extra_info["correct"] = correct
    benchmark.extra_info["routes"] = n
    assert correct
    stats = getattr(benchmark, "stats", None)
    if stats:
        benchmark.extra_info["us_per_route"] = round(stats.stats.median / n * 1e6, 1)


def test_compile_bookinfo(benchmark: Any, tmp_path: Path) -> None:
    benchmark.group = "compile"
    path = bookinfo(0).write(tmp_path)
    mesh = benchmark.pedantic(meshroute.load, args=(path,), rounds=10, iterations=1, warmup_rounds=1)
    correct = mesh.route("reviews", "/", headers={"end-user": "jason"}).subset == "v2"
    benchmark.extra_info["correct"] = correct
    assert correct
