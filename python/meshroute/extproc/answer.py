"""Decision -> serialized ``ProcessingResponse`` answers, built once per distinct decision.

No grpc import; everything here is plain data in, serialized bytes out.

Answers are built once per distinct ``Decision.to_json()`` text and kept as serialized
``ProcessingResponse`` bytes (:class:`AnswerCache`): the JSON holds every field the answer depends
on, so equal JSON means an equal answer. The per-request parts are left out of the cached bytes
and sent as a second serialized ``ProcessingResponse`` appended to them (:meth:`Answer.tail`): the
consistent-hash key (it comes from the request itself), the mirror headers (each mirror's
percentage is drawn per request) and, for ``PassthroughCluster``, ``x-envoy-original-dst-host``
(the request's own authority); :mod:`meshroute.extproc.per_request` computes them. Protobuf parsers
merge a repeated occurrence of a message field (``request_headers.response.header_mutation``) and
concatenate repeated fields, so Envoy sees one mutation holding both parts. A header handled by the
tail is neither set nor removed by the cached part, so nothing depends on the order Envoy applies
sets and removes in.

A route with a ``corsPolicy`` (:mod:`meshroute.extproc.cors`) keeps the policy, built once, on its
answer; the request's ``origin`` decides per request whether the answer is a local preflight reply
instead, or gains the response phase: ``mode_override`` (appended when the route has no response
header operations of its own, whose cached bytes already carry it) and, for ``response_headers``,
the route's cached response answer followed by the CORS headers. Routes without CORS pay nothing:
:attr:`Answer.per_request` is computed once, when the answer is built.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute.extproc import HASH_HEADER, MIRROR_HEADERS, ORIGINAL_DST_HEADER, PASSTHROUGH_CLUSTER
from meshroute.extproc.cors import ORIGIN, CorsPolicy, header_value, policy_of
from meshroute.extproc.per_request import (
    Mirror,
    hash_key,
    hash_policy,
    mirrors_of,
    original_dst,
)
from meshroute.extproc.policy import CONTROL_HEADERS, control_headers
from meshroute.extproc.request import RequestFields

HeaderOp = tuple[str, str, bool]  # (name, value, append)

_CONTROL = frozenset(CONTROL_HEADERS)


@dataclass(frozen=True, slots=True)
class Answer:
    """The serialized replies for one decision, plus what the servicer needs per request."""

    outcome: str
    request: bytes  # ProcessingResponse for request_headers
    response: bytes | None  # ProcessingResponse for response_headers; None = stream ends after one
    hash_source: tuple[str, str] | None  # ("header"|"cookie"|"query", name) for x-meshroute-hash
    delay: bool  # a fault delay fired
    abort: bool  # a fault abort fired
    mirrors: tuple[Mirror, ...] = ()  # drawn per request; x-meshroute-mirror-* are left to the tail
    passthrough: bool = False  # PassthroughCluster: x-envoy-original-dst-host is left to the tail
    port: int | None = None  # the destination's port: a portless mirror's port when the request has none
    cors: CorsPolicy | None = None  # the route's corsPolicy (outcome ``route`` only)
    # Whether :meth:`for_request` has anything to do; computed once (respond reads it per request).
    per_request: bool = field(init=False)
    has_tail: bool = field(init=False)  # whether ``request`` needs :meth:`tail` appended

    def __post_init__(self) -> None:
        tail = self.hash_source is not None or bool(self.mirrors) or self.passthrough
        object.__setattr__(self, "has_tail", tail)
        object.__setattr__(self, "per_request", tail or self.cors is not None)

    def for_request(
        self, fields: RequestFields, port: int | None, rng: random.Random
    ) -> tuple[Answer, bytes]:
        """This request's answer and request_headers reply when :attr:`per_request`: a CORS preflight
        reply, or the cached bytes with the CORS response phase and :meth:`tail` added as needed.
        The returned answer's ``response`` is this request's response_headers answer."""
        answer, data = self, self.request
        cors = self.cors
        if cors is not None:
            origin = header_value(fields.headers, ORIGIN)
            if origin:  # Envoy's filter ignores a missing or empty Origin
                allowed = cors.allows(origin)
                if fields.method == "OPTIONS":
                    reply = cors.preflight(fields.headers, origin if allowed else None)
                    if reply is not None:
                        return CORS_PREFLIGHT, reply
                if allowed:
                    if self.response is None:
                        data += _SEND_RESPONSE_HEADERS
                    answer = self._with_response((self.response or b"") + cors.response(origin))
        if self.has_tail:
            data += self.tail(fields, port, rng)
        return answer, data

    def _with_response(self, response: bytes) -> Answer:
        # The constructor, positionally: about three times cheaper than dataclasses.replace.
        return Answer(
            self.outcome, self.request, response, self.hash_source, self.delay, self.abort,
            self.mirrors, self.passthrough, self.port, self.cors,
        )  # fmt: skip

    def tail(self, fields: RequestFields, port: int | None, rng: random.Random) -> bytes:
        """Bytes to append to ``request`` for this request: the hash key, the mirrors that fired
        (their headers set, the others removed) and the passthrough destination. ``port`` is the
        listener port the request was routed with: a mirror without a cluster (no port of its own)
        uses it, else the destination's port, else the scheme's default, as the core picks the
        listener port for a portless authority."""
        sets: list[HeaderOp] = []
        removes: list[str] = []
        if self.hash_source is not None:
            value = hash_key(self.hash_source, fields.headers, fields.path)
            if value is None:
                removes.append(HASH_HEADER)
            else:
                sets.append((HASH_HEADER, value, False))
        if self.mirrors:
            if port is None:
                port = self.port or (443 if fields.scheme == "https" else 80)
            for i, header in enumerate(MIRROR_HEADERS):
                if i < len(self.mirrors) and self.mirrors[i].fires(rng):
                    sets.append((header, self.mirrors[i].cluster_for(port), False))
                else:
                    removes.append(header)
        if self.passthrough:
            dst = original_dst(fields.host, fields.port)
            if dst is None:
                removes.append(ORIGINAL_DST_HEADER)
            else:
                sets.append((ORIGINAL_DST_HEADER, dst, False))
        if not sets and removes == [HASH_HEADER]:
            return _REMOVE_HASH
        data: bytes = _request_mutation(sets, removes).SerializeToString()
        return data


def build_answer(d: Mapping[str, Any]) -> Answer:
    """The answer for a ``Decision.to_dict()`` (docs/envoy.md "Serve side").

    >>> a = build_answer({"outcome": "no_route", "status": 404})
    >>> r = pb.ProcessingResponse.FromString(a.request)
    >>> (r.immediate_response.status.code, r.immediate_response.details)
    (404, 'route_not_found')
    """
    outcome: str = d["outcome"]
    if outcome in ("route", "abort"):
        return _pass_through(d, outcome)
    extra = _header_ops(d.get("response_headers") or {})
    if outcome == "redirect":
        red = d["redirect"]
        msg = immediate(
            int(red["status"]), "redirect", headers=[("location", red["location"], False), *extra]
        )
    elif outcome == "direct_response":
        dr = d["direct_response"]
        msg = immediate(int(dr["status"]), "direct_response", body=dr.get("body") or "", headers=extra)
    elif outcome == "no_cluster":
        msg = immediate(503, "cluster_not_found")
    else:
        msg = immediate(int(d.get("status") or 404), "route_not_found")
    return Answer(outcome, msg.SerializeToString(), None, None, False, False)


def immediate(
    status: int, details: str, body: str = "", headers: Sequence[HeaderOp] = ()
) -> pb.ProcessingResponse:
    """A ``ProcessingResponse`` with an ``ImmediateResponse`` (Envoy sends it as a local reply)."""
    msg = pb.ProcessingResponse()
    imm = msg.immediate_response
    imm.status.code = status
    imm.details = details
    if body:
        imm.body = body.encode()
    _add_headers(imm.headers.set_headers, headers)
    return msg


def _pass_through(d: Mapping[str, Any], outcome: str) -> Answer:
    ops = d.get("request_headers") or {}
    sets = [op for op in _header_ops(ops) if op[0].lower() not in _CONTROL]
    removes = [k for k in ops.get("remove", []) if k.lower() not in _CONTROL]
    rewrite = d.get("rewrite") or {}
    if rewrite.get("path"):
        sets.append((":path", rewrite["path"], False))
    if rewrite.get("authority"):
        sets.append((":authority", rewrite["authority"], False))
    control = control_headers(d)
    hash_source = hash_policy(d.get("traffic_policy"))
    if hash_source is not None:
        control.pop(HASH_HEADER, None)  # set or removed per request by Answer.tail
    mirrors = mirrors_of(d)
    if mirrors:
        for header in MIRROR_HEADERS:  # drawn per request by Answer.tail
            control.pop(header, None)
    passthrough = d.get("cluster") == PASSTHROUGH_CLUSTER
    if passthrough:
        control.pop(ORIGINAL_DST_HEADER, None)  # the request's authority, per request
    sets.extend((k, v, False) for k, v in control.items() if v is not None)
    removes.extend(k for k, v in control.items() if v is None)
    msg = _request_mutation(sets, removes)
    response: bytes | None = None
    resp = response_mutation(d.get("response_headers") or {})
    if resp is not None:
        msg.mode_override.response_header_mode = processing_mode_pb2.ProcessingMode.SEND
        response = resp.SerializeToString()
    fault = d.get("fault") or {}
    return Answer(
        outcome,
        msg.SerializeToString(),
        response,
        hash_source,
        fault.get("delay_ms") is not None,
        fault.get("abort") is not None,
        mirrors,
        passthrough,
        (d.get("destination") or {}).get("port"),
        # Istio puts the fault filter before the CORS filter: an abort that fired answers first, and
        # the CORS filter never sees the request.
        policy_of(d.get("cors")) if outcome == "route" else None,
    )


def response_mutation(ops: Mapping[str, Any]) -> pb.ProcessingResponse | None:
    """The response_headers answer for the route's response header ops; None when there are none."""
    sets = _header_ops(ops)
    removes = list(ops.get("remove", []))
    if not sets and not removes:
        return None
    msg = pb.ProcessingResponse()
    mut = msg.response_headers.response.header_mutation
    _add_headers(mut.set_headers, sets)
    mut.remove_headers.extend(removes)
    return msg


