"""``MeshTransport`` and ``AsyncMeshTransport``: httpx transports that route every request as an
Istio sidecar would, without one. Both run the same flow (:mod:`meshroute.client.flow`); this
module only does its I/O, blocking or with ``await``."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

import httpcore
import httpx

from meshroute.client.flow import (
    Answer,
    Client,
    Discard,
    Flow,
    Mirror,
    Op,
    Outgoing,
    ReadBody,
    Send,
    Sleep,
    WaitActive,
    listener_context,
)
from meshroute.client.upstreams import Upstreams
from meshroute.localities import label_locality

if TYPE_CHECKING:
    from meshroute.mesh import Mesh

log = logging.getLogger("meshroute.client")

# How often a pending request (circuit breaker) re-checks its slot at most, in seconds.
PENDING_POLL = 0.05
ASYNC_PENDING_POLL = 0.001


class _Base:
    """What both transports share: the client state and ``update``."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        source_namespace: str | None,
        source_labels: Mapping[str, str] | None,
        seed: int | None,
        clock: Callable[[], float] | None,
        domain: str,
        source_ip: str | None,
        locality: str | None,
    ) -> None:
        self._namespace = source_namespace or "default"
        self._labels = dict(source_labels or {})
        self._listener = listener_context(source_namespace, self._labels)
        self._domain = domain
        self._seed = seed
        self._clock = clock or time.monotonic
        #: The calling workload's ``region/zone/subzone`` (locality load balancing).
        self.locality = locality if locality is not None else label_locality(self._labels)
        key = (source_ip or socket.gethostname()).encode()
        self._client = Client(self._upstreams(mesh, None), self._clock, seed, key)

    def _upstreams(self, mesh: Mesh, previous: Upstreams | None) -> Upstreams:
        return Upstreams(
            mesh,
            self._listener,
            self._namespace,
            domain=self._domain,
            seed=self._seed,
            previous=previous,
            locality=self.locality,
            labels=self._labels,
            clock=self._clock,
        )

    @property
    def mesh(self) -> Mesh:
        """The Mesh new requests are routed with."""
        return self._client.upstreams.mesh

    def update(self, mesh: Mesh) -> None:
        """Route new requests with ``mesh`` (atomically: a request uses one Mesh from start to
        end; those in flight finish with the one they started with). Clusters whose endpoints and
        policy did not change keep their state: ejections, requests in flight, breaker counts."""
        self._client.update(self._upstreams(mesh, self._client.upstreams))

    def stats(self, cluster: str) -> dict[str, int] | None:
        """Envoy's counters for ``cluster`` as this client sees it (``upstream_rq_pending_overflow``,
        ``upstream_cx_active``, ``ejections_active``, …); None if no request used it yet."""
        upstream = self._client.upstreams.cached(cluster)
        return upstream.balancer.stats() if upstream is not None else None

    def latency_estimates(self, cluster: str) -> dict[str, float | None] | None:
        """PEAK_EWMA: each endpoint's (``address:port``) latency estimate in seconds as the next
        pick sees it (on the transport's clock), None for an endpoint that has not answered yet;
        None if no request used ``cluster`` yet or its balancer is another one."""
        upstream = self._client.upstreams.cached(cluster)
        if upstream is None or upstream.balancer.kind != "PEAK_EWMA":
            return None
        now, balancer = self._client.clock(), upstream.balancer
        return {t.hostport: balancer.latency_estimate(i, now) for i, t in enumerate(upstream.targets)}


def _pool_of(transport: httpx.BaseTransport | httpx.AsyncBaseTransport) -> Any:
    """The connection pool behind a plain ``httpx.HTTPTransport`` / ``AsyncHTTPTransport`` (not a
    subclass, which may send otherwise): upstream requests go to it directly, as that transport
    sends them, without a second ``httpx.Request`` and its conversion per attempt. None for any
    other transport (or an httpx whose transport keeps its pool elsewhere): ``handle_request``."""
    if type(transport) not in (httpx.HTTPTransport, httpx.AsyncHTTPTransport):
        return None
    pool = getattr(transport, "_pool", None)
    method = "handle_async_request" if isinstance(transport, httpx.AsyncHTTPTransport) else "handle_request"
    return pool if callable(getattr(pool, method, None)) else None


# httpcore URLs by (scheme, host, port, target): an endpoint's paths repeat. Bounded.
_CORE_URLS: dict[tuple[bytes, bytes, int | None, bytes], httpcore.URL] = {}
_MAX_CORE_URLS = 4096


def _core_request(out: Outgoing) -> httpcore.Request:
    url = _CORE_URLS.get(out.parts)
    if url is None:
        if len(_CORE_URLS) >= _MAX_CORE_URLS:
            _CORE_URLS.clear()
        scheme, host, port, target = out.parts
        url = _CORE_URLS[out.parts] = httpcore.URL(scheme=scheme, host=host, port=port, target=target)
    return httpcore.Request(
        out.method, url, headers=out.headers, content=out.stream, extensions=out.extensions
    )


