"""Small helpers shared by the bootstrap builders: typed_config wrappers, addresses, durations.

The bootstrap is a plain dict in Envoy's proto-JSON shape (``yaml.safe_dump``-able), so every
helper here returns dicts and strings rather than protobuf messages: no xds-protos import is
needed to generate a config, and ``envoy --mode validate`` is the schema check.
"""

from __future__ import annotations

from typing import Any

import yaml

from meshroute.config.validate.common import parse_duration_ns

Json = dict[str, Any]

TYPE_PREFIX = "type.googleapis.com/"
# 2^32-1: Istio's "unlimited" for every circuit-breaker threshold (semantics §3.6).
UNLIMITED = 4294967295


try:  # the C emitter is ~10x faster than pure Python
    _SafeDumper: Any = yaml.CSafeDumper
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _SafeDumper = yaml.SafeDumper


class EnvoyDumper(_SafeDumper):  # type: ignore[misc]
    """PyYAML's safe dumper, quoting the strings Envoy's YAML parser (yaml-cpp) would read as
    booleans and PyYAML's YAML 1.1 resolver would not quote: ``y``, ``n`` and their capitals
    (a subzone or label value named ``y`` made Envoy reject the config)."""


def _str(dumper: Any, value: str) -> Any:
    style = "'" if value in ("y", "Y", "n", "N") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


EnvoyDumper.add_representer(str, _str)


def envoy_yaml(data: Any, **kwargs: Any) -> str:
    """``data`` as YAML for Envoy (:class:`EnvoyDumper`; keys in insertion order).

    >>> envoy_yaml({"sub_zone": "y", "zone": "a"})
    "sub_zone: 'y'\\nzone: a\\n"
    """
    text: str = yaml.dump(data, Dumper=EnvoyDumper, sort_keys=False, **kwargs)
    return text


def typed(type_name: str, **fields: Any) -> Json:
    """A ``typed_config`` Any: ``{"@type": "type.googleapis.com/<type_name>", **fields}``."""
    return {"@type": TYPE_PREFIX + type_name, **fields}


def duration(value: Any) -> str | None:
    """An Istio duration (Go syntax such as ``"1m30s"``) as proto-JSON seconds (``"90s"``).

    Envoy's config parser only accepts the proto-JSON form, so Go-style units must be converted.

    >>> duration("1m30s"), duration("100ms"), duration("0s"), duration("bogus")
    ('90s', '0.100s', '0s', None)
    """
    ns = parse_duration_ns(value)
    if ns is None or ns < 0:
        return None
    seconds, rest = divmod(ns, 10**9)
    if not rest:
        return f"{seconds}s"
    frac = f"{rest:09d}"
    # proto-JSON allows 0, 3, 6 or 9 fractional digits.
    for digits in (3, 6, 9):
        if frac[digits:].strip("0") == "":
            return f"{seconds}.{frac[:digits]}s"
    return f"{seconds}.{frac}s"


def socket_address(host: str, port: int) -> Json:
    return {"socket_address": {"address": host, "port_value": port}}


def pipe_path(address: str) -> str | None:
    """The socket path of ``unix:/p`` / ``unix:///p`` (serve and ServiceEntry spellings), else None.

    >>> pipe_path("unix:///var/run/a.sock"), pipe_path("unix:/tmp/m.sock"), pipe_path("10.0.0.1")
    ('/var/run/a.sock', '/tmp/m.sock', None)
    """
    if not address.startswith("unix:"):
        return None
    path = address[len("unix:") :]
    if path.startswith("//"):
        path = path[2:]
    return path or None


def endpoint_address(address: str, port: int) -> Json:
    """An Envoy ``Address``: a pipe for ``unix:`` addresses, else a socket address."""
    path = pipe_path(address)
    return {"pipe": {"path": path}} if path is not None else socket_address(address, port)
