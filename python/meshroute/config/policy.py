"""DestinationRules: lookup path, merging, and the effective traffic policy (semantics §3.1, §3.2).

Policies stay plain JSON-shaped dicts with Istio's camelCase field names: the IR carries them as
opaque text, and the Rust side only reads the blocks it evaluates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.common import string_map
from meshroute.config.hosts import ROOT_NAMESPACE, exported_to, fqdn, is_wildcard, matches
from meshroute.config.load import Resource
from meshroute.config.validate.destination_rule import LOAD_BALANCER_ANNOTATION, LOAD_BALANCERS
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
    # meshroute's ``meshroute.io/load-balancer`` annotation (``PEAK_EWMA``), None without it
    load_balancer: str | None = None
    # ``workloadSelector.matchLabels``, sorted (only with ``has_selector``)
    selector: tuple[tuple[str, str], ...] = ()

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
    load_balancer: str | None = None  # the first merged DR's ``meshroute.io/load-balancer``


def parse_destination_rule(
    res: Resource, domain: str = "cluster.local", default_export_to: Sequence[str] = ()
) -> DestinationRuleInfo | None:
    """``default_export_to``: the mesh config's ``defaultDestinationRuleExportTo`` (§12)."""
    spec = normalize(res.kind, res.spec)
    if not isinstance(spec, dict) or not isinstance(spec.get("host"), str):
        return None
    subsets = []
    for i, raw in enumerate(spec.get("subsets") or []):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            labels = string_map(raw.get("labels"))
            sub_tp = raw.get("trafficPolicy")
            sub_tp = sub_tp if isinstance(sub_tp, dict) else None
            subsets.append(Subset(raw["name"], labels, sub_tp, ("spec", "subsets", i)))
    tp = spec.get("trafficPolicy")
    export_to = spec.get("exportTo")
    export_to = export_to if isinstance(export_to, list) else []
    annotations = res.metadata.get("annotations")
    lb = annotations.get(LOAD_BALANCER_ANNOTATION) if isinstance(annotations, dict) else None
    return DestinationRuleInfo(
        resource=res,
        host=fqdn(spec["host"], res.namespace, domain),
        traffic_policy=tp if isinstance(tp, dict) else None,
        subsets=tuple(subsets),
        export_to=tuple(str(e) for e in export_to) or tuple(default_export_to),
        has_selector=isinstance(spec.get("workloadSelector"), dict),
        load_balancer=lb if lb in LOAD_BALANCERS else None,
        selector=_selector(spec.get("workloadSelector")),
    )


def _selector(raw: Any) -> tuple[tuple[str, str], ...]:
    labels = raw.get("matchLabels") if isinstance(raw, dict) else None
    return tuple(sorted((str(k), str(v)) for k, v in labels.items())) if isinstance(labels, dict) else ()


