"""VirtualService ``corsPolicy``: what Envoy's CORS filter does with Istio's translation of it, done
by serve (docs/envoy.md "CORS").

Istio turns ``corsPolicy`` into an Envoy ``CorsPolicy`` on the route: origins as string matchers,
``allowMethods`` / ``allowHeaders`` / ``exposeHeaders`` joined with ``,``, ``maxAge`` in whole
seconds, ``allowCredentials``, and ``unmatchedPreflights: IGNORE`` as
``forward_not_matching_preflights: false``. Envoy's filter, as measured on Envoy 1.40
(tests/e2e ``test_cors_*``):

- no ``origin`` header, or an empty one: nothing happens;
- preflight = ``OPTIONS`` with a non-empty ``access-control-request-method``. Origin allowed: a local
  200, empty body, with ``access-control-allow-origin: <origin>``, ``-allow-credentials: true`` (when
  set), ``-allow-methods`` (``*`` echoes the requested method), ``-allow-headers`` (``*`` echoes
  ``access-control-request-headers``, empty when absent), ``-max-age`` and ``-expose-headers`` (the
  filter's response half runs on its own reply). Origin not allowed: forwarded as an ordinary
  request (FORWARD, the default), or a local 200 with the same headers *except* allow-origin and
  expose-headers (IGNORE);
- any other request with an allowed origin: the response gets ``access-control-allow-origin``,
  ``-allow-credentials`` and ``-expose-headers``, overwriting the upstream's.

An origin is allowed when a matcher matches it or matches the literal ``*`` (Envoy's
``isOriginAllowed``), so ``exact: "*"`` or a ``.*`` regex allows every origin. The matchers run in
the Rust core (:class:`meshroute._core.StringMatchSet`, the route matcher itself), so a ``regex`` is
RE2 with a full match exactly as a route's header regex — Python's ``re`` differs from RE2 (``\\d``
is Unicode, no ``\\z``, ``\\pL``, POSIX classes) — and the validator checks origins with that same
compiler (:func:`meshroute._core.check_regex`).

:class:`CorsPolicy` is built once per distinct policy (the answer cache builds answers per decision,
and many decisions share a route); what depends on the request's origin is built per request.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import CompileError, StringMatchSet
from meshroute.extproc.request import Header

log = logging.getLogger("meshroute.serve")

ORIGIN = "origin"
REQUEST_METHOD = "access-control-request-method"
REQUEST_HEADERS = "access-control-request-headers"
ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
ALLOW_METHODS = "access-control-allow-methods"
ALLOW_HEADERS = "access-control-allow-headers"
MAX_AGE = "access-control-max-age"
EXPOSE_HEADERS = "access-control-expose-headers"
PREFLIGHT_DETAILS = "cors_response"  # Envoy's response code details for the filter's preflight reply


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """One route's CORS policy, ready to answer requests."""

    origins: StringMatchSet
    allow_all: bool  # a matcher matches "*": every origin is allowed
    allow_methods: str  # "" = no header; "*" = echo the requested method
    allow_headers: str  # "" = no header; "*" = echo the requested headers
    max_age: str  # "" = no header
    expose_headers: str  # "" = no header
    credentials: bool
    forward: bool  # unmatchedPreflights FORWARD (default) vs IGNORE
    response_static: bytes  # the response_headers mutation that does not depend on the origin

    def allows(self, origin: str) -> bool:
        """Whether ``origin`` (non-empty) is allowed.

        >>> p = policy_of({"allow_origins": [{"prefix": "https://a."}, {"regex": "https://[0-9]+"}]})
        >>> p.allows("https://a.example"), p.allows("https://42"), p.allows("https://42x")
        (True, True, False)
        """
        return self.allow_all or self.origins.matches(origin)

    def preflight(self, headers: Sequence[Header], origin: str | None) -> bytes | None:
        """The local reply to an ``OPTIONS`` request (``origin`` None: not allowed), or None when
        Envoy would let it through: no ``access-control-request-method``, or a disallowed origin
        with ``unmatchedPreflights`` FORWARD."""
        method = header_value(headers, REQUEST_METHOD)
        if not method or (origin is None and self.forward):
            return None
        out: list[tuple[str, str]] = []
        if origin is not None:
            out.append((ALLOW_ORIGIN, origin))
        if self.credentials:
            out.append((ALLOW_CREDENTIALS, "true"))
        if self.allow_methods:
            out.append((ALLOW_METHODS, method if self.allow_methods == "*" else self.allow_methods))
        if self.allow_headers:
            star = self.allow_headers == "*"
            out.append(
                (
                    ALLOW_HEADERS,
                    (header_value(headers, REQUEST_HEADERS) or "") if star else self.allow_headers,
                )
            )
        if self.max_age:
            out.append((MAX_AGE, self.max_age))
        if origin is not None and self.expose_headers:
            out.append((EXPOSE_HEADERS, self.expose_headers))
        msg = pb.ProcessingResponse()
        imm = msg.immediate_response
        imm.status.code = 200
        imm.details = PREFLIGHT_DETAILS
        for key, value in out:
            opt = imm.headers.set_headers.add()
            opt.header.key = key
            opt.header.raw_value = value.encode()
        data: bytes = msg.SerializeToString()
        return data

    def response(self, origin: str) -> bytes:
        """The response_headers answer part for an allowed ``origin`` (appended to the route's)."""
        msg = pb.ProcessingResponse()
        opt = msg.response_headers.response.header_mutation.set_headers.add()
        opt.header.key = ALLOW_ORIGIN
        opt.header.raw_value = origin.encode()
        data: bytes = msg.SerializeToString()
        return data + self.response_static


