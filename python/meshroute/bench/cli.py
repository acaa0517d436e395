"""``meshroute bench``: routing decisions from Python, or ``--envoy``: Envoy alone vs Envoy +
meshroute (ext_proc and the embedded module) under real load (bench/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from meshroute.errors import ConfigError
from meshroute.render import render_diagnostics

# Options of the Envoy harness (default None: given without --envoy is an error), and their defaults.
ENVOY_DEFAULTS: dict[str, Any] = {
    "duration": 10.0,
    "rounds": 2,
    "connections": (1, 32),
    "workers": (1, 2),
    "no_meshroute": False,
    "no_floor": False,
    "no_embedded": False,
    "routes": 0,
    "routes_only": False,
    "warmup": 2.0,
    "load": "auto",
    "workdir": None,
}


SECONDS, BATCH = 3.0, 10_000  # decision benchmark defaults


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated integers expected, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers expected, got {text!r}")
    return values


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``bench`` subcommand on an argparse sub-parsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="how fast a config routes (mesh.route, route_many, load); --envoy: Envoy ± meshroute under load",
        description=__doc__,
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="CONFIG",
        help="Istio YAML files or directories (default: the packaged Bookinfo + reviews-test-v2 task)",
    )
    p.add_argument("--seconds", type=float, help=f"time budget, an upper bound (default {SECONDS:g})")
    p.add_argument("--batch", type=int, help=f"requests per route_many call ({BATCH})")
    p.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="machine-readable results: to stdout, or to FILE (--envoy default: WORKDIR/results.json)",
    )
    e = p.add_argument_group(
        "--envoy: Envoy alone vs Envoy + meshroute, ext_proc and embedded (needs wrk for figures)"
    )
    e.add_argument("--envoy", action="store_true", help="run the Envoy load harness instead")
    e.add_argument("--duration", type=float, help="seconds per wrk run (default 10)")
    e.add_argument("--rounds", type=int, help="rounds, alternating scenario order (default 2)")
    e.add_argument("--connections", type=_ints, help="e.g. 1,32 (default)")
    e.add_argument("--workers", type=_ints, help="meshroute serve worker counts, one scenario each (1,2)")
    e.add_argument("--no-meshroute", action="store_true", default=None, help="no envoy+meshroute scenario")
    e.add_argument(
        "--no-floor",
        action="store_true",
        default=None,
        help="no envoy+floor-extproc (constant-reply Python ext_proc)",
    )
    e.add_argument(
        "--no-embedded",
        action="store_true",
        default=None,
        help="no envoy+meshroute-embedded (the dynamic module inside the front Envoy)",
    )
    e.add_argument(
        "--routes",
        type=int,
        metavar="N",
        help="also a generated table of about N routes (√N VirtualServices of √N routes): Envoy's "
        "native routing of it, the embedded engine and serve (the first --workers)",
    )
    e.add_argument(
        "--routes-only",
        action="store_true",
        default=None,
        help="with --routes: only envoy-alone and the --routes scenarios",
    )
    e.add_argument("--warmup", type=float, help="seconds of unmeasured load per scenario first (2)")
    e.add_argument(
        "--load",
        choices=["auto", "wrk", "python"],
        help="load generator; auto (default) = wrk if installed, else a bounded Python client (smoke test)",
    )
    e.add_argument("--workdir", type=Path, help="configs and logs (default: a new /tmp/mrbench-* directory)")
    p.add_argument(
        "--scale",
        nargs="?",
        const="100,1000,3000,10000",
        metavar="N[,N...]",
        help="generated meshes of N services instead (bench/README.md, Scale); --seconds per route() mix",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    if args.scale:
        from . import scale

        return scale.bench_command(args)
    try:
        envoy = _envoy_options(args)
    except ValueError as exc:
        print(f"meshroute bench: {exc}", file=sys.stderr)
        return 2
    return _envoy(envoy, args.json) if envoy else _decisions(args)


def _envoy_options(args: argparse.Namespace) -> argparse.Namespace | None:
    """The Envoy harness' options with their defaults (None without --envoy); ValueError for
    options that do not go together."""
    if (
        args.json
        and args.json != "-"
        and (Path(args.json).suffix in (".yaml", ".yml") or Path(args.json).is_dir())
    ):
        raise ValueError(f"--json {args.json}: an output file, not a config (put CONFIG first)")
    given = [k for k in ENVOY_DEFAULTS if getattr(args, k) is not None]
    if not args.envoy:
        if given:
            raise ValueError(f"--{given[0].replace('_', '-')} is an --envoy option")
        if not 0 < _or(args.seconds, SECONDS) <= 600 or not 0 < _or(args.batch, BATCH) <= 1_000_000:
            raise ValueError("--seconds must be in (0, 600] and --batch in [1, 1000000]")
        return None
    if args.paths or args.seconds is not None or args.batch is not None:
        raise ValueError("--envoy runs its own config and load: no CONFIG, --seconds or --batch")
    envoy = argparse.Namespace(**{k: _or(getattr(args, k), v) for k, v in ENVOY_DEFAULTS.items()})
    if envoy.duration <= 0 or envoy.duration > 600 or envoy.rounds < 1 or envoy.rounds > 20:
        raise ValueError("--duration must be in (0, 600] and --rounds in [1, 20]")
    if not 0 <= envoy.routes <= 100_000:
        raise ValueError("--routes must be in [0, 100000]")
    if envoy.routes_only and not envoy.routes:
        raise ValueError("--routes-only needs --routes N")
    return envoy


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _decisions(args: argparse.Namespace) -> int:
    from . import decisions

    paths = tuple(args.paths) or decisions.DEFAULT_CONFIG
    try:
        results = decisions.run(paths, _or(args.seconds, SECONDS), _or(args.batch, BATCH))
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, None), file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"meshroute bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        _write_json(args.json, results)
    if args.json != "-":
        print(decisions.table(results))
    return 0


def _envoy(args: argparse.Namespace, json_out: str | None) -> int:
    from . import harness, report

    opts = harness.Options(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        workers=() if args.no_meshroute else args.workers,
        floor=not args.no_floor,
        embedded=not args.no_embedded,
        routes=args.routes,
        routes_only=args.routes_only,
        warmup=args.warmup,
        load_tool=args.load,
        workdir=args.workdir,
    )
    results = harness.run(opts, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = report.summarize(results)
    results["summary"] = summary
    out = json_out or str(Path(results["meta"]["workdir"]) / "results.json")
    _write_json(out, results)
    if out != "-":
        print(report.markdown(results, summary))
        print(f"\nJSON: {out}")
    bad = results["failed"] or any(not r["ok"] for r in results["runs"]) or not results["runs"]
    return 1 if bad else 0


def _write_json(out: str, results: dict[str, Any]) -> None:
    text = json.dumps(results, indent=2) + "\n"
    if out == "-":
        sys.stdout.write(text)
        return
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
