"""HTTP header names and values (V17, V30, C11)."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})
JWT_CLAIM_PREFIX = "@request.auth.claims"
# "@request.auth.claims.sub", "@request.auth.claims[a][b]"
_JWT_CLAIM = re.compile(r"@request\.auth\.claims(?:\.[^.\[\]]+|(?:\[[^\[\]]+\])+)\Z")
_VAR_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def is_token(name: str) -> bool:
    """An RFC 7230 token (the characters allowed in a header name)."""
    return _TOKEN.match(name) is not None


def match_header_name_problem(name: str) -> str | None:
    """V30: a header name in ``headers``/``withoutHeaders``: a token, a pseudo header or a JWT claim."""
    if name.startswith(JWT_CLAIM_PREFIX):
        if _JWT_CLAIM.match(name) is None:
            return (
                f"invalid JWT claim key {name!r}; use @request.auth.claims.<claim> or "
                "@request.auth.claims[<a>][<b>]"
            )
        return None
    if not name:
        return "header name must not be empty"
    if name in PSEUDO_HEADERS or is_token(name):
        return None
    return f"header name {name!r} is not a valid HTTP header name (RFC 7230 token or pseudo header)"


def operation_name_problem(name: str, *, setting: bool) -> str | None:
    """V17: names in header operations. ``setting`` is True for ``request.set``/``request.add``,
    where ``host`` and ``:authority`` are allowed (they become an authority rewrite)."""
    if not name:
        return "header name must not be empty"
    lower = name.lower()
    if setting and lower in ("host", ":authority"):
        return None
    if lower == "host":
        return "the `host` header cannot be removed or set on responses"
    if name.startswith(":"):
        return f"pseudo header {name!r} cannot be modified"
    if not is_token(name):
        return f"header name {name!r} is not a valid HTTP header name (RFC 7230 token)"
    return None


def value_problem(value: str) -> str | None:
    """C11: no control characters; ``%`` is ``%%`` or starts a well-formed ``%VAR%``/``%VAR(args)%``.

    >>> value_problem("%DOWNSTREAM_REMOTE_ADDRESS%"), value_problem("100%")
    (None, "unbalanced '%' at position 3: write '%%' for a literal percent sign")
    """
    for i, ch in enumerate(value):
        if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
            return f"control character {ch!r} at position {i} is not allowed in a header value"
    i = 0
    while i < len(value):
        if value[i] != "%":
            i += 1
            continue
        end = _substitution_end(value, i)
        if end is None:
            return f"unbalanced '%' at position {i}: write '%%' for a literal percent sign"
        i = end
    return None


def _substitution_end(value: str, start: int) -> int | None:
    """Index after the ``%...%`` expression starting at ``start``, or None if malformed."""
    if value.startswith("%%", start):
        return start + 2
    m = _VAR_NAME.match(value, start + 1)
    if m is None:
        return None
    pos = m.end()
    if value.startswith("(", pos):
        close = value.find(")", pos)
        if close < 0:
            return None
        pos = close + 1
        # an optional ":<max length>" suffix, e.g. %REQ(x-foo):10%
        digits = re.match(r":[0-9]+", value[pos:])
        if digits is not None:
            pos += digits.end()
    return pos + 1 if value.startswith("%", pos) else None
