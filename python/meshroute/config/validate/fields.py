"""Structural validation and field-name normalisation against :mod:`.schema` (semantics §1, §8.7).

One walk does both jobs: it reports type mismatches, unknown/removed fields, missing required
fields, oneof conflicts and malformed durations, and it returns a *normalised* copy of the spec in
which every field name is lowerCamelCase (proto snake_case names such as ``mirror_percent`` or
``consecutive_5xx_errors`` are rewritten), values of the wrong type are dropped (list entries become
``None`` so indices stay stable) and explicit ``null`` fields are pruned as the API server does.
Semantic validators can then trust the types they read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common
from meshroute.config.validate.context import Ctx
from meshroute.config.validate.schema import KIND_ROOT, MESSAGES, SCALARS, Enum, FieldType, ListOf, MapOf

_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}


class _Bad:
    """Marker for a value that failed its type check (already reported)."""


_BAD = _Bad()


def to_camel(key: str) -> str:
    """The protobuf JSON name of a proto field name: drop each ``_`` and upper-case what follows.

    >>> to_camel("consecutive_5xx_errors"), to_camel("http1_max_pending_requests")
    ('consecutive5xxErrors', 'http1MaxPendingRequests')
    """
    out: list[str] = []
    upper = False
    for ch in key:
        if ch == "_":
            upper = True
            continue
        out.append(ch.upper() if upper else ch)
        upper = False
    return "".join(out)


def describe(value: Any) -> str:
    """A short English name for the YAML type of ``value``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Walker:
    """Walks one spec; with ``ctx`` None it only normalises (used by :func:`normalize_spec`)."""

    def __init__(self, ctx: Ctx | None) -> None:
        self.ctx = ctx

    def _error(self, code: str, path: Path, message: str) -> None:
        if self.ctx is not None:
            self.ctx.error(code, path, message)

    def _mismatch(self, path: Path, expected: str, value: Any) -> _Bad:
        if self.ctx is not None:
            self.ctx.bad.add(path)
        self._error("type-mismatch", path, f"expected {expected}, got {describe(value)}")
        return _BAD

    def value(self, ftype: FieldType, value: Any, path: Path) -> Any:
        if isinstance(ftype, ListOf):
            return self._list(ftype, value, path)
        if isinstance(ftype, MapOf):
            return self._map(ftype, value, path)
        if isinstance(ftype, Enum):
            return self._enum(ftype, value, path)
        if ftype in SCALARS:
            return self._scalar(ftype, value, path)
        return self.message(ftype, value, path)

    def _list(self, ftype: ListOf, value: Any, path: Path) -> Any:
        if not isinstance(value, list):
            return self._mismatch(path, "a list", value)
        out: list[Any] = []
        for i, item in enumerate(value):
            if item is None:
                self._mismatch((*path, i), "a value (list entries may not be null)", item)
                out.append(None)
                continue
            checked = self.value(ftype.item, item, (*path, i))
            out.append(None if checked is _BAD else checked)
        return out

    def _map(self, ftype: MapOf, value: Any, path: Path) -> Any:
        if not isinstance(value, dict):
            return self._mismatch(path, "a mapping", value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = (*path, str(key))
            if item is None:
                self._mismatch(sub, "a value (map values may not be null)", item)
                continue
            checked = self.value(ftype.value, item, sub)
            if checked is not _BAD:
                out[str(key)] = checked
        return out

    def _enum(self, ftype: Enum, value: Any, path: Path) -> Any:
        if not isinstance(value, str):
            return self._mismatch(path, f"one of {', '.join(ftype.values)}", value)
        if value not in ftype.values:
            self._error("enum-invalid", path, f"unknown value {value!r}; allowed: {', '.join(ftype.values)}")
            return _BAD
        return value

    def _scalar(self, ftype: str, value: Any, path: Path) -> Any:
        if ftype == "string":
            return value if isinstance(value, str) else self._mismatch(path, "a string", value)
        if ftype == "bool":
            return value if isinstance(value, bool) else self._mismatch(path, "true or false", value)
        if ftype == "double":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok or not math.isfinite(value):
                return self._mismatch(path, "a finite number", value)
            return value
        if ftype in _INT_RANGES:
            return self._int(ftype, value, path)
        return self._duration(ftype, value, path)

    def _int(self, ftype: str, value: Any, path: Path) -> Any:
        # protojson accepts integral floats (1.0, 1e2) for integer fields
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            return self._mismatch(path, "an integer", value)
        low, high = _INT_RANGES[ftype]
        if not low <= value <= high:
            self._error("number-out-of-range", path, f"{value} does not fit in {ftype} ({low}..{high})")
            return _BAD
        return value

    def _duration(self, ftype: str, value: Any, path: Path) -> Any:
        if not isinstance(value, str):
            return self._mismatch(path, 'a duration string such as "5s" or "100ms"', value)
        problem = common.duration_problem(
            value, allow_zero=ftype == "duration_idle", strict=ftype != "duration_any"
        )
        if problem is not None:
            code, message = problem
            self._error(code, path, message)
        return value

    def message(self, name: str, value: Any, path: Path) -> Any:
        if not isinstance(value, dict):
            return self._mismatch(path, f"a mapping ({name})", value)
        msg = MESSAGES[name]
        out: dict[str, Any] = {}
        for key, item in value.items():
            camel = self._field_name(name, key, (*path, str(key)), out)
            if camel is None or item is None:  # unknown, or null (pruned like the API server does)
                continue
            if camel != key and self.ctx is not None:
                self.ctx.renames[(*path, camel)] = key
            checked = self.value(msg.fields[camel], item, (*path, camel))
            if checked is not _BAD:
                out[camel] = checked
        self._check_message(name, value, out, path)
        return out

    def _field_name(self, name: str, key: Any, path: Path, seen: dict[str, Any]) -> str | None:
        msg = MESSAGES[name]
        camel = key if isinstance(key, str) else None
        if camel is not None and camel not in msg.fields and "_" in camel and camel == camel.lower():
            camel = to_camel(camel)
        if camel is None or camel not in msg.fields:
            advice = msg.legacy.get(str(key))
            text = f"unknown field `{key}` in {name}: " + (
                advice or f"known fields are {', '.join(msg.fields)}"
            )
            self._error("unknown-field", path, text)
            return None
        if camel in seen:
            self._error("field-duplicate", path, f"`{key}` and `{camel}` are the same field; set it once")
            return None
        return camel

    def _check_message(self, name: str, raw: dict[Any, Any], out: dict[str, Any], path: Path) -> None:
        msg = MESSAGES[name]
        for group in msg.oneofs:
            present = [f for f in group if f in out]
            if len(present) > 1:
                self._error(
                    "oneof-conflict",
                    (*path, present[1]),
                    f"at most one of {', '.join(group)} may be set (got {', '.join(present)})",
                )
        if self.ctx is None:
            return
        for req in msg.required:
            if req not in out and (*path, req) not in self.ctx.bad:
                self.ctx.error("required-field", (*path, req), f"`{req}` is required in {name}")


def walk_spec(ctx: Ctx | None, kind: str, spec: Any) -> dict[str, Any] | None:
    """Check ``spec`` of ``kind`` structurally; the normalised spec, or None if it is not a mapping."""
    root = KIND_ROOT.get(kind)
    if root is None:
        return None
    out = Walker(ctx).message(root, spec, ("spec",))
    return out if isinstance(out, dict) else None


# While a config is analysed: id(spec) -> (kind, spec, normalised spec), so the validator's walk
# and each compile step that needs the normalised spec share one result instead of walking again.
_NORMALIZED: ContextVar[dict[int, tuple[str, Any, Any]] | None] = ContextVar("normalized", default=None)


@contextmanager
def shared_normalization() -> Iterator[None]:
    """Within the block, :func:`normalize_spec` returns one result per (kind, spec object) — the
    specs must not change meanwhile — and :func:`remember_normalized` can provide it."""
    token = _NORMALIZED.set({})
    try:
        yield
    finally:
        _NORMALIZED.reset(token)


def remember_normalized(kind: str, spec: Any, normalized: Any) -> None:
    """Record what :func:`normalize_spec` would return for ``spec`` (inside
    :func:`shared_normalization`; ignored outside)."""
    memo = _NORMALIZED.get()
    if memo is not None:
        memo[id(spec)] = (kind, spec, normalized)


def normalize_spec(kind: str, spec: Any) -> Any:
    """Rewrite proto snake_case field names to lowerCamelCase, following the schema (map keys such as
    labels and header names are left alone). Values of the wrong type and unknown fields are dropped;
    for a spec that validates cleanly the result is the same data with camelCase keys only.

    >>> normalize_spec("VirtualService", {"http": [{"mirror_percent": 5, "route": []}]})
    {'http': [{'mirrorPercent': 5, 'route': []}]}
    >>> normalize_spec("Service", {"any_thing": 1})
    {'any_thing': 1}
    """
    if kind not in KIND_ROOT:
        return spec
    memo = _NORMALIZED.get()
    if memo is not None:
        hit = memo.get(id(spec))
        if hit is not None and hit[0] == kind and hit[1] is spec:
            return hit[2]
    out = walk_spec(None, kind, spec)
    result = spec if out is None else out
    remember_normalized(kind, spec, result)
    return result
