"""Control headers: the ``x-envoy-*`` / ``x-meshroute-*`` headers Envoy acts on, and the value each
takes for a pass-through decision (cluster, timeout, retries, fault injection).

Istio's route policy reaches Envoy as request headers rather than route config because Envoy's
single catch-all route is shared by every decision (docs/envoy.md "Serve side").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshroute.extproc import CLUSTER_HEADER, HASH_HEADER, MIRROR_HEADERS, ORIGINAL_DST_HEADER

# Every header Envoy acts on that a client could forge; each pass-through answer sets or removes
# all of them (docs/envoy.md "Control headers").
CONTROL_HEADERS: tuple[str, ...] = (
    CLUSTER_HEADER,
    HASH_HEADER,
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-fault-delay-request",
    "x-envoy-fault-abort-request",
    "x-envoy-fault-abort-grpc-request",
    "x-envoy-fault-delay-request-percentage",
    "x-envoy-fault-abort-request-percentage",
    "x-envoy-fault-throughput-response",
    ORIGINAL_DST_HEADER,
    *MIRROR_HEADERS,
)

# Istio retryOn items that Envoy only understands in x-envoy-retry-grpc-on.
GRPC_RETRY_ON = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
# Istio's default retry policy (semantics §2.11). It lists retriable-status-codes with no codes:
# since 1.24 the default never retries a 503 *response*.
_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip


def control_headers(d: Mapping[str, Any]) -> dict[str, str | None]:
    """Value of every control header for a pass-through decision; None = remove.

    >>> h = control_headers({"cluster": "outbound|9080||r", "timeout_ms": 500, "retries": {"attempts": 0}})
    >>> h["x-meshroute-cluster"], h["x-envoy-upstream-rq-timeout-ms"], h["x-envoy-max-retries"]
    ('outbound|9080||r', '500', None)
    """
    out: dict[str, str | None] = dict.fromkeys(CONTROL_HEADERS)
    out[CLUSTER_HEADER] = d.get("cluster")
    timeout = d.get("timeout_ms")
    if timeout is not None:
        out["x-envoy-upstream-rq-timeout-ms"] = str(int(timeout))
    out.update(retry_headers(d.get("retries")))
    fault = d.get("fault") or {}
    if fault.get("delay_ms") is not None:
        out["x-envoy-fault-delay-request"] = str(int(fault["delay_ms"]))
    abort = fault.get("abort") or {}
    if abort.get("http_status") is not None:
        out["x-envoy-fault-abort-request"] = str(int(abort["http_status"]))
    elif abort.get("grpc_status") is not None:
        out["x-envoy-fault-abort-grpc-request"] = str(grpc_code(abort["grpc_status"]))
    return out


def retry_headers(retries: Mapping[str, Any] | None) -> dict[str, str]:
    """Istio retries -> x-envoy retry headers: HTTP conditions, gRPC conditions, status codes.

    >>> sorted(retry_headers({"attempts": 3, "retry_on": "5xx,unavailable,503,retriable-status-codes",
    ...                       "per_try_timeout_ms": 300}).items())  # doctest: +NORMALIZE_WHITESPACE
    [('x-envoy-max-retries', '3'), ('x-envoy-retriable-status-codes', '503'),
     ('x-envoy-retry-grpc-on', 'unavailable'), ('x-envoy-retry-on', '5xx,retriable-status-codes'),
     ('x-envoy-upstream-rq-per-try-timeout-ms', '300')]
    """
    if not retries or not retries.get("attempts"):
        return {}
    retry_on = str(retries.get("retry_on") or _DEFAULT_RETRY_ON)
    http: list[str] = []
    grpc: list[str] = []
    codes: list[str] = []
    for item in (i.strip() for i in retry_on.split(",")):
        if not item:
            continue
        if item.isdigit():
            codes.append(item)
        elif item in GRPC_RETRY_ON:
            grpc.append(item)
        elif item not in http:
            http.append(item)
    if codes and "retriable-status-codes" not in http:
        http.append("retriable-status-codes")
    out = {"x-envoy-max-retries": str(int(retries["attempts"]))}
    if http:
        out["x-envoy-retry-on"] = ",".join(http)
    if grpc:
        out["x-envoy-retry-grpc-on"] = ",".join(grpc)
    if codes:
        out["x-envoy-retriable-status-codes"] = ",".join(dict.fromkeys(codes))
    if retries.get("per_try_timeout_ms") is not None:
        out["x-envoy-upstream-rq-per-try-timeout-ms"] = str(int(retries["per_try_timeout_ms"]))
    return out


def grpc_code(status: Any) -> int:
    """Istio ``grpcStatus`` (a code name, or a number) -> the numeric gRPC code.

    >>> grpc_code("UNAVAILABLE"), grpc_code("14"), grpc_code(4)
    (14, 14, 4)
    """
    if isinstance(status, int):
        return status
    text = str(status).strip()
    return int(text) if text.isdigit() else GRPC_CODES.get(text.upper(), 2)
