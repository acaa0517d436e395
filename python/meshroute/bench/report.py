"""Markdown tables and ratios from the results ``harness.run`` returns."""

from __future__ import annotations

import statistics
from typing import Any

from .harness import ALONE, FLOOR

# The goals for envoy+meshroute against Envoy alone.
GOAL_P50_ADDED_MS = 1.2  # at 1 connection
GOAL_THROUGHPUT_RATIO = 0.3


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _cpu(run: dict[str, Any], role: str) -> str:
    return _fmt(run["cpu_us_per_request"].get(role))


def runs_table(results: dict[str, Any]) -> str:
    rows = [
        "| round | scenario | conns | rps | p50 ms | p99 ms | errors | front CPU µs/req "
        "| serve CPU µs/req | upstream CPU µs/req | load gen CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        n = r["requests"]
        client = r["client_cpu_s"] * 1e6 / n if n else None
        errors = "0" if r["ok"] else "**" + "; ".join(r["problems"]) + "**"
        rows.append(
            f"| {r['round']} | {r['scenario']} | {r['connections']} | {_fmt(r['rps'])} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {errors} | {_cpu(r, 'front')} | {_cpu(r, 'serve')} "
            f"| {_cpu(r, 'upstream')} | {_fmt(client)} |"
        )
    return "\n".join(rows)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per (scenario, connections) over the error-free runs, and the ratios to the goals."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results["runs"]:
        if r["ok"]:
            groups.setdefault((r["scenario"], r["connections"]), []).append(r)
    medians: dict[str, dict[str, dict[str, float]]] = {}
    for (name, n_conns), runs in groups.items():
        cell: dict[str, float] = {
            "runs": len(runs),
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        }
        for role in ("front", "serve", "upstream"):
            vals = [
                r["cpu_us_per_request"][role] for r in runs if r["cpu_us_per_request"].get(role) is not None
            ]
            if vals:
                cell[f"cpu_{role}_us"] = statistics.median(vals)
        medians.setdefault(name, {})[str(n_conns)] = cell
    ratios: dict[str, dict[str, Any]] = {}
    alone = medians.get(ALONE, {})
    for name, by_conns in medians.items():
        if name == ALONE:
            continue
        out: dict[str, Any] = {}
        for conns, cell in by_conns.items():
            base = alone.get(conns)
            if not base:
                continue
            ratio = cell["rps"] / base["rps"]
            out[f"throughput_ratio_c{conns}"] = ratio
            out[f"throughput_goal_c{conns}_met"] = ratio >= GOAL_THROUGHPUT_RATIO
            out[f"p50_added_ms_c{conns}"] = cell["p50_ms"] - base["p50_ms"]
            if conns == "1":
                out["p50_added_goal_met"] = out["p50_added_ms_c1"] <= GOAL_P50_ADDED_MS
        floor = medians.get(FLOOR, {})
        if name != FLOOR:
            for conns, cell in by_conns.items():
                if conns in floor:
                    out[f"vs_floor_throughput_c{conns}"] = cell["rps"] / floor[conns]["rps"]
                    out[f"vs_floor_p50_added_ms_c{conns}"] = cell["p50_ms"] - floor[conns]["p50_ms"]
        out["paired_throughput_ratios"] = _paired(results["runs"], name)
        ratios[name] = out
    return {"medians": medians, "ratios": ratios}


def _paired(runs: list[dict[str, Any]], name: str) -> dict[str, list[float]]:
    """rps(name) / rps(envoy-alone) for runs of the same round and connections (adjacent in time)."""
    base = {(r["round"], r["connections"]): r["rps"] for r in runs if r["scenario"] == ALONE and r["ok"]}
    out: dict[str, list[float]] = {}
    for r in runs:
        key = (r["round"], r["connections"])
        if r["scenario"] == name and r["ok"] and base.get(key):
            out.setdefault(str(r["connections"]), []).append(round(r["rps"] / base[key], 3))
    return out


def summary_table(summary: dict[str, Any]) -> str:
    rows = [
        "| scenario | conns | runs | rps | p50 ms | p99 ms | front CPU µs/req | serve CPU µs/req "
        "| upstream CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_conns in summary["medians"].items():
        for conns, c in sorted(by_conns.items(), key=lambda kv: int(kv[0])):
            rows.append(
                f"| {name} | {conns} | {c['runs']} | {_fmt(c['rps'])} "
                f"| {c['p50_ms']:.2f} | {c['p99_ms']:.2f} "
                f"| {_fmt(c.get('cpu_front_us'))} | {_fmt(c.get('cpu_serve_us'))} "
                f"| {_fmt(c.get('cpu_upstream_us'))} |"
            )
    return "\n".join(rows)


def ratios_text(summary: dict[str, Any]) -> str:
    lines = []
    for name, r in summary["ratios"].items():
        parts = []
        for key, value in r.items():
            if key.startswith("throughput_ratio_c"):
                conns = key.removeprefix("throughput_ratio_c")
                met = "met" if r[f"throughput_goal_c{conns}_met"] else "MISSED"
                parts.append(
                    f"throughput {value:.3f}× at {conns} conn (goal ≥ {GOAL_THROUGHPUT_RATIO}×: {met})"
                )
        if "p50_added_ms_c1" in r:
            met = "met" if r["p50_added_goal_met"] else "MISSED"
            parts.append(
                f"p50 +{r['p50_added_ms_c1']:.2f} ms at 1 conn (goal ≤ {GOAL_P50_ADDED_MS} ms: {met})"
            )
        vs_floor = [
            f"{r[key]:.3f}× the floor's throughput at {key.removeprefix('vs_floor_throughput_c')} conn"
            for key in r
            if key.startswith("vs_floor_throughput_c")
        ]
        if "vs_floor_p50_added_ms_c1" in r:
            vs_floor.append(f"p50 {r['vs_floor_p50_added_ms_c1']:+.2f} ms vs the floor at 1 conn")
        if vs_floor:
            parts.append("; ".join(vs_floor))
        paired = ", ".join(f"c{c}: {v}" for c, v in r["paired_throughput_ratios"].items())
        lines.append(f"- **{name}** vs envoy-alone: " + "; ".join(parts) + f". Per-round ratios: {paired}.")
    return "\n".join(lines) if lines else "- (no envoy+meshroute run without errors to compare)"


def markdown(results: dict[str, Any], summary: dict[str, Any]) -> str:
    meta = results["meta"]
    head = [
        f"Load generator: {meta['load_command']}.",
        f"Machine: {meta['cpu_model']}, {meta['cpu_count']} CPUs, load average at start "
        f"{meta['loadavg_at_start'][0]:.2f}, at end {meta.get('loadavg_at_end', [0.0])[0]:.2f}; "
        f"Envoy {meta['envoy']}.",
    ]
    if meta["load_tool"] != "wrk":
        head.append("**Python fallback load generator: these figures are not Envoy or meshroute capacity.**")
    failed = [f"- **{name} failed**: {msg.splitlines()[0]}" for name, msg in results["failed"].items()]
    return "\n\n".join(
        [
            "\n".join(head),
            "### Every run\n\n" + runs_table(results),
            "### Medians (error-free runs)\n\n" + summary_table(summary),
            "### Ratios\n\n" + ratios_text(summary) + ("\n" + "\n".join(failed) if failed else ""),
        ]
    )
