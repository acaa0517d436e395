"""VirtualService HTTP route rules (semantics §8.2, V11-V31)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, headers, routes, vs_actions
from meshroute.config.validate.context import Ctx, items, mapping
from meshroute.config.validate.regex import regex_problem
from meshroute.config.validate.routes import VsInfo

_CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)


def check_http_route(ctx: Ctx, route: dict[str, Any], path: Path, info: VsInfo) -> None:
    """One ``http[]`` entry: actions (V11-V16), headers (V17, V18), CORS (V19), fault (V20-V22),
    mirrors (V23, V24), redirect (V25), direct response (V26), retries (V27), rewrite (V28),
    matches (V30), destinations (V31). ``timeout`` (V29) is checked structurally (C1)."""
    _check_actions(ctx, route, path, info)
    for i, match in items(route.get("match")):
        _check_match(ctx, match, (*path, "match", i), info)
    routes.check_route_destinations(ctx, route.get("route"), (*path, "route"), http=True)
    rewrites = 0
    if "headers" in route:
        rewrites = routes.check_header_operations(ctx, route["headers"], (*path, "headers"))
    if mapping(route.get("rewrite")).get("authority"):
        rewrites += 1
    if rewrites > 1:
        ctx.error(
            "vs-authority-rewrite-multiple",
            path,
            "the authority is rewritten more than once (rewrite.authority and/or a `host`/`:authority` "
            "header set/add); keep only one",
        )
    if "corsPolicy" in route:
        _check_cors(ctx, route["corsPolicy"], (*path, "corsPolicy"))
    vs_actions.check_fault(ctx, route.get("fault"), (*path, "fault"))
    vs_actions.check_mirrors(ctx, route, path)
    vs_actions.check_redirect(ctx, route, path)
    vs_actions.check_direct_response(ctx, route.get("directResponse"), (*path, "directResponse"))
    vs_actions.check_retries(ctx, route.get("retries"), (*path, "retries"))
    vs_actions.check_rewrite(ctx, route.get("rewrite"), (*path, "rewrite"))


def _check_actions(ctx: Ctx, route: dict[str, Any], path: Path, info: VsInfo) -> None:
    """V11-V16: which of route/redirect/directResponse/delegate/rewrite/fault/mirror may combine."""
    has = {k: k in route for k in ("route", "redirect", "directResponse", "delegate", "rewrite", "fault")}
    has["route"] = bool(route.get("route"))
    if has["delegate"]:
        if info.delegate:
            ctx.error(
                "vs-delegate-nested",
                (*path, "delegate"),
                "a delegate VirtualService cannot delegate again (only one level is supported)",
            )
        for key in ("route", "redirect"):
            if has[key]:
                ctx.error(
                    "vs-delegate-conflict", (*path, key), f"a route with `delegate` cannot also set `{key}`"
                )
    if has["redirect"]:
        for key in ("route", "fault", "rewrite", "directResponse"):
            if has[key]:
                ctx.error("vs-redirect-conflict", (*path, key), f"`redirect` cannot be combined with `{key}`")
    if has["directResponse"]:
        for key in ("route", "fault", "rewrite"):
            if has[key]:
                ctx.error(
                    "vs-direct-response-conflict",
                    (*path, key),
                    f"`directResponse` cannot be combined with `{key}`",
                )
    if not any(has[k] for k in ("route", "redirect", "directResponse", "delegate")):
        ctx.error(
            "vs-route-action-missing",
            path,
            "an HTTP route needs one of `route`, `redirect`, `directResponse` or `delegate`",
        )
    if "mirror" in route and "mirrors" in route:
        ctx.error("vs-mirror-conflict", (*path, "mirrors"), "`mirror` and `mirrors` cannot both be set")


def _check_match(ctx: Ctx, match: dict[str, Any], path: Path, info: VsInfo) -> None:
    """V30 (and V3 for JWT-claim keys)."""
    for field in ("uri", "scheme", "method", "authority"):
        if field in match:
            check_string_match(ctx, match[field], (*path, field), allow_empty_prefix=field == "uri")
    for field in ("headers", "withoutHeaders"):
        for name, matcher in mapping(match.get(field)).items():
            where = (*path, field, name)
            problem = headers.match_header_name_problem(name)
            if problem:
                ctx.error("header-name-invalid", where, problem)
            elif name.startswith(headers.JWT_CLAIM_PREFIX) and not info.gateway_only:
                ctx.error(
                    "vs-jwt-claim-mesh",
                    where,
                    "JWT claim routing (@request.auth.claims) is only supported on gateways; bind the "
                    "VirtualService to gateways only (without `mesh`)",
                )
            # withoutHeaders `regex: "*"` is not a regex: it means "header absent"
            star = field == "withoutHeaders" and matcher.get("regex") == "*"
            if not star:
                check_string_match(ctx, matcher, where, allow_empty_prefix=False)
    for name, matcher in mapping(match.get("queryParams")).items():
        check_string_match(ctx, matcher, (*path, "queryParams", name), allow_empty_prefix=False)
    routes.check_match_common(ctx, match, path)


def check_string_match(ctx: Ctx, matcher: Any, path: Path, *, allow_empty_prefix: bool) -> None:
    """StringMatch: ``prefix`` non-empty (except ``uri``); ``regex`` non-empty and valid RE2 (C10)."""
    matcher = mapping(matcher)
    if matcher.get("prefix") == "" and not allow_empty_prefix:
        ctx.error("string-match-empty", (*path, "prefix"), "prefix match must not be empty")
    regex = matcher.get("regex")
    if regex == "":
        ctx.error("string-match-empty", (*path, "regex"), "regex match must not be empty")
    elif isinstance(regex, str):
        problem = regex_problem(regex)
        if problem:
            ctx.error("regex-invalid", (*path, "regex"), problem)


def _check_cors(ctx: Ctx, cors: Any, path: Path) -> None:
    """V19: origins non-empty, methods from the fixed list, header names tokens or ``*``, maxAge in
    whole seconds."""
    cors = mapping(cors)
    for i, origin in items(cors.get("allowOrigins")):
        for kind in ("exact", "prefix", "regex"):
            if origin.get(kind) == "":
                ctx.error(
                    "vs-cors-origin-empty",
                    (*path, "allowOrigins", i, kind),
                    f"allowOrigins `{kind}` must not be empty",
                )
        regex = origin.get("regex")
        problem = regex_problem(regex) if isinstance(regex, str) and regex else None
        if problem:
            ctx.error("regex-invalid", (*path, "allowOrigins", i, "regex"), problem)
    for i, method in enumerate(cors.get("allowMethods") or []):
        if isinstance(method, str) and method not in _CORS_METHODS:
            ctx.error(
                "vs-cors-method-invalid",
                (*path, "allowMethods", i),
                f"{method!r} is not an HTTP method; use one of {', '.join(sorted(_CORS_METHODS))}",
            )
    for field in ("allowHeaders", "exposeHeaders"):
        for i, name in enumerate(cors.get(field) or []):
            if isinstance(name, str) and name != "*" and not headers.is_token(name):
                ctx.error(
                    "header-name-invalid",
                    (*path, field, i),
                    f"{name!r} is not a valid header name (RFC 7230 token) or `*`",
                )
    max_age = common.parse_duration_ns(cors.get("maxAge"))
    if max_age is not None and max_age % 10**9:
        ctx.error(
            "vs-cors-max-age-invalid",
            (*path, "maxAge"),
            "maxAge must be a whole number of seconds (it becomes Access-Control-Max-Age)",
        )
