"""What an HTTP route does besides forwarding: fault (V20-V22), mirrors (V23, V24), redirect (V25),
direct response (V26), retries (V27), rewrite (V28)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from meshroute import _core
from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, routes
from meshroute.config.validate.context import Ctx, items, mapping
from meshroute.config.validate.regex import regex_problem

GRPC_STATUSES = frozenset(_core.GRPC_STATUSES)  # the core's list: validation and routing agree
RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)
# the status codes Go's net/http has a text for (V27: retryOn numbers must be known codes)
_GO_STATUS = frozenset(
    [
        100,
        101,
        102,
        103,
        *range(200, 209),
        226,
        *range(300, 306),
        307,
        308,
        *range(400, 419),
        *range(421, 427),
        428,
        429,
        431,
        451,
        *range(500, 509),
        510,
        511,
    ]
)
# what Envoy's redirect action can express; other 3xx validate but produce a broken route (§10.7)
SUPPORTED_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
BODY_WARN_BYTES = 100 * 1024
BODY_MAX_BYTES = 1024 * 1024


def _check_percentage(ctx: Ctx, holder: dict[str, Any], path: Path) -> None:
    value = mapping(holder.get("percentage")).get("value")
    problem = common.percent_problem(value) if value is not None else None
    if problem:
        ctx.error("percent-invalid", (*path, "percentage", "value"), problem)


def check_fault(ctx: Ctx, fault: Any, path: Path) -> None:
    """V20-V22: a fault needs delay and/or abort; abort types and statuses; delay percentages."""
    if not isinstance(fault, dict):
        return
    if "delay" not in fault and "abort" not in fault:
        ctx.error("vs-fault-empty", path, "a fault needs `delay` and/or `abort`")
    abort = mapping(fault.get("abort"))
    if "abort" in fault:
        _check_abort(ctx, abort, (*path, "abort"))
    delay = mapping(fault.get("delay"))
    if "delay" in fault:
        _check_percentage(ctx, delay, (*path, "delay"))
        if "exponentialDelay" in delay:
            ctx.error(
                "vs-delay-exponential-unsupported",
                (*path, "delay", "exponentialDelay"),
                "exponentialDelay is not supported; use fixedDelay",
            )


def _check_abort(ctx: Ctx, abort: dict[str, Any], path: Path) -> None:
    _check_percentage(ctx, abort, path)
    if "http2Error" in abort:
        ctx.error(
            "vs-abort-http2-unsupported",
            (*path, "http2Error"),
            "http2Error aborts are not supported; use httpStatus or grpcStatus",
        )
    status = abort.get("httpStatus")
    if status is not None and not 200 <= status <= 600:
        ctx.error(
            "vs-abort-status-invalid",
            (*path, "httpStatus"),
            f"abort httpStatus {status} is invalid; use an HTTP status between 200 and 599",
        )
    grpc = abort.get("grpcStatus")
    if grpc is not None and grpc not in GRPC_STATUSES:
        ctx.error(
            "vs-abort-grpc-status-invalid",
            (*path, "grpcStatus"),
            f"unknown gRPC status {grpc!r}; use an upper-case name such as UNAVAILABLE or NOT_FOUND",
        )
    if not any(k in abort for k in ("httpStatus", "grpcStatus", "http2Error")):
        ctx.warning("vs-abort-type-missing", path, "abort has no httpStatus or grpcStatus; it is ignored")


def check_mirrors(ctx: Ctx, route: dict[str, Any], path: Path) -> None:
    """V23 (mirrorPercent <= 100, deprecated), V24 (mirror destinations and percentages)."""
    mirror_percent = route.get("mirrorPercent")
    if mirror_percent is not None:
        if mirror_percent > 100:
            ctx.error(
                "vs-mirror-percent-invalid",
                (*path, "mirrorPercent"),
                f"mirrorPercent {mirror_percent} is above 100",
            )
        ctx.warning(
            "vs-mirror-percent-deprecated",
            (*path, "mirrorPercent"),
            "mirrorPercent is deprecated; use `mirrorPercentage: {value: <0-100>}`",
        )
    value = mapping(route.get("mirrorPercentage")).get("value")
    problem = common.percent_problem(value) if value is not None else None
    if problem:
        ctx.error("percent-invalid", (*path, "mirrorPercentage", "value"), problem)
    if isinstance(route.get("mirror"), dict):
        routes.check_destination(ctx, route["mirror"], (*path, "mirror"))
    for i, mirror in items(route.get("mirrors")):
        if isinstance(mirror.get("destination"), dict):
            routes.check_destination(ctx, mirror["destination"], (*path, "mirrors", i, "destination"))
        _check_percentage(ctx, mirror, (*path, "mirrors", i))


def check_redirect(ctx: Ctx, route: dict[str, Any], path: Path) -> None:
    """V25: uri xor prefixRewrite (which needs prefix matches), something to change, code 3xx,
    scheme http/https, port C2."""
    redirect = route.get("redirect")
    if not isinstance(redirect, dict):
        return
    route_path, path = path, (*path, "redirect")
    if redirect.get("uri") and redirect.get("prefixRewrite"):
        ctx.error(
            "vs-redirect-invalid", (*path, "prefixRewrite"), "`uri` and `prefixRewrite` cannot both be set"
        )
    if "prefixRewrite" in redirect:
        _check_prefix_rewrite_matches(ctx, route, route_path)
    if not any(
        redirect.get(k) for k in ("uri", "prefixRewrite", "authority", "scheme", "port", "derivePort")
    ):
        ctx.error(
            "vs-redirect-empty",
            path,
            "redirect must set at least one of uri, prefixRewrite, authority, scheme, port or derivePort",
        )
    code = redirect.get("redirectCode", 0)
    if code and not 300 <= code <= 399:
        ctx.error(
            "vs-redirect-code-invalid", (*path, "redirectCode"), f"redirectCode {code} is not a 3xx code"
        )
    elif code and code not in SUPPORTED_REDIRECT_CODES:
        ctx.warning(
            "vs-redirect-code-unsupported",
            (*path, "redirectCode"),
            f"redirectCode {code} is accepted by Istio but the proxy only emits 301, 302, 303, 307 "
            "or 308; the route will have no action",
        )
    scheme = redirect.get("scheme")
    if scheme is not None and scheme not in ("http", "https"):
        ctx.error("vs-redirect-scheme-invalid", (*path, "scheme"), f"scheme {scheme!r} must be http or https")
    if "port" in redirect:
        problem = common.port_problem(redirect["port"])
        if problem:
            ctx.error("port-invalid", (*path, "port"), problem)


def _check_prefix_rewrite_matches(ctx: Ctx, route: dict[str, Any], path: Path) -> None:
    """redirect.prefixRewrite replaces the matched prefix, so every ``uri`` match must be a prefix."""
    for i, match in items(route.get("match")):
        uri = mapping(match.get("uri"))
        if uri and "prefix" not in uri:
            ctx.error(
                "vs-redirect-invalid",
                (*path, "match", i, "uri"),
                "redirect.prefixRewrite requires every `uri` match of the route to be a prefix match",
            )


def check_direct_response(ctx: Ctx, response: Any, path: Path) -> None:
    """V26: status 200-600 (sic, §10.6); body > 1 MB rejected, > 100 KB warned."""
    if not isinstance(response, dict):
        return
    status = response.get("status")
    if status is not None and not 200 <= status <= 600:
        ctx.error(
            "vs-direct-response-status-invalid",
            (*path, "status"),
            f"status {status} is invalid; use an HTTP status between 200 and 599",
        )
    body = mapping(response.get("body"))
    size = None
    if isinstance(body.get("string"), str):
        size = len(body["string"].encode("utf-8", "surrogatepass"))
    elif isinstance(body.get("bytes"), str):
        try:
            size = len(base64.b64decode(body["bytes"], validate=True))
        except (binascii.Error, ValueError):
            ctx.error(
                "vs-direct-response-body-invalid", (*path, "body", "bytes"), "body.bytes must be base64"
            )
    if size is not None and size > BODY_MAX_BYTES:
        ctx.error(
            "vs-direct-response-body-too-large",
            (*path, "body"),
            f"body is {size} bytes; the limit is {BODY_MAX_BYTES}",
        )
    elif size is not None and size > BODY_WARN_BYTES:
        ctx.warning(
            "vs-direct-response-body-large",
            (*path, "body"),
            f"body is {size} bytes; bodies over {BODY_WARN_BYTES} bytes bloat proxy config",
        )


def check_retries(ctx: Ctx, retries: Any, path: Path) -> None:
    """V27: attempts >= 0; attempts 0 forbids the other knobs; retryOn items known (not trimmed)."""
    if not isinstance(retries, dict):
        return
    attempts = retries.get("attempts", 0)
    if attempts < 0:
        ctx.error("vs-retry-attempts-negative", (*path, "attempts"), f"attempts {attempts} is negative")
    if attempts == 0:
        for key in ("perTryTimeout", "retryOn", "retryRemoteLocalities"):
            if key in retries:
                ctx.error(
                    "vs-retry-disabled-conflict",
                    (*path, key),
                    f"`{key}` has no effect with attempts 0 (retries disabled); set attempts > 0",
                )
    retry_on = retries.get("retryOn")
    if retry_on:
        for item in retry_on.split(","):
            if item.isascii() and item.isdigit():
                if int(item) not in _GO_STATUS:
                    ctx.error(
                        "vs-retry-on-invalid", (*path, "retryOn"), f"{item!r} is not a known HTTP status code"
                    )
            elif item not in RETRY_ON:
                ctx.error(
                    "vs-retry-on-invalid",
                    (*path, "retryOn"),
                    f"{item!r} is not a retryOn policy (no spaces allowed); use a comma list of "
                    f"{', '.join(sorted(RETRY_ON))} or HTTP status codes",
                )


def check_rewrite(ctx: Ctx, rewrite: Any, path: Path) -> None:
    """V28: uri xor uriRegexRewrite; at least one of uri/uriRegexRewrite/authority; regex rewrite
    needs a valid ``match`` and a ``rewrite``."""
    if not isinstance(rewrite, dict):
        return
    regex_rewrite = rewrite.get("uriRegexRewrite")
    if rewrite.get("uri") and regex_rewrite is not None:
        ctx.error(
            "vs-rewrite-conflict",
            (*path, "uriRegexRewrite"),
            "`uri` and `uriRegexRewrite` cannot both be set",
        )
    if not rewrite.get("uri") and not rewrite.get("authority") and regex_rewrite is None:
        ctx.error(
            "vs-rewrite-empty", path, "rewrite must set at least one of uri, uriRegexRewrite or authority"
        )
    if isinstance(regex_rewrite, dict):
        rpath = (*path, "uriRegexRewrite")
        match = regex_rewrite.get("match")
        if isinstance(match, str) and match:
            problem = regex_problem(match, anchored=False)
            if problem:
                ctx.error("regex-invalid", (*rpath, "match"), problem)
        elif (*rpath, "match") not in ctx.bad:
            ctx.error("required-field", (*rpath, "match"), "uriRegexRewrite needs a `match` regex")
        if not regex_rewrite.get("rewrite") and (*rpath, "rewrite") not in ctx.bad:
            ctx.error("required-field", (*rpath, "rewrite"), "uriRegexRewrite needs a `rewrite` string")
