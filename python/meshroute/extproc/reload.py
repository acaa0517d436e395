"""Hot reload: poll the CONFIG paths, compile a changed config off the serving path, swap it.

Every regular file under the CONFIG paths is watched by (path, mtime_ns, size), so new, removed
and edited files all count. A change is loaded, validated and compiled to IR JSON in a separate
process (:func:`compile_config`, one long-lived "spawn" process per serve worker), and the Rust
table is built from that JSON in a thread, where the core runs without the GIL. Loading and
validating are pure Python: in a thread of the serving process they held the GIL for the whole
reload (measured, 5 000 routes: a 2.1 s reload gave streams a p99 of 156 ms and a max of 277 ms
against 0.74 ms steady). A good result replaces :attr:`Holder.routing` with one reference
assignment, so each stream sees either the old or the new config, never a mix. A config with
errors is logged with its diagnostics and the last good one keeps serving.

Status file (``--status-file PATH``): JSON written atomically (temp file + rename) after every
load attempt, and refreshed at most once a second while counters change::

    {"generation": 3, "ok": true, "loaded_at": 1700000000.1, "checked_at": 1700000000.1,
     "attempts": 4, "errors": [], "pid": 1234, "worker": 0, "address": "unix:/tmp/m.sock",
     "counters": {"streams_started": 10, ...}}

``generation`` counts successful loads (1 = the initial config); ``ok`` and ``errors`` (one
rendered line per error diagnostic) describe the last attempt; ``loaded_at`` is the time of the last
successful load and ``checked_at`` of the last attempt. With ``--workers N > 1`` worker ``i`` writes
``PATH.i`` (as ``meshroute.extproc.addresses`` names sockets); with one worker it writes ``PATH``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from meshroute.config import Analysis, analyze
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource
from meshroute.errors import ConfigError
from meshroute.extproc.context import Routing, mirror_limit_warnings
from meshroute.mesh import Mesh, load, table_from_ir_json
from meshroute.metrics import METRICS, Metrics
from meshroute.render import render_diagnostics

log = logging.getLogger("meshroute.serve")

Snapshot = frozenset[tuple[str, int, int]]


def snapshot(paths: Sequence[str]) -> Snapshot:
    """(path, mtime_ns, size) of every regular file under ``paths``; a missing path contributes none."""
    out: set[tuple[str, int, int]] = set()
    for root in paths:
        if os.path.isdir(root):
            for dirpath, _dirs, files in os.walk(root):
                for name in files:
                    _stat_into(out, os.path.join(dirpath, name))
        else:
            _stat_into(out, root)
    return frozenset(out)


def _stat_into(out: set[tuple[str, int, int]], path: str) -> None:
    with contextlib.suppress(OSError):
        st = os.stat(path)
        out.add((path, st.st_mtime_ns, st.st_size))


def compile_routing(paths: Sequence[str], seed: int | None = None) -> Routing:
    """Load, validate and compile ``paths`` in this process; raises :class:`ConfigError` with every
    diagnostic. Used before serving starts; reloads use :func:`compile_config` in another process."""
    return Routing(load(*paths), seed=seed)


# What serve reads from the resources after loading: the Gateways (to pick a gateway per request).
_SERVE_KINDS = frozenset({"Gateway"})


@dataclasses.dataclass(frozen=True)
class Compiled:
    """A config compiled in the compile process: small, picklable, cheap to receive."""

    ir_json: str | None  # None when the config has errors
    diagnostics: list[Diagnostic]
    resources: list[Resource]  # only the kinds serve reads, without line maps or raw documents
    warnings: list[str]  # serve's own load-time warnings (mirror limit)


def compile_config(paths: Sequence[str]) -> Compiled:
    """Load, validate and compile ``paths`` to IR JSON; runs in the compile process."""
    analysis = analyze(paths)
    if not analysis.ok or analysis.ir is None:
        return Compiled(None, analysis.diagnostics, [], [])
    kept = [
        dataclasses.replace(r, positions={}, document={})
        for r in analysis.resources
        if r.kind in _SERVE_KINDS
    ]
    return Compiled(
        json.dumps(analysis.ir), analysis.diagnostics, kept, mirror_limit_warnings(analysis.resources)
    )


def routing_from(compiled: Compiled, seed: int | None = None) -> Routing:
    """Build the serving config from a :class:`Compiled`; raises :class:`ConfigError`."""
    if compiled.ir_json is None:
        raise ConfigError(compiled.diagnostics)
    table = table_from_ir_json(compiled.ir_json, compiled.diagnostics)
    for message in compiled.warnings:
        log.warning("%s", message)
    analysis = Analysis(resources=list(compiled.resources), diagnostics=list(compiled.diagnostics))
    return Routing(Mesh(table, analysis), seed=seed)


class Holder:
    """The serving config plus the bookkeeping the status file reports."""

    def __init__(self, routing: Routing, compile_ms: float = 0.0, metrics: Metrics = METRICS) -> None:
        self.routing = routing
        self.metrics = metrics
        self.generation = 1
        self.attempts = 1
        self.ok = True
        self.errors: list[str] = []
        self.loaded_at = self.checked_at = time.time()
        metrics.reloads_ok += 1
        metrics.last_compile_ms = round(compile_ms, 2)

    def current(self) -> Routing:
        return self.routing

    def status(self, **extra: Any) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "ok": self.ok,
            "loaded_at": self.loaded_at,
            "checked_at": self.checked_at,
            "attempts": self.attempts,
            "errors": list(self.errors),
            "pid": os.getpid(),
            **extra,
            "counters": self.metrics.snapshot(),
        }


def write_status(path: str | os.PathLike[str], status: dict[str, Any]) -> None:
    """Write ``status`` as JSON to ``path`` atomically (readers never see a partial file)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=1) + "\n")
    os.replace(tmp, target)


