"""One resolved HTTPRoute -> the IR's Route pieces (semantics §2.2-§2.12, docs/ir.md "Route").

Input routes are model objects (:mod:`meshroute.config.httpmodel`), already resolved: destination
and mirror hosts expanded with their VS's namespace and gateway names turned into ``ns/name``. The
config-time filters of a match block are kept on the block; which blocks a client context can
use is decided per view (:meth:`CompiledRoute.for_context`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.config import extras
from meshroute.config.headers import destination_ops, route_ops
from meshroute.config.httpmodel import (
    Destination,
    DirectResponse,
    Fault,
    HTTPMatch,
    HTTPRoute,
    Redirect,
    Rewrite,
    StringMatch,
)
from meshroute.config.httpparse import usable_port

TargetId = Callable[[str, "str | None", "int | None"], int]
GatewayId = Callable[[str], int]
SinglePort = Callable[[str], "int | None"]


@dataclass(frozen=True)
class Block:
    """One HTTPMatchRequest with its config-time filters resolved."""

    ir: Mapping[str, Any]
    gateways: frozenset[str]  # gateway refs ("mesh", "ns/name")
    port: int | None
    catch_all: bool

    @property
    def has_source(self) -> bool:
        """The block has sourceLabels / sourceNamespace conditions (left after §2.3's rule that
        a block naming its own gateways ignores them)."""
        return bool(self.ir["source_labels"] or self.ir["source_namespace"])


SourceCheck = Callable[[Block], bool]


def _settled(block: Block, holds: SourceCheck) -> dict[str, Any]:
    """``block``'s IR for a gateway: source conditions dropped when they hold there, the block
    bound to ``mesh`` alone when they do not (see :meth:`CompiledRoute.ir`)."""
    out = dict(block.ir)
    if block.has_source:
        if holds(block):
            out["source_labels"], out["source_namespace"] = {}, None
        else:
            out["gateways"] = [0]
    return out


@dataclass(frozen=True)
class CompiledRoute:
    """A route of a root VS (delegates merged), ready to be placed in any view."""

    vs: int
    index: int
    blocks: tuple[Block, ...]  # () = no match list: a catch-all bound to the VS gateways
    vs_gateways: frozenset[str]
    body: Mapping[str, Any]  # name, action, rewrite, fault, response_headers, extra

    def bound_to(self, gateway: str) -> bool:
        if not self.blocks:
            return gateway in self.vs_gateways
        return any(gateway in b.gateways for b in self.blocks)

    def usable_blocks(
        self, gateway: str, port: int | None = None, holds: SourceCheck | None = None
    ) -> list[Block]:
        """Blocks that exist for this gateway (and, for a gateway view, its server port, and
        whose source conditions ``holds`` for the gateway's proxies)."""
        return [
            b
            for b in self.blocks
            if gateway in b.gateways
            and (port is None or b.port is None or b.port == port)
            and (holds is None or not b.has_source or holds(b))
        ]

    def ir(self, blocks: Sequence[Block] | None = None, holds: SourceCheck | None = None) -> dict[str, Any]:
        """The IR route; ``blocks`` restricts the match list (None: a match-less route).

        ``holds`` (gateway views): source conditions are settled for the gateway's proxies
        (Istio ``sourceMatchHTTP``) instead of per request — a block whose conditions hold loses
        them, one whose conditions fail is bound to ``mesh`` only (GatewayId 0), which no
        gateway view uses, so that the other blocks keep their match indices."""
        if blocks is None:
            matches: list[dict[str, Any]] = []
        elif holds is None:
            matches = [dict(b.ir) for b in blocks]
        else:
            matches = [_settled(b, holds) for b in blocks]
        return {
            "vs": self.vs,
            "index": self.index,
            "name": self.body["name"],
            "matches": matches,
            **{k: v for k, v in self.body.items() if k != "name"},
        }


def string_match(sm: StringMatch | None, *, presence: bool) -> dict[str, Any] | None:
    """StringMatch -> IR; ``{}`` (and header ``regex: "*"``) is a presence check where allowed.

    >>> string_match(StringMatch("prefix", "/a"), presence=False)
    {'prefix': '/a'}
    >>> string_match(StringMatch(None), presence=True), string_match(StringMatch(None), presence=False)
    ({'present': True}, None)
    """
    if sm is None:
        return None
    if sm.kind is None:
        return {"present": True} if presence else None
    if presence and sm.kind == "regex" and sm.value == "*":
        return {"present": True}
    return {sm.kind: sm.value}


def _named(conditions: Mapping[str, StringMatch]) -> list[dict[str, Any]]:
    return [
        {"name": name.lower(), "match": string_match(sm, presence=True)} for name, sm in conditions.items()
    ]


def _is_catch_all(ir: Mapping[str, Any]) -> bool:
    # Istio's isCatchAllRoute: prefix "/" (or no uri) / regex "*", and no header-like matchers;
    # method, scheme and authority are header matchers in Envoy, so they count too.
    uri = ir["uri"]
    any_path = uri is None or uri.get("prefix") == "/" or uri.get("regex") in ("*", ".*")
    others = ("scheme", "method", "authority", "headers", "without_headers", "query_params")
    return any_path and not any(ir[k] for k in others)


def compile_block(m: HTTPMatch, vs_gateways: Sequence[str], gateway_id: GatewayId) -> Block:
    own = list(m.gateways)
    gateways = own or list(vs_gateways)
    port = usable_port(m.port)
    # sourceLabels / sourceNamespace are ignored when the block names its own gateways (§2.3).
    ir = {
        "name": m.name or None,
        "uri": string_match(m.uri, presence=False),
        "ignore_uri_case": m.ignore_uri_case,
        "scheme": string_match(m.scheme, presence=False),
        "method": string_match(m.method, presence=False),
        "authority": string_match(m.authority, presence=False),
        "headers": _named(m.headers),
        "without_headers": _named(m.without_headers),
        "query_params": _named(m.query_params),
        "gateways": sorted({gateway_id(g) for g in gateways}),
        "port": port,
        "source_labels": dict(m.source_labels) if not own else {},
        "source_namespace": m.source_namespace if not own else None,
    }
    return Block(ir, frozenset(gateways), port, _is_catch_all(ir))


def destination(dest: Destination, single_port: SinglePort) -> extras.Dest:
    """(host, subset, port) of a resolved Destination; an omitted port is the service's only port,
    else None = the listener port (§2.6)."""
    return dest.host, dest.subset, usable_port(dest.port) or single_port(dest.host)


def _action(route: HTTPRoute, target_id: TargetId, single_port: SinglePort) -> dict[str, Any] | None:
    if route.direct_response is not None:
        return {"direct_response": _direct_response(route.direct_response)}
    if route.redirect is not None:
        return {"redirect": _redirect(route.redirect)}
    dests = route.destinations
    weighted = len(dests) > 1  # (an entry without a host counts: Istio's weighted clusters do)
    out: list[dict[str, Any]] = []
    for d in dests:
        if d.destination is None:
            continue
        req, resp, authority = destination_ops(route.headers, d.headers, weighted)
        out.append(
            {
                "target": target_id(*destination(d.destination, single_port)),
                "weight": max(0, d.weight),
                "request_headers": req,
                "response_headers": resp,
                "authority": authority,
            }
        )
    if not out:
        return None
    if len(out) == 1:
        out[0]["weight"] = 100  # a single destination gets all traffic whatever its weight (§2.5)
    else:
        kept = [d for d in out if d["weight"] > 0]
        out = kept or [{**d, "weight": 1} for d in out]  # all-zero is invalid; split evenly
    return {"route": {"destinations": out}}


def _direct_response(raw: DirectResponse) -> dict[str, Any]:
    text: str | None = None
    if raw.body_string is not None:
        text = raw.body_string
    elif raw.body_bytes is not None:
        try:
            text = base64.b64decode(raw.body_bytes).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            text = None
    status = raw.status
    ok = status is not None and 100 <= status <= 999
    return {"status": status if ok else 503, "body": text}


def _redirect(raw: Redirect) -> dict[str, Any]:
    code, derive = raw.redirect_code, raw.derive_port
    return {
        "uri": raw.uri,
        "authority": raw.authority,
        "port": usable_port(raw.port),
        "derive_port": derive if derive in ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT") else None,
        "scheme": raw.scheme,
        "code": code if code is not None and 300 <= code <= 399 else 301,
    }


def _rewrite(raw: Rewrite | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    regex = raw.uri_regex_rewrite
    regex_ir = {"match": regex.match, "rewrite": regex.rewrite} if regex is not None else None
    if raw.uri is None and raw.authority is None and regex_ir is None:
        return None
    return {"uri": raw.uri, "authority": raw.authority, "regex": regex_ir}


def fault(raw: Fault | None) -> dict[str, Any] | None:
    """HTTPFaultInjection -> IR; absent percentages mean 0 %, ``delay.percent`` is the int fallback
    (§2.12). A delay without ``fixedDelay`` or an abort without a supported error type is dropped.

    >>> from meshroute.config.httpmodel import Abort
    >>> fault(Fault(abort=Abort(http_status=500, percentage=100.0)))["abort"]
    {'http_status': 500, 'grpc_status': None, 'per_million': 1000000}
    """
    if raw is None:
        return None
    delay = abort = None
    d = raw.delay
    fixed_delay = extras.duration_ms(d.fixed_delay) if d is not None else None
    if d is not None and fixed_delay is not None:
        pct = d.percentage
        if pct is None and d.percent is not None:
            pct = float(d.percent)
        delay = {"fixed_delay_ms": fixed_delay, "per_million": extras.per_million(pct)}
    a = raw.abort
    if a is not None:
        http = a.http_status if a.http_status is not None and 100 <= a.http_status <= 999 else None
        grpc = a.grpc_status or None
        if http is not None or grpc is not None:
            pm = extras.per_million(a.percentage)
            abort = {"http_status": http, "grpc_status": grpc if http is None else None, "per_million": pm}
    return {"delay": delay, "abort": abort} if delay or abort else None


def compile_route(
    vs: int,
    index: int,
    route: HTTPRoute,
    vs_gateways: Sequence[str],
    target_id: TargetId,
    gateway_id: GatewayId,
    single_port: SinglePort,
    *,
    default_retries: Mapping[str, Any] | None = None,
    default_timeout_ms: int | None = None,
) -> CompiledRoute | None:
    """Translate one resolved route; None when it has no usable action. A route without
    ``retries`` / ``timeout`` takes ``default_retries`` (the mesh default retry policy, §2.11;
    None: Istio's own) and ``default_timeout_ms`` (meshroute's ``defaultHttpRouteTimeout``, §12;
    None: no timeout)."""
    action = _action(route, target_id, single_port)
    if action is None:
        return None
    blocks = tuple(compile_block(m, vs_gateways, gateway_id) for m in route.blocks)
    if route.retries is not None:
        retries = extras.retries(route.retries.spec)
    else:
        retries = dict(default_retries) if default_retries is not None else extras.default_retries()
    timeout = extras.duration_ms(route.timeout)
    body = {
        "name": route.name or None,
        "action": action,
        "rewrite": _rewrite(route.rewrite),
        "fault": fault(route.fault),
        "response_headers": route_ops(route.headers, "response"),
        "extra": {
            "timeout_ms": timeout if timeout is not None else default_timeout_ms,
            "retries": retries,
            "mirrors": extras.mirrors(route, lambda d: destination(d, single_port)),
            "cors": extras.cors(route.cors_policy),
        },
    }
    return CompiledRoute(vs, index, blocks, frozenset(vs_gateways), body)
