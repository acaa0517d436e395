"""One resolved HTTPRoute -> the IR's Route pieces (semantics §2.2-§2.12, docs/ir.md "Route").

Input routes are already resolved: destination/mirror hosts expanded with their VS's namespace and
gateway names turned into ``ns/name`` (see :func:`meshroute.config.index.resolve_route`). The
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

TargetId = Callable[[str, "str | None", "int | None"], int]
GatewayId = Callable[[str], int]
SinglePort = Callable[[str], "int | None"]
_STRING_KINDS = ("exact", "prefix", "regex")


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


def _port(value: Any) -> int | None:
    """A usable port number (1-65535), else None."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
    return value if ok else None


def string_match(raw: Any, *, presence: bool) -> dict[str, Any] | None:
    """StringMatch -> IR; ``{}`` (and header ``regex: "*"``) is a presence check where allowed.

    >>> string_match({"prefix": "/a"}, presence=False), string_match({}, presence=True)
    ({'prefix': '/a'}, {'present': True})
    """
    if not isinstance(raw, Mapping):
        return None
    for kind in _STRING_KINDS:
        value = raw.get(kind)
        if isinstance(value, str):
            if presence and kind == "regex" and value == "*":
                return {"present": True}
            return {kind: value}
    return {"present": True} if presence else None


def _named(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, Mapping):
        return []
    out = []
    for name, value in raw.items():
        sm = string_match(value if value is not None else {}, presence=True)
        if sm is not None:
            out.append({"name": str(name).lower(), "match": sm})
    return out


def _is_catch_all(ir: Mapping[str, Any]) -> bool:
    # Istio's isCatchAllRoute: prefix "/" (or no uri) / regex "*", and no header-like matchers;
    # method, scheme and authority are header matchers in Envoy, so they count too.
    uri = ir["uri"]
    any_path = uri is None or uri.get("prefix") == "/" or uri.get("regex") in ("*", ".*")
    others = ("scheme", "method", "authority", "headers", "without_headers", "query_params")
    return any_path and not any(ir[k] for k in others)


def compile_block(raw: Mapping[str, Any], vs_gateways: Sequence[str], gateway_id: GatewayId) -> Block:
    own = [str(g) for g in raw.get("gateways") or []]
    gateways = own or list(vs_gateways)
    port = _port(raw.get("port"))
    # sourceLabels / sourceNamespace are ignored when the block names its own gateways (§2.3).
    labels = raw.get("sourceLabels")
    labels = labels if not own and isinstance(labels, Mapping) else {}
    source_ns = raw.get("sourceNamespace") if not own and raw.get("sourceNamespace") else None
    ir = {
        "name": raw.get("name") or None,
        "uri": string_match(raw.get("uri"), presence=False),
        "ignore_uri_case": bool(raw.get("ignoreUriCase")),
        "scheme": string_match(raw.get("scheme"), presence=False),
        "method": string_match(raw.get("method"), presence=False),
        "authority": string_match(raw.get("authority"), presence=False),
        "headers": _named(raw.get("headers")),
        "without_headers": _named(raw.get("withoutHeaders")),
        "query_params": _named(raw.get("queryParams")),
        "gateways": sorted({gateway_id(g) for g in gateways}),
        "port": port,
        "source_labels": {str(k): str(v) for k, v in labels.items()},
        "source_namespace": str(source_ns) if source_ns else None,
    }
    return Block(ir, frozenset(gateways), port, _is_catch_all(ir))