class Reloader:
    """Polls the config every ``interval`` seconds and swaps :attr:`Holder.routing` on a good change."""

    def __init__(
        self,
        paths: Sequence[str],
        holder: Holder,
        *,
        interval: float = 0.5,
        status_file: str | None = None,
        seed: int | None = None,
        status_extra: dict[str, Any] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.holder = holder
        self.interval = interval
        self.status_file = status_file
        self.seed = seed
        self.status_extra = status_extra or {}
        self._seen = snapshot(self.paths)
        self._last_counters: dict[str, int | float] = {}
        self._last_write = 0.0
        self._compiler: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        # "spawn": serve's own process runs grpc threads, which a fork must not copy.
        if self._compiler is None:
            context = multiprocessing.get_context("spawn")
            self._compiler = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._compiler

    def close(self) -> None:
        """Stop the compile process (serve's shutdown)."""
        if self._compiler is not None:
            self._compiler.shutdown(wait=False, cancel_futures=True)
            self._compiler = None

    async def _compile(self) -> Routing:
        loop = asyncio.get_running_loop()
        try:
            compiled = await loop.run_in_executor(self._pool(), compile_config, self.paths)
        except BrokenProcessPool:
            self._compiler = None  # it died (killed, out of memory): a new one next time
            raise
        return await asyncio.to_thread(routing_from, compiled, self.seed)

    def write_status(self) -> None:
        if self.status_file:
            status = self.holder.status(**self.status_extra)
            write_status(self.status_file, status)
            self._last_counters = status["counters"]
            self._last_write = time.monotonic()

    async def run(self) -> None:
        """Poll until cancelled."""
        self.write_status()
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> bool | None:
        """Reload if the files changed: True = swapped, False = rejected, None = unchanged."""
        current = await asyncio.to_thread(snapshot, self.paths)
        if current == self._seen:
            due = self.status_file and time.monotonic() - self._last_write >= 1.0
            if due and self.holder.metrics.snapshot() != self._last_counters:
                self.write_status()
            return None
        self._seen = current
        return await self.reload()

    async def reload(self) -> bool:
        """Load the config now; swap it in when it has no errors."""
        h = self.holder
        start = time.perf_counter()
        try:
            routing = await self._compile()
        except ConfigError as exc:
            errors = [d.render() for d in exc.diagnostics if d.is_error]
            report = render_diagnostics(exc.diagnostics, None)
        except Exception as exc:  # a file vanished mid-read, unreadable YAML...: keep serving
            errors = [f"{type(exc).__name__}: {exc}"]
            report = errors[0]
        else:
            h.routing = routing  # the swap: one reference assignment
            h.generation += 1
            h.loaded_at = time.time()
            errors = []
        h.attempts += 1
        h.checked_at = time.time()
        h.ok = not errors
        h.errors = errors
        h.metrics.last_compile_ms = round((time.perf_counter() - start) * 1000, 2)
        if errors:
            h.metrics.reloads_rejected += 1
            log.error("config change rejected; still serving generation %d:\n%s", h.generation, report)
        else:
            h.metrics.reloads_ok += 1
            log.info("config reloaded: generation %d", h.generation)
        self.write_status()
        return not errors
