"""Stubs for the compiled extension ``meshroute._core`` (rust/meshroute-py)."""

from collections.abc import Iterable, Mapping
from typing import Any, final

__all__ = [
    "BLACKHOLE_CLUSTER",
    "CLUSTER_HEADER",
    "CONTROL_HEADERS",
    "GRPC_STATUSES",
    "HASH_HEADER",
    "MAX_MIRRORS",
    "MIRROR_HEADERS",
    "ORIGINAL_DST_HEADER",
    "PASSTHROUGH_CLUSTER",
    "Balancer",
    "CompileError",
    "Decision",
    "ListenerContext",
    "RouteTable",
    "StringMatchSet",
    "__version__",
    "check_regex",
]

__version__: str
# The names both engines and envoy-config share (docs/envoy.md "Control headers").
CLUSTER_HEADER: str
HASH_HEADER: str
ORIGINAL_DST_HEADER: str
MAX_MIRRORS: int
MIRROR_HEADERS: tuple[str, ...]
CONTROL_HEADERS: tuple[str, ...]
# gRPC status names in code order (index = code): what abort.grpcStatus accepts.
GRPC_STATUSES: tuple[str, ...]
PASSTHROUGH_CLUSTER: str
BLACKHOLE_CLUSTER: str

class CompileError(ValueError):
    """The route-table IR could not be compiled."""

@final
class Decision:
    """What happens to one request (see ``docs/ir.md`` for ``to_dict()``'s keys)."""

    @property
    def outcome(self) -> str:
        """``route``, ``redirect``, ``direct_response``, ``abort``, ``no_route`` or ``no_cluster``."""
    @property
    def status(self) -> int | None:
        """HTTP status the client gets; None for ``route``."""
    @property
    def virtual_service(self) -> str | None:
        """``namespace/name`` of the VirtualService whose route matched."""
    @property
    def route_index(self) -> int | None: ...
    @property
    def route_name(self) -> str | None: ...
    @property
    def match_index(self) -> int | None: ...
    @property
    def host(self) -> str | None:
        """Destination FQDN."""
    @property
    def subset(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def cluster(self) -> str | None:
        """Istio cluster name ``outbound|PORT|SUBSET|HOST``."""
    @property
    def delay_ms(self) -> int | None:
        """Injected fault delay that fired for this request."""
    def to_json(self) -> str: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class StringMatchSet:
    """Istio ``StringMatch``es (exact / prefix / RE2 full-match regex); a value matches when it
    matches any of them."""

    @staticmethod
    def from_json(json: str) -> StringMatchSet:
        """Compile a JSON list of IR ``StringMatch`` objects; raises :class:`CompileError`."""
    def matches(self, value: str) -> bool: ...
    def __len__(self) -> int: ...

def check_regex(pattern: str, *, anchored: bool = True) -> str | None:
    """None if ``pattern`` compiles as the route table compiles an RE2 regex, else what is wrong
    (an RE2 feature it lacks, a syntax error and its position, a size limit).

    ``anchored``: a ``StringMatch`` regex (full match); False for a ``uriRegexRewrite`` match."""

_Headers = Mapping[str, str] | Iterable[tuple[str, str]]
_HeaderOps = list[tuple[str, bytes]]
# (kind "forward" | "reply", outcome, status (reply), set, append, remove, response_set,
#  response_append, response_remove (None: no response phase), body (reply), details (reply),
#  fault_delay, fault_abort) — docs/envoy.md; header values are bytes.
_Exchange = tuple[
    str,
    str,
    int | None,
    _HeaderOps,
    _HeaderOps,
    list[str],
    _HeaderOps | None,
    _HeaderOps | None,
    list[str] | None,
    bytes | None,
    str | None,
    bool,
    bool,
]

# (outcome, request_headers answer, response_headers answer (None: the stream ends after one
#  round trip), fault_delay, fault_abort); the answers are serialized
#  envoy.service.ext_proc.v3.ProcessingResponse messages.
_ExtprocAnswer = tuple[str, bytes, bytes | None, bool, bool]

# ("reply", outcome, status, headers, body, details) or ("forward", outcome, upstream headers,
#  authority, path, controls (one bytes | None per CONTROL_HEADERS entry), response (set, append,
#  remove) | None); header names lower-case bytes.
_ClientExchange = (
    tuple[str, str, int, list[tuple[bytes, bytes]], bytes, str]
    | tuple[
        str,
        str,
        list[tuple[bytes, bytes]],
        bytes,
        bytes,
        tuple[bytes | None, ...],
        tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], list[bytes]] | None,
    ]
)

@final
class ListenerContext:
    """The Envoy listener a request arrived on: ``gateway_port`` for a gateway listener, else the
    mesh listener with the client's namespace and labels. A gateway listener with a namespace or
    labels is that of one gateway proxy (the workload with them; no namespace: ``default``): only
    its servers take requests, another proxy's host gets 404. Build one per listener."""

    def __new__(
        cls,
        gateway_port: int | None = None,
        source_namespace: str | None = None,
        source_labels: _Headers | None = None,
    ) -> ListenerContext: ...
    @property
    def gateway_port(self) -> int | None: ...
    @property
    def source_namespace(self) -> str | None: ...
    @property
    def source_labels(self) -> list[tuple[str, str]]: ...
    def __eq__(self, value: object, /) -> bool: ...

