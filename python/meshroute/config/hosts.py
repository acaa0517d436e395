"""Istio host names: short-name expansion, wildcard matching, aliases, gateway names (semantics §1.1).

All functions take and return lower-case names; callers lower-case user input once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

MESH = "mesh"
ROOT_NAMESPACE = "istio-system"


def fqdn(name: str, namespace: str, domain: str = "cluster.local") -> str:
    """Expand a short name with the namespace of the *rule* (§1.1); dotted names are literal.

    >>> fqdn("Reviews", "default"), fqdn("reviews.prod", "default"), fqdn("*", "x")
    ('reviews.default.svc.cluster.local', 'reviews.prod', '*')
    """
    name = name.strip().lower()
    if not name or "." in name or name == "*" or is_ip(name):
        return name
    return f"{name}.{namespace}.svc.{domain}"


def is_ip(name: str) -> bool:
    """An IPv4 or IPv6 address literal (no port, no brackets).

    >>> is_ip("10.0.0.1"), is_ip("::1"), is_ip("reviews"), is_ip("1.2.3")
    (True, True, False, False)
    """
    if ":" not in name and not name[:1].isdigit():  # neither IPv6 nor dotted-decimal IPv4
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_wildcard(host: str) -> bool:
    return host.startswith("*")


def matches(pattern: str, host: str) -> bool:
    """One-directional match: ``host`` (maybe a wildcard itself) lies within ``pattern``.

    Wildcards are suffix matches on the text after ``*`` and need at least one character in front
    (§1.1: ``*.foo.com`` covers ``a.b.foo.com`` but not ``foo.com``).

    >>> matches("*.foo.com", "a.b.foo.com"), matches("*.foo.com", "foo.com"), matches("*", "*.x")
    (True, False, True)
    """
    if pattern == host or pattern == "*":
        return True
    if not is_wildcard(pattern):
        return False
    suffix = pattern[1:]
    if is_wildcard(host):
        return host[1:].endswith(suffix)
    return host.endswith(suffix) and len(host) > len(suffix)


def intersect(a: str, b: str) -> bool:
    """Two host patterns overlap (Istio ``host.Name.Matches``): either contains the other."""
    return matches(a, b) or matches(b, a)


def narrower(a: str, b: str) -> str:
    """Of two overlapping patterns, the more specific one (the vhost domain of a gateway VS)."""
    return a if matches(b, a) else b


def most_specific(host: str, candidates: Iterable[str]) -> str | None:
    """The candidate that best covers ``host``: exact first, else the longest wildcard suffix (§1.1).

    >>> most_specific("a.foo.com", ["*.com", "*.foo.com", "b.foo.com"])
    '*.foo.com'
    """
    best: str | None = None
    for cand in candidates:
        if cand == host:
            return cand
        if is_wildcard(cand) and matches(cand, host) and (best is None or len(cand) > len(best)):
            best = cand
    return best


def k8s_aliases(host: str, service_ns: str, client_ns: str, domain: str = "cluster.local") -> list[str]:
    """Host strings that reach a Kubernetes service from a client namespace (§1.1).

    The bare name only resolves inside the service's own namespace.

    >>> k8s_aliases("reviews.default.svc.cluster.local", "default", "prod")
    ['reviews.default', 'reviews.default.svc', 'reviews.default.svc.cluster.local']
    """
    suffix = f".{service_ns}.svc.{domain}"
    if not host.endswith(suffix):
        return [host]
    name = host[: -len(suffix)]
    short = [name] if client_ns == service_ns else []
    return [*short, f"{name}.{service_ns}", f"{name}.{service_ns}.svc", host]


def gateway_ref(raw: str, namespace: str, domain: str = "cluster.local") -> str:
    """Resolve a ``gateways`` entry to ``ns/name`` (§1.1); ``mesh`` stays ``mesh``.

    >>> gateway_ref("bookinfo-gateway", "default"), gateway_ref("./gw", "x")
    ('default/bookinfo-gateway', 'x/gw')
    >>> gateway_ref("gw.istio-system.svc.cluster.local", "x"), gateway_ref("mesh", "x")
    ('istio-system/gw', 'mesh')
    """
    raw = raw.strip()
    if raw == MESH:
        return MESH
    if "/" in raw:
        ns, name = raw.split("/", 1)
        return f"{namespace if ns in ('', '.') else ns}/{name}"
    parts = raw.split(".")
    if len(parts) >= 2:  # legacy FQDN form name.ns[.svc.domain]
        return f"{parts[1]}/{parts[0]}"
    return f"{namespace}/{raw}"


def exported_to(export_to: Sequence[str], owner_ns: str, client_ns: str) -> bool:
    """Whether a resource with ``exportTo`` in ``owner_ns`` is visible in ``client_ns`` (§2.1, §5).

    Empty means the mesh default ``*``; ``~`` (ServiceEntry only) is visible to no one.

    >>> exported_to([], "a", "b"), exported_to(["."], "a", "b"), exported_to(["b"], "a", "b")
    (True, False, True)
    """
    if not export_to:
        return True
    for entry in export_to:
        if entry == "*" or entry == client_ns or (entry == "." and owner_ns == client_ns):
            return True
    return False


def visibility_class(export_to: Sequence[str], owner_ns: str, client_ns: str) -> int:
    """Precedence group of a VS for a client namespace (§2.16 refinement), lower first.

    0: exported only to its own namespace (the client's); 1: explicitly exported to the client's
    namespace; 2: public.
    """
    entries = set(export_to) or {"*"}
    if entries == {"."} and owner_ns == client_ns:
        return 0
    if "*" in entries:
        return 2
    return 1
