"""RE2 syntax check (C10): Istio validates regexes with Go's ``regexp`` and Envoy runs RE2.

The check is the Rust core's own regex compiler (:func:`meshroute._core.check_regex`), the one
route tables and CORS origin matchers are built with, so validation and routing cannot disagree
about a pattern.
"""

from __future__ import annotations

from meshroute._core import check_regex


def regex_problem(pattern: str, *, anchored: bool = True) -> str | None:
    """None if ``pattern`` is a valid RE2 regex of at most 1024 bytes, else what is wrong.

    ``anchored=False`` for a ``uriRegexRewrite`` match (a search, not a full match).

    >>> regex_problem("^/api/v[0-9]+(?P<rest>/.*)?$") is None
    True
    >>> regex_problem("(a)\\\\1")
    'backreference \\\\1 at position 3 is not supported by RE2'
    >>> regex_problem("/a(b")
    'invalid regex: unclosed group at position 2'
    """
    try:
        return check_regex(pattern, anchored=anchored)
    except UnicodeEncodeError:  # a lone surrogate from a YAML "\ud800" escape
        return "regex is not valid UTF-8"
