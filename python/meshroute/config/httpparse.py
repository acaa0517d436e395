"""Parsing a VirtualService's HTTP routes into the model's types (:mod:`meshroute.config.httpmodel`):
each field narrowed to its type, hosts and gateway names resolved in the VirtualService's
namespace (§1.1); positions kept so diagnostics still name ``http[i]``, ``match[j]``, ``route[k]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshroute.config.common import string_map, strings
from meshroute.config.extras import percentage
from meshroute.config.hosts import fqdn, gateway_ref
from meshroute.config.httpmodel import (
    MATCH_KINDS,
    Abort,
    CorsPolicy,
    Delay,
    Delegate,
    Destination,
    DirectResponse,
    Fault,
    HeaderOperations,
    Headers,
    HTTPMatch,
    HTTPMirror,
    HTTPRoute,
    HTTPRouteDestination,
    Redirect,
    RegexRewrite,
    Retries,
    Rewrite,
    StringMatch,
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    # bool is an int subclass: ``true`` is no number
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def usable_port(value: int | None) -> int | None:
    """A port number the translation can use (1-65535), else None.

    >>> usable_port(80), usable_port(0), usable_port(70000)
    (80, None, None)
    """
    return value if value is not None and 0 < value < 65536 else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def string_match(raw: Any) -> StringMatch | None:
    """None when ``raw`` is no mapping.

    >>> string_match({"prefix": "/a"}), string_match({})
    (StringMatch(kind='prefix', value='/a'), StringMatch(kind=None, value=''))
    """
    if not isinstance(raw, Mapping):
        return None
    for kind in MATCH_KINDS:
        value = raw.get(kind)
        if isinstance(value, str):
            return StringMatch(kind, value)
    return StringMatch(None)


def _condition(raw: Any) -> StringMatch | None:
    """A uri/scheme/method/authority condition: the empty StringMatch is no condition."""
    sm = string_match(raw)
    return sm if sm is not None and sm.kind is not None else None


def _named(raw: Any) -> dict[str, StringMatch]:
    """A header/query map; a null matcher is the empty one, a non-mapping one is dropped."""
    out: dict[str, StringMatch] = {}
    for name, value in _map(raw).items():
        sm = string_match(value if value is not None else {})
        if sm is not None:
            out[str(name)] = sm
    return out


def parse_http_match(raw: Mapping[str, Any], namespace: str, domain: str) -> HTTPMatch:
    return HTTPMatch(
        name=_text(raw.get("name")) or "",
        uri=_condition(raw.get("uri")),
        scheme=_condition(raw.get("scheme")),
        method=_condition(raw.get("method")),
        authority=_condition(raw.get("authority")),
        ignore_uri_case=bool(raw.get("ignoreUriCase")),
        headers=_named(raw.get("headers")),
        without_headers=_named(raw.get("withoutHeaders")),
        query_params=_named(raw.get("queryParams")),
        port=_int(raw.get("port")) or None,
        gateways=tuple(gateway_ref(g, namespace, domain) for g in strings(raw.get("gateways"))),
        source_labels=string_map(raw.get("sourceLabels")),
        source_namespace=_text(raw.get("sourceNamespace")) or None,
    )


def parse_destination(raw: Any, namespace: str, domain: str) -> Destination | None:
    """A Destination with its host expanded; None without a host (it sends nowhere)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("host"), str):
        return None
    port = raw.get("port")
    return Destination(
        host=fqdn(raw["host"], namespace, domain),
        subset=_text(raw.get("subset")) or None,
        port=(_int(port.get("number")) or 0) if isinstance(port, Mapping) else None,
    )


def _operations(raw: Any) -> HeaderOperations:
    ops = _map(raw)
    return HeaderOperations(
        set={str(k): str(v) for k, v in _map(ops.get("set")).items()},
        add={str(k): str(v) for k, v in _map(ops.get("add")).items()},
        remove=tuple(str(n) for n in _list(ops.get("remove"))),
    )


def _headers(raw: Any) -> Headers | None:
    if not isinstance(raw, Mapping):
        return None
    return Headers(_operations(raw.get("request")), _operations(raw.get("response")))


def _route_destination(raw: Any, namespace: str, domain: str) -> HTTPRouteDestination | None:
    if not isinstance(raw, Mapping):
        return None
    return HTTPRouteDestination(
        destination=parse_destination(raw.get("destination"), namespace, domain),
        weight=_int(raw.get("weight")) or 0,
        headers=_headers(raw.get("headers")),
    )


def _mirror(raw: Any, namespace: str, domain: str) -> HTTPMirror | None:
    if not isinstance(raw, Mapping):
        return None
    return HTTPMirror(
        parse_destination(raw.get("destination"), namespace, domain), percentage(raw.get("percentage"))
    )


