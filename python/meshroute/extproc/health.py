"""The gRPC health service Envoy checks (docs/envoy.md "Health checks"), and the drain on SIGTERM.

envoy-config gives the ext_proc cluster a gRPC health check (``Check`` every
``HEALTH_INTERVAL_MS``, a host unhealthy after ``HEALTH_UNHEALTHY_THRESHOLD`` failed checks). On
SIGTERM a worker turns NOT_SERVING and keeps accepting streams until it has answered that many
checks NOT_SERVING (plus :data:`MARGIN_S` for Envoy's worker threads to learn it), so Envoy has
moved new streams to the other workers before this one stops taking them. The wait ends early
when the checks stop coming (no check for an interval plus :data:`GONE_SLACK_S`: Envoy exited);
a worker nobody health-checked lately (:data:`RECENT_CHECKS` intervals: an older bootstrap, a
test client) stops at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from grpc_health.v1 import health, health_pb2

from meshroute.extproc import HEALTH_INTERVAL_MS, HEALTH_UNHEALTHY_THRESHOLD

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
INTERVAL_S = HEALTH_INTERVAL_MS / 1000
MARGIN_S = 0.2
GONE_SLACK_S = 0.5
RECENT_CHECKS = 3


class Health(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc's health servicer, remembering when it was checked and how often it said NOT_SERVING."""

    def __init__(self) -> None:
        super().__init__()
        self.last_check: float | None = None  # time.monotonic()
        self.not_serving_answers = 0
        self._answered = asyncio.Event()

    async def Check(self, request: Any, context: Any) -> Any:
        response = await super().Check(request, context)
        self.last_check = time.monotonic()
        if response is not None and response.status == NOT_SERVING:
            self.not_serving_answers += 1
            self._answered.set()
        return response

    def checked_within(self, seconds: float) -> bool:
        return self.last_check is not None and time.monotonic() - self.last_check < seconds

    async def drain(self, threshold: int = HEALTH_UNHEALTHY_THRESHOLD, interval: float = INTERVAL_S) -> bool:
        """Turn NOT_SERVING; if a health checker is watching, wait until it has been answered
        NOT_SERVING ``threshold`` times. True when it was (Envoy no longer sends new streams)."""
        watched = self.checked_within(RECENT_CHECKS * interval)
        await self.enter_graceful_shutdown()
        if not watched:
            return False
        while self.not_serving_answers < threshold:
            assert self.last_check is not None
            remaining = self.last_check + interval + GONE_SLACK_S - time.monotonic()
            if remaining <= 0:
                return False  # the checks stopped: the checker is gone
            self._answered.clear()
            try:
                await asyncio.wait_for(self._answered.wait(), remaining)
            except TimeoutError:
                continue
        await asyncio.sleep(MARGIN_S)
        return True
