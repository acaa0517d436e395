"""The Envoy benchmark harness (``meshroute bench --envoy``) works end to end.

A tiny run (1 s, one round, one connection) of every scenario: CI proves the harness, the real
figures come from ``make bench-envoy``. Without wrk the harness uses its Python load generator;
the ``python`` case forces that path here too, so it is tested where wrk is installed. Every
scenario's routing is checked by the harness itself before it measures (each request reaches its
cluster, through ext_proc once or never); the run fails if one does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meshroute
import meshroute.bench.load
from meshroute.bench import bootstrap, report
from meshroute.bench.load import LoadError, parse_wrk
from meshroute.bench.routes import RouteTable
from meshroute.cli import main

MESHROUTE = "envoy+meshroute-w1"
ALONE = "envoy-alone"
FLOOR = "envoy+floor-extproc"
EMBEDDED = "envoy+meshroute-embedded"


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
    assert set(runs) == {ALONE, FLOOR, MESHROUTE, EMBEDDED}
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
    # The module decides inside the front Envoy: no ext_proc, no server process.
    assert runs[EMBEDDED]["extproc_streams"] is None and set(runs[EMBEDDED]["cpu_s"]) == {"front", "upstream"}
    assert results["scenarios"][EMBEDDED]["engine"] == "embedded"

    ratios = results["summary"]["ratios"][MESHROUTE]
    assert ratios["throughput_ratio_c1"] > 0
    assert "p50_added_ms_c1" in ratios and "vs_floor_throughput_c1" in ratios
    embedded = results["summary"]["ratios"][EMBEDDED]
    assert embedded["goals"] == {"throughput_ratio": 0.85, "p50_added_ms": 0.05}
    assert {"throughput_goal_c1_met", "p50_added_goal_met"} <= set(embedded)
    assert "| envoy+meshroute-w1 | 1 |" in printed.out
    assert "| envoy+meshroute-embedded | 1 |" in printed.out


def test_harness_routes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--routes N --routes-only``: Envoy alone, Envoy routing the generated table natively, the
    embedded engine and serve on it; JSON on stdout."""
    args = ["--duration", "0.5", "--rounds", "1", "--connections", "1", "--workers", "1", "--warmup", "0"]
    code = main(
        ["bench", "--envoy", *args, "--routes", "100", "--routes-only", "--load", "python",
         "--workdir", str(tmp_path / "w"), "--json", "-"]
    )  # fmt: skip
    printed = capsys.readouterr()
    results = json.loads(printed.out)
    assert results["failed"] == {}, results["failed"]
    assert code == 0, printed.err

    native, embedded, serve = (f"{n}-100routes" for n in ("envoy-native", EMBEDDED, MESHROUTE))
    assert [r["scenario"] for r in results["runs"]] == [ALONE, native, embedded, serve]
    assert all(r["ok"] and r["requests"] > 0 for r in results["runs"]), results["runs"]
    assert results["meta"]["route_table"] == {
        "routes": 100, "virtual_services": 10, "routes_per_virtual_service": 10, "distinct_requests": 64
    }  # fmt: skip
    scenarios = results["scenarios"]
    assert scenarios[native] == {**scenarios[native], "engine": "envoy", "routes": 100, "goals": {}}
    assert scenarios[embedded]["goals"] == {"throughput_ratio": 0.8}
    assert scenarios[embedded]["reference"] == scenarios[serve]["reference"] == native
    ratios = results["summary"]["ratios"]
    assert ratios[embedded]["vs_native_throughput_c1"] > 0
    assert "throughput_goal_c1_met" in ratios[embedded] and "throughput_goal_c1_met" not in ratios[native]


def test_route_table_requests_reach_their_destinations(tmp_path: Path) -> None:
    """meshroute decides every generated request as the table says (the harness checks Envoy's
    native routing and both engines against the same destinations through real Envoys)."""
    table = RouteTable(services=5, routes=8)
    path = bootstrap.write_routes_istio(tmp_path / "routes.yaml", table, 9)
    mesh = meshroute.load(path)
    probes = table.requests(20)
    assert len({(host, p, str(h)) for host, p, h, _ in probes}) == 20
    for host, req_path, headers, dest in probes:
        decision = mesh.route(host, req_path, "GET", headers)
        assert decision.cluster == bootstrap.cluster_name(dest), (host, req_path, headers)
    # late in the walk: every request's route is in the second half of its VirtualService
    assert all(int((h or {}).get("x-route", p.split("/")[1])[1:]) >= 4 for _, p, h, _ in probes)
    vhosts = table.envoy_virtual_hosts(bootstrap.cluster_name)
    assert [len(v["routes"]) for v in vhosts] == [8] * 5 and vhosts[0]["domains"] == [table.host(0)]


def test_summary_goals_per_scenario() -> None:
    """Goals come with each scenario (results["scenarios"]); ratios are to envoy-alone of the run."""

    def run(name: str, rps: float, p50: float) -> dict[str, object]:
        cpu = {"front": 50.0, "upstream": 30.0}
        return {"round": 1, "scenario": name, "connections": 1, "rps": rps, "p50_ms": p50, "p99_ms": p50,
                "ok": True, "cpu_us_per_request": cpu}  # fmt: skip

    results = {
        "runs": [
            run(ALONE, 1000, 0.10),
            run(EMBEDDED, 900, 0.14),
            run("envoy+meshroute-embedded-100routes", 700, 0.2),
        ],
        "scenarios": {
            EMBEDDED: {"goals": {"throughput_ratio": 0.85, "p50_added_ms": 0.05}, "reference": None},
            "envoy+meshroute-embedded-100routes": {"goals": {"throughput_ratio": 0.8}, "reference": None},
        },
    }
    ratios = report.summarize(results)["ratios"]
    assert ratios[EMBEDDED]["throughput_ratio_c1"] == pytest.approx(0.9)
    assert ratios[EMBEDDED]["throughput_goal_c1_met"] and ratios[EMBEDDED]["p50_added_goal_met"]
    assert not ratios["envoy+meshroute-embedded-100routes"]["throughput_goal_c1_met"]
    assert "p50_added_goal_met" not in ratios["envoy+meshroute-embedded-100routes"]
    assert report.summarize(results)["medians"][EMBEDDED]["1"]["cpu_total_us"] == 80


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
