"""The ext_proc stream loop: raw bytes in, answer bytes out (grpc.aio generic handler).

One stream per HTTP request. ``request_headers`` goes to the core as raw header pairs and comes
back as the serialized answers (:meth:`Routing.respond`); when the decision has no
response header operations the handler returns at once, which ends the stream with OK (Envoy
treats a server close as "processing complete"), saving the wait for Envoy's half-close. With
response ops the answer carries ``mode_override`` and the stream stays open for
``response_headers``. Bodies and trailers (not requested by the contract) get empty answers of the
right kind. A malformed message, a bad listener context or an exception aborts the stream with a
gRPC error (Envoy then fails closed) and counts ``meshroute_stream_failures_total``; the server keeps
serving. Per stream: ``meshroute_streams_total``, one ``meshroute_decisions_total{outcome}`` and the
``meshroute_stream_seconds`` observation (stream start to the request_headers answer, ready to
be written).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.message import DecodeError

from meshroute._core import ListenerContext
from meshroute.extproc.context import ContextError, Routing, listener_from_metadata
from meshroute.metrics import Metrics
from meshroute.metrics import current as current_metrics

SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
METHOD = "Process"

log = logging.getLogger("meshroute.serve")


def header_pairs(http_headers: pb.HttpHeaders) -> list[tuple[str, bytes]]:
    """Every header of an ``HttpHeaders`` message, pseudo-headers included, in arrival order, as
    the core takes them. Envoy sends values in ``raw_value``; ``value`` is read only when
    ``raw_value`` is empty.

    >>> msg = pb.HttpHeaders()
    >>> _ = msg.headers.headers.add(key=":authority", raw_value=b"reviews:9080")
    >>> _ = msg.headers.headers.add(key="x-old", value="v")
    >>> header_pairs(msg)
    [(':authority', b'reviews:9080'), ('x-old', b'v')]
    """
    return [(h.key, h.raw_value or h.value.encode()) for h in http_headers.headers.headers]


def empty_answer(kind: str) -> bytes:
    """An answer that changes nothing, for a request message of ``kind`` (its oneof name).

    >>> pb.ProcessingResponse.FromString(empty_answer("request_body")).WhichOneof("response")
    'request_body'
    """
    msg = pb.ProcessingResponse()
    getattr(msg, kind).SetInParent()
    data: bytes = msg.SerializeToString()
    return data


_EMPTY = {
    kind: empty_answer(kind)
    for kind in ("request_body", "request_trailers", "response_headers", "response_body", "response_trailers")
}
_LOG_LIMIT = 20  # stream failures logged in full; later ones only every 1000th


class Servicer:
    """Answers ext_proc streams from whatever :class:`Routing` ``current()`` returns at stream start."""

    def __init__(self, current: Callable[[], Routing], metrics: Metrics | None = None) -> None:
        self._current = current
        self._metrics = metrics if metrics is not None else current_metrics()
        self._failures = 0  # for the log's rate limit
        self._listeners: dict[tuple[tuple[str, Any], ...], ListenerContext] = {}

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """Method handlers for ``add_registered_method_handlers`` (no (de)serializers: raw bytes)."""
        return {METHOD: grpc.stream_stream_rpc_method_handler(self.process)}

    async def process(self, _requests: Any, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        start = time.perf_counter()
        m = self._metrics
        m.streams.inc()
        try:
            code = await self._serve(context, start)
        except ContextError as exc:
            code, detail = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except DecodeError as exc:
            code, detail = grpc.StatusCode.INVALID_ARGUMENT, f"malformed ProcessingRequest: {exc}"
        except Exception as exc:  # never let one request take the server down
            code, detail = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
            if self._failures < _LOG_LIMIT:
                log.exception("ext_proc stream failed")
        else:
            if code is None:
                return
            detail = "unexpected message"
        m.stream_failures.inc()
        self._failures += 1
        if self._failures <= _LOG_LIMIT or self._failures % 1000 == 0:
            log.warning("ext_proc stream aborted (%s, %d so far): %s", code.name, self._failures, detail)
        await context.abort(code, detail)

    async def _serve(
        self, context: grpc.aio.ServicerContext[bytes, bytes], start: float
    ) -> grpc.StatusCode | None:
        routing = self._current()  # one config for the whole stream, even across a reload
        listener = self._listener(context)
        pending: bytes | None = None
        while True:
            raw = await context.read()
            if not isinstance(raw, bytes):  # grpc.aio.EOF: Envoy half-closed
                return None
            req = pb.ProcessingRequest.FromString(raw)
            kind = req.WhichOneof("request")
            if kind == "request_headers":
                headers = header_pairs(req.request_headers)
                outcome, data, response, delay, abort = routing.respond(headers, listener)
                m = self._metrics
                m.decisions[outcome].inc()
                if delay:
                    m.fault_delay.inc()
                if abort:
                    m.fault_abort.inc()
                # Observed before the write: Envoy may cancel the stream as soon as it has the answer.
                m.stream_seconds.observe(time.perf_counter() - start)
                await context.write(data)
                if response is None:
                    return None
                pending = response
            elif kind == "response_headers":
                self._metrics.response_headers.inc()
                await context.write(pending if pending is not None else _EMPTY[kind])
                return None
            elif kind in _EMPTY:
                self._metrics.other_messages.inc()
                await context.write(_EMPTY[kind])
            else:
                return grpc.StatusCode.INVALID_ARGUMENT

    def _listener(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> ListenerContext:
        metadata = tuple(context.invocation_metadata() or ())
        listener = self._listeners.get(metadata)
        if listener is None:
            listener = listener_from_metadata(metadata)
            if len(self._listeners) >= 256:  # per-stream values in the metadata: don't grow
                self._listeners.clear()
            self._listeners[metadata] = listener
        return listener
