"""The ext_proc stream loop: raw bytes in, cached answer bytes out (grpc.aio generic handler).

One stream per HTTP request. ``request_headers`` is routed and answered; when the decision has no
response header operations the handler returns at once, which ends the stream with OK (Envoy
treats a server close as "processing complete"), saving the wait for Envoy's half-close. With
response ops the answer carries ``mode_override`` and the stream stays open for
``response_headers``. Bodies and trailers (not requested by the contract) get empty answers of the
right kind. A malformed message, a bad listener context or an exception aborts the stream with a
gRPC error (Envoy then fails closed) and counts ``streams_failed``; the server keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from google.protobuf.message import DecodeError

from meshroute.extproc.answer import empty_answer
from meshroute.extproc.context import ContextError, Listener, Routing, listener_from_metadata
from meshroute.extproc.request import request_fields
from meshroute.metrics import METRICS, Metrics

SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
METHOD = "Process"

log = logging.getLogger("meshroute.serve")

_EMPTY = {
    kind: empty_answer(kind)
    for kind in ("request_body", "request_trailers", "response_headers", "response_body", "response_trailers")
}
_LOG_LIMIT = 20  # stream failures logged in full; later ones only every 1000th


class Servicer:
    """Answers ext_proc streams from whatever :class:`Routing` ``current()`` returns at stream start."""

    def __init__(self, current: Callable[[], Routing], metrics: Metrics = METRICS) -> None:
        self._current = current
        self._metrics = metrics
        self._listeners: dict[tuple[tuple[str, Any], ...], Listener] = {}

    def handlers(self) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """Method handlers for ``add_registered_method_handlers`` (no (de)serializers: raw bytes)."""
        return {METHOD: grpc.stream_stream_rpc_method_handler(self.process)}

    async def process(self, _requests: Any, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        m = self._metrics
        m.streams_started += 1
        try:
            code = await self._serve(context)
        except ContextError as exc:
            code, detail = grpc.StatusCode.INVALID_ARGUMENT, str(exc)
        except DecodeError as exc:
            code, detail = grpc.StatusCode.INVALID_ARGUMENT, f"malformed ProcessingRequest: {exc}"
        except Exception as exc:  # never let one request take the server down
            code, detail = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
            if m.streams_failed < _LOG_LIMIT:
                log.exception("ext_proc stream failed")
        else:
            if code is None:
                return
            detail = "unexpected message"
        m.streams_failed += 1
        if m.streams_failed <= _LOG_LIMIT or m.streams_failed % 1000 == 0:
            log.warning("ext_proc stream aborted (%s, %d so far): %s", code.name, m.streams_failed, detail)
        await context.abort(code, detail)

    async def _serve(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> grpc.StatusCode | None:
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
                fields = request_fields(req.request_headers)
                answer, data = routing.respond(fields, listener)
                m = self._metrics
                m.count_decision(answer.outcome)
                if answer.delay:
                    m.faults_delay += 1
                if answer.abort:
                    m.faults_abort += 1
                await context.write(data)
                if answer.response is None:
                    return None
                pending = answer.response
            elif kind == "response_headers":
                self._metrics.response_headers += 1
                await context.write(pending if pending is not None else _EMPTY[kind])
                return None
            elif kind in _EMPTY:
                self._metrics.other_messages += 1
                await context.write(_EMPTY[kind])
            else:
                return grpc.StatusCode.INVALID_ARGUMENT

    def _listener(self, context: grpc.aio.ServicerContext[bytes, bytes]) -> Listener:
        metadata = tuple(context.invocation_metadata() or ())
        listener = self._listeners.get(metadata)
        if listener is None:
            listener = listener_from_metadata(metadata)
            if len(self._listeners) >= 256:  # per-stream values in the metadata: don't grow
                self._listeners.clear()
            self._listeners[metadata] = listener
        return listener
