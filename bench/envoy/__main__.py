"""``python -m bench.envoy``: Envoy alone vs Envoy + meshroute ext_proc (see ``bench/README.md``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import harness, report


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers expected, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.envoy", description=__doc__)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, alternating scenario order (default 2)")
    p.add_argument("--connections", type=_ints, default=(1, 32), help="e.g. 1,32 (default)")
    p.add_argument(
        "--workers", type=_ints, default=(1, 2), help="meshroute serve worker counts, one scenario each (1,2)"
    )
    p.add_argument("--no-meshroute", action="store_true", help="no envoy+meshroute scenario")
    p.add_argument(
        "--no-floor", action="store_true", help="no envoy+floor-extproc (constant-reply Python ext_proc)"
    )
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per scenario first")
    p.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator; auto = wrk if installed, else a bounded Python client (smoke test only)",
    )
    p.add_argument("--workdir", type=Path, help="configs and logs (default: a new /tmp/mrbench-* directory)")
    p.add_argument("--json", type=Path, help="write the results here (default: WORKDIR/results.json)")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.duration > 600 or args.rounds < 1 or args.rounds > 20:
        p.error("--duration must be in (0, 600] and --rounds in [1, 20]")

    opts = harness.Options(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        workers=() if args.no_meshroute else args.workers,
        floor=not args.no_floor,
        warmup=args.warmup,
        load_tool=args.load,
        workdir=args.workdir,
    )
    results = harness.run(opts, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = report.summarize(results)
    results["summary"] = summary
    out = args.json or Path(results["meta"]["workdir"]) / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report.markdown(results, summary))
    print(f"\nJSON: {out}")
    bad = results["failed"] or any(not r["ok"] for r in results["runs"]) or not results["runs"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
