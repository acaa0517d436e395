"""Reading one ext_proc ``request_headers`` message into the arguments ``route()`` takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Header = tuple[str, str]


@dataclass(frozen=True, slots=True)
class RequestFields:
    """What ``route()`` needs from one ``HttpHeaders`` message; ``port`` comes from ``:authority``."""

    host: str
    port: int | None
    path: str
    method: str
    scheme: str
    headers: list[Header]  # every non-pseudo header, in arrival order, names as Envoy sent them


def request_fields(http_headers: Any) -> RequestFields:
    """Read ``:authority``/``:path``/``:method``/``:scheme`` and the other headers of ``HttpHeaders``.

    Envoy sends values in ``raw_value``; ``value`` is read only when ``raw_value`` is empty.

    >>> from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
    >>> msg = pb.HttpHeaders()
    >>> for k, v in [(":authority", "reviews:9080"), (":path", "/r"), ("end-user", "jason")]:
    ...     _ = msg.headers.headers.add(key=k, raw_value=v.encode())
    >>> f = request_fields(msg)
    >>> (f.host, f.port, f.path, f.method, f.scheme, f.headers)
    ('reviews', 9080, '/r', 'GET', 'http', [('end-user', 'jason')])
    """
    authority, path, method, scheme = "", "/", "GET", "http"
    headers: list[Header] = []
    for h in http_headers.headers.headers:
        key: str = h.key
        raw: bytes = h.raw_value
        if raw:
            try:
                value = raw.decode()
            except UnicodeDecodeError:  # HTTP allows obs-text; it can't equal a UTF-8 config value
                value = raw.decode("latin-1")
        else:
            value = h.value
        if key[:1] != ":":
            headers.append((key, value))
        elif key == ":authority":
            authority = value
        elif key == ":path":
            path = value
        elif key == ":method":
            method = value
        elif key == ":scheme":
            scheme = value
    host, port = split_authority(authority)
    return RequestFields(host, port, path, method, scheme, headers)


def split_authority(authority: str) -> tuple[str, int | None]:
    """``host[:port]`` -> (lower-case host, port or None); IPv6 literals keep their brackets.

    >>> split_authority("Reviews:9080"), split_authority("[::1]:80"), split_authority("a.b")
    (('reviews', 9080), ('[::1]', 80), ('a.b', None))
    """
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and (not host.startswith("[") or host.endswith("]")):
        return host.lower(), int(port)
    return authority.lower(), None
