"""``meshroute envoy-config CONFIG...``: write the Envoy bootstrap for serve (docs/envoy.md).

``--engine embedded`` puts the dynamic module where ext_proc is; its filter configs (ECDS) and the
route table are files (``--files-dir``, default ``FILE.d`` next to ``-o FILE``). ``--lb rust``
makes the service clusters pick their endpoints with meshroute-lb inside Envoy (the same module,
as a load-balancing policy), with either engine. ``--live-dir DIR``
makes listeners and clusters files too (:mod:`meshroute.envoy.live`): run it again on a changed
config and the running Envoy follows, without a restart. ``--gateway-labels K=V[,K=V]``
(``--gateway-namespace NS``) writes the config of that one gateway proxy (docs/envoy.md, "One
gateway workload") instead of one Envoy playing every gateway proxy of the config.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from meshroute.config import analyze
from meshroute.envoy.bootstrap import build
from meshroute.envoy.common import envoy_yaml
from meshroute.envoy.options import (
    DEFAULT_ENGINE,
    DEFAULT_EXTPROC,
    EMBEDDED,
    ENGINES,
    LB_ENVOY,
    LB_RUST,
    LBS,
    Options,
)
from meshroute.errors import ConfigError
from meshroute.extproc import addresses
from meshroute.render import render_diagnostics


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "envoy-config",
        help="write the Envoy bootstrap (listeners, clusters) that calls serve over ext_proc, or the module",
    )
    p.add_argument("paths", nargs="+", metavar="CONFIG", help="Istio/Kubernetes YAML files or directories")
    p.add_argument(
        "--extproc",
        default=DEFAULT_EXTPROC,
        metavar="unix:/PATH|HOST:PORT",
        help=f"serve's --listen address (default {DEFAULT_EXTPROC})",
    )
    p.add_argument("--workers", type=int, default=1, help="serve's --workers (one endpoint each)")
    add_listener_arguments(p)
    p.add_argument(
        "--live-dir",
        metavar="DIR",
        help="listeners, clusters (and the module's configs) as files in DIR that Envoy watches; "
        "run again to update a running Envoy",
    )
    p.add_argument(
        "--files-dir",
        metavar="DIR",
        help="embedded engine without --live-dir: where the module's configs and the route table go "
        "(default FILE.d next to -o FILE)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=run)
    return p


def add_listener_arguments(p: argparse.ArgumentParser, access_log: str = "/dev/stdout") -> None:
    """Flags ``envoy-config`` and ``run`` share: engine, ports, the mesh client, access log, seed."""
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help=f"who decides each request: the dynamic module inside Envoy (embedded), or meshroute "
        f"serve over ext_proc (extproc); default {DEFAULT_ENGINE}",
    )
    p.add_argument(
        "--lb",
        choices=LBS,
        default=LB_ENVOY,
        help="who picks the endpoint in a service cluster: Envoy's own load balancers (envoy), or "
        "meshroute-lb inside Envoy, the module's load-balancing policy (rust); default envoy",
    )
    p.add_argument("--mesh-port", type=int, default=15001, help="port of the mesh outbound listener")
    p.add_argument("--admin-port", type=int, default=15000)
    p.add_argument("--bind-address", default="127.0.0.1", help="address every listener and the admin bind")
    p.add_argument(
        "--bind-port",
        action="append",
        default=[],
        metavar="PORT=BIND",
        help="bind the listener of Gateway port PORT on BIND instead (repeatable)",
    )
    p.add_argument("--source-namespace", help="namespace of the mesh listener's client workload")
    p.add_argument(
        "--source-label",
        action="append",
        default=[],
        metavar="K=V",
        help="label of the mesh listener's client workload (repeatable)",
    )
    p.add_argument(
        "--locality",
        default="",
        metavar="REGION/ZONE/SUBZONE",
        help="locality of the mesh listener's client workload (default: from its topology labels, else "
        "none): the clusters' endpoints get Istio's locality priorities and weights for it",
    )
    p.add_argument(
        "--gateway-labels",
        action="append",
        default=[],
        metavar="K=V[,K=V]",
        help="be the gateway proxy with these labels (repeatable, as route's --gateway-labels): only "
        "the Gateways selecting it, merged per port, get listeners, and a host only another proxy's "
        "Gateways serve gets 404 (default: one Envoy plays every gateway proxy)",
    )
    p.add_argument(
        "--gateway-namespace",
        metavar="NS",
        help="namespace of the --gateway-labels proxy (default: any namespace with such a proxy)",
    )
    p.add_argument(
        "--access-log",
        default=access_log,
        metavar="PATH",
        help=f"Envoy's access log, '' for none (default {access_log or 'none'})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="tests only: seeds the module's random draws (embedded engine) and its balancers' (--lb rust)",
    )


def _labels(items: Sequence[str], flag: str, form: str, commas: bool = False) -> dict[str, str]:
    """``K=V`` flag values (``commas``: each may hold several, comma-separated) as labels;
    ValueError naming ``flag`` and the whole value for one that is not."""
    out: dict[str, str] = {}
    for item in items:
        for label in item.split(",") if commas else [item]:
            key, sep, value = label.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{flag} {item!r}: expected {form}")
            out[key.strip()] = value.strip()
    return out


def options_from_args(args: argparse.Namespace) -> Options:
    """Options from the command line; ValueError with a message for bad flags."""
    bind_ports: dict[int, int] = {}
    for item in args.bind_port:
        port, sep, bind = item.partition("=")
        if not sep or not port.strip().isdigit() or not bind.strip().isdigit():
            raise ValueError(f"--bind-port {item!r}: expected PORT=BIND (numbers)")
        bind_ports[int(port)] = int(bind)
    labels = _labels(args.source_label, "--source-label", "K=V")
    for flag, port in [
        ("--mesh-port", args.mesh_port),
        ("--admin-port", args.admin_port),
        *(("--bind-port", p) for p in bind_ports.values()),
    ]:
        if not 0 < port < 65536:
            raise ValueError(f"{flag} {port}: not a port number")
    proxy = _labels(
        [p for item in args.gateway_labels for p in item.split(",")], "--gateway-labels", "K=V[,K=V]"
    )
    if args.gateway_namespace and not proxy:
        raise ValueError("--gateway-namespace names the namespace of the --gateway-labels proxy: give both")
    return Options(
        extproc=tuple(addresses(args.extproc, args.workers)),
        mesh_port=args.mesh_port,
        admin_port=args.admin_port,
        bind_address=args.bind_address,
        bind_ports=bind_ports,
        source_namespace=args.source_namespace,
        source_labels=labels,
        locality=args.locality.strip(),
        access_log=args.access_log,
        engine=args.engine,
        lb=args.lb,
        lb_seed=args.seed if args.lb == LB_RUST else None,
        gateway_workload=_gateway_workload(args.paths, proxy, args.gateway_namespace) if proxy else "",
    )


def _gateway_workload(paths: Sequence[str], labels: dict[str, str], namespace: str | None) -> str:
    """The gateway workload of ``--gateway-labels`` / ``--gateway-namespace`` in the config at
    ``paths``, found as ``meshroute route --gateway-labels`` finds it (``resolve``); ValueError
    when the config has no such proxy. A config with errors gets the name the labels spell: its
    errors are what envoy-config reports."""
    from meshroute.config.model import build_model
    from meshroute.config.workloads import gateway_workloads, resolve, workload_name

    analysis = analyze(paths)
    if not analysis.ok:
        return workload_name(namespace or "default", labels)
    model = build_model(list(analysis.resources), Options().domain)
    names = [w.name for w in gateway_workloads(model)]
    try:
        return resolve(names, model.gateways.values(), labels, namespace)
    except LookupError as exc:
        raise ValueError(str(exc.args[0])) from None


def with_lb_module(options: Options) -> Options:
    """``--lb rust``: the options naming the packaged module the clusters load
    (:class:`~meshroute.envoy.module.ModuleNotBuiltError` when it is missing)."""
    if options.lb != LB_RUST or options.lb_module:
        return options
    from meshroute.envoy.module import module_path

    return replace(options, lb_module=str(module_path()))


def _write(path: str, text: str, private: bool) -> None:
    """Write ``text`` to ``path``; ``private`` (private keys inlined from Secrets): mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with open(fd, "w", encoding="utf-8") as fh:
        if private and stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchmod(fd, 0o600)  # also when the file already existed
        fh.write(text)


