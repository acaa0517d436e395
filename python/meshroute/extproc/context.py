"""Who is asking, and the loaded config that answers: the listener context from gRPC initial
metadata, and :class:`Routing`.

Envoy's ext_proc filter sends ``x-meshroute-listener`` / ``x-meshroute-port`` /
``x-meshroute-source-namespace`` / ``x-meshroute-source-labels`` (docs/envoy.md); they become the
core's :class:`~meshroute._core.ListenerContext`, parsed once per distinct metadata (the servicer
caches it). :class:`Routing` is one loaded config ready to answer; the reloader swaps it as a whole.
Everything per request — the Gateway a gateway listener routes through, the decision, the answer
bytes — is ``RouteTable.extproc_answer`` (``meshroute_core``'s ``RouteTable::exchange``, the
function the Envoy module calls too).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshroute._core import ListenerContext
from meshroute.extproc import MAX_MIRRORS
from meshroute.mesh import Mesh

log = logging.getLogger("meshroute.serve")

LISTENER_KEY = "x-meshroute-listener"
PORT_KEY = "x-meshroute-port"
NAMESPACE_KEY = "x-meshroute-source-namespace"
LABELS_KEY = "x-meshroute-source-labels"
_KEYS = (LISTENER_KEY, PORT_KEY, NAMESPACE_KEY, LABELS_KEY)

# (outcome, request_headers answer, response_headers answer or None, fault delay, fault abort)
Answer = tuple[str, bytes, bytes | None, bool, bool]
Headers = Sequence[tuple[str, bytes]]


class ContextError(ValueError):
    """The initial metadata does not describe a listener serve knows."""


MESH_LISTENER = ListenerContext()


def listener_from_metadata(metadata: Iterable[tuple[str, Any]]) -> ListenerContext:
    """Parse the ``x-meshroute-*`` initial metadata; no listener key means ``mesh``. A gateway
    listener's source namespace and labels are those of the one gateway proxy it belongs to
    (``envoy-config --gateway-labels``), as the module's ``listener`` gets them.

    >>> listener_from_metadata([("x-meshroute-listener", "gateway"), ("x-meshroute-port", "8080")])
    ListenerContext(gateway_port=8080, source_namespace=None, source_labels=[])
    >>> listener_from_metadata([("x-meshroute-source-labels", "app=a,version=v1")]).source_labels
    [('app', 'a'), ('version', 'v1')]
    >>> listener_from_metadata([("x-meshroute-listener", "gateway"), ("x-meshroute-port", "80"),
    ...     ("x-meshroute-source-namespace", "gw"), ("x-meshroute-source-labels", "istio=in")])
    ListenerContext(gateway_port=80, source_namespace="gw", source_labels=[("istio", "in")])
    """
    values: dict[str, str] = {}
    for key, value in metadata:
        if key in _KEYS:
            values[key] = value.decode() if isinstance(value, bytes) else str(value)
    kind = values.get(LISTENER_KEY, "mesh")
    port: int | None = None
    if kind == "gateway":
        number = values.get(PORT_KEY, "")
        if not number.isdigit() or not 0 < int(number) < 65536:
            raise ContextError(f"gateway listener needs {PORT_KEY} (a port number), got {number!r}")
        port = int(number)
    elif kind != "mesh":
        raise ContextError(f"{LISTENER_KEY} must be 'mesh' or 'gateway', got {kind!r}")
    labels: dict[str, str] = {}
    if values.get(LABELS_KEY):
        for item in values[LABELS_KEY].split(","):
            k, eq, v = item.partition("=")
            if not eq or not k.strip():
                raise ContextError(f"{LABELS_KEY}: expected k=v[,k2=v2], got {values[LABELS_KEY]!r}")
            labels[k.strip()] = v.strip()
    namespace = values.get(NAMESPACE_KEY) or None
    if port is None and namespace is None and not labels:
        return MESH_LISTENER
    return ListenerContext(port, namespace, labels)


class Routing:
    """One loaded config ready to answer ext_proc requests."""

    __slots__ = ("_answer", "_seeds", "digest", "mesh", "tag")

    def __init__(self, mesh: Mesh, seed: int | None = None) -> None:
        self.mesh = mesh
        # The config files' contents it was compiled from, when known (serve's first load).
        self.digest: str | None = None
        # Its compile session's (lineage, version) (meshroute.extproc.reload.Tag), when known.
        self.tag: tuple[str, int] | None = None
        self._answer = mesh.table.extproc_answer
        # --seed: request i draws from seed+i (weighted pick, faults, then mirrors), so a run is
        # reproducible yet draws still vary; without it, from the core's per-thread stream.
        self._seeds = itertools.count(seed) if seed is not None else None
        warn_mirror_limit(mesh.analysis.ir)

    def respond(self, headers: Headers, listener: ListenerContext) -> Answer:
        """Answer one request: ``headers`` as Envoy sent them (pseudo-headers included, values as
        bytes), ``listener`` its listener's context. Returns the serialized replies to write and
        what the servicer counts."""
        seeds = self._seeds
        return self._answer(listener, headers, None if seeds is None else next(seeds))


def warn_mirror_limit(ir: Mapping[str, Any] | None) -> None:
    """Log every VirtualService route with more mirrors than Envoy has mirror policies for."""
    for message in mirror_limit_warnings(ir):
        log.warning("%s", message)


def mirror_limit_warnings(ir: Mapping[str, Any] | None) -> list[str]:
    """One message per VirtualService route of the compiled ``ir`` with more mirrors than Envoy
    has mirror policies for (a route merged from a delegate is named by its root's route)."""
    if not ir:
        return []
    out: dict[tuple[int, int], str] = {}
    names = ir.get("virtual_services") or []
    for route in ir.get("routes") or []:
        count = len((route.get("extra") or {}).get("mirrors") or [])
        vs, index = route.get("vs"), route.get("index")
        if count > MAX_MIRRORS and isinstance(vs, int) and isinstance(index, int):
            ref = names[vs]
            out.setdefault(
                (vs, index),
                f"VirtualService {ref['namespace']}/{ref['name']} http[{index}] has {count} mirrors; "
                f"only the first {MAX_MIRRORS} are sent (Envoy has {MAX_MIRRORS} mirror policies)",
            )
    return list(out.values())