def _redirect(raw: Any) -> Redirect | None:
    if not isinstance(raw, Mapping):
        return None
    return Redirect(
        uri=_text(raw.get("uri")),
        authority=_text(raw.get("authority")),
        port=_int(raw.get("port")),
        derive_port=_text(raw.get("derivePort")),
        scheme=_text(raw.get("scheme")),
        redirect_code=_int(raw.get("redirectCode")),
    )


def _rewrite(raw: Any) -> Rewrite | None:
    if not isinstance(raw, Mapping):
        return None
    regex = raw.get("uriRegexRewrite")
    return Rewrite(
        uri=_text(raw.get("uri")),
        authority=_text(raw.get("authority")),
        uri_regex_rewrite=RegexRewrite(str(regex.get("match", "")), str(regex.get("rewrite", "")))
        if isinstance(regex, Mapping)
        else None,
    )


def _direct_response(raw: Any) -> DirectResponse | None:
    if not isinstance(raw, Mapping):
        return None
    body = _map(raw.get("body"))
    return DirectResponse(_int(raw.get("status")), _text(body.get("string")), _text(body.get("bytes")))


def _fault(raw: Any) -> Fault | None:
    if not isinstance(raw, Mapping):
        return None
    d, a = raw.get("delay"), raw.get("abort")
    delay = abort = None
    if isinstance(d, Mapping):
        percent = d.get("percent")
        delay = Delay(
            _text(d.get("fixedDelay")),
            percentage(d.get("percentage")),
            percent if isinstance(percent, int) else None,  # (a bool counts, as it always has)
        )
    if isinstance(a, Mapping):
        abort = Abort(_int(a.get("httpStatus")), _text(a.get("grpcStatus")), percentage(a.get("percentage")))
    return Fault(delay, abort)


def _cors(raw: Any) -> CorsPolicy | None:
    if not isinstance(raw, Mapping):
        return None
    credentials = raw.get("allowCredentials")
    return CorsPolicy(
        allow_origins=tuple(s for s in map(string_match, _list(raw.get("allowOrigins"))) if s is not None),
        allow_origin=tuple(o for o in _list(raw.get("allowOrigin")) if isinstance(o, str)),
        allow_methods=tuple(str(m) for m in _list(raw.get("allowMethods"))),
        allow_headers=tuple(str(h) for h in _list(raw.get("allowHeaders"))),
        expose_headers=tuple(str(h) for h in _list(raw.get("exposeHeaders"))),
        max_age=_text(raw.get("maxAge")),
        allow_credentials=credentials if isinstance(credentials, bool) else None,
        unmatched_preflights=_text(raw.get("unmatchedPreflights")),
    )


def _delegate(raw: Any) -> Delegate | None:
    if not isinstance(raw, Mapping):
        return None
    return Delegate(_text(raw.get("name")), _text(raw.get("namespace")))


def parse_http_route(raw: Any, namespace: str, domain: str) -> HTTPRoute:
    """One route, names resolved in ``namespace``; a non-mapping entry is an empty route, so later
    routes keep their index."""
    if not isinstance(raw, Mapping):
        return HTTPRoute()
    mirrors = raw.get("mirrors")
    legacy = raw.get("mirrorPercent")
    return HTTPRoute(
        name=_text(raw.get("name")) or "",
        match=tuple(
            parse_http_match(m, namespace, domain) if isinstance(m, Mapping) else None
            for m in _list(raw.get("match"))
        ),
        route=tuple(_route_destination(d, namespace, domain) for d in _list(raw.get("route"))),
        redirect=_redirect(raw.get("redirect")),
        direct_response=_direct_response(raw.get("directResponse")),
        delegate=_delegate(raw.get("delegate")),
        rewrite=_rewrite(raw.get("rewrite")),
        timeout=_text(raw.get("timeout")),
        retries=Retries(raw["retries"]) if isinstance(raw.get("retries"), Mapping) else None,
        fault=_fault(raw.get("fault")),
        mirror=parse_destination(raw.get("mirror"), namespace, domain),
        mirror_percent=_int(legacy),
        mirror_percentage=percentage(raw.get("mirrorPercentage")),
        mirrors=tuple(_mirror(m, namespace, domain) for m in mirrors) if isinstance(mirrors, list) else None,
        cors_policy=_cors(raw.get("corsPolicy")),
        headers=_headers(raw.get("headers")),
    )


def parse_http_routes(spec_routes: Any, namespace: str, domain: str) -> tuple[HTTPRoute, ...]:
    """A normalised spec's ``http`` list, positions kept (diagnostics name ``http[i]``)."""
    return tuple(parse_http_route(r, namespace, domain) for r in _list(spec_routes))
