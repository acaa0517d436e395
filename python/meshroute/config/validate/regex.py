"""RE2 syntax check (C10): Istio validates regexes with Go's ``regexp`` and Envoy runs RE2.

Python's ``re`` is not RE2, so this first scans for constructs RE2 rejects (backreferences,
lookaround, atomic groups, possessive quantifiers, ``\\Z``, conditionals, comments, unknown flags,
repeat counts over 1000) and rewrites RE2-only syntax Python lacks (``\\z``, ``\\x{...}``, ``\\pL``,
``\\Q...\\E``, ``[[:alpha:]]``, ``(?<name>``, inline flags mid-pattern), then lets ``re`` compile the
result to catch ordinary syntax errors (unbalanced parentheses, bad ranges, dangling ``*``).
"""

from __future__ import annotations

import re
import warnings

MAX_REGEX_LEN = 1024
_GO_LETTER_ESCAPES = frozenset("afnrtvdDsSwWbBAzpPxQ")
_POSIX_CLASSES = frozenset(
    {
        "alnum",
        "alpha",
        "ascii",
        "blank",
        "cntrl",
        "digit",
        "graph",
        "lower",
        "print",
        "punct",
        "space",
        "upper",
        "word",
        "xdigit",
    }
)
_FLAG_GROUP = re.compile(r"\(\?([a-zA-Z-]*)(:|\))")
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_POSIX = re.compile(r"\[:(\^?)([a-z]*):\]")


class _Unsupported(Exception):
    """A construct RE2 does not support; the message says which."""


def regex_problem(pattern: str) -> str | None:
    """None if ``pattern`` is a valid RE2 regex of at most 1024 bytes, else what is wrong.

    >>> regex_problem("^/api/v[0-9]+(?P<rest>/.*)?$") is None
    True
    >>> regex_problem("(a)\\\\1")
    'backreference \\\\1 is not supported by RE2'
    """
    if len(pattern.encode("utf-8", "surrogatepass")) > MAX_REGEX_LEN:
        return f"regex is longer than {MAX_REGEX_LEN} bytes"
    try:
        translated = _translate(pattern)
    except _Unsupported as exc:
        return str(exc)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FutureWarning on "[[" etc.: RE2 semantics differ anyway
            re.compile(translated)
    except re.error as exc:
        return f"invalid regex: {exc.msg}" + (f" at position {exc.pos}" if exc.pos is not None else "")
    except (RecursionError, OverflowError, ValueError, MemoryError) as exc:
        return f"invalid regex: {exc}"
    return None


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class)
        elif in_class:
            text, i = _class_char(pattern, i)
            in_class = ch != "]"
        elif ch == "[":
            text, i = _class_start(pattern, i)
            in_class = True
        elif ch == "(":
            text, i = _group(pattern, i)
        else:
            _check_quantifier(pattern, i)
            text, i = ch, i + 1
        out.append(text)
    return "".join(out)