def run(args: argparse.Namespace) -> int:
    from meshroute.envoy.module import ModuleNotBuiltError

    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"meshroute envoy-config: {exc}", file=sys.stderr)
        return 2
    try:
        options = with_lb_module(options)
    except ModuleNotBuiltError as exc:
        print(f"meshroute envoy-config: {exc}", file=sys.stderr)
        return 1
    if args.live_dir or options.engine == EMBEDDED:
        return _run_with_files(args, options)
    analysis = analyze(args.paths, domain=options.domain)
    try:
        generated = build(analysis, options)
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, len(analysis.resources)), file=sys.stderr)
        return 1
    # Config warnings from validation matter as much here as the generator's own.
    warnings = [*analysis.diagnostics, *generated.warnings]
    if warnings:
        print(render_diagnostics(warnings, len(analysis.resources)), file=sys.stderr)
    return _emit(args.output, generated.config, generated.inline_keys)


def _run_with_files(args: argparse.Namespace, options: Options) -> int:
    """The embedded engine and/or live mode: write the files, then the bootstrap naming them."""
    from meshroute.envoy.live import files_options, generate, write_files
    from meshroute.envoy.module import ModuleNotBuiltError, module_path

    directory = _files_dir(args)
    if directory is None:
        print(
            "meshroute envoy-config: the embedded engine writes the module's configs and the route "
            "table to files: give -o FILE, --files-dir DIR or --live-dir DIR",
            file=sys.stderr,
        )
        return 2
    module_file = None
    if options.engine == EMBEDDED:
        try:
            module_file = module_path()
        except ModuleNotBuiltError as exc:
            print(f"meshroute envoy-config: {exc}", file=sys.stderr)
            return 1
    options = files_options(options, directory)
    compiled = generate(args.paths, options)
    if compiled.report:
        print(compiled.report, file=sys.stderr)
    config = compiled.config
    if config is None:
        return 1
    live = bool(args.live_dir)
    try:
        bootstrap = write_files(
            config, directory, engine=options.engine, live=live, module_file=module_file, seed=args.seed
        )
    except OSError as exc:
        print(f"meshroute envoy-config: cannot write {directory}: {exc}", file=sys.stderr)
        return 1
    # live: lds.yaml holds the listeners (and their keys); static: the bootstrap does
    return _emit(args.output, bootstrap, config.inline_keys and not live)


