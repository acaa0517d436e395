"""DestinationRules: lookup path, merging, and the effective traffic policy (semantics §3.1, §3.2).

Policies stay plain JSON-shaped dicts with Istio's camelCase field names: the IR carries them as
opaque text, and the Rust side only reads the blocks it evaluates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.hosts import ROOT_NAMESPACE, exported_to, fqdn, most_specific
from meshroute.config.load import Resource
from meshroute.config.validate.fields import normalize_spec as normalize

Policy = dict[str, Any]
# The four blocks a port-level entry (and a subset) replaces wholesale (§3.2).
PORT_BLOCKS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")
SUBSET_EXTRAS = ("tunnel", "proxyProtocol", "retryBudget")


@dataclass(frozen=True)
class Subset:
    name: str
    labels: Mapping[str, str]
    traffic_policy: Mapping[str, Any] | None
    path: tuple[str | int, ...]  # field path in the DR, for diagnostics


@dataclass(frozen=True)
class DestinationRuleInfo:
    resource: Resource
    host: str  # expanded with the DR namespace, lower-case
    traffic_policy: Mapping[str, Any] | None
    subsets: tuple[Subset, ...]
    export_to: tuple[str, ...]
    has_selector: bool

    @property
    def namespace(self) -> str:
        return self.resource.namespace


@dataclass(frozen=True)
class MergedRule:
    """Several DRs for one host in one namespace, merged (§3.1 ``mergeDestinationRule``):
    the first top-level policy wins, subsets are concatenated and the first of a name wins."""

    host: str
    namespace: str
    traffic_policy: Mapping[str, Any] | None
    subsets: Mapping[str, Subset] = field(default_factory=dict)


def parse_destination_rule(res: Resource, domain: str = "cluster.local") -> DestinationRuleInfo | None:
    spec = normalize(res.kind, res.spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("host"), str):
        return None
    subsets = []
    for i, raw in enumerate(spec.get("subsets") or []):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            labels = raw.get("labels")
            labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
            sub_tp = raw.get("trafficPolicy")
            sub_tp = sub_tp if isinstance(sub_tp, dict) else None
            subsets.append(Subset(raw["name"], labels, sub_tp, ("spec", "subsets", i)))
    tp = spec.get("trafficPolicy")
    export_to = spec.get("exportTo")
    export_to = export_to if isinstance(export_to, list) else []
    return DestinationRuleInfo(
        resource=res,
        host=fqdn(spec["host"], res.namespace, domain),
        traffic_policy=tp if isinstance(tp, dict) else None,
        subsets=tuple(subsets),
        export_to=tuple(str(e) for e in export_to),
        has_selector=isinstance(spec.get("workloadSelector"), dict),
    )


class DestinationRules:
    """All DRs, queried along the lookup path: client ns -> service ns -> root ns (§3.1)."""

    def __init__(self, rules: Iterable[DestinationRuleInfo], root_namespace: str = ROOT_NAMESPACE):
        # Selector-bearing DRs apply to specific client workloads only (their main use is client
        # TLS credentials); route decisions here do not know client pods, so they are left out.
        self.rules = [r for r in rules if not r.has_selector]
        self.root = root_namespace
        self._cache: dict[tuple[str, str, str | None], MergedRule | None] = {}

    def lookup(self, host: str, client_ns: str, service_ns: str | None) -> MergedRule | None:
        """The merged rule that applies to ``host`` for clients in ``client_ns``, or None.

        >>> DestinationRules([]).lookup("a.b.svc.cluster.local", "b", "b") is None
        True
        """
        key = (host, client_ns, service_ns)
        if key not in self._cache:
            self._cache[key] = self._lookup(host, client_ns, service_ns)
        return self._cache[key]

    def _lookup(self, host: str, client_ns: str, service_ns: str | None) -> MergedRule | None:
        path = [] if client_ns == self.root else [client_ns]
        path += [ns for ns in (service_ns, self.root) if ns and ns not in path]
        for ns in path:
            # A client's own namespace sees all of its DRs; other namespaces only exported ones.
            rules = [
                r
                for r in self.rules
                if r.namespace == ns and (ns == client_ns or exported_to(r.export_to, ns, client_ns))
            ]
            best = most_specific(host, [r.host for r in rules])
            if best is not None:
                return merge_rules([r for r in rules if r.host == best])
        return None

    def effective(
        self, host: str, subset: str | None, port: int, client_ns: str, service_ns: str | None
    ) -> Policy:
        """The effective traffic policy for (host, subset, port) seen from ``client_ns`` (§3.2)."""
        rule = self.lookup(host, client_ns, service_ns)
        if rule is None:
            return {}
        sub = rule.subsets.get(subset) if subset else None
        return effective_policy(rule.traffic_policy, sub.traffic_policy if sub else None, port)

    def defines_subset(self, host: str, subset: str, client_ns: str, service_ns: str | None) -> bool:
        rule = self.lookup(host, client_ns, service_ns)
        return rule is not None and subset in rule.subsets


def merge_rules(rules: Sequence[DestinationRuleInfo]) -> MergedRule:
    """Merge DRs of one host and namespace (first = creation order). DRs whose ``exportTo``
    differs from the first one's stay separate (ENABLE_ENHANCED_DESTINATIONRULE_MERGE), so only
    the first one's group is merged."""
    first = rules[0]
    group = [r for r in rules if sorted(r.export_to) == sorted(first.export_to)]
    policy = next((r.traffic_policy for r in group if r.traffic_policy is not None), None)
    subsets: dict[str, Subset] = {}
    for rule in group:
        for sub in rule.subsets:
            subsets.setdefault(sub.name, sub)
    return MergedRule(first.host, first.namespace, policy, subsets)


