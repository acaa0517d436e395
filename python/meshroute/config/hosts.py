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


def alias_namespace(host: str, domain: str = "cluster.local") -> str | None:
    """The namespace part of a host under ``<ns>.svc.<domain>`` (a Kubernetes service, or a
    ServiceEntry host named like one), whose short names depend on the client's namespace; None
    for any other host (§1.1, Istio ``generateAltVirtualHostsForKubernetesService``).

    >>> alias_namespace("reviews.default.svc.cluster.local"), alias_namespace("api.example.com")
    ('default', None)
    """
    if is_wildcard(host) or not host.endswith(f".svc.{domain}"):
        return None
    cut = host.find(".svc.")
    dot = host.find(".")
    if cut <= 0 or dot + 1 >= len(host) or dot + 1 > cut:
        return None
    return host[dot + 1 : cut]


def alt_hosts(host: str, client_ns: str, domain: str = "cluster.local") -> list[str]:
    """The other names Istio gives a service host on a sidecar of ``client_ns`` (its
    ``GenerateAltVirtualHosts``, port ignored as sidecars ignore it): the absolute name with a
    trailing dot (not for IPs), then for a host under ``<ns>.svc.<domain>`` the short names — in
    the host's own namespace ``name``, ``name.ns.svc``, ``name.ns``; elsewhere ``name.ns``,
    ``name.ns.svc`` (§1.1).

    >>> alt_hosts("reviews.default.svc.cluster.local", "default")
    ['reviews.default.svc.cluster.local.', 'reviews', 'reviews.default.svc', 'reviews.default']
    >>> alt_hosts("reviews.default.svc.cluster.local", "prod")
    ['reviews.default.svc.cluster.local.', 'reviews.default', 'reviews.default.svc']
    >>> alt_hosts("api.example.com", "prod")
    ['api.example.com.']
    """
    out = [] if is_ip(host) else [f"{host}."]
    ns = alias_namespace(host, domain)
    if ns is None:
        return out
    cut = host.find(".svc.")
    name, qualified = host[: host.find(".")], host[:cut]
    if ns == client_ns:
        return [*out, name, f"{qualified}.svc", qualified]
    return [*out, qualified, f"{qualified}.svc"]


def ipv6_compliant(host: str) -> str:
    """An IPv6 literal in brackets, as it appears in a Host header; anything else unchanged."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def proxy_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses of a service an IPv4 sidecar reaches it by (Istio
    ``GetAllAddressesForProxy`` for a proxy without IPv6): the IPv4 ones and IPv4 CIDRs (a /32
    is its address), else the first address whatever its family; never ``0.0.0.0``.

    >>> proxy_addresses(["10.0.0.1", "2001:db8::1"]), proxy_addresses(["2001:db8::1"])
    (['10.0.0.1'], ['2001:db8::1'])
    """
    usable: list[str] = []
    for raw in addresses:
        try:
            if "/" in raw:
                net = ipaddress.ip_network(raw, strict=False)
                text = str(net.network_address) if net.prefixlen == net.max_prefixlen else raw
                family = net.version
            else:
                text, family = raw, ipaddress.ip_address(raw).version
        except ValueError:
            continue
        if family == 4:
            usable.append(text)
    if not usable and addresses:
        usable = [addresses[0]]
    return [a for a in usable if a and a != "0.0.0.0"]


def vhost_domains(
    host: str,
    client_ns: str,
    domain: str = "cluster.local",
    *,
    headless: bool = False,
    addresses: Sequence[str] = (),
    aliases: Sequence[str] = (),
) -> list[str]:
    """The virtual-host domains of a service on a sidecar of ``client_ns``, in Istio's order
    (``generateVirtualHostDomains``): the host and its :func:`alt_hosts`, then each of its
    ``aliases`` (the ExternalName services naming it, §13) and that alias's alternative names, for
    a headless Kubernetes service each of those again as ``*.`` wildcard (its pods' names), then
    the addresses it is reached by (:func:`proxy_addresses`). No ``:port`` forms: sidecars ignore
    the port in host matching (§1.1).

    >>> vhost_domains("db.prod.svc.cluster.local", "web", headless=True)[4:]
    ['*.db.prod.svc.cluster.local', '*.db.prod.svc.cluster.local.', '*.db.prod', '*.db.prod.svc']
    >>> vhost_domains("reviews.default.svc.cluster.local", "prod", addresses=["10.0.0.7"])[-1]
    '10.0.0.7'
    >>> vhost_domains("db.prod.svc.cluster.local", "web", aliases=["pg.web.svc.cluster.local"])[4:]
    ['pg.web.svc.cluster.local', 'pg.web.svc.cluster.local.', 'pg', 'pg.web.svc', 'pg.web']
    """
    domains = [ipv6_compliant(host), *alt_hosts(host, client_ns, domain)]
    for alias in aliases:
        domains += [ipv6_compliant(alias), *alt_hosts(alias, client_ns, domain)]
    if headless:
        domains += [f"*.{d}" for d in domains]
    domains += [ipv6_compliant(a) for a in proxy_addresses(addresses)]
    return domains


def overlaps_any(pattern: str, hosts: Iterable[str]) -> bool:
    """Whether a (wildcard) host pattern overlaps any of ``hosts`` (Istio ``host.Name.Matches``,
    either way round): a wildcard VirtualService host that does is no host of its own on a
    sidecar (§1.1).

    >>> overlaps_any("*.cluster.local", ["a.ns.svc.cluster.local"]), overlaps_any("*.org", ["a.com"])
    (True, False)
    """
    return any(intersect(pattern, host) for host in hosts)


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
