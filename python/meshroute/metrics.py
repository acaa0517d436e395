"""Every counter ``meshroute serve`` keeps, declared once here with what it counts.

Counters are plain ints on one slotted object per process (``METRICS``): an increment is an
attribute add, cheap enough for the per-request path. They are reported in the serve status file.

>>> m = Metrics()
>>> m.streams_started += 1
>>> m.snapshot()["streams_started"]
1
>>> sorted(DESCRIPTIONS) == sorted(m.snapshot())
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


def _counter(description: str) -> Any:
    return field(default=0, metadata={"description": description})


@dataclass(slots=True)
class Metrics:
    """The declared list: one field per counter, each with a one-line description."""

    streams_started: int = _counter("ext_proc streams accepted")
    streams_failed: int = _counter("streams aborted with a gRPC error (bad message, bad context, exception)")
    decisions_route: int = _counter("request_headers answered by routing to a cluster")
    decisions_abort: int = _counter("request_headers answered with a fault abort header")
    decisions_redirect: int = _counter("request_headers answered with an immediate redirect")
    decisions_direct_response: int = _counter("request_headers answered with an immediate direct response")
    decisions_no_route: int = _counter("request_headers answered 404 (no route, or no gateway for the host)")
    decisions_no_cluster: int = _counter("request_headers answered 503 (route to an unknown service)")
    response_headers: int = _counter("response_headers messages answered with the route's header ops")
    other_messages: int = _counter("body/trailer messages answered with an empty answer")
    faults_delay: int = _counter("fault delays that fired (x-envoy-fault-delay-request set)")
    faults_abort: int = _counter("fault aborts that fired (x-envoy-fault-abort-*request set)")
    reloads_ok: int = _counter("config loads that compiled and now serve (the initial one included)")
    reloads_rejected: int = _counter("config loads rejected with errors; the previous config keeps serving")
    last_compile_ms: float = field(
        default=0.0, metadata={"description": "wall time of the last load+validate+compile, in ms"}
    )

    def snapshot(self) -> dict[str, int | float]:
        """All counters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def count_decision(self, outcome: str) -> None:
        """Count one decision by its outcome."""
        name = "decisions_" + outcome
        setattr(self, name, getattr(self, name) + 1)


DESCRIPTIONS: dict[str, str] = {f.name: f.metadata["description"] for f in fields(Metrics)}

METRICS = Metrics()
