"""``meshroute serve``: the grpc.aio ext_proc server, its health service, workers and shutdown.

One worker serves one address from :func:`meshroute.extproc.addresses`. With ``workers > 1`` the
parent loads the config once (so a bad config fails before anything starts), forks the workers
before any grpc object exists (grpc is imported only inside the worker), then watches the config
and compiles each change once for every worker (:class:`~meshroute.extproc.reload.Publisher`),
serves ``--metrics`` for all of them, forwards SIGTERM/SIGINT to the workers and exits when they
have exited: 0 when all stopped cleanly, else the first non-zero exit code. A worker that fails
(non-zero exit, killed) while the others run makes the parent stop the rest too, so a supervisor
(systemd, the demo, tests) sees the failure instead of a half-serving set; a worker that was
drained on purpose (its own SIGTERM, exit 0) leaves the others serving.

SIGTERM/SIGINT in a worker: health turns NOT_SERVING and, when Envoy health-checks the worker,
new streams are still accepted until Envoy has seen that (:mod:`meshroute.extproc.health`); then
new streams are refused, in-flight streams get up to ``GRACE_S`` seconds to finish, and the worker
exits 0.

``--metrics HOST:PORT``: Prometheus text on ``/metrics`` (:mod:`meshroute.metrics`). One worker
serves its own registry; with several, every process writes its values to files in a private
directory the parent creates before forking (prometheus_client's multiprocess mode) and the
parent's endpoint reports their sum; the directory is removed when serve exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from meshroute import metrics
from meshroute.errors import ConfigError
from meshroute.extproc import addresses, status_paths
from meshroute.extproc.logs import CONTEXT, setup_logging
from meshroute.extproc.reload import (
    Follower,
    Holder,
    Publisher,
    Reloader,
    Snapshot,
    compile_routing,
    log_compiled,
    snapshot,
)
from meshroute.render import render_diagnostics

if TYPE_CHECKING:
    import grpc

    from meshroute.extproc.context import Routing
    from meshroute.extproc.health import Health

GRACE_S = 5.0
# One HTTP/2 connection per Envoy worker carries every stream: allow plenty of concurrent ones.
SERVER_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.so_reuseport", 0),  # a second serve on the same port must fail, not share it silently
    ("grpc.max_concurrent_streams", 4096),
]
UPDATE_FILE = "config.pickle"  # in the parent's private directory (workers > 1)

log = logging.getLogger("meshroute.serve")

Poller = Reloader | Follower


def serve(
    paths: Sequence[str],
    listen: str,
    workers: int = 1,
    *,
    status_file: str | None = None,
    reload_interval: float = 0.5,
    seed: int | None = None,
    metrics_address: tuple[str, int] | None = None,
    log_format: str = "text",
) -> int:
    """Serve ext_proc on ``listen`` (``unix:/path`` or ``HOST:PORT``) until SIGTERM; the exit code."""
    setup_logging(log_format)
    try:
        targets = addresses(listen, workers)
    except ValueError as exc:
        log.error("meshroute serve: %s", exc)
        return 2
    private = tempfile.mkdtemp(prefix="meshroute-serve-") if workers > 1 else None
    try:
        metrics_dir = None
        if private is not None and metrics_address is not None:
            metrics_dir = os.path.join(private, "metrics")
            os.mkdir(metrics_dir)
            metrics.use_multiprocess(metrics_dir)
        seen = snapshot(paths)  # before compiling: a change made meanwhile is compiled again
        start = time.perf_counter()
        try:
            routing = compile_routing(paths, seed, keep_session=workers > 1)
        except ConfigError as exc:
            log.error("config has errors; not serving:\n%s", render_diagnostics(exc.diagnostics, None))
            return 1
        compile_ms = (time.perf_counter() - start) * 1000
        log_compiled(compile_ms, [], 1, workers)
        statuses: list[str | None] = [None] * workers
        if status_file:
            statuses = list(status_paths(status_file, workers))
        if private is None:
            CONTEXT["worker"] = 0
            metrics.current().compile_seconds.observe(compile_ms / 1000)
            endpoint = _start_metrics(metrics_address, None)
            if endpoint is False:
                return 1
            try:
                holder = Holder(routing, compile_ms)
                poller = Reloader(
                    paths, holder, interval=reload_interval, status_file=statuses[0], seed=seed,
                    status_extra={"worker": 0, "address": targets[0]}, seen=seen,
                )  # fmt: skip
                return _worker(targets[0], holder, poller)
            finally:
                _stop_metrics(endpoint)
        return _parent(paths, seen, targets, routing, compile_ms, statuses, private, reload_interval, seed,
                       metrics_address, metrics_dir)  # fmt: skip
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _parent(
    paths: Sequence[str],
    seen: Snapshot,
    targets: list[str],
    routing: Routing,
    compile_ms: float,
    statuses: list[str | None],
    private: str,
    reload_interval: float,
    seed: int | None,
    metrics_address: tuple[str, int] | None,
    metrics_dir: str | None,
) -> int:
    """Fork one worker per address, then watch/compile for all, serve metrics, supervise."""
    update_path = os.path.join(private, UPDATE_FILE)
    pipes = [os.pipe() for _ in targets]
    children: dict[int, int] = {}
    for index, address in enumerate(targets):
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the parent's code
            code = 1
            try:
                for i, (r, w) in enumerate(pipes):
                    os.close(w)
                    if i != index:
                        os.close(r)
                CONTEXT["worker"] = index
                holder = Holder(routing, compile_ms, worker=index)
                holder.tag = routing.tag  # the parent's session compiled it: its patches apply
                follower = Follower(
                    holder, update_path, pipes[index][0], status_file=statuses[index], seed=seed,
                    status_extra={"worker": index, "address": address},
                )  # fmt: skip
                code = _worker(address, holder, follower)
            except BaseException:
                log.exception("worker %d failed", index)
            finally:
                os._exit(code)
        children[pid] = index
    for r, _w in pipes:
        os.close(r)
    for _r, w in pipes:
        os.set_blocking(w, False)
    own = metrics.current()  # created after the fork: the workers have their own
    own.compile_seconds.observe(compile_ms / 1000)
    publisher = Publisher(
        paths, update_path, {i: w for i, (_r, w) in enumerate(pipes)}, interval=reload_interval, seed=seed,
        metrics=own, seen=seen, routing=routing,
    )  # fmt: skip
    stop = threading.Event()
    watcher = threading.Thread(target=publisher.run, args=(stop,), name="meshroute-config", daemon=True)
    registry = metrics.multiprocess_registry(metrics_dir) if metrics_dir else None
    endpoint = _start_metrics(metrics_address, registry)

    def exited(pid: int, index: int) -> None:
        publisher.drop(index)
        if metrics_dir:
            metrics.mark_dead(pid, metrics_dir)

    try:
        if endpoint is False:
            _stop_children(children)
            _supervise(children, exited)
            return 1
        watcher.start()
        return _supervise(children, exited)
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join(30)
        publisher.close()
        _stop_metrics(endpoint)


def _stop_children(children: dict[int, int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _supervise(children: dict[int, int], exited: Callable[[int, int], None]) -> int:
    """Wait for the workers; forward SIGTERM/SIGINT; stop all when one fails."""
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        _stop_children(children)

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
        exited(pid, index)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.error("worker %d exited with %d", index, code, extra={"exited_worker": index})
            result = result or (code if code > 0 else 1)
            if not stopping and children:
                forward(signal.SIGTERM, None)
        elif not stopping:
            log.info("worker %d drained and exited; %d still serving", index, len(children))
    return result


def _start_metrics(address: tuple[str, int] | None, registry: Any) -> Any:
    """Serve /metrics on ``address`` in a thread (None: no endpoint; False: it could not bind)."""
    if address is None:
        return None
    from prometheus_client import start_http_server

    host, port = address
    try:
        server, _thread = start_http_server(port, host, registry=registry or metrics.current().registry)
    except OSError as exc:
        log.error("meshroute serve: cannot serve metrics on %s:%d: %s", host, port, exc)
        return False
    log.info("metrics on http://%s:%d/metrics", host, port, extra={"metrics": f"{host}:{port}"})
    return server


def _stop_metrics(server: Any) -> None:
    if server:
        server.shutdown()
        server.server_close()


def _worker(address: str, holder: Holder, poller: Poller) -> int:
    # The loaded config lives for the whole run: keep it out of the GC's generations.
    gc.freeze()
    try:
        return asyncio.run(_run(address, holder, poller))
    except OSError as exc:
        log.error("meshroute serve: %s: %s", address, exc)
        return 1


async def _run(address: str, holder: Holder, poller: Poller) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if isinstance(poller, Follower):
        poller.on_parent_exit = stop.set
    try:
        server, health, _port = await start_server(address, holder)
    except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
        log.error("meshroute serve: cannot listen on %s: %s", address, exc)
        return 1
    log.info("serving ext_proc on %s (pid %d)", address, os.getpid(), extra={"address": address})
    task = asyncio.create_task(poller.run())
    await stop.wait()
    holder.draining = True
    poller.write_status()
    log.info("draining: health NOT_SERVING", extra={"address": address})
    seen = await health.drain()
    log.info(
        "stopping%s: in-flight streams get %.0fs",
        " (Envoy's health check saw NOT_SERVING)" if seen else "",
        GRACE_S,
        extra={"address": address},
    )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await server.stop(GRACE_S)
    poller.close()
    poller.write_status()
    return 0


async def start_server(address: str, holder: Holder) -> tuple[grpc.aio.Server, Health, int]:
    """Start a grpc.aio server with the ext_proc and health services; (server, health, bound port).

    The port is 0 for unix sockets. Raises RuntimeError when the address cannot be bound.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from meshroute.extproc.health import Health
    from meshroute.extproc.servicer import SERVICE, Servicer

    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_registered_method_handlers(SERVICE, Servicer(holder.current, holder.metrics).handlers())
    health_servicer = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    await server.start()
    for name in ("", SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, port
