"""Delegate VirtualService merging, Istio's ``MergeHTTPRoutes`` (semantics §2.7).

Works on HTTP routes whose hosts and gateway names are already resolved (each VS with its own
namespace), so a delegate's short names mean what they meant in the delegate's namespace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TypeVar

from meshroute.config.httpmodel import HTTPMatch, HTTPRoute, StringMatch

# Fields a delegate route inherits from the root route when it does not write them.
INHERITED = (
    "rewrite",
    "direct_response",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirrors",
    "mirror_percent",
    "mirror_percentage",
    "cors_policy",
    "headers",
)
_V = TypeVar("_V")


def _get(m: StringMatch | None, kind: str) -> str:
    return m.value if m is not None and m.kind == kind else ""


def string_match_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Whether a delegate StringMatch cannot lie within the root's (``stringMatchConflict``).

    >>> string_match_conflict(StringMatch("prefix", "/api"), StringMatch("prefix", "/api/v1"))
    False
    >>> string_match_conflict(StringMatch("exact", "/a"), StringMatch("prefix", "/a"))
    True
    """
    if root is None or leaf is None:
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


def _strings(m: HTTPMatch) -> tuple[StringMatch | None, ...]:
    return (m.uri, m.scheme, m.method, m.authority)


def _maps(m: HTTPMatch) -> tuple[Mapping[str, StringMatch], ...]:
    return (m.headers, m.without_headers, m.query_params)


def has_conflict(root: HTTPMatch, leaf: HTTPMatch) -> bool:
    """Whether delegate match ``leaf`` falls outside root match ``root`` (``hasConflict``)."""
    if any(string_match_conflict(r, f) for r, f in zip(_strings(root), _strings(leaf), strict=True)):
        return True
    for root_map, leaf_map in zip(_maps(root), _maps(leaf), strict=True):
        if any(string_match_conflict(root_map.get(k), v) for k, v in leaf_map.items()):
            return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    root_labels = root.source_labels
    if any(k in root_labels and root_labels[k] != v for k, v in leaf.source_labels.items()):
        return True
    return bool(root.gateways and leaf.gateways and not set(leaf.gateways) <= set(root.gateways))


def _merged(root: Mapping[str, _V], leaf: Mapping[str, _V]) -> dict[str, _V]:
    # the root's names first, in its order; a name both write takes the delegate's value
    return {**root, **leaf}


def merge_match(root: HTTPMatch, leaf: HTTPMatch) -> HTTPMatch:
    """Delegate fields overlaid on root fields (``mergeHTTPMatchRequest``): what the delegate
    block does not write comes from the root block, condition maps are united."""
    return dataclasses.replace(
        leaf,
        name=_joined(root.name, leaf.name),
        uri=leaf.uri or root.uri,
        scheme=leaf.scheme or root.scheme,
        method=leaf.method or root.method,
        authority=leaf.authority or root.authority,
        port=leaf.port or root.port,
        source_namespace=leaf.source_namespace or root.source_namespace,
        gateways=leaf.gateways or root.gateways,
        headers=_merged(root.headers, leaf.headers),
        without_headers=_merged(root.without_headers, leaf.without_headers),
        query_params=_merged(root.query_params, leaf.query_params),
        source_labels=_merged(root.source_labels, leaf.source_labels),
    )


def _joined(root: str, leaf: str) -> str:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def merge_matches(root: Sequence[HTTPMatch], leaf: Sequence[HTTPMatch]) -> list[HTTPMatch] | None:
    """Merged match list, or None on conflict: every delegate block needs a compatible root block,
    and pairs with every compatible one (``mergeHTTPMatchRequests``)."""
    if not root:
        return list(leaf)
    if not leaf:
        return list(root)
    out: list[HTTPMatch] = []
    for sub in leaf:
        found = [merge_match(r, sub) for r in root if not has_conflict(r, sub)]
        if not found:
            return None
        out.extend(found)
    return out or None


def merge_route(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """One delegate route merged into its root route; None when it conflicts (dropped).

    >>> from meshroute.config.httpparse import parse_http_route
    >>> r = merge_route(parse_http_route({"name": "r", "match": [{"uri": {"prefix": "/a"}}], "timeout": "1s"},
    ...                                  "ns", "cluster.local"),
    ...                 parse_http_route({"name": "d", "match": [{"uri": {"prefix": "/a/b"}}], "route": []},
    ...                                  "ns", "cluster.local"))
    >>> r.name, r.match[0].uri, r.timeout
    ('r-d', StringMatch(kind='prefix', value='/a/b'), '1s')
    """
    matches = merge_matches(root.blocks, leaf.blocks)
    if matches is None:
        return None
    inherited = {f: getattr(root, f) for f in INHERITED if getattr(leaf, f) is None}
    return dataclasses.replace(leaf, match=tuple(matches), name=_joined(root.name, leaf.name), **inherited)
