"""One request's decision, read as Envoy reads it: ``RouteTable.exchange`` (the one decision both
Envoy engines apply, docs/envoy.md), through ``RouteTable.client_exchange`` which hands its answer
over already applied to the request's headers, turned into what the client does — a local reply,
or a forward with its cluster, rewritten authority and path, timeout, retry policy, fault, hash
key and mirrors, the control headers out of what the upstream will see.

>>> import httpx, meshroute
>>> from meshroute._core import ListenerContext
>>> mesh = meshroute.load(meshroute.bookinfo_path())
>>> fwd = decide(mesh.table, ListenerContext(), httpx.Request("GET", "http://reviews:9080/r"), seed=1)
>>> fwd.cluster, fwd.retry.max_retries
('outbound|9080|v1|reviews.default.svc.cluster.local', 2)
>>> sorted(fwd.retry.retry_on)
['connect-failure', 'refused-stream', 'retriable-status-codes']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import httpx

from meshroute._core import CONTROL_HEADERS, MIRROR_HEADERS, ListenerContext, RouteTable

Header = tuple[bytes, bytes]
# RouteTable.client_exchange's two answers.
_ReplyAnswer = tuple[str, str, int, list[Header], bytes, str]
_ForwardAnswer = tuple[
    str,
    str,
    list[Header],
    bytes,
    bytes,
    tuple[bytes | None, ...],
    tuple[list[Header], list[Header], list[bytes]] | None,
]

# Positions of the control headers in a client_exchange answer (CONTROL_HEADERS order).
_AT = {name: i for i, name in enumerate(CONTROL_HEADERS)}
CLUSTER = _AT["x-meshroute-cluster"]
HASH = _AT["x-meshroute-hash"]
TIMEOUT_MS = _AT["x-envoy-upstream-rq-timeout-ms"]
# The retry headers, adjacent in CONTROL_HEADERS: one slice of the answer, in
# _read_retry_policy's argument order.
_RETRY_NAMES = (
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
)
RETRY = slice(_AT[_RETRY_NAMES[0]], _AT[_RETRY_NAMES[0]] + len(_RETRY_NAMES))
assert CONTROL_HEADERS[RETRY] == _RETRY_NAMES, "CONTROL_HEADERS order changed"
DELAY = _AT["x-envoy-fault-delay-request"]
ABORT = _AT["x-envoy-fault-abort-request"]
ABORT_GRPC = _AT["x-envoy-fault-abort-grpc-request"]
ORIGINAL_DST = _AT["x-envoy-original-dst-host"]
MIRRORS = slice(_AT[MIRROR_HEADERS[0]], _AT[MIRROR_HEADERS[0]] + len(MIRROR_HEADERS))
assert CONTROL_HEADERS[MIRRORS] == tuple(MIRROR_HEADERS), "CONTROL_HEADERS order changed"


# gRPC status names Envoy's x-envoy-retry-grpc-on understands -> grpc-status codes.
GRPC_RETRY_CODES = {
    "cancelled": 1,
    "deadline-exceeded": 4,
    "resource-exhausted": 8,
    "internal": 13,
    "unavailable": 14,
}
GATEWAY_ERRORS = frozenset({502, 503, 504})
# Failures of an attempt that got no response (as Envoy's reset reasons).
CONNECT_FAILURE = "connect-failure"
RESET = "reset"
TIMEOUT = "timeout"


@dataclass(frozen=True)
class RetryPolicy:
    """The retry headers of an answer (``x-envoy-max-retries``, ``-retry-on``, ...), as Envoy's
    router applies them (semantics §2.11)."""

    max_retries: int = 0
    retry_on: frozenset[str] = frozenset()
    grpc_on: frozenset[int] = frozenset()
    status_codes: frozenset[int] = frozenset()
    header_names: tuple[str, ...] = ()
    per_try_timeout: float | None = None  # seconds

    def retries_status(self, status: int, headers: Mapping[str, str]) -> bool:
        """Whether an upstream answer with ``status`` and ``headers`` is retried.

        >>> on = frozenset({"gateway-error", "retriable-status-codes"})
        >>> p = RetryPolicy(2, on, status_codes=frozenset({409}), grpc_on=frozenset({14}))
        >>> p.retries_status(503, {}), p.retries_status(500, {}), p.retries_status(409, {})
        (True, False, True)
        >>> p.retries_status(503, {"x-envoy-overloaded": "true"})
        False
        >>> p.retries_status(200, {"grpc-status": "14"}), p.retries_status(200, {"grpc-status": "0"})
        (True, False)
        """
        if not self.max_retries:
            return False
        on = self.retry_on
        hit = (
            ("5xx" in on and status >= 500)
            or ("gateway-error" in on and status in GATEWAY_ERRORS)
            or ("retriable-4xx" in on and status == 409)
            or ("retriable-status-codes" in on and status in self.status_codes)
            or ("envoy-ratelimited" in on and "x-envoy-ratelimited" in headers)
            or ("retriable-headers" in on and any(name in headers for name in self.header_names))
            # A gRPC status rides on a 200 (trailers-only answer).
            or (status == 200 and bool(self.grpc_on) and _grpc_status(headers) in self.grpc_on)
        )
        # Envoy never retries an upstream's own overload answer.
        return hit and "x-envoy-overloaded" not in headers

    def retries_failure(self, failure: str) -> bool:
        """Whether an attempt that got no answer (``connect-failure``, ``reset``, or a per-try
        ``timeout``) is retried: Envoy retries any reset under ``5xx``, ``gateway-error`` and
        ``reset``, a connect failure under ``connect-failure`` too.

        >>> RetryPolicy(1, frozenset({"connect-failure"})).retries_failure("connect-failure")
        True
        >>> RetryPolicy(1, frozenset({"connect-failure"})).retries_failure("timeout")
        False
        """
        on = self.retry_on
        if on & {"5xx", "gateway-error", "reset"}:
            return True
        return failure == CONNECT_FAILURE and bool(on & {"connect-failure", "reset-before-request"})


@dataclass
class Reply:
    """A local answer from the decision itself (redirect, direct response, 404, 502, 503...)."""

    outcome: str
    status: int
    headers: list[Header]
    body: bytes
    details: str


@dataclass(slots=True)
class Forward:
    """A request that goes on to a cluster (or is answered by its fault)."""

    outcome: str  # "route" or "abort"
    method: str
    scheme: bytes
    authority: bytes  # after any rewrite
    path: bytes  # after any rewrite, query included
    headers: list[Header]  # what the upstream gets: no pseudo-header, no Host, no control header
    cluster: str
    timeout: float | None = None  # seconds; None: no route timeout
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    delay: float | None = None  # fault delay, seconds
    abort_status: int | None = None  # fault abort, HTTP status
    abort_grpc: int | None = None  # fault abort, gRPC status
    hash_key: bytes | None = None
    mirrors: tuple[str, ...] = ()
    original_dst: str | None = None
    response_set: Sequence[Header] = ()
    response_append: Sequence[Header] = ()
    response_remove: frozenset[bytes] = frozenset()


def decide(
    table: RouteTable, listener: ListenerContext, request: httpx.Request, seed: int | None = None
) -> Forward | Reply:
    """Decide ``request`` as the sidecar behind ``listener`` would (``seed``: its random draws)."""
    url = request.url
    raw = request.headers.raw
    host = _host(raw)
    scheme = url.raw_scheme
    answer = table.client_exchange(
        listener,
        _METHODS.get(request.method) or request.method.encode("ascii"),
        scheme,
        host if host is not None else url.netloc,
        url.raw_path,
        raw,
        seed,
    )
    if answer[0] == "reply":
        _, outcome, status, headers, body, details = cast(_ReplyAnswer, answer)
        return Reply(outcome, status, headers, body, details)
    _, outcome, upstream, authority, path, controls, response = cast(_ForwardAnswer, answer)
    cluster = controls[CLUSTER]
    timeout = controls[TIMEOUT_MS]
    fwd = Forward(
        outcome,
        request.method,
        scheme,
        authority,
        path,
        upstream,
        cluster.decode("latin-1") if cluster is not None else "",
        _seconds(timeout) if timeout is not None else None,
        _retry_policy(controls[RETRY]),
        hash_key=controls[HASH],
    )
    # Faults, mirrors, the passthrough destination: most answers have none of them.
    if (
        controls[DELAY]
        or controls[ABORT]
        or controls[ABORT_GRPC]
        or controls[ORIGINAL_DST]
        or any(controls[MIRRORS])
    ):
        delay_ms = _int(controls[DELAY])
        fwd.delay = delay_ms / 1000 if delay_ms is not None else None
        fwd.abort_status = _int(controls[ABORT])
        fwd.abort_grpc = _int(controls[ABORT_GRPC])
        fwd.mirrors = tuple(m.decode("latin-1") for m in controls[MIRRORS] if m is not None)
        dst = controls[ORIGINAL_DST]
        fwd.original_dst = dst.decode("latin-1") if dst else None
    if response is not None:
        fwd.response_set, fwd.response_append, remove = response
        fwd.response_remove = frozenset(remove)
    return fwd


# The methods httpx requests carry, as the bytes the exchange takes (others are encoded).
_METHODS = {m: m.encode("ascii") for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")}


def _host(raw: list[Header]) -> bytes | None:
    """The request's ``Host`` (its first one); httpx puts it first."""
    for key, value in raw:
        if key == b"Host" or key == b"host" or key.lower() == b"host":
            return value
    return None