def empty_answer(kind: str) -> bytes:
    """An answer that changes nothing, for a request message of ``kind`` (its oneof name)."""
    msg = pb.ProcessingResponse()
    getattr(msg, kind).SetInParent()
    data: bytes = msg.SerializeToString()
    return data


def _header_ops(ops: Mapping[str, Any]) -> list[HeaderOp]:
    """A route's header ``set`` then ``add`` operations (VirtualService ``headers``)."""
    return [(k, v, False) for k, v in ops.get("set", [])] + [(k, v, True) for k, v in ops.get("add", [])]


def _request_mutation(sets: Sequence[HeaderOp], removes: Iterable[str]) -> pb.ProcessingResponse:
    msg = pb.ProcessingResponse()
    # Always present, even empty: Envoy ignores the route-cache clear without one (envoy-facts Q1h).
    mut = msg.request_headers.response.header_mutation
    mut.SetInParent()
    _add_headers(mut.set_headers, sets)
    mut.remove_headers.extend(dict.fromkeys(removes))
    return msg


def _add_headers(target: Any, headers: Iterable[HeaderOp]) -> None:
    for key, value, append in headers:
        opt = target.add()
        opt.header.key = key
        opt.header.raw_value = value.encode()
        if append:  # Envoy 1.40 reads only the BoolValue (envoy-facts Q5l); unset means overwrite
            opt.append.value = True


