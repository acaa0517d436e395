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
from time import monotonic
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
class Outgoing:
    """One upstream request, as the driver sends it: through httpx's connection pool directly,
    or as an ``httpx.Request`` (:meth:`to_httpx`) to any other inner transport."""

    method: str
    url: httpx.URL
    # (scheme, host, port, target) of ``url`` as httpcore takes them.
    parts: tuple[bytes, bytes, int | None, bytes]
    headers: list[Header]
    stream: Any  # the caller's request stream (sync or async); None when ``content`` is set
    content: bytes | None
    extensions: dict[str, Any]

    def to_httpx(self) -> httpx.Request:
        if self.content is not None:
            return httpx.Request(
                self.method, self.url, headers=self.headers, content=self.content, extensions=self.extensions
            )
        return httpx.Request(
            self.method, self.url, headers=self.headers, stream=self.stream, extensions=self.extensions
        )


@dataclass(slots=True)
class Send:
    """Send ``request`` upstream; the result is the ``httpx.Response`` or the
    ``httpx.TransportError`` the attempt ended with."""

    request: Outgoing


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
        self.upstream.end(self.index, self.ticket, self.started, self.retry_ticket)


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
        with self._lock:  # uncontended: cheap, and safe without a GIL too
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
        """The flow of ``request``: decided now, the rest as the driver runs the generator."""
        ups = self.upstreams  # one snapshot for the whole request
        decision = decide(
            ups.mesh.table, ups.listener, request, self._draw() if self.seed is not None else None
        )
        if isinstance(decision, Reply):
            flag = {"no_route": "NR", "no_cluster": "NC"}.get(decision.outcome, "")
            info = MeshRoute(decision.outcome, flags=flag, details=decision.details)
            return _answered(Answer(decision.status, decision.headers, info, content=decision.body))
        fwd = decision
        if (
            fwd.delay is None
            and fwd.abort_status is None
            and fwd.abort_grpc is None
            and not fwd.mirrors
            and fwd.cluster != PASSTHROUGH_CLUSTER
            and (fwd.retry.max_retries == 0 or isinstance(request.stream, httpx.ByteStream))
        ):
            # Most requests: no fault, no mirror, a body that can be sent again as it is.
            upstream = ups.get(fwd.cluster)
            if upstream is not None:
                return self._route(request, fwd, upstream, None, [])
        return self._forward(request, fwd, ups)

    def _forward(self, request: httpx.Request, fwd: Forward, ups: Upstreams) -> Flow:
        """The fault filter, the body to keep, the mirrors, then the router."""
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
        key: bytes | None = None
        extra: list[Header] = []
        if upstream.hash_source is not None:
            key, cookie = self._hash_key(upstream, fwd)
            if cookie:
                extra.append((b"set-cookie", cookie))
        deadline = monotonic() + fwd.timeout if fwd.timeout else None
        balancer = upstream.balancer
        retry = fwd.retry
        tried: list[int] = []
        attempts = 0
        retry_ticket: int | None = None  # the retry permit the next attempt runs under

        while True:
            index: int | None = None
            target: Target | None = None
            if upstream.original_dst:
                ticket = balancer.acquire()
                active = ticket is not None and balancer.is_active(ticket)
            elif not tried:
                # pick, acquire, and start when a connection is free: one call.
                index, ticket, active = balancer.begin(key, self.clock())
            else:
                index = self._pick(upstream, key, tried)
                ticket = balancer.acquire() if index is not None else None
                active = ticket is not None and balancer.is_active(ticket)
                if active and index is not None:
                    balancer.start(index)
            if ticket is None:
                if retry_ticket is not None:
                    balancer.release_retry(retry_ticket)
                if index is None and not upstream.original_dst:
                    return _reply(fwd, upstream, flags, extra, attempts, 503, NO_HEALTHY_UPSTREAM, "UH")
                overloaded = ((b"x-envoy-overloaded", b"true"),)
                return _reply(fwd, upstream, flags, extra, attempts, 503, OVERFLOW, "UO", more=overloaded)
            if index is not None:
                target = upstream.targets[index]
            attempt = _Attempt(upstream, index, ticket, retry_ticket, started=active)
            retry_ticket = None
            try:
                if not active:
                    if not (yield WaitActive(upstream, ticket, deadline)):
                        attempt.done()
                        return _reply(fwd, upstream, flags, extra, attempts, 504, TIMEOUT_BODY, "UT", target)
                    attempt.start()
                attempts += 1
                sent = _upstream_request(
                    request, fwd, target, body, _budget(fwd, deadline), upstream.connect_timeout
                )
                sent_at = monotonic()
                result = yield Send(sent)
                answered = monotonic()
                latency = answered - sent_at  # to the response headers (PEAK_EWMA)
                now = answered if self.clock is monotonic else self.clock()
                failure: str | None = None
                if isinstance(result, httpx.Response):
                    status = result.status_code
                    if index is not None:
                        balancer.record(index, status, now, latency)
                    retriable = retry.max_retries > 0 and retry.retries_status(status, result.headers)
                else:
                    failure = _failure(result)
                    if index is not None:
                        balancer.record(index, failure, now, latency)
                    retriable = retry.retries_failure(failure)
                expired = deadline is not None and monotonic() >= deadline
                if retriable and not expired and attempts <= retry.max_retries:
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
            exhausted = retriable and retry.max_retries > 0 and attempts > retry.max_retries
            if isinstance(result, httpx.Response):
                info = MeshRoute(
                    fwd.outcome,
                    upstream.name,
                    target.hostport if target else sent.url.netloc.decode("ascii"),
                    target.locality if target else "",
                    attempts,
                    _flags(flags, "URX") if exhausted else ",".join(flags),
                )
                edits = fwd.response_set or fwd.response_append or fwd.response_remove or extra
                headers = _response_headers(fwd, result.headers.raw, extra) if edits else None
                return Answer(result.status_code, headers, info, upstream=result, done=attempt.done)
            attempt.done()
            if failure == TIMEOUT or expired:
                return _reply(fwd, upstream, flags, extra, attempts, 504, TIMEOUT_BODY, "UT", target)
            if failure == CONNECT_FAILURE:
                return _reply(fwd, upstream, flags, extra, attempts, 503, CONNECT_ERROR, "UF", target)
            return _reply(fwd, upstream, flags, extra, attempts, 503, RESET_ERROR, "UC", target)

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


