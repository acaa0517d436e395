"""The ``meshroute`` command: validate, route (explain one request), serve (ext_proc),
envoy-config (Envoy bootstrap), demo, bench (decision and Envoy benchmarks)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from meshroute.config import analyze
from meshroute.errors import ConfigError
from meshroute.render import render_decision, render_diagnostics


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except BrokenPipeError:  # `meshroute ... | head` is fine
        return 0
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshroute", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check Istio YAML: every problem with file:line, resource, field")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.add_argument("--json", action="store_true", help="print diagnostics as JSON")
    v.set_defaults(func=_validate)

    r = sub.add_parser("route", help="where does this request go, and what happens to it on the way")
    r.add_argument("paths", nargs="+", metavar="PATH")
    r.add_argument("--host", required=True, help="Host / :authority (port optional)")
    r.add_argument("--path", default="/")
    r.add_argument("--method", default="GET")
    r.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    r.add_argument("--scheme", default="http", choices=["http", "https"])
    r.add_argument("--port", type=int, help="listener port (default: from the host, else the service's)")
    r.add_argument("--gateway", default="mesh", help="'mesh' (sidecar) or a Gateway 'ns/name'")
    r.add_argument("--source-label", action="append", default=[], metavar="K=V")
    r.add_argument("--source-namespace")
    r.add_argument("--seed", type=int, help="seed for weighted picks and fault percentages")
    r.add_argument("--json", action="store_true", help="print Decision.to_dict() as JSON")
    r.set_defaults(func=_route)

    from meshroute.bench.cli import add_parser as add_bench
    from meshroute.envoy.cli import add_parser as add_envoy_config
    from meshroute.extproc.cli import add_parser as add_serve

    add_serve(sub)
    add_envoy_config(sub)

    d = sub.add_parser(
        "demo",
        help="start Envoy, meshroute serve and a small Bookinfo on 127.0.0.1; replay Istio's traffic tasks",
    )
    d.set_defaults(func=_demo)
    add_bench(sub)
    return p


def _validate(args: argparse.Namespace) -> int:
    analysis = analyze(args.paths)
    if args.json:
        print(json.dumps([d.to_dict() for d in analysis.diagnostics], indent=2))
    else:
        print(render_diagnostics(analysis.diagnostics, len(analysis.resources)))
    return 0 if analysis.ok else 1


def _route(args: argparse.Namespace) -> int:
    from meshroute.mesh import load

    try:
        headers = [_split(h, ":", "--header") for h in args.header]
        labels = dict(_split(lbl, "=", "--source-label") for lbl in args.source_label)
    except ValueError as exc:
        print(f"meshroute: {exc}", file=sys.stderr)
        return 2
    try:
        mesh = load(*args.paths)
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, None), file=sys.stderr)
        return 1
    kwargs = {
        "scheme": args.scheme,
        "port": args.port,
        "gateway": args.gateway,
        "source_labels": labels or None,
        "source_namespace": args.source_namespace,
    }
    decision = mesh.route(args.host, args.path, args.method, headers, seed=args.seed, **kwargs)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        trace = mesh.explain(args.host, args.path, args.method, headers, **kwargs)
        print(render_decision(decision, trace, args.method, args.host, args.path))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from meshroute.demo import run

    return run()


def _split(text: str, sep: str, flag: str) -> tuple[str, str]:
    name, found, value = text.partition(sep)
    if not found or not name.strip():
        raise ValueError(f"{flag} {text!r}: expected NAME{sep}VALUE")
    return name.strip().lower() if sep == ":" else name.strip(), value.strip()
