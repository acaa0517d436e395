"""Delegate VirtualService merging, Istio's ``MergeHTTPRoutes`` (semantics §2.7).

Works on HTTP routes whose hosts and gateway names are already resolved (each VS with its own
namespace), so a delegate's short names mean what they meant in the delegate's namespace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Route = dict[str, Any]
Match = dict[str, Any]

# Fields a delegate route inherits from the root route when it does not set them.
INHERITED = (
    "rewrite",
    "directResponse",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrors",
    "mirrorPercent",
    "mirrorPercentage",
    "corsPolicy",
    "headers",
)
_STRING_FIELDS = ("uri", "scheme", "method", "authority")
_MAP_FIELDS = ("headers", "withoutHeaders", "queryParams")


def _get(m: Any, key: str) -> str:
    value = m.get(key) if isinstance(m, Mapping) else None
    return value if isinstance(value, str) else ""


def string_match_conflict(root: Any, leaf: Any) -> bool:
    """Whether a delegate StringMatch cannot lie within the root's (``stringMatchConflict``).

    >>> string_match_conflict({"prefix": "/api"}, {"prefix": "/api/v1"})
    False
    >>> string_match_conflict({"exact": "/a"}, {"prefix": "/a"})
    True
    """
    if not isinstance(root, Mapping) or not isinstance(leaf, Mapping):
        return False
    leaf_any = bool(_get(leaf, "regex") or _get(leaf, "prefix") or _get(leaf, "exact"))
    root_any = bool(_get(root, "regex") or _get(root, "prefix") or _get(root, "exact"))
    if (_get(root, "regex") and leaf_any) or (_get(leaf, "regex") and root_any):
        return True
    if _get(root, "exact"):
        if _get(leaf, "exact") and _get(leaf, "exact") != _get(root, "exact"):
            return True
        if _get(leaf, "prefix"):
            return True
    prefix = _get(root, "prefix")
    if prefix:
        for kind in ("exact", "prefix"):
            if _get(leaf, kind) and not _get(leaf, kind).startswith(prefix):
                return True
    return False


def _map(m: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = m.get(key)
    return value if isinstance(value, Mapping) else {}


def has_conflict(root: Mapping[str, Any], leaf: Mapping[str, Any]) -> bool:
    """Whether delegate match ``leaf`` falls outside root match ``root`` (``hasConflict``)."""
    if any(string_match_conflict(root.get(f), leaf.get(f)) for f in _STRING_FIELDS):
        return True
    for f in _MAP_FIELDS:
        root_map = _map(root, f)
        if any(string_match_conflict(root_map.get(k), v) for k, v in _map(leaf, f).items()):
            return True
    if bool(root.get("ignoreUriCase")) != bool(leaf.get("ignoreUriCase")):
        return True
    root_port, leaf_port = root.get("port") or 0, leaf.get("port") or 0
    if root_port and leaf_port and root_port != leaf_port:
        return True
    root_ns = root.get("sourceNamespace") or ""
    if root_ns and (leaf.get("sourceNamespace") or "") != root_ns:
        return True
    root_labels = _map(root, "sourceLabels")
    if any(k in root_labels and root_labels[k] != v for k, v in _map(leaf, "sourceLabels").items()):
        return True
    root_gws, leaf_gws = root.get("gateways") or [], leaf.get("gateways") or []
    return bool(root_gws and leaf_gws and not set(leaf_gws) <= set(root_gws))


def merge_match(root: Mapping[str, Any], leaf: Mapping[str, Any]) -> Match:
    """Delegate fields overlaid on root fields (``mergeHTTPMatchRequest``)."""
    out: Match = dict(leaf)
    out["name"] = _joined(_get(root, "name"), _get(leaf, "name")) or None
    for f in (*_STRING_FIELDS, "port", "sourceNamespace", "gateways", "statPrefix"):
        if not out.get(f):
            out[f] = root.get(f)
    for f in (*_MAP_FIELDS, "sourceLabels"):
        merged = {**_map(root, f), **_map(leaf, f)}
        out[f] = merged if merged else out.get(f)
    return {k: v for k, v in out.items() if v is not None}


def _joined(root: str, leaf: str) -> str:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def merge_matches(root: Sequence[Match], leaf: Sequence[Match]) -> list[Match] | None:
    """Merged match list, or None on conflict: every delegate block needs a compatible root block,
    and pairs with every compatible one (``mergeHTTPMatchRequests``)."""
    if not root:
        return list(leaf)
    if not leaf:
        return list(root)
    out: list[Match] = []
    for sub in leaf:
        found = [merge_match(r, sub) for r in root if not has_conflict(r, sub)]
        if not found:
            return None
        out.extend(found)
    return out or None


def merge_route(root: Route, leaf: Route) -> Route | None:
    """One delegate route merged into its root route; None when it conflicts (dropped).

    >>> r = merge_route({"name": "r", "match": [{"uri": {"prefix": "/a"}}], "timeout": "1s"},
    ...                 {"name": "d", "match": [{"uri": {"prefix": "/a/b"}}], "route": []})
    >>> r["name"], r["match"], r["timeout"]
    ('r-d', [{'uri': {'prefix': '/a/b'}}], '1s')
    """
    matches = merge_matches(_blocks(root), _blocks(leaf))
    if matches is None:
        return None
    out: Route = dict(leaf)
    out["match"] = matches
    out["name"] = _joined(_get(root, "name"), _get(leaf, "name"))
    for f in INHERITED:
        if out.get(f) is None and root.get(f) is not None:
            out[f] = root[f]
    return out


def _blocks(route: Mapping[str, Any]) -> list[Match]:
    raw = route.get("match")
    return [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