# Envoy's response code details of the router's local answers, by response flag.
_DETAILS = {
    "UH": "no_healthy_upstream",
    "UO": "overflow",
    "UT": "upstream_timeout",
    "UF": "upstream_reset_before_response_started",
    "UC": "upstream_reset_before_response_started",
}


def _reply(
    fwd: Forward,
    upstream: Upstream,
    flags: list[str],
    extra: list[Header],
    attempts: int,
    status: int,
    content: bytes,
    flag: str,
    target: Target | None = None,
    more: tuple[Header, ...] = (),
) -> Answer:
    """The router's own answer for a request to ``upstream`` (no healthy upstream, overflow,
    timeout, connect failure, reset)."""
    info = MeshRoute(
        fwd.outcome,
        upstream.name,
        target.hostport if target else None,
        target.locality if target else "",
        attempts,
        _flags(flags, flag),
        _DETAILS[flag],
    )
    return _local(fwd, status, content, info, [*more, *extra])


def _answered(answer: Answer) -> Flow:
    """A flow that needs nothing done: its answer at once."""
    return answer
    yield  # unreachable: makes this a generator


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
) -> Outgoing:
    """What the upstream gets: the decided method, path and authority (Host), the headers without
    control headers, sent to ``target`` (None: to the address the request named)."""
    if target is None:
        url = request.url.copy_with(raw_path=fwd.path)
        parts = (url.raw_scheme, url.raw_host, url.port, url.raw_path)
    else:
        url, parts = _url(target, fwd.path)
    extensions = request.extensions
    extensions = {**extensions, "timeout": _timeouts(extensions.get("timeout"), budget, connect_timeout)}
    headers = [(b"host", fwd.authority), *fwd.headers]
    if body is not None:
        # The body was read whole (to send it again): its length is known, no chunking.
        headers = [(k, v) for k, v in headers if k not in _FRAMING]
        return Outgoing(fwd.method, url, parts, headers, None, body, extensions)
    return Outgoing(fwd.method, url, parts, headers, request.stream, None, extensions)


_PARTS = ("connect", "read", "write", "pool")
# The attempt's timeouts by (the request's, budget, connect timeout): most requests repeat one.
# Bounded: cleared when full. The dicts are shared: the inner transport only reads them.
_TIMEOUTS: dict[tuple[Any, ...], dict[str, float | None]] = {}
_MAX_TIMEOUTS = 1024


def _timeouts(
    requested: dict[str, float | None] | None, budget: float | None, connect_timeout: float | None
) -> dict[str, float | None]:
    """The request's own timeouts, each capped by the attempt's ``budget`` (and the connect
    phase by the cluster's ``connect_timeout``)."""
    requested = requested or {}
    key = (tuple(requested.items()), budget, connect_timeout)
    found = _TIMEOUTS.get(key)
    if found is None:
        found = {}
        for part in _PARTS:
            limits = [
                v
                for v in (requested.get(part), budget, connect_timeout if part == "connect" else None)
                if v is not None
            ]
            found[part] = min(limits) if limits else None
        if budget is None:  # a budget is a time left: it rarely repeats
            if len(_TIMEOUTS) >= _MAX_TIMEOUTS:
                _TIMEOUTS.clear()
            _TIMEOUTS[key] = found
    return found


def _edits(fwd: Forward, extra: list[Header]) -> bool:
    """Whether the response headers change (route response operations, a generated cookie)."""
    return bool(fwd.response_set or fwd.response_append or fwd.response_remove or extra)


# Upstream URLs by (endpoint, path): a service's paths repeat, and parsing one costs more than
# the rest of the decision. Bounded: cleared when full.
_URLS: dict[tuple[str, bytes], tuple[httpx.URL, tuple[bytes, bytes, int | None, bytes]]] = {}
_MAX_URLS = 4096


def _url(target: Target, path: bytes) -> tuple[httpx.URL, tuple[bytes, bytes, int | None, bytes]]:
    """The URL of ``path`` on ``target``, and its (scheme, host, port, target) parts."""
    key = (target.hostport, path)
    found = _URLS.get(key)
    if found is None:
        if len(_URLS) >= _MAX_URLS:
            _URLS.clear()
        url = httpx.URL(scheme="http", host=target.address, port=target.port, raw_path=path)
        found = _URLS[key] = (url, (url.raw_scheme, url.raw_host, url.port, url.raw_path))
    return found


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
