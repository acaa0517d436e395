"""``meshroute serve``: the grpc.aio ext_proc server, its health service, workers and shutdown.

One worker serves one address from :func:`meshroute.extproc.addresses`. With ``workers > 1`` the
parent loads the config once (so a bad config fails before anything starts), forks the workers
before any grpc object exists (grpc is imported only inside the worker), forwards SIGTERM/SIGINT
to them and exits when they have exited: 0 when all stopped cleanly, else the first non-zero exit
code. A worker that dies while the others run makes the parent stop the rest too, so a supervisor
(systemd, the demo, tests) sees the failure instead of a half-serving set.

SIGTERM/SIGINT in a worker: health turns NOT_SERVING, new streams are refused, in-flight streams
get up to ``GRACE_S`` seconds to finish, then the worker exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from meshroute.errors import ConfigError
from meshroute.extproc import addresses, status_paths
from meshroute.extproc.reload import Holder, Reloader, compile_routing
from meshroute.render import render_diagnostics

if TYPE_CHECKING:
    import grpc

    from meshroute.extproc.context import Routing

GRACE_S = 5.0
# One HTTP/2 connection per Envoy worker carries every stream: allow plenty of concurrent ones.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.so_reuseport", 0),  # a second serve on the same port must fail, not share it silently
    ("grpc.max_concurrent_streams", 4096),
]

log = logging.getLogger("meshroute.serve")


def serve(
    paths: Sequence[str],
    listen: str,
    workers: int = 1,
    *,
    status_file: str | None = None,
    reload_interval: float = 0.5,
    seed: int | None = None,
) -> int:
    """Serve ext_proc on ``listen`` (``unix:/path`` or ``HOST:PORT``) until SIGTERM; the exit code."""
    _setup_logging()
    try:
        targets = addresses(listen, workers)
    except ValueError as exc:
        print(f"meshroute serve: {exc}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        routing = compile_routing(paths, seed)
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, None), file=sys.stderr)
        return 1
    compile_ms = (time.perf_counter() - start) * 1000
    statuses: list[str | None] = list(status_paths(status_file, workers)) if status_file else [None] * workers
    if workers == 1:
        return _worker(paths, targets[0], routing, compile_ms, statuses[0], reload_interval, seed, 0)
    children: dict[int, int] = {}
    for index, address in enumerate(targets):
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                code = _worker(
                    paths, address, routing, compile_ms, statuses[index], reload_interval, seed, index
                )
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index
    return _supervise(children)


def _supervise(children: dict[int, int]) -> int:
    """Wait for the workers; forward SIGTERM/SIGINT; stop all when one exits."""
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    result = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid not in children:
            continue
        index = children.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.error("worker %d exited with %d", index, code)
            result = result or (code if code > 0 else 1)
        if not stopping and children:
            forward(signal.SIGTERM, None)
    return result


def _worker(
    paths: Sequence[str],
    address: str,
    routing: Routing,
    compile_ms: float,
    status_file: str | None,
    reload_interval: float,
    seed: int | None,
    index: int,
) -> int:
    holder = Holder(routing, compile_ms)
    reloader = Reloader(
        paths,
        holder,
        interval=reload_interval,
        status_file=status_file,
        seed=seed,
        status_extra={"worker": index, "address": address},
    )
    # The loaded config lives for the whole run: keep it out of the GC's generations.
    gc.freeze()
    try:
        return asyncio.run(_run(address, holder, reloader))
    except OSError as exc:
        print(f"meshroute serve: {address}: {exc}", file=sys.stderr)
        return 1


async def _run(address: str, holder: Holder, reloader: Reloader) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        server, health, _port = await start_server(address, holder)
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        print(f"meshroute serve: cannot listen on {address}: {exc}", file=sys.stderr)
        return 1
    log.info("serving ext_proc on %s (pid %d)", address, os.getpid())
    poller = asyncio.create_task(reloader.run())
    await stop.wait()
    log.info("stopping: in-flight streams get %.0fs", GRACE_S)
    await health.enter_graceful_shutdown()
    poller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poller
    await server.stop(GRACE_S)
    reloader.close()
    reloader.write_status()
    return 0


async def start_server(address: str, holder: Holder) -> tuple[grpc.aio.Server, Any, int]:
    """Start a grpc.aio server with the ext_proc and health services; (server, health, bound port).

    The port is 0 for unix sockets. Raises RuntimeError when the address cannot be bound.
    """
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from meshroute.extproc.servicer import SERVICE, Servicer

    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_registered_method_handlers(SERVICE, Servicer(holder.current).handlers())
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    await server.start()
    for name in ("", SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, port


def _setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.INFO,
            format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        )
