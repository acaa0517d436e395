"""Checks shared by every kind (semantics §8.1, C1-C12).

Each ``*_problem`` helper returns None when the value is fine, else a message saying what is wrong
and what is allowed; callers choose the code and the path. Nothing here raises.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from meshroute.config.hosts import is_ip as is_ip  # re-exported: validators use common.is_ip

# === durations (C1) ===

_DURATION_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
# google.protobuf.Duration's range: +-315,576,000,000 s
MAX_DURATION_NS = 315_576_000_000 * 10**9
NS_PER_MS = 10**6


def parse_duration_ns(value: object) -> int | None:
    """Exact nanoseconds of a duration string, or None if it is not one.

    Accepts protobuf JSON (``"1.5s"``) and Go syntax (``"1h30m"``, ``"300ms"``, ``"2us"``, ``"0"``),
    as Kubernetes does for Istio CRDs.

    >>> parse_duration_ns("1m30.5s"), parse_duration_ns("-2ms"), parse_duration_ns("5")
    (90500000000, -2000000, None)
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    text, sign = value, 1
    if text[0] in "+-":
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    total = Decimal(0)
    pos = 0
    while pos < len(text):
        m = _DURATION_RE.match(text, pos)
        if m is None or m.group(1) in ("", "."):
            return None
        try:
            total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        except InvalidOperation:
            return None
        pos = m.end()
    if pos == 0 or total > MAX_DURATION_NS:
        return None
    return sign * int(total)  # Go truncates below 1ns


def parse_duration_ms(value: object) -> int | None:
    """Milliseconds of a duration string (sub-millisecond parts truncated), or None if invalid.

    >>> parse_duration_ms("0.5s"), parse_duration_ms("1h"), parse_duration_ms("bogus")
    (500, 3600000, None)
    """
    ns = parse_duration_ns(value)
    if ns is None:
        return None
    return ns // NS_PER_MS if ns >= 0 else -((-ns) // NS_PER_MS)


def duration_problem(value: str, *, allow_zero: bool = False, strict: bool = True) -> tuple[str, str] | None:
    """``(code, message)`` if ``value`` breaks C1 (>= 1ms and a whole number of ms), else None.

    ``allow_zero`` admits ``0s`` (tcp.idleTimeout); ``strict=False`` only checks the syntax and sign
    (httpCookie.ttl, retryBudget.budgetInterval).
    """
    ns = parse_duration_ns(value)
    if ns is None:
        return "duration-invalid", (
            f'{value!r} is not a duration; write a number with a unit: h, m, s, ms, us or ns (e.g. "5s")'
        )
    if ns < 0:
        return "duration-invalid", f"{value!r} is negative; durations must be >= 0"
    if not strict or (allow_zero and ns == 0):
        return None
    if ns < NS_PER_MS:
        return "duration-too-short", f"{value!r} is shorter than the minimum 1ms"
    if ns % NS_PER_MS:
        return "duration-not-whole-ms", f"{value!r} is not a whole number of milliseconds"
    return None


# === numbers (C2, C12) ===


def port_problem(value: int, *, allow_zero: bool = False) -> str | None:
    """C2: port numbers 1-65535 (0 only where a Unix socket is allowed)."""
    if allow_zero and value == 0:
        return None
    if not 1 <= value <= 65535:
        return f"port {value} is out of range; must be between 1 and 65535"
    return None


def percent_problem(value: float) -> str | None:
    """C12 for Percent values: 0, or 0.0001 <= v <= 100 (Envoy precision is 0.0001 %)."""
    if value == 0:
        return None
    if value < 0.0001 or value > 100:
        return f"percentage {value} must be 0 or between 0.0001 and 100"
    return None


def int_percent_problem(value: int) -> str | None:
    """C12 for integer percents: 0-100."""
    return None if 0 <= value <= 100 else f"{value} must be between 0 and 100"


# === names (C3, C4, C5, C7) ===

