"""The life of one request through the proxyless client, without I/O: a generator that yields
what it needs done (send a request upstream, sleep, wait for a circuit-breaker slot, read the
request body, start a mirror) and gets the results back. :mod:`meshroute.client.transport` runs
it with blocking calls (``MeshTransport``) or with ``await`` (``AsyncMeshTransport``), so both
transports share every rule here.

The order is Envoy's filter chain as meshroute configures it (docs/envoy.md): the decision
(``exchange``), then the fault filter (delay, then abort), then the router: mirrors, the
endpoint pick with the cluster's balancer, the circuit breaker, the attempt with its per-try
timeout inside the route timeout, retries with jittered exponential backoff (semantics §2.11),
each outcome fed to outlier detection and least-request counts (§3.6, §3.7), and each attempt's
latency (sent to response headers, or to its failure) to the balancer, which PEAK_EWMA learns from.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx

from meshroute._core import PASSTHROUGH_CLUSTER, ListenerContext
from meshroute.client.decide import CONNECT_FAILURE, RESET, TIMEOUT, Forward, Header, Reply, decide
from meshroute.client.info import MeshRoute
from meshroute.client.upstreams import Target, Upstream, Upstreams

# Istio's retry backoff: base 25 ms, each wait capped at 10 x base (semantics §2.11).
BACKOFF_BASE = 0.025
BACKOFF_MAX = 0.25
# Envoy's retry_host_predicate previous_hosts, host_selection_retry_max_attempts (docs/envoy.md).
HOST_SELECTION_ATTEMPTS = 5
# Envoy's local reply bodies.
NO_HEALTHY_UPSTREAM = b"no healthy upstream"
OVERFLOW = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"
CONNECT_ERROR = b"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
RESET_ERROR = (
    b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
)
TIMEOUT_BODY = b"upstream request timeout"
ABORT_BODY = b"fault filter abort"
_TEXT = (b"content-type", b"text/plain")
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


# --- What the flow asks its driver for --------------------------------------------------------


@dataclass(slots=True)
class Send:
    """Send ``request`` with the inner transport; the result is the ``httpx.Response`` or the
    ``httpx.TransportError`` it raised."""

    request: httpx.Request


@dataclass(slots=True)
class Sleep:
    seconds: float


@dataclass(slots=True)
class WaitActive:
    """Wait until circuit-breaker ``ticket`` of ``upstream`` leaves the pending queue; the result
    is True, or False when ``deadline`` (time.monotonic) passed first."""

    upstream: Upstream
    ticket: int
    deadline: float | None


@dataclass(slots=True)
class Discard:
    """Read and close a response the flow will not return (a retried attempt, a mirror's)."""

    response: httpx.Response


@dataclass(slots=True)
class ReadBody:
    """Read the whole body of ``request`` (needed to send it again); the result is the bytes."""

    request: httpx.Request


@dataclass(slots=True)
class Mirror:
    """Run ``flow`` (a shadow request) in the background; nobody waits for it."""

    flow: Generator[Op, Any, None]


Op = Send | Sleep | WaitActive | Discard | ReadBody | Mirror


@dataclass(slots=True)
class Answer:
    """What the flow returns: a local answer (``content``) or an upstream response whose body the
    driver passes on, calling ``done`` once it is closed."""

    status: int
    headers: list[Header] | None  # None: the upstream response's, unchanged
    info: MeshRoute
    content: bytes = b""
    upstream: httpx.Response | None = None
    done: Callable[[], None] | None = None


Flow = Generator[Op, Any, Answer]


# --- The flow ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Attempt:
    """Resources one attempt holds until its response is finished with."""

    upstream: Upstream
    index: int | None
    ticket: int
    retry_ticket: int | None
    started: bool = False
    finished: bool = False

    def start(self) -> None:
        """The request goes out: count it in flight on its endpoint (LEAST_REQUEST)."""
        if self.index is not None:
            self.upstream.balancer.start(self.index)
        self.started = True

    def done(self) -> None:
        if self.finished:
            return
        self.finished = True
        if self.started and self.index is not None:
            self.upstream.balancer.finish(self.index)
        self.upstream.release(self.ticket)
        if self.retry_ticket is not None:
            self.upstream.balancer.release_retry(self.retry_ticket)


@dataclass
class Client:
    """The state the requests of one transport share: the current Upstreams (swapped whole by
    ``update``), the client identity, the clock and the random streams."""

    upstreams: Upstreams
    clock: Callable[[], float] = time.monotonic
    seed: int | None = None
    source_key: bytes = field(default_factory=lambda: socket.gethostname().encode())
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- shared randomness --

    def _draw(self) -> int:
        with self._lock:
            return self._rng.getrandbits(64)

    def _uniform(self) -> float:
        with self._lock:
            return self._rng.random()

    def update(self, upstreams: Upstreams) -> None:
        """Swap in the clusters of a new Mesh; requests in flight keep the ones they started with."""
        previous, self.upstreams = self.upstreams, upstreams
        previous.forget_previous()

    # -- the request --

    def handle(self, request: httpx.Request) -> Flow:
        ups = self.upstreams  # one snapshot for the whole request
        decision = decide(
            ups.mesh.table, ups.listener, request, self._draw() if self.seed is not None else None
        )
        if isinstance(decision, Reply):
            flag = {"no_route": "NR", "no_cluster": "NC"}.get(decision.outcome, "")
            info = MeshRoute(decision.outcome, flags=flag, details=decision.details)
            return Answer(decision.status, decision.headers, info, content=decision.body)
        fwd = decision
        flags: list[str] = []
        if fwd.delay is not None:
            flags.append("DI")
            if fwd.delay > 0:
                yield Sleep(fwd.delay)
        if fwd.abort_status is not None or fwd.abort_grpc is not None:
            return _abort(fwd, flags)
        body: bytes | None = None
        if (fwd.retry.max_retries > 0 or fwd.mirrors) and not isinstance(request.stream, httpx.ByteStream):
            # A streamed body is read once, to be sent again (a retry, a mirror); an in-memory
            # one (httpx.ByteStream: content=..., or no body) can be sent as often as needed.
            body = yield ReadBody(request)
        for cluster in fwd.mirrors:
            yield Mirror(self._shadow(ups, cluster, fwd, request, body))
        if fwd.cluster == PASSTHROUGH_CLUSTER:
            return (yield from self._passthrough(request, fwd, body, flags))
        upstream = ups.get(fwd.cluster)
        if upstream is None:
            info = MeshRoute(fwd.outcome, fwd.cluster, flags=_flags(flags, "NC"), details="cluster_not_found")
            return _local(fwd, 503, b"", info)
        return (yield from self._route(request, fwd, upstream, body, flags))

    def _route(
        self, request: httpx.Request, fwd: Forward, upstream: Upstream, body: bytes | None, flags: list[str]
    ) -> Flow:
        key, cookie = self._hash_key(upstream, fwd)
        extra = [(b"set-cookie", cookie)] if cookie else []
        deadline = time.monotonic() + fwd.timeout if fwd.timeout else None
        balancer = upstream.balancer
        tried: list[int] = []
        attempts = 0
        retry_ticket: int | None = None  # the retry permit the next attempt runs under

        def local(
            status: int,
            content: bytes,
            flag: str,
            details: str,
            target: Target | None = None,
            more: tuple[Header, ...] = (),
        ) -> Answer:
            info = MeshRoute(
                fwd.outcome,
                upstream.name,
                target.hostport if target else None,
                target.locality if target else "",
                attempts,
                _flags(flags, flag),
                details,
            )
            return _local(fwd, status, content, info, [*more, *extra])

        while True:
            index: int | None = None
            target: Target | None = None
            if not upstream.original_dst:
                index = self._pick(upstream, key, tried)
            ticket = balancer.acquire() if index is not None or upstream.original_dst else None
            if ticket is None:
                if retry_ticket is not None:
                    balancer.release_retry(retry_ticket)
                if index is None and not upstream.original_dst:
                    return local(503, NO_HEALTHY_UPSTREAM, "UH", "no_healthy_upstream")
                return local(503, OVERFLOW, "UO", "overflow", more=((b"x-envoy-overloaded", b"true"),))
            if index is not None:
                target = upstream.targets[index]
            attempt = _Attempt(upstream, index, ticket, retry_ticket)
            retry_ticket = None
            try:
                if not balancer.is_active(ticket) and not (yield WaitActive(upstream, ticket, deadline)):
                    attempt.done()
                    return local(504, TIMEOUT_BODY, "UT", "upstream_timeout", target)
                attempt.start()
                attempts += 1
                sent = _upstream_request(
                    request, fwd, target, body, _budget(fwd, deadline), upstream.connect_timeout
                )
                sent_at = time.monotonic()
                result = yield Send(sent)
                latency = time.monotonic() - sent_at  # to the response headers (PEAK_EWMA)
                now = self.clock()
                failure: str | None = None
                if isinstance(result, httpx.Response):
                    if index is not None:
                        balancer.record(index, result.status_code, now, latency)
                    retriable = fwd.retry.retries_status(result.status_code, result.headers)
                else:
                    failure = _failure(result)
                    if index is not None:
                        balancer.record(index, failure, now, latency)
                    retriable = fwd.retry.retries_failure(failure)
                expired = deadline is not None and time.monotonic() >= deadline
                if retriable and not expired and attempts <= fwd.retry.max_retries:
                    # maxRetries full: no retry, this answer stands (Envoy's retry overflow).
                    retry_ticket = balancer.acquire_retry()
                if retry_ticket is not None:
                    if isinstance(result, httpx.Response):
                        yield Discard(result)
                    attempt.done()
                    if index is not None and index not in tried:
                        tried.append(index)
                    wait = self._backoff(attempts, deadline)
                    if wait > 0:
                        yield Sleep(wait)
                    continue
            except BaseException:
                attempt.done()
                if retry_ticket is not None:
                    balancer.release_retry(retry_ticket)
                raise
            exhausted = retriable and fwd.retry.max_retries > 0 and attempts > fwd.retry.max_retries
            if isinstance(result, httpx.Response):
                info = MeshRoute(
                    fwd.outcome,
                    upstream.name,
                    target.hostport if target else sent.url.netloc.decode("ascii"),
                    target.locality if target else "",
                    attempts,
                    _flags(flags, "URX" if exhausted else ""),
                )
                headers = _response_headers(fwd, result.headers.raw, extra) if _edits(fwd, extra) else None
                return Answer(result.status_code, headers, info, upstream=result, done=attempt.done)
            attempt.done()
            if failure == TIMEOUT or expired:
                return local(504, TIMEOUT_BODY, "UT", "upstream_timeout", target)
            if failure == CONNECT_FAILURE:
                return local(503, CONNECT_ERROR, "UF", "upstream_reset_before_response_started", target)
            return local(503, RESET_ERROR, "UC", "upstream_reset_before_response_started", target)

    def _passthrough(
        self, request: httpx.Request, fwd: Forward, body: bytes | None, flags: list[str]
    ) -> Flow:
        """ALLOW_ANY: the request as it was addressed, once."""
        deadline = time.monotonic() + fwd.timeout if fwd.timeout else None
        sent = _upstream_request(request, fwd, None, body, _budget(fwd, deadline), None)
        result = yield Send(sent)
        endpoint = sent.url.netloc.decode("ascii")
        if isinstance(result, httpx.Response):
            info = MeshRoute(fwd.outcome, fwd.cluster, endpoint, attempts=1, flags=_flags(flags, ""))
            headers = _response_headers(fwd, result.headers.raw, []) if _edits(fwd, []) else None
            return Answer(result.status_code, headers, info, upstream=result)
        failure = _failure(result)
        flag, status, content = {
            TIMEOUT: ("UT", 504, TIMEOUT_BODY),
            CONNECT_FAILURE: ("UF", 503, CONNECT_ERROR),
        }.get(failure, ("UC", 503, RESET_ERROR))
        info = MeshRoute(fwd.outcome, fwd.cluster, endpoint, attempts=1, flags=_flags(flags, flag))
        return _local(fwd, status, content, info)

    def _shadow(
        self, ups: Upstreams, cluster: str, fwd: Forward, request: httpx.Request, body: bytes | None
    ) -> Generator[Op, Any, None]:
        """A mirror: the same request to ``cluster``, fire and forget (its answer is dropped)."""
        upstream = ups.get(cluster)
        if upstream is None or upstream.original_dst:
            return
        index = self._pick(upstream, None, [])
        ticket = upstream.balancer.acquire() if index is not None else None
        if index is None or ticket is None:
            return  # no healthy endpoint, or overflow: no shadow
        attempt = _Attempt(upstream, index, ticket, None)
        try:
            pending_until = time.monotonic() + (fwd.timeout or 30.0)
            if not upstream.balancer.is_active(ticket) and not (
                yield WaitActive(upstream, ticket, pending_until)
            ):
                return
            attempt.start()
            deadline = time.monotonic() + fwd.timeout if fwd.timeout else None
            sent = _upstream_request(
                request,
                fwd,
                upstream.targets[index],
                body,
                _budget(fwd, deadline),
                upstream.connect_timeout,
            )
            sent_at = time.monotonic()
            result = yield Send(sent)
            latency = time.monotonic() - sent_at
            if isinstance(result, httpx.Response):
                upstream.balancer.record(index, result.status_code, self.clock(), latency)
                yield Discard(result)
            else:
                upstream.balancer.record(index, _failure(result), self.clock(), latency)
        finally:
            attempt.done()

    # -- pieces --

    def _pick(self, upstream: Upstream, key: bytes | None, tried: list[int]) -> int | None:
        now = self.clock()
        index = upstream.balancer.pick(key, now)
        if tried and not upstream.consistent_hash:
            # previous_hosts: pick again (up to 5 times) rather than retry a host already tried.
            for _ in range(HOST_SELECTION_ATTEMPTS):
                if index is None or index not in tried:
                    break
                index = upstream.balancer.pick(key, now)
        return index

    def _hash_key(self, upstream: Upstream, fwd: Forward) -> tuple[bytes | None, bytes | None]:
        """The consistent-hash key, and a ``set-cookie`` value when the client creates the
        cookie (``httpCookie`` with a ``ttl``, the request without it), as Envoy does."""
        source = upstream.hash_source
        if source is None:
            return None, None
        kind, name, path, ttl = source
        if kind == "source_ip":
            return self.source_key, None
        if fwd.hash_key is not None:
            return fwd.hash_key, None
        if kind != "cookie" or ttl is None or not name:
            return None, None  # a random endpoint, as Envoy for a request without the attribute
        value = f"{self._draw():016x}"
        cookie = f"{name}={value}"
        if ttl > 0:
            cookie += f"; Max-Age={int(ttl)}"
        if path:
            cookie += f"; Path={path}"
        return value.encode(), (cookie + "; HttpOnly").encode()

    def _backoff(self, retry: int, deadline: float | None) -> float:
        """Envoy's jittered exponential backoff before retry ``retry`` (1-based)."""
        wait: float = self._uniform() * min((2**retry - 1) * BACKOFF_BASE, BACKOFF_MAX)
        if deadline is not None:
            wait = min(wait, max(0.0, deadline - time.monotonic()))
        return wait


def _flags(flags: list[str], extra: str) -> str:
    return ",".join([*flags, extra] if extra else flags)


def _failure(error: BaseException) -> str:
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
        return CONNECT_FAILURE
    if isinstance(error, httpx.TimeoutException):
        return TIMEOUT
    return RESET


def _budget(fwd: Forward, deadline: float | None) -> float | None:
    """How long this attempt may take: the per-try timeout, within what the route timeout left."""
    limit = fwd.retry.per_try_timeout
    if deadline is not None:
        remaining = max(deadline - time.monotonic(), 0.001)
        limit = remaining if limit is None else min(limit, remaining)
    return limit


def _upstream_request(
    request: httpx.Request,
    fwd: Forward,
    target: Target | None,
    body: bytes | None,
    budget: float | None,
    connect_timeout: float | None,
) -> httpx.Request:
    """What the upstream gets: the decided method, path and authority (Host), the headers without
    control headers, sent to ``target`` (None: to the address the request named)."""
    if target is None:
        url = request.url.copy_with(raw_path=fwd.path.encode("latin-1"))
    else:
        url = _url(target, fwd.path)
    extensions = dict(request.extensions)
    timeout: dict[str, float | None] = dict(extensions.get("timeout") or {})
    for part in ("connect", "read", "write", "pool"):
        value = timeout.get(part)
        limits = [v for v in (value, budget, connect_timeout if part == "connect" else None) if v is not None]
        timeout[part] = min(limits) if limits else None
    extensions["timeout"] = timeout
    headers = [(b"host", fwd.authority.encode("latin-1")), *fwd.headers]
    if body is not None:
        # The body was read whole (to send it again): its length is known, no chunking.
        headers = [(k, v) for k, v in headers if k not in _FRAMING]
        return httpx.Request(fwd.method, url, headers=headers, content=body, extensions=extensions)
    return httpx.Request(fwd.method, url, headers=headers, stream=request.stream, extensions=extensions)


def _edits(fwd: Forward, extra: list[Header]) -> bool:
    """Whether the response headers change (route response operations, a generated cookie)."""
    return bool(fwd.response_set or fwd.response_append or fwd.response_remove or extra)


# Upstream URLs by (endpoint, path): a service's paths repeat, and parsing one costs more than
# the rest of the decision. Bounded: cleared when full.
_URLS: dict[tuple[str, str], httpx.URL] = {}
_MAX_URLS = 4096


def _url(target: Target, path: str) -> httpx.URL:
    key = (target.hostport, path)
    url = _URLS.get(key)
    if url is None:
        if len(_URLS) >= _MAX_URLS:
            _URLS.clear()
        url = _URLS[key] = httpx.URL(
            scheme="http", host=target.address, port=target.port, raw_path=path.encode("latin-1")
        )
    return url


def _response_headers(fwd: Forward, raw: list[Header], extra: list[Header]) -> list[Header]:
    """The route's response header operations (remove, set, append), then ``extra``."""
    gone = fwd.response_remove | {k.lower() for k, _ in fwd.response_set}
    out = [(k, v) for k, v in raw if k.lower() not in gone] if gone else list(raw)
    out.extend(fwd.response_set)
    out.extend(fwd.response_append)
    out.extend(extra)
    return out


def _local(
    fwd: Forward, status: int, content: bytes, info: MeshRoute, extra: list[Header] | None = None
) -> Answer:
    headers = [_TEXT] if content else []
    return Answer(status, _response_headers(fwd, headers, extra or []), info, content=content)


def _abort(fwd: Forward, flags: list[str]) -> Answer:
    """The fault filter's answer: the abort status, body ``fault filter abort``; a gRPC abort is
    a 200 with ``grpc-status``."""
    info = MeshRoute(
        fwd.outcome, fwd.cluster or None, flags=_flags(flags, "FI"), details="fault_filter_abort"
    )
    if fwd.abort_status is not None:
        return _local(fwd, fwd.abort_status, ABORT_BODY, info)
    headers = [(b"content-type", b"application/grpc"), (b"grpc-status", str(fwd.abort_grpc).encode())]
    headers.append((b"grpc-message", ABORT_BODY))
    return Answer(200, _response_headers(fwd, headers, []), info)


def listener_context(source_namespace: str | None, source_labels: dict[str, str] | None) -> ListenerContext:
    """The mesh listener of a sidecar for a workload in ``source_namespace`` with these labels."""
    return ListenerContext(None, source_namespace, source_labels or {})
