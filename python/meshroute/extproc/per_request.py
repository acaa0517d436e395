"""The answer parts that vary per request, so they stay out of the cached bytes
(:mod:`meshroute.extproc.answer`): the consistent-hash key, the mirror draws and the
``PassthroughCluster`` destination.

Each comes in two halves: what the decision says, read once when its answer is built
(:func:`hash_policy`, :func:`mirrors_of`, the decision's cluster), and what one request makes
of it (:func:`hash_key`, :meth:`Mirror.fires`, :func:`original_dst`), used by ``Answer.tail``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from meshroute.config.hosts import is_ip
from meshroute.extproc import MAX_MIRRORS
from meshroute.extproc.request import Header

# === Consistent hash ===


def hash_policy(traffic_policy: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """Where the consistent-hash key comes from; None for no hash or ``useSourceIp`` (Envoy's route
    hash policy covers that).

    >>> hash_policy({"loadBalancer": {"consistentHash": {"httpCookie": {"name": "s"}}}})
    ('cookie', 's')
    """
    ch = ((traffic_policy or {}).get("loadBalancer") or {}).get("consistentHash") or {}
    if ch.get("httpHeaderName"):
        return ("header", str(ch["httpHeaderName"]).lower())
    if (ch.get("httpCookie") or {}).get("name"):
        return ("cookie", str(ch["httpCookie"]["name"]))
    if ch.get("httpQueryParameterName"):
        return ("query", str(ch["httpQueryParameterName"]))
    return None


def hash_key(source: tuple[str, str], headers: Iterable[Header], path: str) -> str | None:
    """The hash key for this request, or None when the request lacks it.

    >>> hash_key(("cookie", "s"), [("cookie", "a=1; s=xyz")], "/")
    'xyz'
    >>> hash_key(("query", "u"), [], "/p?x=1&u=7"), hash_key(("header", "x-user"), [], "/")
    ('7', None)
    """
    kind, name = source
    if kind == "query":
        _, _, query = path.partition("?")
        for pair in query.split("&"):
            k, eq, v = pair.partition("=")
            if k == name:
                return v
        return None
    want = "cookie" if kind == "cookie" else name
    values = [v for k, v in headers if k.lower() == want]
    if not values:
        return None
    if kind == "header":
        return ",".join(values)
    for part in "; ".join(values).split(";"):
        k, eq, v = part.strip().partition("=")
        if eq and k == name:
            return v
    return None


# === Mirrors ===


@dataclass(frozen=True, slots=True)
class Mirror:
    """One VirtualService mirror of a decision. ``cluster`` None: the mirror names no port and its
    host has no single port, so (as Istio) the listener port is used, known only per request."""

    cluster: str | None
    host: str
    subset: str | None
    per_million: int  # Istio percentage x 10 000; 1 000 000 = always

    def cluster_for(self, port: int) -> str:
        return self.cluster or f"outbound|{port}|{self.subset or ''}|{self.host}"

    def fires(self, rng: random.Random) -> bool:
        """Draw only when the percentage is strictly between 0 and 100, as the core does for faults."""
        if self.per_million >= 1_000_000:
            return True
        return self.per_million > 0 and rng.randrange(1_000_000) < self.per_million


def mirrors_of(d: Mapping[str, Any]) -> tuple[Mirror, ...]:
    """The decision's ``mirrors`` (docs/ir.md ``extra``): the first :data:`MAX_MIRRORS` with a
    percentage above 0.

    >>> mirrors_of({"mirrors": [{"cluster": "outbound|80|v2|e", "destination": {"host": "e",
    ...     "subset": "v2", "port": 80}, "percent": 12.5}]})
    (Mirror(cluster='outbound|80|v2|e', host='e', subset='v2', per_million=125000),)
    """
    out: list[Mirror] = []
    for m in d.get("mirrors") or []:
        dest = m.get("destination") or {}
        percent = m.get("percent")
        per_million = min(max(round(float(100 if percent is None else percent) * 10_000), 0), 1_000_000)
        if per_million and dest.get("host"):
            out.append(Mirror(m.get("cluster"), str(dest["host"]), dest.get("subset") or None, per_million))
    # Envoy has MAX_MIRRORS policies; serve warns about longer lists at load (context.py).
    return tuple(out[:MAX_MIRRORS])


# === Passthrough ===


def original_dst(host: str, port: int | None) -> str | None:
    """``x-envoy-original-dst-host`` for a passthrough request to ``host:port``: only an IP literal
    with a port names an address Envoy can connect to; a DNS name (or no port) gives None.

    >>> original_dst("127.0.0.1", 18080), original_dst("[::1]", 80), original_dst("[::1]", None)
    ('127.0.0.1:18080', '[::1]:80', None)
    >>> original_dst("unknown.example", 80), original_dst("127.1", 80), original_dst("[a.b]", 80)
    (None, None, None)
    """
    if port is None or not 0 < port < 65536:
        return None
    literal = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not is_ip(literal):
        return None
    if ":" in literal:  # IPv6: an authority can only carry it in brackets
        return f"[{literal}]:{port}" if host.startswith("[") else None
    return f"{literal}:{port}"
