"""Hot reload: poll the CONFIG paths, compile a changed config off the serving path, swap it.

Every regular file under the CONFIG paths is watched by (path, mtime_ns, size), so new, removed
and edited files all count. A change is loaded, validated and compiled in a worker thread
(``asyncio.to_thread``); a good result replaces :attr:`Holder.routing` with one reference
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
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshroute.errors import ConfigError
from meshroute.extproc.context import Routing
from meshroute.mesh import load
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
    """Load, validate and compile ``paths``; raises :class:`ConfigError` with every diagnostic."""
    return Routing(load(*paths), seed=seed)


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
            routing = await asyncio.to_thread(compile_routing, self.paths, self.seed)
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