@final
class RouteTable:
    """An immutable compiled route table."""

    @staticmethod
    def from_json(ir: str) -> RouteTable: ...
    def patched(self, patch_json: str) -> RouteTable:
        """This table with an IR patch applied (docs/ir.md, "Patch"): a new table sharing what
        the patch leaves unchanged; this one stays as it is. A bad patch raises
        ``CompileError`` (naming the patch path of the problem), as ``from_json`` does."""
    @property
    def route_count(self) -> int: ...
    def route(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: _Headers | None = None,
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: _Headers | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
        seed: int | None = None,
    ) -> Decision: ...
    def route_many(
        self,
        requests: Iterable[Any],
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: _Headers | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
        seed: int | None = None,
    ) -> list[Decision]: ...
    def exchange(
        self,
        listener: ListenerContext,
        headers: Iterable[tuple[bytes | str, bytes | str]],
        seed: int | None = None,
    ) -> _Exchange:
        """The whole answer an Envoy filter applies to one request (docs/envoy.md)."""
    def extproc_answer(
        self,
        listener: ListenerContext,
        headers: Iterable[tuple[bytes | str, bytes | str]],
        seed: int | None = None,
    ) -> _ExtprocAnswer:
        """``exchange`` as ``meshroute serve`` writes it on the ext_proc stream."""
    def client_exchange(
        self,
        listener: ListenerContext,
        method: bytes,
        scheme: bytes,
        authority: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        seed: int | None = None,
    ) -> _ClientExchange:
        """``exchange`` as the proxyless client applies it (``meshroute.client``)."""
    def cluster_policy(self, listener: ListenerContext, cluster: str, host: str = "") -> str | None:
        """The effective DestinationRule traffic policy (JSON text) of ``cluster`` for a client
        behind ``listener``, as ``Decision.traffic_policy`` reports it; None: no such cluster."""
    def explain(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: _Headers | None = None,
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: _Headers | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
    ) -> str: ...

@final
class Balancer:
    """One upstream cluster as one client sees it (rust/meshroute-lb): load balancer, circuit
    breaker and outlier detection from the cluster's effective traffic policy. Thread-safe."""

    def __new__(
        cls,
        endpoints: Iterable[tuple[str, int]],
        policy: str = "{}",
        seed: int | None = None,
        *,
        localities: list[str] | None = None,
        labels: list[dict[str, str]] | None = None,
        client_locality: str = "",
        client_labels: dict[str, str] | None = None,
        now: float = 0.0,
        previous: Balancer | None = None,
    ) -> Balancer:
        """``localities`` / ``labels``: one per endpoint; with the calling workload's
        ``client_locality`` / ``client_labels`` they place the endpoints in priorities as Istio
        would (``localityLbSetting``). Endpoints not in ``previous`` joined at ``now`` (slow
        start)."""
    @property
    def addresses(self) -> list[str]: ...
    def __len__(self) -> int: ...
    @property
    def kind(self) -> str:
        """``LEAST_REQUEST``, ``ROUND_ROBIN``, ``RANDOM``, ``RING_HASH``, ``MAGLEV``, ``PEAK_EWMA``
        or ``PASSTHROUGH``."""
    @property
    def hash_source(self) -> tuple[str, str | None, str | None, float | None] | None:
        """``(kind, name, cookie path, cookie ttl seconds)``; kind ``header``, ``cookie``,
        ``source_ip`` or ``query``. None without consistent hashing."""
    @property
    def connect_timeout(self) -> float: ...
    @property
    def unsupported(self) -> list[str]: ...
    @property
    def priorities(self) -> list[int | None]:
        """Each endpoint's Envoy priority; None when locality load balancing leaves it out."""
    @property
    def priority_load(self) -> list[int]:
        """Percent of the requests each priority gets with the health now (factor 1.4)."""
    @property
    def locality_weighted(self) -> bool: ...
    @property
    def slow_start(self) -> tuple[float, float, float] | None:
        """``(window seconds, aggression, minimum percent)`` of ``warmup``, or None."""
    def pick(self, hash_key: str | bytes | None = None, now: float = 0.0) -> int | None:
        """An endpoint index; None: no healthy endpoint (or PASSTHROUGH)."""
    def begin(
        self, hash_key: str | bytes | None = None, now: float = 0.0
    ) -> tuple[int | None, int | None, bool]:
        """``pick`` + ``acquire`` + ``start`` when the ticket is active at once: ``(index,
        ticket, active)``."""
    def end(self, index: int | None, ticket: int, started: bool, retry_ticket: int | None = None) -> None:
        """``finish`` (when started) + ``release`` + ``release_retry`` (when given)."""
    def acquire(self) -> int | None:
        """A circuit-breaker ticket, or None on overflow."""
    def is_active(self, ticket: int) -> bool: ...
    def release(self, ticket: int) -> None: ...
    def acquire_retry(self) -> int | None: ...
    def release_retry(self, ticket: int) -> None: ...
    def start(self, index: int) -> None: ...
    def finish(self, index: int) -> None: ...
    def active(self, index: int) -> int: ...
    def record(self, index: int, outcome: int | str, now: float = 0.0, latency: float | None = None) -> bool:
        """Feed an outcome (status, or ``connect-failure`` / ``timeout`` / ``reset`` /
        ``connect-success``) to outlier detection; True when it ejected the endpoint. ``latency``
        (seconds, sent to answered or failed) feeds PEAK_EWMA's estimate."""
    def latency_estimate(self, index: int, now: float = 0.0) -> float | None:
        """PEAK_EWMA: the endpoint's latency estimate (seconds) at ``now``; None before its first
        answer, and for other policies."""
    def sweep(self, now: float) -> list[int]: ...
    def is_ejected(self, index: int) -> bool: ...
    @property
    def healthy_count(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
