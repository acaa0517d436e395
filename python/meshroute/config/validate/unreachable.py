"""Unreachable and ineffective route warnings (semantics §8.2 V10, analyzer IST0130/IST0131).

Routes are evaluated in order and the first match wins, so a route after a match-less (catch-all)
route, a match identical to an earlier one, or a match an earlier prefix already covers can never
be used. These are warnings: Istio accepts the config.
"""

from __future__ import annotations

import json
from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate.context import Ctx, items, mapping

# fields of an HTTP match that do not change which requests it selects
_NON_MATCHING = ("name", "statPrefix")

# Earlier prefix (or uri-less) matches, grouped by their other conditions, then by prefix, with the
# first route index that has it: covering checks cost O(len(path)) instead of O(routes), so a
# 10 000-route VirtualService validates in linear time.
_Prefixes = dict[str, dict[str, int]]


def analyze(ctx: Ctx, spec: dict[str, Any]) -> None:
    """V10 for ``http``, ``tls`` and ``tcp`` route lists."""
    for field in ("http", "tls", "tcp"):
        _analyze_list(ctx, spec.get(field), ("spec", field), http=field == "http")


def _key(match: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in match.items() if k not in _NON_MATCHING}, sort_keys=True, default=str)


def _analyze_list(ctx: Ctx, route_list: Any, path: Path, *, http: bool) -> None:
    seen: dict[str, int] = {}
    earlier: _Prefixes = {}
    catch_all: int | None = None
    for i, route in items(route_list):
        rpath = (*path, i)
        matches = [m for m in route.get("match") or [] if isinstance(m, dict)]
        if catch_all is not None:
            reason = (
                "only the last rule can have no matches"
                if not matches
                else (f"{path[-1]}[{catch_all}] has no matches and catches all traffic before it")
            )
            ctx.warning("vs-route-unreachable", rpath, f"route is unreachable: {reason}")
            continue
        if not route.get("match"):
            catch_all = i
            continue
        used = _analyze_matches(ctx, route["match"], rpath, seen, earlier, http=http)
        if used == len(route["match"]):
            ctx.warning(
                "vs-route-unreachable", rpath, "route is unreachable: all matches used by prior rules"
            )


def _analyze_matches(
    ctx: Ctx,
    matches: list[Any],
    rpath: Path,
    seen: dict[str, int],
    earlier: _Prefixes,
    *,
    http: bool,
) -> int:
    """Warn about duplicate or shadowed match blocks of one route; returns how many there were."""
    index, kind = int(rpath[-1]), rpath[-2]
    used = 0
    for j, match in enumerate(matches):
        if not isinstance(match, dict):
            continue
        key = _key(match)
        if key in seen:
            ctx.warning(
                "vs-match-duplicate",
                (*rpath, "match", j),
                f"match is ineffective: it duplicates a match of {kind}[{seen[key]}]",
            )
            used += 1
            continue
        # earlier blocks of the same route share its action, so covering them is harmless
        cover = _covering_prefix(match, earlier, index) if http else None
        if cover is not None:
            ctx.warning(
                "vs-match-shadowed",
                (*rpath, "match", j),
                f"match is ineffective: an earlier prefix match in {kind}[{cover}] "
                "already covers every request it selects",
            )
            used += 1
        seen[key] = index
        _remember(match, earlier, index)
    return used


def _covering_prefix(match: dict[str, Any], earlier: _Prefixes, index: int) -> int | None:
    """Index of the first earlier route (other than ``index``) whose match has a ``uri`` prefix (or
    no ``uri``) that covers this match's exact/prefix ``uri``, with every other condition identical."""
    uri = mapping(match.get("uri"))
    target = uri.get("prefix", uri.get("exact"))
    if "regex" in uri or (uri and target is None):
        return None
    target = target if isinstance(target, str) else ""
    prefixes = earlier.get(_rest(match))
    if not prefixes:
        return None
    found = [i for n in range(len(target) + 1) if (i := prefixes.get(target[:n])) is not None and i != index]
    return min(found, default=None)


def _remember(match: dict[str, Any], earlier: _Prefixes, index: int) -> None:
    """Record ``match`` if it can cover later matches (a ``uri`` prefix, or no ``uri`` at all)."""
    uri = mapping(match.get("uri"))
    if uri and set(uri) != {"prefix"}:
        return
    prefix = uri.get("prefix", "")
    if isinstance(prefix, str):
        earlier.setdefault(_rest(match), {}).setdefault(prefix, index)


def _rest(match: dict[str, Any]) -> str:
    return json.dumps(
        {k: v for k, v in match.items() if k not in (*_NON_MATCHING, "uri")}, sort_keys=True, default=str
    )