def destination(raw: Any, single_port: SinglePort) -> extras.Dest | None:
    """(host, subset, port) of a resolved Destination; an omitted port is the service's only port,
    else None = the listener port (§2.6)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("host"), str):
        return None
    host = raw["host"]
    subset = raw.get("subset") if isinstance(raw.get("subset"), str) and raw.get("subset") else None
    port_sel = raw.get("port")
    number = port_sel.get("number") if isinstance(port_sel, Mapping) else None
    port = _port(number) or single_port(host)
    return host, subset, port


def _action(route: Mapping[str, Any], target_id: TargetId, single_port: SinglePort) -> dict[str, Any] | None:
    if isinstance(route.get("directResponse"), Mapping):
        return {"direct_response": _direct_response(route["directResponse"])}
    if isinstance(route.get("redirect"), Mapping):
        return {"redirect": _redirect(route["redirect"])}
    dests = [d for d in route.get("route") or [] if isinstance(d, Mapping)]
    weighted = len(dests) > 1
    out: list[dict[str, Any]] = []
    for d in dests:
        resolved = destination(d.get("destination"), single_port)
        if resolved is None:
            continue
        weight = d.get("weight")
        weight = weight if isinstance(weight, int) and not isinstance(weight, bool) else 0
        req, resp, authority = destination_ops(route.get("headers"), d.get("headers"), weighted)
        out.append(
            {
                "target": target_id(*resolved),
                "weight": max(0, weight),
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


def _direct_response(raw: Mapping[str, Any]) -> dict[str, Any]:
    body = raw.get("body")
    text: str | None = None
    if isinstance(body, Mapping):
        if isinstance(body.get("string"), str):
            text = body["string"]
        elif isinstance(body.get("bytes"), str):
            try:
                text = base64.b64decode(body["bytes"]).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                text = None
    status = raw.get("status")
    ok = isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 999
    return {"status": status if ok else 503, "body": text}


def _redirect(raw: Mapping[str, Any]) -> dict[str, Any]:
    code = raw.get("redirectCode")
    derive = raw.get("derivePort")
    return {
        "uri": raw.get("uri") if isinstance(raw.get("uri"), str) else None,
        "authority": raw.get("authority") if isinstance(raw.get("authority"), str) else None,
        "port": _port(raw.get("port")),
        "derive_port": derive if derive in ("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT") else None,
        "scheme": raw.get("scheme") if isinstance(raw.get("scheme"), str) else None,
        "code": code if isinstance(code, int) and 300 <= code <= 399 else 301,
    }


def _rewrite(raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, Mapping):
        return None
    regex = raw.get("uriRegexRewrite")
    regex_ir = (
        {"match": str(regex.get("match", "")), "rewrite": str(regex.get("rewrite", ""))}
        if isinstance(regex, Mapping)
        else None
    )
    uri = raw.get("uri") if isinstance(raw.get("uri"), str) else None
    authority = raw.get("authority") if isinstance(raw.get("authority"), str) else None
    if uri is None and authority is None and regex_ir is None:
        return None
    return {"uri": uri, "authority": authority, "regex": regex_ir}


def fault(raw: Any) -> dict[str, Any] | None:
    """HTTPFaultInjection -> IR; absent percentages mean 0 %, ``delay.percent`` is the int fallback
    (§2.12). A delay without ``fixedDelay`` or an abort without a supported error type is dropped.

    >>> fault({"abort": {"httpStatus": 500, "percentage": {"value": 100.0}}})["abort"]
    {'http_status': 500, 'grpc_status': None, 'per_million': 1000000}
    """
    if not isinstance(raw, Mapping):
        return None
    delay = abort = None
    d = raw.get("delay")
    if isinstance(d, Mapping) and extras.duration_ms(d.get("fixedDelay")) is not None:
        pct = extras.percentage(d.get("percentage"))
        if pct is None and isinstance(d.get("percent"), int):
            pct = float(d["percent"])
        delay = {
            "fixed_delay_ms": extras.duration_ms(d["fixedDelay"]),
            "per_million": extras.per_million(pct),
        }
    a = raw.get("abort")
    if isinstance(a, Mapping):
        status = a.get("httpStatus")
        http = status if isinstance(status, int) and 100 <= status <= 999 else None
        grpc = a.get("grpcStatus") if isinstance(a.get("grpcStatus"), str) and a.get("grpcStatus") else None
        if http is not None or grpc is not None:
            pm = extras.per_million(extras.percentage(a.get("percentage")))
            abort = {"http_status": http, "grpc_status": grpc if http is None else None, "per_million": pm}
    return {"delay": delay, "abort": abort} if delay or abort else None


def compile_route(
    vs: int,
    index: int,
    route: Mapping[str, Any],
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
    blocks = tuple(
        compile_block(m, vs_gateways, gateway_id) for m in route.get("match") or [] if isinstance(m, Mapping)
    )
    if "retries" in route:
        retries = extras.retries(route["retries"])
    else:
        retries = dict(default_retries) if default_retries is not None else extras.default_retries()
    timeout = extras.duration_ms(route.get("timeout"))
    body = {
        "name": route.get("name") or None,
        "action": action,
        "rewrite": _rewrite(route.get("rewrite")),
        "fault": fault(route.get("fault")),
        "response_headers": route_ops(route.get("headers"), "response"),
        "extra": {
            "timeout_ms": timeout if timeout is not None else default_timeout_ms,
            "retries": retries,
            "mirrors": extras.mirrors(route, lambda d: destination(d, single_port)),
            "cors": extras.cors(route.get("corsPolicy")),
        },
    }
    return CompiledRoute(vs, index, blocks, frozenset(vs_gateways), body)