def _class_start(pattern: str, i: int) -> tuple[str, int]:
    """``[``, an optional ``^``, and a leading ``]`` which is a literal in RE2."""
    text, i = "[", i + 1
    if pattern.startswith("^", i):
        text, i = text + "^", i + 1
    if pattern.startswith("]", i):
        text, i = text + "\\]", i + 1
    return text, i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One character inside a class; ``[:name:]`` POSIX classes become a placeholder member."""
    if pattern[i] != "[":
        return pattern[i], i + 1
    m = _POSIX.match(pattern, i)
    if m is None:
        return "\\[", i + 1  # a literal "[" (Python would warn about a nested set)
    if m.group(2) not in _POSIX_CLASSES:
        raise _Unsupported(f"unknown character class [:{m.group(2)}:]")
    return "a", m.end()


def _check_quantifier(pattern: str, i: int) -> None:
    ch = pattern[i]
    if ch == "{":
        m = _REPEAT.match(pattern, i)
        if m is None:
            return
        numbers = [int(g) for g in (m.group(1), m.group(3)) if g]
        if any(n > 1000 for n in numbers):
            raise _Unsupported("invalid repeat count: RE2 allows at most 1000 repetitions")
        end = m.end()
    elif ch in "*+?":
        end = i + 1
    else:
        return
    if pattern.startswith("?", end):  # a lazy quantifier is fine
        end += 1
    nxt = pattern[end : end + 1]
    if nxt in ("*", "+", "?") or (nxt == "{" and _REPEAT.match(pattern, end)):
        raise _Unsupported(
            f"invalid nested repetition operator {pattern[i : end + 1]!r} "
            "(possessive quantifiers are not supported by RE2)"
        )


def _group(pattern: str, i: int) -> tuple[str, int]:
    rest = pattern[i + 1 :]
    if not rest.startswith("?"):
        return "(", i + 1
    for prefix, what in (
        ("?=", "lookahead"),
        ("?!", "negative lookahead"),
        ("?<=", "lookbehind"),
        ("?<!", "negative lookbehind"),
        ("?>", "atomic group"),
        ("?#", "comment group"),
        ("?(", "conditional group"),
        ("?P=", "named backreference"),
        ("?P>", "recursion"),
        ("?R", "recursion"),
        ("?&", "recursion"),
    ):
        if rest.startswith(prefix):
            raise _Unsupported(f"{what} `({prefix}` is not supported by RE2")
    if rest.startswith("?P<"):
        return "(?P<", i + 4
    if rest.startswith("?<"):  # Go 1.22+ accepts (?<name>re); Python 3.11 only the P form
        return "(?P<", i + 3
    m = _FLAG_GROUP.match(pattern, i)
    if m is None:
        raise _Unsupported("invalid or unsupported Perl syntax after `(?`")
    flags = m.group(1)
    if any(f not in "imsU-" for f in flags) or flags.count("-") > 1 or flags.endswith("-") or not flags:
        raise _Unsupported(f"invalid or unsupported flags `(?{flags}`; RE2 supports i, m, s, U")
    # Python 3.11 wants global flags first; flags only change matching, not syntax, so drop them
    return ("(?:" if m.group(2) == ":" else "(?:)"), m.end()


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise _Unsupported("trailing backslash at end of regex")
    nxt = pattern[i + 1]
    if nxt.isdigit():
        return _octal(pattern, i)
    if nxt.isascii() and nxt.isalpha():
        if nxt not in _GO_LETTER_ESCAPES:
            raise _Unsupported(f"escape sequence \\{nxt} is not supported by RE2")
        if nxt == "z":
            return "\\Z", i + 2
        if nxt in "pP":
            return _unicode_class(pattern, i)
        if nxt == "x":
            return _hex(pattern, i)
        if nxt == "Q":
            end = pattern.find("\\E", i + 2)
            literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
            return re.escape(literal), (len(pattern) if end < 0 else end + 2)
        if in_class and nxt in "bBAz":
            raise _Unsupported(f"escape sequence \\{nxt} is not allowed in a character class")
        return pattern[i : i + 2], i + 2
    if nxt.isascii() and (nxt.isalnum() or nxt == "_"):
        raise _Unsupported(f"escape sequence \\{nxt} is not supported by RE2")
    if not nxt.isascii():
        raise _Unsupported(f"escape sequence \\{nxt} is not supported by RE2")
    return "\\" + nxt, i + 2


def _octal(pattern: str, i: int) -> tuple[str, int]:
    digits = pattern[i + 1 : i + 4]
    n = 0
    while n < len(digits) and digits[n] in "01234567":
        n += 1
    first = pattern[i + 1]
    # Go: "\0" starts an octal escape; "\1".."\7" only with a second octal digit; alone it is a backreference
    if first in "89" or n == 0:
        raise _Unsupported(f"escape sequence \\{first} is not supported by RE2")
    if first != "0" and n < 2:
        raise _Unsupported(f"backreference \\{first} is not supported by RE2")
    return f"\\U{int(digits[:n], 8):08x}", i + 1 + n


def _hex(pattern: str, i: int) -> tuple[str, int]:
    if pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        body = pattern[i + 3 : end] if end > 0 else ""
        if (
            end < 0
            or not body
            or not all(c in "0123456789abcdefABCDEF" for c in body)
            or int(body, 16) > 0x10FFFF
        ):
            raise _Unsupported("invalid escape \\x{...}: expected 1-6 hex digits up to 10FFFF")
        return f"\\U{int(body, 16):08x}", end + 1
    body = pattern[i + 2 : i + 4]
    if len(body) != 2 or not all(c in "0123456789abcdefABCDEF" for c in body):
        raise _Unsupported("invalid escape \\x: expected two hex digits or \\x{...}")
    return pattern[i : i + 4], i + 4


def _unicode_class(pattern: str, i: int) -> tuple[str, int]:
    if pattern.startswith("{", i + 2):
        end = pattern.find("}", i + 3)
        if end < 0 or end == i + 3:
            raise _Unsupported("invalid Unicode class escape: missing closing }")
        return "a", end + 1
    if i + 2 >= len(pattern) or not pattern[i + 2].isalpha():
        raise _Unsupported("invalid Unicode class escape")
    return "a", i + 3