class DestinationRules:
    """All DRs, queried along the lookup path: client ns -> service ns -> root ns (§3.1)."""

    def __init__(self, rules: Iterable[DestinationRuleInfo], root_namespace: str = ROOT_NAMESPACE):
        # Selector-bearing DRs apply to the client workloads of their namespace they select only
        # (§3.1): kept apart, per namespace in config order, and found by lookup(labels=...).
        rules = list(rules)
        self.rules = [r for r in rules if not r.has_selector]
        self.selected: dict[str, list[DestinationRuleInfo]] = {}
        for rule in rules:
            if rule.has_selector:
                self.selected.setdefault(rule.namespace, []).append(rule)
        self._selected_cache: dict[tuple[str, str, tuple[tuple[str, str], ...]], MergedRule | None] = {}
        self.root = root_namespace
        self._cache: dict[tuple[str, str | None, str | None], MergedRule | None] = {}
        # Per namespace: host -> its rules, and the wildcard-host rules, each in config order. A
        # lookup reads only its host's entry and the (few) wildcards: no scan of every rule.
        self._by_host: dict[str, dict[str, list[DestinationRuleInfo]]] = {}
        self._wildcards: dict[str, list[DestinationRuleInfo]] = {}
        for rule in self.rules:
            self._by_host.setdefault(rule.namespace, {}).setdefault(rule.host, []).append(rule)
            if is_wildcard(rule.host):
                self._wildcards.setdefault(rule.namespace, []).append(rule)
        # One MergedRule per group of DRs, so every client namespace using a group shares it
        # (and what is derived from it, such as a policy's JSON text, can be keyed by its id).
        # Keyed by the rules' ids, so each entry keeps its rules alive: a rule that replace()
        # took out must not be freed, or a new rule could get its id and this entry's MergedRule.
        self._merged: dict[tuple[int, ...], tuple[tuple[DestinationRuleInfo, ...], MergedRule]] = {}
        # Namespaces whose rules are all exported everywhere: seen alike from every other namespace.
        self._public = {
            ns: all(not r.export_to or "*" in r.export_to for hosts in by_host.values() for r in hosts)
            for ns, by_host in self._by_host.items()
        }
        self.all_public = all(self._public.values())
        private = {r.host for r in self.rules if r.export_to and "*" not in r.export_to}
        self._varying = None if any(is_wildcard(h) for h in private) else private

    def replace(self, old: DestinationRuleInfo, new: DestinationRuleInfo) -> None:
        """Put ``new`` where ``old`` is (an edit that keeps the host, namespace, ``exportTo`` and
        selector, so nothing but that host's lookups can change): what an incremental compile
        (:mod:`meshroute.config.session`) needs instead of a new index."""
        if (old.host, old.namespace, old.export_to, old.has_selector) != (
            new.host,
            new.namespace,
            new.export_to,
            new.has_selector,
        ):
            raise ValueError("replace() keeps the host, namespace, exportTo and selector")
        if old.has_selector:
            group = self.selected[old.namespace]
            group[next(i for i, r in enumerate(group) if r is old)] = new
            self._selected_cache.clear()
            return

        def swap(rules: list[DestinationRuleInfo]) -> None:
            rules[next(i for i, r in enumerate(rules) if r is old)] = new

        swap(self.rules)
        swap(self._by_host[old.namespace][old.host])
        if is_wildcard(old.host):  # any host's lookup may have found it
            swap(self._wildcards[old.namespace])
            self._cache.clear()
        for key in [k for k in self._cache if k[0] == old.host]:
            del self._cache[key]

    def varying_hosts(self) -> set[str] | None:
        """Hosts of the rules not exported everywhere: the only hosts whose rule a client without
        rules of its own (none for the host, no wildcard one, not the root namespace) can see
        differently from another such client. None when such a rule has a wildcard host (then
        any host may)."""
        return self._varying

    def namespace_hosts(self, namespace: str) -> set[str]:
        """The hosts of the rules in ``namespace`` (wildcards included)."""
        return set(self._by_host.get(namespace, ()))

    def has_wildcards(self, namespace: str) -> bool:
        return namespace in self._wildcards

    def selectors(self, namespace: str) -> list[tuple[tuple[str, str], ...]]:
        """The distinct workload selectors of the DRs of ``namespace``, in config order."""
        return list(dict.fromkeys(r.selector for r in self.selected.get(namespace, ())))

    def lookup(
        self, host: str, client_ns: str, service_ns: str | None, labels: tuple[tuple[str, str], ...] = ()
    ) -> MergedRule | None:
        """The merged rule that applies to ``host`` for clients in ``client_ns``, or None. A
        client whose ``labels`` a DR of its own namespace selects gets that DR (the first in
        config order for the most specific host: exact, else the longest wildcard) instead (§3.1).

        >>> DestinationRules([]).lookup("a.b.svc.cluster.local", "b", "b") is None
        True
        """
        if labels and client_ns in self.selected:
            key3 = (host, client_ns, labels)
            if key3 not in self._selected_cache:
                have = set(labels)
                best: DestinationRuleInfo | None = None
                for candidate in self.selected[client_ns]:
                    if not set(candidate.selector) <= have or not matches(candidate.host, host):
                        continue
                    if best is None or _more_specific(candidate.host, best.host):
                        best = candidate
                self._selected_cache[key3] = self._merge([best]) if best is not None else None
            found = self._selected_cache[key3]
            if found is not None:
                return found
        client: str | None = client_ns
        if (
            client_ns not in (self.root, service_ns)
            and host not in self._by_host.get(client_ns, ())
            and client_ns not in self._wildcards
            and self._public.get(service_ns or "", True)
            and self._public.get(self.root, True)
        ):
            # A client namespace without rules of its own for the host, asking about rules that
            # are exported everywhere, gets what every such namespace gets: one lookup for all.
            client = None
        key = (host, client, service_ns)
        try:
            return self._cache[key]
        except KeyError:
            rule = self._cache[key] = self._lookup(host, client_ns, service_ns)
            return rule

    def _lookup(self, host: str, client_ns: str, service_ns: str | None) -> MergedRule | None:
        path = [] if client_ns == self.root else [client_ns]
        path += [ns for ns in (service_ns, self.root) if ns and ns not in path]
        for ns in path:
            by_host = self._by_host.get(ns)
            if by_host is None:
                continue
            exact = by_host.get(host)
            wildcards = self._wildcards.get(ns)
            if exact is None and wildcards is None:
                continue
            # A client's own namespace sees all of its DRs; other namespaces only exported ones.
            own = ns == client_ns
            # Most specific visible host (§1.1): the exact one, else the longest wildcard, the
            # first in config order among equals (as ``most_specific`` over the visible rules).
            best = None
            if exact is not None and (own or any(exported_to(r.export_to, ns, client_ns) for r in exact)):
                best = host
            elif wildcards is not None:
                for rule in wildcards:
                    if (
                        (best is None or len(rule.host) > len(best))
                        and matches(rule.host, host)
                        and (own or exported_to(rule.export_to, ns, client_ns))
                    ):
                        best = rule.host
            if best is not None:
                group = by_host[best]
                if not own:
                    group = [r for r in group if exported_to(r.export_to, ns, client_ns)]
                return self._merge(group)
        return None

    def _merge(self, rules: list[DestinationRuleInfo]) -> MergedRule:
        key = tuple(id(r) for r in rules)  # the entry holds the rules: their ids stay theirs
        found = self._merged.get(key)
        if found is None:
            found = self._merged[key] = (tuple(rules), merge_rules(rules))
        return found[1]

    def effective(
        self, host: str, subset: str | None, port: int, client_ns: str, service_ns: str | None
    ) -> Policy:
        """The effective traffic policy for (host, subset, port) seen from ``client_ns`` (§3.2)."""
        return rule_policy(self.lookup(host, client_ns, service_ns), subset, port)

    def defines_subset(self, host: str, subset: str, client_ns: str, service_ns: str | None) -> bool:
        rule = self.lookup(host, client_ns, service_ns)
        return rule is not None and subset in rule.subsets