def _port_entry(policy: Mapping[str, Any], port: int | None) -> Mapping[str, Any] | None:
    for entry in policy.get("portLevelSettings") or []:
        if not isinstance(entry, dict):
            continue
        number = entry.get("port", {}).get("number") if isinstance(entry.get("port"), dict) else None
        if port is not None and number == port:
            return entry
    return None


def effective_policy(
    top: Mapping[str, Any] | None, subset: Mapping[str, Any] | None, port: int | None
) -> Policy:
    """``MergeSubsetTrafficPolicy`` + ``GetPortLevelTrafficPolicy`` exactly as in §3.2.

    A matching port-level entry replaces the top-level policy entirely (tunnel, proxyProtocol and
    retryBudget included); a subset replaces whole blocks; a subset port-level entry replaces all
    four blocks, even unset ones. Subset tunnel/proxyProtocol/retryBudget come from the subset's
    top level (a port-level entry cannot carry them).

    >>> top = {"connectionPool": {"tcp": {"maxConnections": 1}}, "tunnel": {"targetHost": "h"},
    ...        "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}]}
    >>> effective_policy(top, None, 80)
    {'tls': {'mode': 'SIMPLE'}}
    >>> effective_policy(top, {"connectionPool": {"http": {"maxRetries": 3}}}, 9080)
    {'connectionPool': {'http': {'maxRetries': 3}}, 'tunnel': {'targetHost': 'h'}}
    """
    base: Policy = {k: v for k, v in (top or {}).items() if k != "portLevelSettings"}
    entry = _port_entry(top or {}, port)
    if entry is not None:
        base = {k: entry[k] for k in PORT_BLOCKS if k in entry}
    if subset:
        for name in (*PORT_BLOCKS, *SUBSET_EXTRAS):
            if name in subset:
                base[name] = subset[name]
        sub_entry = _port_entry(subset, port)
        if sub_entry is not None:  # replaces all four blocks, unset ones become defaults
            for name in PORT_BLOCKS:
                if name in sub_entry:
                    base[name] = sub_entry[name]
                else:
                    base.pop(name, None)
    return base
