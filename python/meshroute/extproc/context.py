"""Who is asking: the listener context from gRPC initial metadata, and the Gateway it selects.

Envoy's ext_proc filter sends ``x-meshroute-listener`` / ``x-meshroute-port`` /
``x-meshroute-source-namespace`` / ``x-meshroute-source-labels`` (docs/envoy.md). A ``gateway``
listener routes through the first Gateway, in config order, with a server on that port whose hosts
match the request host. :class:`Routing` is one loaded config ready to answer: the mesh, its
gateway index and the answer cache; the reloader swaps it as a whole.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.hosts import matches
from meshroute.config.model import parse_gateway
from meshroute.extproc import MAX_MIRRORS
from meshroute.extproc.answer import Answer, AnswerCache, build_answer
from meshroute.extproc.request import RequestFields
from meshroute.mesh import Mesh

log = logging.getLogger("meshroute.serve")

LISTENER_KEY = "x-meshroute-listener"
PORT_KEY = "x-meshroute-port"
NAMESPACE_KEY = "x-meshroute-source-namespace"
LABELS_KEY = "x-meshroute-source-labels"
_KEYS = (LISTENER_KEY, PORT_KEY, NAMESPACE_KEY, LABELS_KEY)


class ContextError(ValueError):
    """The initial metadata does not describe a listener serve knows."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One Envoy listener's context. ``gateway`` listeners carry the Gateway server port."""

    kind: str  # "mesh" | "gateway"
    port: int | None = None
    source_namespace: str | None = None
    source_labels: Mapping[str, str] | None = None


MESH_LISTENER = Listener("mesh")


def listener_from_metadata(metadata: Iterable[tuple[str, Any]]) -> Listener:
    """Parse the ``x-meshroute-*`` initial metadata; no listener key means ``mesh``.

    >>> listener_from_metadata([("x-meshroute-listener", "gateway"), ("x-meshroute-port", "8080")])
    Listener(kind='gateway', port=8080, source_namespace=None, source_labels=None)
    >>> listener_from_metadata([("x-meshroute-source-labels", "app=a,version=v1")]).source_labels
    {'app': 'a', 'version': 'v1'}
    """
    values: dict[str, str] = {}
    for key, value in metadata:
        if key in _KEYS:
            values[key] = value.decode() if isinstance(value, bytes) else str(value)
    kind = values.get(LISTENER_KEY, "mesh")
    if kind == "gateway":
        port = values.get(PORT_KEY, "")
        if not port.isdigit():
            raise ContextError(f"gateway listener needs {PORT_KEY} (a port number), got {port!r}")
        return Listener("gateway", int(port))
    if kind != "mesh":
        raise ContextError(f"{LISTENER_KEY} must be 'mesh' or 'gateway', got {kind!r}")
    labels: dict[str, str] | None = None
    if values.get(LABELS_KEY):
        labels = {}
        for item in values[LABELS_KEY].split(","):
            k, eq, v = item.partition("=")
            if not eq or not k.strip():
                raise ContextError(f"{LABELS_KEY}: expected k=v[,k2=v2], got {values[LABELS_KEY]!r}")
            labels[k.strip()] = v.strip()
    namespace = values.get(NAMESPACE_KEY) or None
    if namespace is None and labels is None:
        return MESH_LISTENER
    return Listener("mesh", None, namespace, labels)


# === Gateways ===


@dataclass(frozen=True)
class Gateways:
    """Gateway servers in config order: (port, host patterns, ``ns/name``)."""

    servers: Sequence[tuple[int, tuple[str, ...], str]]
    _cache: dict[tuple[int, str], str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_resources(cls, resources: Iterable[Any]) -> Gateways:
        # A server host's `ns/` part only restricts which VirtualServices bind: not used here.
        servers = [
            (server.port, tuple(host for _, host in server.hosts), f"{res.namespace}/{res.name}")
            for res in resources
            if getattr(res, "kind", None) == "Gateway"
            for server in parse_gateway(res).servers
        ]
        return cls(tuple(servers))

    def select(self, port: int, host: str) -> str | None:
        """The first Gateway with a server on ``port`` whose hosts match ``host`` (lower-case, no port)."""
        key = (port, host)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = next(
            (ref for p, hosts, ref in self.servers if p == port and any(matches(h, host) for h in hosts)),
            None,
        )
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[key] = found
        return found


# === Routing ===

NO_GATEWAY = build_answer({"outcome": "no_route", "status": 404})


class Routing:
    """One loaded config ready to answer ext_proc requests. Immutable apart from its caches."""

    __slots__ = ("_answers", "_seeds", "gateways", "mesh", "rng", "route")

    def __init__(self, mesh: Mesh, seed: int | None = None) -> None:
        self.mesh = mesh
        self.route = mesh.route
        self.gateways = Gateways.from_resources(mesh.analysis.resources)
        self._answers = AnswerCache()
        # --seed: request i uses seed+i, so a run is reproducible yet draws still vary.
        self._seeds = itertools.count(seed) if seed is not None else None
        # Draws the core does not make (mirror percentages): one stream, seeded by --seed too.
        self.rng = random.Random(seed)
        warn_mirror_limit(mesh.analysis.resources)

    def respond(self, f: RequestFields, listener: Listener) -> tuple[Answer, bytes]:
        """Route one request: its answer and the request_headers reply bytes, with the per-request
        parts (hash key, mirror draws, passthrough destination, CORS) when the answer has any."""
        answer = self.decide(f, listener)
        if not answer.per_request:
            return answer, answer.request
        port = listener.port if listener.kind == "gateway" else f.port
        return answer.for_request(f, port, self.rng)

    def decide(self, f: RequestFields, listener: Listener) -> Answer:
        """Route one request and return its (cached) answer, without the per-request tail."""
        if listener.kind == "gateway":
            assert listener.port is not None
            gateway = self.gateways.select(listener.port, f.host)
            if gateway is None:
                return NO_GATEWAY
            port: int | None = listener.port
            labels, namespace = None, None
        else:
            gateway, port = "mesh", f.port
            labels, namespace = listener.source_labels, listener.source_namespace
        d = self.route(
            f.host,
            f.path,
            f.method,
            f.headers,
            scheme=f.scheme,
            port=port,
            gateway=gateway,
            source_labels=labels,
            source_namespace=namespace,
            seed=None if self._seeds is None else next(self._seeds),
        )
        return self._answers.get(d.to_json(), d.to_dict)


def warn_mirror_limit(resources: Iterable[Any]) -> None:
    """Log every VirtualService route with more mirrors than Envoy has mirror policies for."""
    for message in mirror_limit_warnings(resources):
        log.warning("%s", message)


def mirror_limit_warnings(resources: Iterable[Any]) -> list[str]:
    """One message per VirtualService route with more mirrors than Envoy has mirror policies for."""
    out: list[str] = []
    for res in resources:
        if getattr(res, "kind", None) != "VirtualService":
            continue
        for i, route in enumerate((res.spec or {}).get("http") or []):
            if not isinstance(route, Mapping):
                continue
            listed = route.get("mirrors")
            count = len(listed) if isinstance(listed, list) else 0
            count += isinstance(route.get("mirror"), Mapping)
            if count > MAX_MIRRORS:
                out.append(
                    f"VirtualService {res.namespace}/{res.name} http[{i}] has {count} mirrors; only the "
                    f"first {MAX_MIRRORS} are sent (Envoy has {MAX_MIRRORS} mirror policies)"
                )
    return out
