"""``meshroute serve CONFIG... --listen ADDR``: the ext_proc server Envoy calls (docs/envoy.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from meshroute.extproc.logs import FORMATS

GRPC_EXPERIMENTS = "-event_engine_listener"


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register the ``serve`` subcommand on an argparse sub-parsers object."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="serve routing decisions to Envoy as an ext_proc gRPC service"
    )
    p.add_argument("paths", nargs="+", metavar="CONFIG", help="Istio YAML files or directories")
    p.add_argument("--listen", required=True, help="unix:/path or HOST:PORT")
    p.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes; N > 1 listens on N addresses"
    )
    p.add_argument(
        "--status-file", metavar="PATH", help="JSON status after every (re)load; PATH.i per worker if N > 1"
    )
    p.add_argument(
        "--reload-interval",
        type=float,
        default=0.1,
        metavar="SECONDS",
        # a stat of each file: cheap, and an edit compiled alone serves within ~0.1 s more
        help="how often to poll the config files for changes (default 0.1)",
    )
    p.add_argument(
        "--metrics",
        type=host_port,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (one endpoint for all workers)",
    )
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text (default) or json: one JSON object per line (ts, level, logger, msg, worker...)",
    )
    p.add_argument("--seed", type=int, help="tests only: deterministic weighted picks and fault draws")
    p.set_defaults(func=_serve)
    return p


def host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9090`` for IPv6) as (host, port).

    >>> host_port("127.0.0.1:9090"), host_port("[::1]:9090")
    (('127.0.0.1', 9090), ('::1', 9090))
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _serve(args: argparse.Namespace) -> int:
    # grpc's EventEngine listener costs 15-25 % more server CPU per ext_proc stream than the iomgr
    # one (bench/stream_cpu.py, same run: 510-530 -> 447-457 µs at concurrency 1,
    # 410-433 -> 320-350 µs at 32). It must be set before grpc is first imported (the server
    # module imports it); a GRPC_EXPERIMENTS the user set wins.
    os.environ.setdefault("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)
    from meshroute.extproc.server import serve

    return serve(
        args.paths,
        args.listen,
        args.workers,
        status_file=args.status_file,
        reload_interval=args.reload_interval,
        seed=args.seed,
        metrics_address=args.metrics,
        log_format=args.log_format,
    )