def _grpc_status(headers: Mapping[str, str]) -> int | None:
    raw = getattr(headers, "raw", None)
    if raw is not None:  # httpx.Headers: a scan of the raw pairs costs less than a lookup
        for key, value in raw:
            if key.lower() == b"grpc-status":
                text = value.strip()
                return int(text) if text.isdigit() else None
        return None
    found = headers.get("grpc-status")
    return int(found) if found is not None and found.strip().isdigit() else None


def _int(value: bytes | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    return int(text) if text.isdigit() else None


# Route timeouts (``x-envoy-upstream-rq-timeout-ms``) in seconds: a few distinct values repeat.
_TIMEOUTS: dict[bytes, float | None] = {}


def _seconds(timeout_ms: bytes) -> float | None:
    """A timeout header in seconds; None for 0 (no timeout, as Envoy) or a malformed value."""
    if timeout_ms in _TIMEOUTS:
        return _TIMEOUTS[timeout_ms]
    ms = _int(timeout_ms)
    found = ms / 1000 if ms else None
    if len(_TIMEOUTS) < 1024:
        _TIMEOUTS[timeout_ms] = found
    return found


def _items(value: bytes | None) -> list[str]:
    return [p.strip() for p in (value or b"").decode("latin-1").split(",") if p.strip()]


# Answers repeat a route's retry headers: each distinct set is read once (bounded).
_POLICIES: dict[tuple[bytes | None, ...], RetryPolicy] = {}
_MAX_POLICIES = 4096


def _retry_policy(key: tuple[bytes | None, ...]) -> RetryPolicy:
    found = _POLICIES.get(key)
    if found is None:
        if len(_POLICIES) >= _MAX_POLICIES:
            _POLICIES.clear()
        found = _POLICIES[key] = _read_retry_policy(*key)
    return found


def _read_retry_policy(
    per_try: bytes | None,
    retries: bytes | None,
    retry_on: bytes | None,
    grpc_on: bytes | None,
    codes: bytes | None,
    header_names: bytes | None,
) -> RetryPolicy:
    per_try_ms = _int(per_try)
    return RetryPolicy(
        max_retries=_int(retries) or 0,
        retry_on=frozenset(_items(retry_on)),
        grpc_on=frozenset(GRPC_RETRY_CODES[n] for n in _items(grpc_on) if n in GRPC_RETRY_CODES),
        status_codes=frozenset(int(c) for c in _items(codes) if c.isdigit()),
        header_names=tuple(n.lower() for n in _items(header_names)),
        per_try_timeout=per_try_ms / 1000 if per_try_ms else None,
    )