def header_value(headers: Iterable[Header], name: str) -> str | None:
    """All values of header ``name`` joined with ``,`` (as Envoy stores them), None when absent.

    >>> header_value([("Origin", "https://a"), ("x", "1")], "origin"), header_value([], "origin")
    ('https://a', None)
    """
    values = [v for k, v in headers if k.lower() == name]
    return ",".join(values) if values else None


def policy_of(cors: Mapping[str, Any] | None) -> CorsPolicy | None:
    """The decision's ``cors`` (docs/ir.md ``extra``, ``meshroute.config.extras.cors``) as a policy."""
    if not cors:
        return None
    return _policy(json.dumps(cors, sort_keys=True))


@functools.lru_cache(maxsize=512)
def _policy(text: str) -> CorsPolicy:
    cors = json.loads(text)
    origins = _matchers([m for m in cors.get("allow_origins") or [] if isinstance(m, dict)])
    allow_all = origins.matches("*")
    credentials = cors.get("allow_credentials") is True
    expose = ",".join(cors.get("expose_headers") or [])
    static: list[tuple[str, str]] = []
    if credentials:
        static.append((ALLOW_CREDENTIALS, "true"))
    if expose:
        static.append((EXPOSE_HEADERS, expose))
    msg = pb.ProcessingResponse()
    mut = msg.response_headers.response.header_mutation
    for key, value in static:
        opt = mut.set_headers.add()
        opt.header.key = key
        opt.header.raw_value = value.encode()
    max_age = cors.get("max_age_s")
    return CorsPolicy(
        origins=origins,
        allow_all=allow_all,
        allow_methods=",".join(cors.get("allow_methods") or []),
        allow_headers=",".join(cors.get("allow_headers") or []),
        max_age="" if max_age is None else str(int(max_age)),
        expose_headers=expose,
        credentials=credentials,
        forward=cors.get("unmatched_preflights") != "IGNORE",
        response_static=msg.SerializeToString() if static else b"",
    )


def _matchers(matches: list[dict[str, Any]]) -> StringMatchSet:
    """All ``allowOrigins`` in one core matcher set. Should the core reject one (validation runs the
    same compiler, so only in an IR that skipped validation), the others still apply and it matches
    nothing."""
    try:
        return StringMatchSet.from_json(json.dumps(matches))
    except CompileError:
        pass
    kept = []
    for m in matches:
        try:
            StringMatchSet.from_json(json.dumps([m]))
        except CompileError as exc:
            log.warning("corsPolicy allowOrigins %r is rejected by the core (%s); it matches nothing", m, exc)
        else:
            kept.append(m)
    return StringMatchSet.from_json(json.dumps(kept))