def _transport_error(exc: BaseException) -> httpx.TransportError | None:
    """httpx's error for an httpcore one (the class of the same name), as httpx's transports map
    them; None for anything else."""
    for cls in type(exc).__mro__:
        if cls.__module__.partition(".")[0] == "httpcore":
            mapped = getattr(httpx, cls.__name__, None)
            if isinstance(mapped, type) and issubclass(mapped, httpx.TransportError):
                error = mapped(str(exc))
                error.__cause__ = exc
                return error
    return None


def _response(answer: Answer, stream: httpx.SyncByteStream | httpx.AsyncByteStream | None) -> httpx.Response:
    """The response the caller gets: a local answer, or the inner transport's own response with
    the route's header changes, the wrapped body and ``extensions["meshroute"]``."""
    response = answer.upstream
    if response is None:
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            content=answer.content,
            extensions={"meshroute": answer.info},
        )
    if answer.headers is not None:
        response.headers = httpx.Headers(answer.headers)
    if stream is not None:
        response.stream = stream
    response.extensions["meshroute"] = answer.info
    return response


class MeshTransport(_Base, httpx.BaseTransport):
    """An ``httpx`` transport deciding every request as the Istio sidecar of a workload in
    ``source_namespace`` with ``source_labels`` would: ``http://reviews:9080/reviews/0`` goes to a
    ``reviews`` endpoint the VirtualService and DestinationRule pick, with their timeouts,
    retries, faults, mirrors, load balancing, circuit breaking and outlier detection.

    ``seed`` fixes every random draw (weighted routes, faults, balancers, backoff); ``clock``
    (seconds, monotonic; ``time.monotonic`` by default) is the time outlier detection sees.
    ``domain`` is the one the Mesh was loaded with; ``source_ip`` the key ``useSourceIp`` hashes
    (the host name by default); ``locality`` the workload's ``region/zone/subzone`` for locality
    load balancing (by default from ``source_labels``: ``topology.kubernetes.io/region`` and
    ``…/zone``, ``topology.istio.io/subzone``, or ``istio-locality``); ``transport`` sends the
    upstream requests (a new ``httpx.HTTPTransport`` by default). Thread-safe. See
    ``docs/client.md``.
    """

    def __init__(
        self,
        mesh: Mesh,
        *,
        source_namespace: str | None = None,
        source_labels: Mapping[str, str] | None = None,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        domain: str = "cluster.local",
        source_ip: str | None = None,
        transport: httpx.BaseTransport | None = None,
        mirror_workers: int = 4,
        locality: str | None = None,
    ) -> None:
        super().__init__(
            mesh,
            source_namespace=source_namespace,
            source_labels=source_labels,
            seed=seed,
            clock=clock,
            domain=domain,
            source_ip=source_ip,
            locality=locality,
        )
        self._inner = transport if transport is not None else httpx.HTTPTransport()
        self._pool = _pool_of(self._inner)
        self._mirror_workers = mirror_workers
        self._mirrors: ThreadPoolExecutor | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self._run(self._client.handle(request))
        upstream = answer.upstream
        if upstream is None or answer.done is None:
            return _response(answer, None)
        stream = upstream.stream
        if isinstance(stream, _CoreStream):
            stream.done = answer.done
            return _response(answer, None)
        return _response(answer, _SyncStream(cast(httpx.SyncByteStream, stream), answer.done))

    def _send(self, out: Outgoing) -> httpx.Response | httpx.TransportError:
        pool = self._pool
        if pool is None or out.content is not None or not isinstance(out.stream, httpx.SyncByteStream):
            try:
                return self._inner.handle_request(out.to_httpx())
            except httpx.TransportError as exc:
                return exc
        try:
            resp = pool.handle_request(_core_request(out))
        except Exception as exc:
            error = _transport_error(exc)
            if error is None:
                raise
            return error
        return httpx.Response(
            resp.status, headers=resp.headers, stream=_CoreStream(resp.stream), extensions=resp.extensions
        )

    def close(self) -> None:
        if self._mirrors is not None:
            self._mirrors.shutdown(wait=False, cancel_futures=True)
        self._inner.close()

    def _run(self, flow: Flow) -> Answer:
        try:
            op = next(flow)
            while True:
                try:
                    result = self._do(op)
                except BaseException as exc:
                    op = flow.throw(exc)  # the flow releases what it holds, and re-raises
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return cast(Answer, stop.value)

    def _do(self, op: Op) -> Any:
        if isinstance(op, Send):
            return self._send(op.request)
        if isinstance(op, Sleep):
            time.sleep(op.seconds)
        elif isinstance(op, WaitActive):
            return _wait_active(op)
        elif isinstance(op, Discard):
            op.response.close()
        elif isinstance(op, ReadBody):
            return op.request.read()
        elif isinstance(op, Mirror):
            if self._mirrors is None:
                self._mirrors = ThreadPoolExecutor(
                    self._mirror_workers, thread_name_prefix="meshroute-mirror"
                )
            self._mirrors.submit(self._background, op.flow)
        return None

    def _background(self, flow: Any) -> None:
        try:
            self._run(flow)
        except Exception:  # a mirror's failure concerns nobody
            log.debug("mirror request failed", exc_info=True)