_DNS_LABEL = re.compile(r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?\Z")
_WILDCARD_LABEL = re.compile(r"(?:\*|(?:\*|\*-)?[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?)\Z")
_QUALIFIED = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")


def is_dns_label(value: str) -> bool:
    """DNS-1123 label (<= 63 chars; upper case tolerated like Istio's validation)."""
    return len(value) <= 63 and _DNS_LABEL.match(value) is not None


def dns_labels_problem(domain: str) -> str | None:
    """Every dot-separated label is a DNS-1123 label; the last may be empty (``istio.io.``); the
    top-level label may not be all digits."""
    parts = domain.split(".")
    if parts[-1].lstrip("+-").isdigit() and parts[-1].isascii():
        return f"domain name {domain!r} is invalid: the top-level label {parts[-1]!r} cannot be all-numeric"
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None
        if not is_dns_label(label):
            return f"domain name {domain!r} is invalid: label {label!r} is not a DNS-1123 label"
    return None


def wildcard_domain_problem(host: str) -> str | None:
    """C3: a hostname whose first label may be ``*``, ``*x`` or ``*-x``; the rest DNS-1123 labels.

    >>> wildcard_domain_problem("*.example.com") is None, wildcard_domain_problem("a..b") is None
    (True, False)
    """
    if not host:
        return "host name must not be empty"
    if len(host) > 255:
        return f"host name is {len(host)} characters long; the limit is 255"
    first, dot, rest = host.partition(".")
    if len(first) > 63 or _WILDCARD_LABEL.match(first) is None:
        return f"domain name {host!r} is invalid: label {first!r} is not a DNS-1123 label or wildcard"
    return dns_labels_problem(rest) if dot else None


def fqdn_problem(host: str) -> str | None:
    """C4: like C3 but without wildcards."""
    if not host:
        return "host name must not be empty"
    if len(host) > 255:
        return f"host name is {len(host)} characters long; the limit is 255"
    return dns_labels_problem(host)


def is_partial_wildcard(host: str) -> bool:
    """C5: ``*`` present but neither the whole host nor a leading ``*.`` label."""
    return "*" in host and host != "*" and not (host.startswith("*.") and "*" not in host[2:])


def label_key_problem(key: str) -> str | None:
    """C7 label key: optional DNS-subdomain prefix and ``/``, then a qualified name (<= 63)."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or fqdn_problem(prefix) is not None):
        return f"label key {key!r} has an invalid prefix; it must be a DNS subdomain"
    if not name or len(name) > 63 or _QUALIFIED.match(name) is None:
        return (
            f"label key {key!r} is invalid: the name must be 1-63 characters, alphanumeric, '-', '_' "
            "or '.', starting and ending with an alphanumeric"
        )
    return None


def label_value_problem(value: str) -> str | None:
    """C7 label value: empty or a qualified name of at most 63 characters."""
    if value == "" or (len(value) <= 63 and _QUALIFIED.match(value)):
        return None
    return (
        f"label value {value!r} is invalid: it must be empty or 1-63 characters, alphanumeric, '-', "
        "'_' or '.', starting and ending with an alphanumeric"
    )


# === addresses (C6) ===


def is_cidr(value: str) -> bool:
    """A network prefix such as ``10.0.0.0/8`` (host bits may be set, as Go's ParseCIDR allows)."""
    if "/" not in value:
        return False
    addr, _, bits = value.partition("/")
    if not bits.isdigit() or not bits.isascii() or not is_ip(addr):
        return False
    limit = 32 if "." in addr and ":" not in addr else 128
    return int(bits) <= limit


def ip_or_cidr_problem(value: str) -> str | None:
    if is_ip(value) or is_cidr(value):
        return None
    return f"{value!r} is not an IP address or CIDR block"


# === protocols (§1) ===

PROTOCOLS = frozenset(
    {
        "HTTP",
        "HTTP2",
        "GRPC",
        "GRPC-WEB",
        "HTTPS",
        "TLS",
        "TCP",
        "MONGO",
        "REDIS",
        "MYSQL",
        "UDP",
        "HTTP_PROXY",
    }
)
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"})
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})


def protocol_problem(value: str) -> str | None:
    """Protocol names are case-insensitive; anything outside the list is unsupported."""
    if value.upper() in PROTOCOLS:
        return None
    return f"unsupported protocol {value!r}; use one of {', '.join(sorted(PROTOCOLS))}"


# === exportTo (C8) ===


def export_to_problems(entries: list[str], namespace: str, *, allow_tilde: bool) -> list[tuple[int, str]]:
    """C8: ``(index, message)`` for each bad entry of an ``exportTo`` list."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        norm = "." if entry == namespace else entry
        if entry == "~":
            if not allow_tilde:
                out.append((i, "`~` is only allowed in ServiceEntry exportTo"))
            elif len(entries) > 1:
                out.append((i, "`~` (visible to no one) cannot be combined with other entries"))
        elif entry not in (".", "*") and not is_dns_label(entry):
            out.append((i, f"{entry!r} must be `.`, `*` or a namespace name (DNS-1123 label)"))
        if norm in seen:
            out.append((i, f"duplicate exportTo entry {entry!r} (`.` is the resource's own namespace)"))
        seen.add(norm)
    if "*" in entries and len(entries) > 1:
        out.append((entries.index("*"), "`*` (all namespaces) cannot be combined with other entries"))
    return out


# === Unix domain sockets (G5, S8, S14, SC7) ===

UDS_PREFIX = "unix://"


def uds_problem(address: str) -> str | None:
    """``unix://`` followed by an absolute path (not a directory) or an ``@abstract`` name."""
    path = address[len(UDS_PREFIX) :]
    if not path or (path[0] != "/" and path[0] != "@"):
        return (
            f"{address!r}: a Unix socket must be an absolute path (unix:///path) or abstract (unix://@name)"
        )
    if path.endswith("/"):
        return f"{address!r}: a Unix socket path cannot be a directory"
    return None