_REMOVE_HASH: bytes = _request_mutation((), (HASH_HEADER,)).SerializeToString()


def _send_response_headers() -> bytes:
    msg = pb.ProcessingResponse()
    msg.mode_override.response_header_mode = processing_mode_pb2.ProcessingMode.SEND
    data: bytes = msg.SerializeToString()
    return data


# Appended to a cached request answer without response header ops: merged, it asks for the response.
_SEND_RESPONSE_HEADERS = _send_response_headers()
# What the servicer sees for a CORS preflight answered by serve: the stream ends after the reply
# (counted as outcome ``cors_preflight``).
CORS_PREFLIGHT = Answer("cors_preflight", b"", None, None, False, False)


# === Cache ===


class AnswerCache:
    """``Decision.to_json()`` text -> :class:`Answer`, bounded (cleared when full)."""

    __slots__ = ("_cache", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self._cache: dict[str, Answer] = {}
        self.limit = limit

    def get(self, decision_json: str, to_dict: Any) -> Answer:
        answer = self._cache.get(decision_json)
        if answer is None:
            answer = build_answer(to_dict())
            if len(self._cache) >= self.limit:
                self._cache.clear()
            self._cache[decision_json] = answer
        return answer

    def __len__(self) -> int:
        return len(self._cache)