def _wait_active(op: WaitActive) -> bool:
    upstream = op.upstream
    released = upstream.released
    with released:
        upstream.waiting += 1
        try:
            while not upstream.balancer.is_active(op.ticket):
                if op.deadline is None:
                    released.wait(PENDING_POLL)
                    continue
                remaining = op.deadline - time.monotonic()
                if remaining <= 0:
                    return False
                released.wait(min(remaining, PENDING_POLL))
        finally:
            upstream.waiting -= 1
    return True


class _CoreStream(httpx.SyncByteStream):
    """An httpcore response body passed on (httpcore's errors as httpx's); closing it finishes
    the request (``done``: breaker slot, counts)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.done: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except Exception as exc:
            error = _transport_error(exc)
            if error is None:
                raise
            raise error from exc

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            if self.done is not None:
                self.done()


class _SyncStream(httpx.SyncByteStream):
    """An upstream body passed on; closing it finishes the request (breaker slot, counts)."""

    def __init__(self, inner: httpx.SyncByteStream, done: Callable[[], None]) -> None:
        self._inner = inner
        self._done = done

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._done()


class AsyncMeshTransport(_Base, httpx.AsyncBaseTransport):
    """:class:`MeshTransport` for ``httpx.AsyncClient`` (asyncio): the same decisions and the
    same rules; waits are ``await asyncio.sleep``, mirrors are background tasks."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        source_namespace: str | None = None,
        source_labels: Mapping[str, str] | None = None,
        seed: int | None = None,
        clock: Callable[[], float] | None = None,
        domain: str = "cluster.local",
        source_ip: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        locality: str | None = None,
    ) -> None:
        super().__init__(
            mesh,
            source_namespace=source_namespace,
            source_labels=source_labels,
            seed=seed,
            clock=clock,
            domain=domain,
            source_ip=source_ip,
            locality=locality,
        )
        self._inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self._pool = _pool_of(self._inner)
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = await self._run(self._client.handle(request))
        upstream = answer.upstream
        if upstream is None or answer.done is None:
            return _response(answer, None)
        stream = upstream.stream
        if isinstance(stream, _AsyncCoreStream):
            stream.done = answer.done
            return _response(answer, None)
        return _response(answer, _AsyncStream(cast(httpx.AsyncByteStream, stream), answer.done))

    async def _send(self, out: Outgoing) -> httpx.Response | httpx.TransportError:
        pool = self._pool
        if pool is None or out.content is not None or not isinstance(out.stream, httpx.AsyncByteStream):
            try:
                return await self._inner.handle_async_request(out.to_httpx())
            except httpx.TransportError as exc:
                return exc
        try:
            resp = await pool.handle_async_request(_core_request(out))
        except Exception as exc:
            error = _transport_error(exc)
            if error is None:
                raise
            return error
        return httpx.Response(
            resp.status,
            headers=resp.headers,
            stream=_AsyncCoreStream(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._inner.aclose()

    async def _run(self, flow: Flow) -> Answer:
        try:
            op = next(flow)
            while True:
                try:
                    result = await self._do(op)
                except BaseException as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return cast(Answer, stop.value)

    async def _do(self, op: Op) -> Any:
        if isinstance(op, Send):
            return await self._send(op.request)
        if isinstance(op, Sleep):
            await asyncio.sleep(op.seconds)
        elif isinstance(op, WaitActive):
            while not op.upstream.balancer.is_active(op.ticket):
                if op.deadline is not None and time.monotonic() >= op.deadline:
                    return False
                await asyncio.sleep(ASYNC_PENDING_POLL)
            return True
        elif isinstance(op, Discard):
            await op.response.aclose()
        elif isinstance(op, ReadBody):
            return await op.request.aread()
        elif isinstance(op, Mirror):
            task = asyncio.get_running_loop().create_task(self._background(op.flow))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return None

    async def _background(self, flow: Any) -> None:
        try:
            await self._run(flow)
        except Exception:
            log.debug("mirror request failed", exc_info=True)


class _AsyncCoreStream(httpx.AsyncByteStream):
    """:class:`_CoreStream` for asyncio."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.done: Callable[[], None] | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            error = _transport_error(exc)
            if error is None:
                raise
            raise error from exc

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._inner, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if self.done is not None:
                self.done()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, done: Callable[[], None]) -> None:
        self._inner = inner
        self._done = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._done()
