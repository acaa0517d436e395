"""Pure conversions: ext_proc request headers -> ``route()`` arguments, Decision -> ProcessingResponse.

No grpc import; everything here is plain data in, plain data (or serialized bytes) out.

Answers are built once per distinct ``Decision.to_json()`` text and kept as serialized
``ProcessingResponse`` bytes (:class:`AnswerCache`): the JSON holds every field the answer depends
on, so equal JSON means an equal answer. The per-request parts are left out of the cached bytes
and sent as a second serialized ``ProcessingResponse`` appended to them (:meth:`Answer.tail`): the
consistent-hash key (it comes from the request itself), the mirror headers (each mirror's
percentage is drawn per request) and, for ``PassthroughCluster``, ``x-envoy-original-dst-host``
(the request's own authority). Protobuf parsers merge a repeated occurrence of a message field
(``request_headers.response.header_mutation``) and concatenate repeated fields, so Envoy sees one
mutation holding both parts. A header handled by the tail is neither set nor removed by the cached
part, so nothing depends on the order Envoy applies sets and removes in.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute.extproc import CLUSTER_HEADER, HASH_HEADER, MAX_MIRRORS, MIRROR_HEADERS, ORIGINAL_DST_HEADER

PASSTHROUGH_CLUSTER = "PassthroughCluster"

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
_CONTROL = frozenset(CONTROL_HEADERS)

# Istio retryOn items that Envoy only understands in x-envoy-retry-grpc-on.
GRPC_RETRY_ON = frozenset({"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"})
# Istio's default retry policy (istio-api §2.11). It lists retriable-status-codes with no codes:
# since 1.24 the default never retries a 503 *response*.
_DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

GRPC_CODES = {
    "OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5, "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9, "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12,
    "INTERNAL": 13, "UNAVAILABLE": 14, "DATA_LOSS": 15, "UNAUTHENTICATED": 16,
}  # fmt: skip

Header = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RequestFields:
    """What ``route()`` needs from one ``HttpHeaders`` message; ``port`` comes from ``:authority``."""

    host: str
    port: int | None
    path: str
    method: str
    scheme: str
    headers: list[Header]  # every non-pseudo header, in arrival order, names as Envoy sent them


def request_fields(http_headers: Any) -> RequestFields:
    """Read ``:authority``/``:path``/``:method``/``:scheme`` and the other headers of ``HttpHeaders``.

    Envoy sends values in ``raw_value``; ``value`` is read only when ``raw_value`` is empty.

    >>> msg = pb.HttpHeaders()
    >>> for k, v in [(":authority", "reviews:9080"), (":path", "/r"), ("end-user", "jason")]:
    ...     _ = msg.headers.headers.add(key=k, raw_value=v.encode())
    >>> f = request_fields(msg)
    >>> (f.host, f.port, f.path, f.method, f.scheme, f.headers)
    ('reviews', 9080, '/r', 'GET', 'http', [('end-user', 'jason')])
    """
    authority, path, method, scheme = "", "/", "GET", "http"
    headers: list[Header] = []
    for h in http_headers.headers.headers:
        key: str = h.key
        raw: bytes = h.raw_value
        if raw:
            try:
                value = raw.decode()
            except UnicodeDecodeError:  # HTTP allows obs-text; it can't equal a UTF-8 config value
                value = raw.decode("latin-1")
        else:
            value = h.value
        if key[:1] != ":":
            headers.append((key, value))
        elif key == ":authority":
            authority = value
        elif key == ":path":
            path = value
        elif key == ":method":
            method = value
        elif key == ":scheme":
            scheme = value
    host, port = split_authority(authority)
    return RequestFields(host, port, path, method, scheme, headers)


def split_authority(authority: str) -> tuple[str, int | None]:
    """``host[:port]`` -> (lower-case host, port or None); IPv6 literals keep their brackets.

    >>> split_authority("Reviews:9080"), split_authority("[::1]:80"), split_authority("a.b")
    (('reviews', 9080), ('[::1]', 80), ('a.b', None))
    """
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and (not host.startswith("[") or host.endswith("]")):
        return host.lower(), int(port)
    return authority.lower(), None


def original_dst(host: str, port: int | None) -> str | None:
    """``x-envoy-original-dst-host`` for a passthrough request to ``host:port``: only an IP literal
    with a port names an address Envoy can connect to; a DNS name (or no port) gives None.

    >>> original_dst("127.0.0.1", 18080), original_dst("[::1]", 80), original_dst("[::1]", None)
    ('127.0.0.1:18080', '[::1]:80', None)
    >>> original_dst("unknown.example", 80), original_dst("127.1", 80), original_dst("[a.b]", 80)
    (None, None, None)
    """
    if port is None or not 0 < port < 65536:
        return None
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return None
    if address.version == 6:
        return f"[{literal}]:{port}" if host.startswith("[") else None
    return f"{literal}:{port}"


# === Answers ===


@dataclass(frozen=True, slots=True)
class Mirror:
    """One VirtualService mirror of a decision. ``cluster`` None: the mirror names no port and its
    host has no single port, so (as Istio) the listener port is used, known only per request."""

    cluster: str | None
    host: str
    subset: str | None
    per_million: int  # Istio percentage x 10 000; 1 000 000 = always

    def cluster_for(self, port: int) -> str:
        return self.cluster or f"outbound|{port}|{self.subset or ''}|{self.host}"

    def fires(self, rng: random.Random) -> bool:
        """Draw only when the percentage is strictly between 0 and 100, as the core does for faults."""
        if self.per_million >= 1_000_000:
            return True
        return self.per_million > 0 and rng.randrange(1_000_000) < self.per_million


def mirrors_of(d: Mapping[str, Any]) -> tuple[Mirror, ...]:
    """The decision's ``mirrors`` (docs/ir.md ``extra``): the first :data:`MAX_MIRRORS` with a
    percentage above 0.

    >>> mirrors_of({"mirrors": [{"cluster": "outbound|80|v2|e", "destination": {"host": "e",
    ...     "subset": "v2", "port": 80}, "percent": 12.5}]})
    (Mirror(cluster='outbound|80|v2|e', host='e', subset='v2', per_million=125000),)
    """
    out: list[Mirror] = []
    for m in d.get("mirrors") or []:
        dest = m.get("destination") or {}
        percent = m.get("percent")
        per_million = min(max(round(float(100 if percent is None else percent) * 10_000), 0), 1_000_000)
        if per_million and dest.get("host"):
            out.append(Mirror(m.get("cluster"), str(dest["host"]), dest.get("subset") or None, per_million))
    # Envoy has MAX_MIRRORS policies; serve warns about longer lists at load (context.py).
    return tuple(out[:MAX_MIRRORS])


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

    @property
    def per_request(self) -> bool:
        """Whether ``request`` needs :meth:`tail` appended."""
        return self.hash_source is not None or bool(self.mirrors) or self.passthrough

    def tail(self, fields: RequestFields, port: int | None, rng: random.Random) -> bytes:
        """Bytes to append to ``request`` for this request: the hash key, the mirrors that fired
        (their headers set, the others removed) and the passthrough destination. ``port`` is the
        listener port the request was routed with: a mirror without a cluster (no port of its own)
        uses it, else the destination's port, else the scheme's default, as the core picks the
        listener port for a portless authority."""
        sets: list[tuple[str, str, bool]] = []
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
    resp_ops = d.get("response_headers") or {}
    extra = [(k, v, False) for k, v in resp_ops.get("set", [])] + [
        (k, v, True) for k, v in resp_ops.get("add", [])
    ]
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
    status: int, details: str, body: str = "", headers: Sequence[tuple[str, str, bool]] = ()
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
    sets: list[tuple[str, str, bool]] = []
    removes: list[str] = []
    ops = d.get("request_headers") or {}
    for k, v in ops.get("set", []):
        if k.lower() not in _CONTROL:
            sets.append((k, v, False))
    for k, v in ops.get("add", []):
        if k.lower() not in _CONTROL:
            sets.append((k, v, True))
    removes.extend(k for k in ops.get("remove", []) if k.lower() not in _CONTROL)
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
    )


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


def hash_policy(traffic_policy: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """Where the consistent-hash key comes from; None for no hash or ``useSourceIp`` (Envoy's route
    hash policy covers that).

    >>> hash_policy({"loadBalancer": {"consistentHash": {"httpCookie": {"name": "s"}}}})
    ('cookie', 's')
    """
    ch = ((traffic_policy or {}).get("loadBalancer") or {}).get("consistentHash") or {}
    if ch.get("httpHeaderName"):
        return ("header", str(ch["httpHeaderName"]).lower())
    if (ch.get("httpCookie") or {}).get("name"):
        return ("cookie", str(ch["httpCookie"]["name"]))
    if ch.get("httpQueryParameterName"):
        return ("query", str(ch["httpQueryParameterName"]))
    return None


def hash_key(source: tuple[str, str], headers: Iterable[Header], path: str) -> str | None:
    """The hash key for this request, or None when the request lacks it.

    >>> hash_key(("cookie", "s"), [("cookie", "a=1; s=xyz")], "/")
    'xyz'
    >>> hash_key(("query", "u"), [], "/p?x=1&u=7"), hash_key(("header", "x-user"), [], "/")
    ('7', None)
    """
    kind, name = source
    if kind == "query":
        _, _, query = path.partition("?")
        for pair in query.split("&"):
            k, eq, v = pair.partition("=")
            if k == name:
                return v
        return None
    want = "cookie" if kind == "cookie" else name
    values = [v for k, v in headers if k.lower() == want]
    if not values:
        return None
    if kind == "header":
        return ",".join(values)
    for part in "; ".join(values).split(";"):
        k, eq, v = part.strip().partition("=")
        if eq and k == name:
            return v
    return None


def response_mutation(ops: Mapping[str, Any]) -> pb.ProcessingResponse | None:
    """The response_headers answer for the route's response header ops; None when there are none."""
    sets = [(k, v, False) for k, v in ops.get("set", [])] + [(k, v, True) for k, v in ops.get("add", [])]
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


def _request_mutation(sets: Sequence[tuple[str, str, bool]], removes: Iterable[str]) -> pb.ProcessingResponse:
    msg = pb.ProcessingResponse()
    # Always present, even empty: Envoy ignores the route-cache clear without one (reference Q1h).
    mut = msg.request_headers.response.header_mutation
    mut.SetInParent()
    _add_headers(mut.set_headers, sets)
    mut.remove_headers.extend(dict.fromkeys(removes))
    return msg


def _add_headers(target: Any, headers: Iterable[tuple[str, str, bool]]) -> None:
    for key, value, append in headers:
        opt = target.add()
        opt.header.key = key
        opt.header.raw_value = value.encode()
        if append:  # Envoy 1.40 reads only the BoolValue (reference Q5l); unset means overwrite
            opt.append.value = True


_REMOVE_HASH: bytes = _request_mutation((), (HASH_HEADER,)).SerializeToString()


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