def _files_dir(args: argparse.Namespace) -> str | None:
    """Where the files go: ``--live-dir``, else ``--files-dir``, else ``FILE.d`` next to ``-o``."""
    directory: str | None = args.live_dir or args.files_dir or (f"{args.output}.d" if args.output else None)
    return directory


def options_for(argv: Sequence[str]) -> Options:
    """The :class:`Options` ``meshroute envoy-config ARGV`` writes with (``files_dir`` included
    when it writes files): what a program that ran it needs to rewrite its live files itself
    (``meshroute.stack``, as ``meshroute run`` does). ValueError for bad flags."""
    from meshroute.envoy.live import files_options

    parser = argparse.ArgumentParser(prog="meshroute", exit_on_error=False)
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["envoy-config", *argv])
    options = options_from_args(args)
    directory = _files_dir(args)
    if args.live_dir or options.engine == EMBEDDED:
        if directory is None:
            raise ValueError("the embedded engine needs -o FILE, --files-dir DIR or --live-dir DIR")
        options = files_options(options, directory)
    return options


def _emit(output: str | None, config: dict[str, Any], private: bool) -> int:
    text = "# generated by meshroute envoy-config; docs/envoy.md is the contract with meshroute serve\n"
    text += envoy_yaml(config, default_flow_style=False)
    if output:
        try:
            _write(output, text, private=private)
        except OSError as exc:
            print(f"meshroute envoy-config: cannot write {output}: {exc.strerror}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0
