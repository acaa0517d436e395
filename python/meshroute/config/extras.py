"""Static per-route facts the Rust core only reports: timeout, retries, mirrors, CORS (semantics
§2.11, §2.13, §2.14), plus the small value parsers they share (durations, percentages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meshroute.config.httpmodel import CorsPolicy, Destination, HTTPRoute, StringMatch

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_BACKOFF_MS = 25
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}

# (host, subset, port) of a destination after short-name expansion and port defaulting.
Dest = tuple[str, "str | None", "int | None"]


def duration_ms(value: Any) -> int | None:
    """Milliseconds of a protobuf/Go duration string (``"0.5s"``, ``"1m30s"``), or None.

    >>> duration_ms("0.5s"), duration_ms("1m30s"), duration_ms("300ms"), duration_ms("x")
    (500, 90000, 300, None)
    """
    if not isinstance(value, str) or not value:
        return None
    total, pos = 0.0, 0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    return round(total) if pos == len(value) else None


def per_million(percent: Any) -> int:
    """Istio percentage -> parts per million, rounded (§1: precision 0.0001 %).

    >>> per_million(100.0), per_million(0.0001), per_million(None)
    (1000000, 1, 0)
    """
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        return 0
    return max(0, min(1_000_000, round(percent * 10_000)))


def percentage(value: Any) -> float | None:
    """The ``value`` of a ``Percent`` message, or None when absent."""
    if isinstance(value, Mapping):
        raw = value.get("value", 0.0)
        return float(raw) if isinstance(raw, (int, float)) and not isinstance(raw, bool) else 0.0
    return None


def default_retries() -> dict[str, Any]:
    """The mesh default retry policy used when a route has no ``retries`` (§2.11)."""
    return {
        "attempts": 2,
        "retry_on": DEFAULT_RETRY_ON,
        "per_try_timeout_ms": None,
        "backoff_ms": DEFAULT_BACKOFF_MS,
        "retry_remote_localities": False,
        "retry_ignore_previous_hosts": None,  # None: on unless the destination uses consistent hash
    }


def retries(raw: Any) -> dict[str, Any]:
    """Explicit ``retries`` -> the IR shape; ``attempts: 0`` disables retries entirely.

    >>> retries({"attempts": 3, "retryOn": "5xx, 503"})["retry_on"]
    '5xx,503,retriable-status-codes'
    >>> retries({"attempts": 0})
    {'attempts': 0}
    """
    if not isinstance(raw, Mapping):
        return default_retries()
    attempts = raw.get("attempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts <= 0:
        return {"attempts": 0}
    out = default_retries()
    out["attempts"] = attempts
    if isinstance(raw.get("retryOn"), str) and raw["retryOn"].strip():
        # Translation trims items; bare status numbers imply retriable-status-codes.
        items = [item.strip() for item in raw["retryOn"].split(",") if item.strip()]
        if any(item.isdigit() for item in items) and "retriable-status-codes" not in items:
            items.append("retriable-status-codes")
        out["retry_on"] = ",".join(items)
    out["per_try_timeout_ms"] = duration_ms(raw.get("perTryTimeout"))
    backoff = duration_ms(raw.get("backoff"))
    out["backoff_ms"] = backoff if backoff is not None else DEFAULT_BACKOFF_MS
    out["retry_remote_localities"] = raw.get("retryRemoteLocalities") is True
    ignore = raw.get("retryIgnorePreviousHosts")
    out["retry_ignore_previous_hosts"] = ignore if isinstance(ignore, bool) else None
    return out


def mirrors(route: HTTPRoute, dest: Callable[[Destination], Dest]) -> list[dict[str, Any]]:
    """``mirror`` (+ ``mirrorPercentage`` / ``mirrorPercent``) or ``mirrors[]``; 0 % means off (§2.14)."""
    out: list[dict[str, Any]] = []
    pairs: list[tuple[Destination | None, float]] = []
    if route.mirror is not None:
        pct = route.mirror_percentage
        if pct is None:
            pct = float(route.mirror_percent) if route.mirror_percent is not None else 100.0
        pairs.append((route.mirror, pct))
    for item in route.mirrors or ():
        if item is not None:
            pairs.append((item.destination, 100.0 if item.percentage is None else item.percentage))
    for target, pct in pairs:
        if target is None or pct <= 0:
            continue
        host, subset, port = dest(target)
        cluster = f"outbound|{port}|{subset or ''}|{host}" if port is not None else None
        out.append(
            {
                "destination": {"host": host, "subset": subset, "port": port},
                "cluster": cluster,
                "percent": pct,
            }
        )
    return out


def _origin(sm: StringMatch) -> dict[str, str]:
    return {sm.kind: sm.value} if sm.kind is not None else {}


def cors(policy: CorsPolicy | None) -> dict[str, Any] | None:
    """``corsPolicy`` normalised: origins as StringMatch list (``allowOrigin`` as exact fallback)."""
    if policy is None:
        return None
    origins = [_origin(o) for o in policy.allow_origins]
    if not origins:
        origins = [{"prefix": ""} if o == "*" else {"exact": o} for o in policy.allow_origin]
    max_age = duration_ms(policy.max_age)
    return {
        "allow_origins": origins,
        "allow_methods": list(policy.allow_methods),
        "allow_headers": list(policy.allow_headers),
        "expose_headers": list(policy.expose_headers),
        "max_age_s": None if max_age is None else max_age // 1000,
        "allow_credentials": policy.allow_credentials,
        "unmatched_preflights": policy.unmatched_preflights or "FORWARD",
    }
