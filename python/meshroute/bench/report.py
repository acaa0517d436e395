"""Markdown tables and ratios from the results ``harness.run`` returns."""

from __future__ import annotations

import statistics
from typing import Any

from .harness import ALONE, EXTPROC, FLOOR, GOALS

# The ext_proc goals, for results written before scenarios carried their own (``results["scenarios"]``).
GOAL_P50_ADDED_MS = GOALS[EXTPROC]["p50_added_ms"]  # at 1 connection
GOAL_THROUGHPUT_RATIO = GOALS[EXTPROC]["throughput_ratio"]
ROLES = ("front", "serve", "upstream")


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
            f"| {r['round']} | {r['scenario']} | {r['connections']} | {_fmt(r['rps'])} | {r['p50_ms']:.3f} "
            f"| {r['p99_ms']:.2f} | {errors} | {_cpu(r, 'front')} | {_cpu(r, 'serve')} "
            f"| {_cpu(r, 'upstream')} | {_fmt(client)} |"
        )
    return "\n".join(rows)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per (scenario, connections) over the error-free runs; ratios to envoy-alone of the
    same run (and to the scenario's reference: the floor, or Envoy's native routing of the same
    table), and the scenario's goals met or not."""
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
        for role in ROLES:
            vals = [
                r["cpu_us_per_request"][role] for r in runs if r["cpu_us_per_request"].get(role) is not None
            ]
            if vals:
                cell[f"cpu_{role}_us"] = statistics.median(vals)
        totals = [sum(v for v in r["cpu_us_per_request"].values() if v is not None) for r in runs]
        cell["cpu_total_us"] = statistics.median(totals)
        medians.setdefault(name, {})[str(n_conns)] = cell
    described = results.get("scenarios") or {}
    ratios: dict[str, dict[str, Any]] = {}
    alone = medians.get(ALONE, {})
    for name, by_conns in medians.items():
        if name == ALONE:
            continue
        goals = described.get(name, {}).get("goals", _legacy_goals(name))
        out: dict[str, Any] = {"goals": goals}
        for conns, cell in sorted(by_conns.items(), key=lambda kv: int(kv[0])):
            base = alone.get(conns)
            if not base:
                continue
            ratio = cell["rps"] / base["rps"]
            out[f"throughput_ratio_c{conns}"] = ratio
            if "throughput_ratio" in goals:
                out[f"throughput_goal_c{conns}_met"] = ratio >= goals["throughput_ratio"]
            out[f"p50_added_ms_c{conns}"] = cell["p50_ms"] - base["p50_ms"]
            if conns == "1" and "p50_added_ms" in goals:
                out["p50_added_goal_met"] = out["p50_added_ms_c1"] <= goals["p50_added_ms"]
        reference = described.get(name, {}).get("reference", FLOOR if name != FLOOR else None)
        ref = medians.get(reference or "", {})
        label = "floor" if reference == FLOOR else "native"
        if ref:
            out["reference"] = reference
            for conns, cell in by_conns.items():
                if conns in ref:
                    out[f"vs_{label}_throughput_c{conns}"] = cell["rps"] / ref[conns]["rps"]
                    out[f"vs_{label}_p50_added_ms_c{conns}"] = cell["p50_ms"] - ref[conns]["p50_ms"]
        out["paired_throughput_ratios"] = _paired(results["runs"], name)
        ratios[name] = out
    return {"medians": medians, "ratios": ratios}


def _legacy_goals(name: str) -> dict[str, float]:
    return {} if name.startswith("envoy-native") else dict(GOALS[EXTPROC])


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
        "| scenario | conns | runs | rps | × alone | p50 ms | p50 − alone ms | p99 ms | front CPU µs/req "
        "| serve CPU µs/req | upstream CPU µs/req | total CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_conns in summary["medians"].items():
        ratios = summary["ratios"].get(name, {})
        for conns, c in sorted(by_conns.items(), key=lambda kv: int(kv[0])):
            ratio = ratios.get(f"throughput_ratio_c{conns}")
            added = ratios.get(f"p50_added_ms_c{conns}")
            rows.append(
                f"| {name} | {conns} | {c['runs']} | {_fmt(c['rps'])} "
                f"| {'–' if name == ALONE else _fmt(ratio, 3)} "
                f"| {c['p50_ms']:.3f} | {'–' if added is None else f'{added:+.3f}'} | {c['p99_ms']:.2f} "
                f"| {_fmt(c.get('cpu_front_us'))} | {_fmt(c.get('cpu_serve_us'))} "
                f"| {_fmt(c.get('cpu_upstream_us'))} | {_fmt(c.get('cpu_total_us'))} |"
            )
    return "\n".join(rows)


def ratios_text(summary: dict[str, Any]) -> str:
    lines = []
    for name, r in summary["ratios"].items():
        goals = r.get("goals", {})
        parts = []
        for key, value in r.items():
            if key.startswith("throughput_ratio_c"):
                conns = key.removeprefix("throughput_ratio_c")
                text = f"throughput {value:.3f}× at {conns} conn"
                if f"throughput_goal_c{conns}_met" in r:
                    met = "met" if r[f"throughput_goal_c{conns}_met"] else "MISSED"
                    text += f" (goal ≥ {goals['throughput_ratio']}×: {met})"
                parts.append(text)
        if "p50_added_ms_c1" in r:
            text = f"p50 {r['p50_added_ms_c1']:+.3f} ms at 1 conn"
            if "p50_added_goal_met" in r:
                met = "met" if r["p50_added_goal_met"] else "MISSED"
                text += f" (goal ≤ +{goals['p50_added_ms']} ms: {met})"
            parts.append(text)
        for label, what in (("floor", "the floor"), ("native", "Envoy's native routing")):
            vs = [
                f"{r[key]:.3f}× {what}'s throughput at {key.removeprefix(f'vs_{label}_throughput_c')} conn"
                for key in r
                if key.startswith(f"vs_{label}_throughput_c")
            ]
            if f"vs_{label}_p50_added_ms_c1" in r:
                vs.append(f"p50 {r[f'vs_{label}_p50_added_ms_c1']:+.3f} ms vs {what} at 1 conn")
            if vs:
                parts.append("; ".join(vs))
        paired = ", ".join(f"c{c}: {v}" for c, v in r["paired_throughput_ratios"].items())
        lines.append(f"- **{name}** vs envoy-alone: " + "; ".join(parts) + f". Per-round ratios: {paired}.")
    return "\n".join(lines) if lines else "- (no scenario without errors to compare with envoy-alone)"


def _pinned(meta: dict[str, Any]) -> str:
    cpus = meta.get("cpu_affinity")
    if not cpus or len(cpus) == meta["cpu_count"]:
        return ""
    return f" (every process pinned to CPU {','.join(map(str, cpus))})"


def markdown(results: dict[str, Any], summary: dict[str, Any]) -> str:
    meta = results["meta"]
    head = [
        f"Load generator: {meta['load_command']}.",
        f"Machine: {meta['cpu_model']}, {meta['cpu_count']} CPUs{_pinned(meta)}, load average at start "
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
