"""A VirtualService's HTTP routes as the model holds them (parsed once by
:mod:`meshroute.config.httpparse`, names resolved in the VirtualService's namespace, §1.1), so
consumers (delegate merging, cross-resource checks, the translation to the IR) never read raw
dicts again.

The model is the spec, typed: each field narrowed to its type (None, or an empty value, when it
is absent or mistyped), hosts and gateway names resolved. What a field *means* (defaults, ranges,
percent to per-million) stays with the translation (:mod:`meshroute.config.httproute`,
:mod:`meshroute.config.extras`, :mod:`meshroute.config.headers`), which reads the fields one by one.
``None`` also tells "not written" from "written but empty" where delegate merging needs that (a
delegate route inherits a root route's field it does not write, §2.7).

Istio semantics cited from docs/semantics.md: §2.2-§2.14 (HTTP routes), §2.7 (delegates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

MatchKind = Literal["exact", "prefix", "regex"]
MATCH_KINDS: tuple[MatchKind, ...] = ("exact", "prefix", "regex")


@dataclass(frozen=True)
class StringMatch:
    """A StringMatch; ``kind`` None is the empty one, ``{}`` (a presence check in a header or query
    parameter map). A oneof: the first kind written, in exact/prefix/regex order, is the one."""

    kind: MatchKind | None
    value: str = ""


@dataclass(frozen=True)
class HTTPMatch:
    """One HTTPMatchRequest (the delegate-merging-only ``statPrefix`` has no consumer: left out)."""

    name: str = ""
    uri: StringMatch | None = None  # None: absent or ``{}`` (no condition)
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    ignore_uri_case: bool = False
    headers: Mapping[str, StringMatch] = field(default_factory=dict)  # names as written
    without_headers: Mapping[str, StringMatch] = field(default_factory=dict)
    query_params: Mapping[str, StringMatch] = field(default_factory=dict)
    port: int | None = None  # as written (None: absent or 0); the translation checks its range
    gateways: tuple[str, ...] = ()  # resolved refs; () = the VirtualService's own gateways
    source_labels: Mapping[str, str] = field(default_factory=dict)
    source_namespace: str | None = None  # None: absent or ""


@dataclass(frozen=True)
class Destination:
    host: str  # expanded with the VirtualService namespace
    subset: str | None = None  # None: absent or ""
    # ``port.number``; 0: a ``port`` without a number (alias rewriting leaves a written port
    # alone, §13), None: no ``port`` at all.
    port: int | None = None


@dataclass(frozen=True)
class HeaderOperations:
    set: Mapping[str, str] = field(default_factory=dict)  # names and values as written
    add: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class Headers:
    request: HeaderOperations = HeaderOperations()
    response: HeaderOperations = HeaderOperations()


@dataclass(frozen=True)
class HTTPRouteDestination:
    """One ``route`` entry. ``destination`` None (no host) sends nowhere, yet still makes its
    route a weighted one (the translation counts entries)."""

    destination: Destination | None
    weight: int = 0  # as written; 0 when absent
    headers: Headers | None = None


@dataclass(frozen=True)
class HTTPMirror:
    """One ``mirrors`` entry; ``percentage`` None: absent (100 %)."""

    destination: Destination | None
    percentage: float | None = None


@dataclass(frozen=True)
class Delegate:
    name: str | None
    namespace: str | None  # None: absent; the root VirtualService's namespace


@dataclass(frozen=True)
class Redirect:
    uri: str | None = None
    authority: str | None = None
    port: int | None = None
    derive_port: str | None = None
    scheme: str | None = None
    redirect_code: int | None = None


@dataclass(frozen=True)
class RegexRewrite:
    match: str
    rewrite: str


@dataclass(frozen=True)
class Rewrite:
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


@dataclass(frozen=True)
class DirectResponse:
    status: int | None = None
    body_string: str | None = None
    body_bytes: str | None = None  # base64, as written


@dataclass(frozen=True)
class Delay:
    fixed_delay: str | None = None  # a duration, as written
    percentage: float | None = None
    percent: int | None = None  # legacy integer percentage


@dataclass(frozen=True)
class Abort:
    http_status: int | None = None
    grpc_status: str | None = None
    percentage: float | None = None


@dataclass(frozen=True)
class Fault:
    delay: Delay | None = None
    abort: Abort | None = None


@dataclass(frozen=True)
class Retries:
    """``retries`` wrapped whole: its translation (:func:`meshroute.config.extras.retries`) also
    reads the mesh config's default retry policy, which is no route's."""

    spec: Mapping[str, Any]


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: tuple[StringMatch, ...] = ()
    allow_origin: tuple[str, ...] = ()  # legacy exact origins ("*": any)
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: str | None = None  # a duration, as written
    allow_credentials: bool | None = None
    unmatched_preflights: str | None = None


@dataclass(frozen=True)
class HTTPRoute:
    """One HTTPRoute. ``match``, ``route`` and ``mirrors`` keep a slot (None) for an entry that is
    not a mapping, so diagnostics name ``match[j]``, ``route[k]`` as written; ``blocks`` and
    ``destinations`` are the entries themselves. A field None was not written."""

    name: str = ""
    match: tuple[HTTPMatch | None, ...] = ()
    route: tuple[HTTPRouteDestination | None, ...] = ()
    redirect: Redirect | None = None
    direct_response: DirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: Rewrite | None = None
    timeout: str | None = None  # a duration, as written
    retries: Retries | None = None
    fault: Fault | None = None
    mirror: Destination | None = None
    mirror_percent: int | None = None  # legacy integer percentage
    mirror_percentage: float | None = None
    mirrors: tuple[HTTPMirror | None, ...] | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None

    @property
    def blocks(self) -> tuple[HTTPMatch, ...]:
        return tuple(m for m in self.match if m is not None)

    @property
    def destinations(self) -> tuple[HTTPRouteDestination, ...]:
        return tuple(d for d in self.route if d is not None)


# --- Parsing ------------------------------------------------------------------------------------
