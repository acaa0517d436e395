"""Field-name normalisation: accept the proto snake_case spelling next to lowerCamelCase (istio-api §1).

Istio's own proto-JSON parser accepts both spellings, so a config exported by another tool
(``ignore_uri_case``, ``mirror_percent``) must mean the same as the documented camelCase one.
Only *field names* are converted: maps whose keys are user data (header names, labels, locality
names, endpoint port names) are copied untouched, because ``x_request_id`` is a legal header name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

# Fields whose value is a map keyed by user data, not by proto field names.
_OPAQUE_MAPS = frozenset(
    {
        "headers",
        "withoutHeaders",
        "queryParams",
        "sourceLabels",
        "labels",
        "matchLabels",
        "selector",
        "set",
        "add",
        "ports",
        "to",
        "annotations",
    }
)


def camel(name: str) -> str:
    """``ignore_uri_case`` -> ``ignoreUriCase``; names without ``_`` are returned unchanged.

    >>> camel("mirror_percent"), camel("exportTo"), camel("_x")
    ('mirrorPercent', 'exportTo', '_x')
    """
    if "_" not in name or name.startswith("_"):
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_spec(value: Any) -> Any:
    """A deep copy of ``value`` with every field name in lowerCamelCase (user-data maps untouched).

    >>> camel_spec({"http": [{"match": [{"ignore_uri_case": True, "headers": {"x_id": {}}}]}]})
    {'http': [{'match': [{'ignoreUriCase': True, 'headers': {'x_id': {}}}]}]}
    """
    if isinstance(value, list):
        return [camel_spec(item) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        name = camel(key) if isinstance(key, str) else key
        if name in _OPAQUE_MAPS and isinstance(item, dict):
            out.setdefault(name, _opaque(name, item))
        else:
            out.setdefault(name, camel_spec(item))
    return out


def _opaque(name: str, item: dict[Any, Any]) -> dict[Any, Any]:
    # Route-level `headers` is a Headers object ({request: {set: ...}}); its own keys are single
    # words, and its `set`/`add` maps are opaque again, so a shallow copy per level is enough.
    if name == "headers" and set(item) <= {"request", "response"}:
        return {
            k: {camel(op): dict(v) if isinstance(v, dict) else v for op, v in ops.items()}
            if isinstance(ops, dict)
            else ops
            for k, ops in item.items()
        }
    return dict(item)


@functools.lru_cache(maxsize=1)
def _schema_normaliser() -> Callable[[str, Any], Any] | None:
    # The validation package owns the schema-driven normaliser; it is looked up at run time so this
    # module keeps working (with the generic fallback above) while that package is absent or broken.
    try:
        module = importlib.import_module("meshroute.config.validate.fields")
    except Exception:
        return None
    func = getattr(module, "normalize_spec", None)
    return func if callable(func) else None


def normalize(kind: str, spec: Any) -> Any:
    """The spec of a ``kind`` resource with lowerCamelCase field names (schema-driven if available).

    >>> normalize("VirtualService", {"http": [{"mirror_percent": 5, "route": []}]})
    {'http': [{'mirrorPercent': 5, 'route': []}]}
    """
    func = _schema_normaliser()
    if func is not None:
        try:
            out = func(kind, spec)
        except Exception:  # a normaliser bug must not take the compiler down
            out = None
        if out is not None:
            return camel_spec(out)
    return camel_spec(spec)
