"""The clusters one client can send to: for each cluster name an answer names
(``outbound|PORT|SUBSET|HOST``), its endpoints and its balancer, built once per Mesh.

Endpoints are the ones the Envoy cluster of that name gets from ``envoy-config`` — the same
function, :func:`meshroute.envoy.endpoints.discover`, over the same registry endpoints (with their
WorkloadEntry weights) and subset labels — plus each endpoint's locality, as the registry read it.
The policy is the cluster's effective DestinationRule traffic policy as the route table holds it
for this client (``RouteTable.cluster_policy``), read in Rust by :class:`meshroute._core.Balancer`.

The calling workload's locality and labels place the endpoints in Envoy's priorities, as istiod
would for its sidecar (``localityLbSetting``: failover by locality, ``failoverPriority``,
``distribute``; done in Rust, ``meshroute_lb::locality``). A cluster rebuilt for a new Mesh hands
the endpoints' join times over from the one it replaces (slow start: an endpoint new to the
cluster warms up).

A DNS cluster's endpoints are host names, resolved when a request connects (each name is one
endpoint). An ORIGINAL_DST cluster (ServiceEntry ``resolution: NONE``) or a ``PASSTHROUGH`` load
balancer has no endpoints: the request goes to the address it named.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meshroute._core import Balancer, ListenerContext

if TYPE_CHECKING:
    from meshroute.config.model import Model
    from meshroute.config.policy import MergedRule
    from meshroute.mesh import Mesh

log = logging.getLogger("meshroute.client")

ORIGINAL_DST = "ORIGINAL_DST"
# The kinds of Balancer.hash_source that hash on the request (the exchange gives their key).
CONSISTENT = frozenset({"RING_HASH", "MAGLEV"})


@dataclass(frozen=True)
class Target:
    """One endpoint of a cluster."""

    address: str  # IP or host name
    port: int
    weight: int = 0  # WorkloadEntry weight, 0 = unset
    locality: str = ""  # region/zone/subzone, "" = unknown
    labels: tuple[tuple[str, str], ...] = ()  # the workload's labels (failoverPriority)
    hostport: str = field(init=False, compare=False, repr=False)  # address:port, [v6]:port

    def __post_init__(self) -> None:
        host = f"[{self.address}]" if ":" in self.address else self.address
        object.__setattr__(self, "hostport", f"{host}:{self.port}")


@dataclass(eq=False)
class Upstream:
    """One cluster for one client: its endpoints, and the Rust balancer holding its load
    balancing, circuit breaking and outlier state. Shared by every request (thread-safe)."""

    name: str
    kind: str  # STATIC | STRICT_DNS | LOGICAL_DNS | ORIGINAL_DST
    targets: tuple[Target, ...]
    policy: str
    balancer: Balancer
    warnings: tuple[str, ...] = ()
    # Notified whenever a circuit-breaker ticket is released: pending requests wait on it.
    released: threading.Condition = field(default_factory=threading.Condition)
    waiting: int = 0  # requests waiting on ``released`` (changed under its lock)
    original_dst: bool = field(init=False)
    consistent_hash: bool = field(init=False)
    hash_source: tuple[str, str | None, str | None, float | None] | None = field(init=False)
    connect_timeout: float = field(init=False)

    def __post_init__(self) -> None:
        # Read once: every request asks.
        kind = self.balancer.kind
        #: No endpoint selection: the request's own address (ORIGINAL_DST, PASSTHROUGH).
        self.original_dst = self.kind == ORIGINAL_DST or kind == "PASSTHROUGH"
        self.consistent_hash = kind in CONSISTENT
        self.hash_source = self.balancer.hash_source
        self.connect_timeout = self.balancer.connect_timeout

    def end(self, index: int | None, ticket: int, started: bool, retry_ticket: int | None) -> None:
        """An attempt is over: no longer in flight on ``index`` (when it ``started``), its
        breaker ``ticket`` and ``retry_ticket`` released; the requests waiting as pending woken."""
        self.balancer.end(index, ticket, started, retry_ticket)
        if self.waiting:
            with self.released:
                self.released.notify_all()

    def signature(self) -> tuple[Any, ...]:
        return (self.kind, self.policy, self.targets)


class Upstreams:
    """Every cluster of one Mesh for one client, built on first use and kept.

    ``previous`` (the Upstreams of the Mesh this one replaces) lends its clusters whose endpoints
    and policy did not change, with their state (ejections, requests in flight), as Envoy keeps a
    cluster a config update leaves unchanged.
    """

    def __init__(
        self,
        mesh: Mesh,
        listener: ListenerContext,
        namespace: str,
        *,
        domain: str = "cluster.local",
        seed: int | None = None,
        previous: Upstreams | None = None,
        locality: str = "",
        labels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mesh = mesh
        self.listener = listener
        self.namespace = namespace
        self.domain = domain
        self.seed = seed
        self.locality = locality
        self.labels = dict(labels or {})
        self.clock = clock
        self._previous = previous
        self._lock = threading.Lock()
        self._clusters: dict[str, Upstream | None] = {}
        self._model: Model | None = None

    def get(self, name: str) -> Upstream | None:
        """The cluster ``name``; None when this client has no such cluster."""
        try:
            return self._clusters[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._clusters:
                old = self._previous.cached(name) if self._previous is not None else None
                built = self._build(name, old)
                if built is not None and old is not None and old.signature() == built.signature():
                    built = old
                self._clusters[name] = built
            return self._clusters[name]

    def cached(self, name: str) -> Upstream | None:
        """The cluster if it was built already (never builds)."""
        return self._clusters.get(name)

    def forget_previous(self) -> None:
        self._previous = None

    def _build(self, name: str, old: Upstream | None = None) -> Upstream | None:
        # The table's policy for clusters routes name; a cluster only a mirror names has no
        # entry there, and gets the same effective policy from the DestinationRules directly.
        policy = self.mesh.table.cluster_policy(self.listener, name) or self._rule_policy(name)
        if policy is None:
            return None
        kind, targets, warnings = self._endpoints(name)
        endpoints = [(t.hostport, t.weight) for t in targets]
        placement: dict[str, Any] = {
            "localities": [t.locality for t in targets],
            "labels": [dict(t.labels) for t in targets],
            "client_locality": self.locality,
            "client_labels": self.labels,
            "now": self.clock(),
            "previous": old.balancer if old is not None else None,
        }
        try:
            balancer = Balancer(endpoints, policy, _seed(self.seed, name), **placement)
        except ValueError as exc:  # validation rejects such a policy; never fail the request on it
            warnings.append(f"traffic policy not applied ({exc}): Istio's defaults instead")
            balancer = Balancer(endpoints, "{}", _seed(self.seed, name), **placement)
        for item in balancer.unsupported:
            warnings.append(f"{item} is not applied by the client")
        for message in warnings:
            log.warning("cluster %s: %s", name, message)
        return Upstream(name, kind, targets, policy, balancer, tuple(warnings))

    def _rule_policy(self, name: str) -> str | None:
        from meshroute.config.policy import rule_policy

        parts = name.split("|", 3)
        if len(parts) != 4 or parts[0] != "outbound" or not parts[1].isdigit():
            return None
        _, port, subset, host = parts
        model = self._config()
        svc = model.registry.lookup(host, self.namespace)
        if svc is None or svc.port(int(port)) is None:
            return None
        rule = self._rule(model, host, svc.namespace)
        if subset and (rule is None or subset not in rule.subsets):
            return None
        policy = rule_policy(rule, subset or None, int(port))
        return json.dumps(policy, separators=(",", ":"), sort_keys=True) if policy else "{}"

    def _endpoints(self, name: str) -> tuple[str, tuple[Target, ...], list[str]]:
        from meshroute.envoy.endpoints import discover, endpoint_port, selected

        _, port_text, subset, host = name.split("|", 3)
        model = self._config()
        svc = model.registry.lookup(host)
        port = svc.port(int(port_text)) if svc is not None else None
        if svc is None or port is None:
            return "STATIC", (), [f"no service {host} with port {port_text}: no endpoints"]
        labels: Mapping[str, str] | None = None
        if subset:
            rule = self._rule(model, host, svc.namespace)
            found = rule.subsets.get(subset) if rule is not None else None
            if found is None:
                return "STATIC", (), [f"subset {subset} is not defined for this client: no endpoints"]
            labels = found.labels
        found_eps = discover(svc, port, labels)
        where = {
            (ep.address, endpoint_port(ep, port)): (ep.locality, tuple(sorted(ep.labels.items())))
            for ep in selected(svc.endpoints, labels)
        }
        targets: list[Target] = []
        warnings = list(found_eps.warnings)
        for lb in found_eps.lb_endpoints:
            address = lb["endpoint"]["address"]
            socket = address.get("socket_address")
            if socket is None:
                warnings.append(f"endpoint {address} skipped: unix sockets are not supported by the client")
                continue
            addr, number = str(socket["address"]), int(socket["port_value"])
            weight = int(lb.get("load_balancing_weight") or 0)
            locality, ep_labels = where.get((addr, number), ("", ()))
            targets.append(Target(addr, number, weight, locality, ep_labels))
        return found_eps.cluster_type, tuple(targets), warnings

    def _rule(self, model: Model, host: str, service_ns: str | None) -> MergedRule | None:
        """The DestinationRule in force for this client: one of its namespace whose
        workloadSelector selects its labels first (§3.1), as the mesh views route() uses."""
        return model.rules.lookup(host, self.namespace, service_ns, tuple(sorted(self.labels.items())))

    def _config(self) -> Model:
        if self._model is None:
            from meshroute.config.model import build_model

            self._model = build_model(list(self.mesh.analysis.resources), self.domain)
        return self._model


def _seed(seed: int | None, name: str) -> int | None:
    """A cluster's balancer seed: fixed by the client's seed and the cluster name alone, so it
    does not depend on which cluster was built first."""
    if seed is None:
        return None
    digest = hashlib.blake2b(f"{seed}|{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")