def _more_specific(a: str, b: str) -> bool:
    """``a`` names a host more precisely than ``b``: exact before wildcard, longer wildcard first."""
    if is_wildcard(a) != is_wildcard(b):
        return not is_wildcard(a)
    return is_wildcard(a) and len(a) > len(b)


def rule_policy(rule: MergedRule | None, subset: str | None, port: int) -> Policy:
    """The effective traffic policy of ``rule`` (the one in force) for (subset, port) (§3.2)."""
    if rule is None:
        return {}
    sub = rule.subsets.get(subset) if subset else None
    policy = effective_policy(rule.traffic_policy, sub.traffic_policy if sub else None, port)
    return with_load_balancer(policy, rule.load_balancer) if rule.load_balancer else policy


def with_load_balancer(policy: Policy, name: str) -> Policy:
    """``policy`` with meshroute's load balancer ``name`` (the DestinationRule annotation
    ``meshroute.io/load-balancer``) as that key of its ``loadBalancer`` block, in place of
    ``simple``; a ``consistentHash`` or ``simple: PASSTHROUGH`` in force for the cluster is kept
    as it is (docs/client.md, "PEAK_EWMA").

    >>> with_load_balancer({}, "PEAK_EWMA")
    {'loadBalancer': {'meshroute.io/load-balancer': 'PEAK_EWMA'}}
    >>> with_load_balancer({"loadBalancer": {"consistentHash": {"useSourceIp": True}}}, "PEAK_EWMA")
    {'loadBalancer': {'consistentHash': {'useSourceIp': True}}}
    """
    lb = policy.get("loadBalancer")
    lb = lb if isinstance(lb, Mapping) else {}
    if "consistentHash" in lb or str(lb.get("simple", "")).upper() == "PASSTHROUGH":
        return policy
    return {**policy, "loadBalancer": {**lb, LOAD_BALANCER_ANNOTATION: name}}


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
    load_balancer = next((r.load_balancer for r in group if r.load_balancer), None)
    return MergedRule(first.host, first.namespace, policy, subsets, load_balancer)


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
