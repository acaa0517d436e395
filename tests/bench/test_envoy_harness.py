"""The Envoy benchmark harness (``meshroute bench --envoy``) works end to end.

A tiny run (1 s, one round, one connection) of every scenario: CI proves the harness, the real
figures come from ``make bench-envoy``. Without wrk the harness uses its Python load generator;
the ``python`` case forces that path here too, so it is tested where wrk is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meshroute.bench.load
from meshroute.bench.load import LoadError, parse_wrk
from meshroute.cli import main

MESHROUTE = "envoy+meshroute-w1"
ALONE = "envoy-alone"
FLOOR = "envoy+floor-extproc"


@pytest.mark.parametrize("tool", ["auto", "python"])
def test_harness_smoke(tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    args = ["--duration", "1", "--rounds", "1", "--connections", "1", "--workers", "1", "--warmup", "0"]
    code = main(
        ["bench", "--envoy", *args, "--load", tool, "--workdir", str(tmp_path / "w"), "--json", str(out)]
    )
    printed = capsys.readouterr()
    results = json.loads(out.read_text())

    assert results["failed"] == {}, results["failed"]
    assert code == 0, printed.out + printed.err
    meta = results["meta"]
    expect_tool = "python" if tool == "python" or meshroute.bench.load.wrk_path() is None else "wrk"
    assert meta["load_tool"] == expect_tool
    if expect_tool == "python":  # the output says the figures are not a benchmark
        assert "Python fallback load generator" in printed.out

    runs = {r["scenario"]: r for r in results["runs"]}
    assert set(runs) == {ALONE, FLOOR, MESHROUTE}
    for r in runs.values():
        assert r["ok"], r["problems"]
        assert r["connections"] == 1 and r["requests"] > 0 and r["error_count"] == 0
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["cpu_us_per_request"]["front"] > 0
        assert r["cpu_us_per_request"]["upstream"] > 0
    # Every request went through ext_proc once, and the ext_proc server's CPU was measured.
    for name in (FLOOR, MESHROUTE):
        assert abs(runs[name]["extproc_streams"] - runs[name]["requests"]) <= 3
        assert runs[name]["cpu_us_per_request"]["serve"] > 0
    assert runs[ALONE]["extproc_streams"] is None

    ratios = results["summary"]["ratios"][MESHROUTE]
    assert ratios["throughput_ratio_c1"] > 0
    assert "p50_added_ms_c1" in ratios and "vs_floor_throughput_c1" in ratios
    assert "| envoy+meshroute-w1 | 1 |" in printed.out


WRK_OUT = """Running 1s test @ http://127.0.0.1:1/api/v1/items
  1 threads and 32 connections
  Latency Distribution
     50%  331.00us
  2900 requests in 1.00s, 300.00KB read
  Non-2xx or 3xx responses: 7
MESHROUTE_WRK {"requests":2900,"duration_us":1000000,"bytes":307200,"errors":{"connect":0,"read":1,\
"write":0,"status":7,"timeout":0},"latency_us":{"mean":340.5,"max":9000,"p50":331,"p90":500,"p99":1200}}
"""


def test_parse_wrk_reports_errors() -> None:
    r = parse_wrk(WRK_OUT, 32, client_cpu_s=0.1)
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms) == (2900, 2900.0, 0.331, 1.2)
    assert r.error_count == 8 and r.errors["status"] == 7


def test_parse_wrk_without_summary_fails() -> None:
    with pytest.raises(LoadError, match="MESHROUTE_WRK"):
        parse_wrk("wrk: unable to connect\n", 1)
