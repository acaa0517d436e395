"""Header operations of a (route, destination) pair in final application order (semantics §2.8).

Istio emits each level's ops as: ``set`` sorted by name, then ``add`` sorted by name. A
single-destination route applies route-level ops then destination-level ops; a weighted route
applies destination-level ops first (they sit on the weighted cluster) and route-level ops after.
``host``/``:authority`` in request ``set``/``add`` is an authority rewrite, not a header op.

The IR's ``HeaderOps`` has separate ``set``/``add``/``remove`` lists, applied as Envoy does:
removals first, then sets, then adds. The merged sequence is therefore folded per header name:
the last ``set`` wins and only ``add`` ops that come after it survive, so applying the lists in
that order reproduces the sequential result exactly.
"""

from __future__ import annotations

from typing import Any

from meshroute.config.httpmodel import HeaderOperations, Headers

HeaderOps = dict[str, list[Any]]
Op = tuple[str, str, str]  # (kind "set" | "add", lower-case name, value)
AUTHORITY_NAMES = frozenset({"host", ":authority"})


def empty_ops() -> HeaderOps:
    return {"set": [], "add": [], "remove": []}


def _side(headers: Headers | None, side: str) -> HeaderOperations:
    if headers is None:
        return HeaderOperations()
    return headers.request if side == "request" else headers.response


def _level(headers: Headers | None, side: str) -> tuple[list[Op], list[str], str | None]:
    """One level's ops in Istio order, its removals, and its authority rewrite (set beats add)."""
    ops = _side(headers, side)
    seq: list[Op] = []
    authority: dict[str, str] = {}
    for kind, values in (("set", ops.set), ("add", ops.add)):
        for name in sorted(values, key=str.lower):
            lname, value = name.lower(), values[name]
            if side == "request" and lname in AUTHORITY_NAMES:
                authority.setdefault(kind, value)
            elif not lname.startswith(":") and lname != "host":
                seq.append((kind, lname, value))
    dropped = [n.lower() for n in ops.remove]
    kept = [n for n in dropped if n != "host" and not n.startswith(":")]
    return seq, kept, authority.get("set", authority.get("add"))


def fold(seq: list[Op], removes: list[str]) -> HeaderOps:
    """Fold a sequential op list into set/add/remove lists with the same effect.

    >>> fold([("set", "x", "1"), ("add", "x", "2"), ("set", "x", "3"), ("add", "y", "4")], ["z"])
    {'set': [['x', '3']], 'add': [['y', '4']], 'remove': ['z']}
    """
    last_set: dict[str, int] = {}
    for i, (kind, name, _) in enumerate(seq):
        if kind == "set":
            last_set[name] = i
    sets: list[Any] = [
        [name, value] for i, (kind, name, value) in enumerate(seq) if kind == "set" and last_set[name] == i
    ]
    adds: list[Any] = [
        [name, value]
        for i, (kind, name, value) in enumerate(seq)
        if kind == "add" and i > last_set.get(name, -1)
    ]
    remove = list(dict.fromkeys(removes))
    return {"set": sets, "add": adds, "remove": remove}


def route_ops(route_headers: Headers | None, side: str) -> HeaderOps:
    """Route-level ops alone (used for redirects, direct responses and aborts)."""
    seq, removes, _ = _level(route_headers, side)
    return fold(seq, removes)


def destination_ops(
    route_headers: Headers | None, dest_headers: Headers | None, weighted: bool
) -> tuple[HeaderOps, HeaderOps, str | None]:
    """Final (request ops, response ops, authority) for one destination of a route.

    The route-level authority wins in both shapes: for a single destination Istio only uses the
    destination's when the route sets none; for weighted clusters Envoy applies route-level
    rewrites after the cluster's.

    >>> req, _, auth = destination_ops(Headers(HeaderOperations(set={"x": "r", "host": "a"})),
    ...                                Headers(HeaderOperations(set={"x": "d"}, add={"host": "b"})), True)
    >>> req["set"], auth
    ([['x', 'r']], 'a')
    """
    if route_headers is None and dest_headers is None:
        return empty_ops(), empty_ops(), None  # what the loop below gives for no headers at all
    result: list[HeaderOps] = []
    authority: str | None = None
    for side in ("request", "response"):
        r_seq, r_rm, r_auth = _level(route_headers, side)
        d_seq, d_rm, d_auth = _level(dest_headers, side)
        seq = d_seq + r_seq if weighted else r_seq + d_seq
        result.append(fold(seq, r_rm + d_rm))
        if side == "request":
            authority = r_auth if r_auth is not None else d_auth
    return result[0], result[1], authority
