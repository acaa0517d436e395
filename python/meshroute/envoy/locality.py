"""Locality load balancing as istiod writes it into a proxy's clusters (Istio's
``ApplyLocalityLoadBalancer``): each cluster's endpoints grouped into ``LocalityLbEndpoints`` per
locality, with the ``priority`` and ``load_balancing_weight`` Istio gives them for the proxy's
locality and labels (``envoy-config --locality``, ``--source-label``; docs/envoy.md "Locality load
balancing").

The placement itself is meshroute-lb's (``rust/meshroute-lb/src/locality.rs``, the one the
proxyless client runs): a ``meshroute._core.Balancer`` built for the cluster answers each
endpoint's priority (None: left out by ``distribute``) and whether localities are weighted. The
binding does not give the locality weights a ``distribute`` rule sets, so :func:`distribute_weights`
computes them here, line for line as ``apply_weights`` does (``tests/envoy/test_locality.py``
compares the two through the Balancer's picks).

>>> groups = place([_ep(1), _ep(2), _ep(3)], ["us/a", "us/b", "eu/c"], [{}, {}, {}],
...     {"loadBalancer": {"simple": "ROUND_ROBIN"}, "outlierDetection": {}}, "us/a", {})
>>> [(g.priority, g.locality, g.weight, len(g.lb_endpoints)) for g in groups.groups]
[(0, 'us/a', 1, 1), (1, 'us/b', 1, 1), (2, 'eu/c', 1, 1)]
>>> groups.locality_weighted
False
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.envoy.common import Json


@dataclass
class Group:
    """One Envoy ``LocalityLbEndpoints``."""

    locality: str  # region/zone/subzone, Istio's label form
    priority: int
    weight: int
    lb_endpoints: list[Json] = field(default_factory=list)

    def to_json(self) -> Json:
        out: Json = {}
        where = locality_json(self.locality)
        if where:
            out["locality"] = where
        out["lb_endpoints"] = self.lb_endpoints
        out["load_balancing_weight"] = self.weight
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass
class Placed:
    groups: list[Group]
    locality_weighted: bool


def parse(label: str) -> tuple[str, str, str]:
    """``region/zone/subzone`` (fewer parts leave the rest empty; Istio's ``SplitLocalityLabel``).

    >>> parse("us/a"), parse("")
    (('us', 'a', ''), ('', '', ''))
    """
    parts = [*label.split("/"), "", "", ""]
    return parts[0], parts[1], parts[2]


def label(locality: str) -> str:
    """Istio's label form of a locality (``LocalityToString``: trailing empty parts left out).

    >>> label("us/a/"), label("us//x"), label("/z1")
    ('us/a', 'us', '/z1')
    """
    region, zone, subzone = parse(locality)
    if not zone:
        return region
    return f"{region}/{zone}/{subzone}" if subzone else f"{region}/{zone}"


def locality_json(locality: str) -> Json:
    """Envoy's ``Locality`` (``region``, ``zone``, ``sub_zone``; empty parts left out).

    >>> locality_json("us/a/x")
    {'region': 'us', 'zone': 'a', 'sub_zone': 'x'}
    """
    region, zone, subzone = parse(label(locality))
    out: Json = {}
    for key, value in (("region", region), ("zone", zone), ("sub_zone", subzone)):
        if value:
            out[key] = value
    return out


def matches(locality: str, rule: str) -> bool:
    """Istio's ``LocalityMatch``: ``*`` for any part, a part the rule leaves out matches anything.

    >>> matches("us/a/x", "us/*"), matches("us/a", "us/b"), matches("eu/a", "*")
    (True, False, True)
    """
    mine, wanted = parse(locality), parse(rule)
    if not (wanted[0] == "*" or wanted[0] == mine[0]):
        return False
    return all(not w or w == "*" or w == m for w, m in zip(wanted[1:], mine[1:], strict=True))


def locality_setting(policy: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``localityLbSetting`` of a traffic policy, or None."""
    lb = policy.get("loadBalancer")
    setting = lb.get("localityLbSetting") if isinstance(lb, Mapping) else None
    return setting if isinstance(setting, Mapping) else None


def distribute_weights(
    client: str, groups: Mapping[str, int], distribute: Sequence[Any]
) -> dict[str, int | None] | None:
    """Locality weights a ``distribute`` rule sets for a proxy at ``client`` (``groups``: each
    locality label with the sum of its endpoints' weights): None when no rule's ``from`` matches
    (weights unchanged); a locality no ``to`` entry claims maps to None (its endpoints are left out).

    >>> distribute_weights("us/a", {"us/a": 1, "us/b": 3, "eu/c": 1},
    ...     [{"from": "us/*", "to": {"us/*": 80, "eu/c": 20}}])
    {'us/a': 20, 'us/b': 60, 'eu/c': 20}
    """
    rule = next(
        (d for d in distribute if isinstance(d, Mapping) and matches(client, str(d.get("from") or ""))),
        None,
    )
    if rule is None:
        return None
    out: dict[str, int | None] = dict(groups)
    unmatched = dict.fromkeys(sorted(groups))
    to = rule.get("to")
    # serde_json's map (meshroute-lb reads the rule with it) iterates in key order.
    for target, raw_weight in sorted(to.items()) if isinstance(to, Mapping) else []:
        weight = _weight(raw_weight)
        claimed = [(name, groups[name] or 1) for name in unmatched if matches(name, target)]
        total = sum(w for _, w in claimed)
        for name, original in claimed:
            del unmatched[name]
            if total == 0:
                continue
            share = original * weight / total
            if share > 0:
                out[name] = math.ceil(share)
    for name in unmatched:
        out[name] = None
    return out


def _weight(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def place(
    lb_endpoints: Sequence[Json],
    localities: Sequence[str],
    labels: Sequence[Mapping[str, str]],
    policy: Mapping[str, Any],
    client_locality: str,
    client_labels: Mapping[str, str],
) -> Placed:
    """The cluster's ``LocalityLbEndpoints`` for a proxy at ``client_locality`` with
    ``client_labels``: ordered by priority, then locality label. ``ValueError`` when meshroute-lb
    refuses ``policy``."""
    from meshroute._core import Balancer

    weights = [int(ep.get("load_balancing_weight") or 0) for ep in lb_endpoints]
    balancer = Balancer(
        [(str(i), w) for i, w in enumerate(weights)],
        json.dumps(dict(policy), sort_keys=True),
        0,
        localities=[label(loc) for loc in localities],
        labels=[dict(item) for item in labels],
        client_locality=client_locality,
        client_labels=dict(client_labels),
    )
    priorities = balancer.priorities
    sums: dict[str, int] = {}
    for loc, w in zip(localities, weights, strict=True):
        sums[label(loc)] = sums.get(label(loc), 0) + max(w, 1)
    setting = locality_setting(policy) or {}
    distribute = setting.get("distribute")
    set_weights = (
        distribute_weights(label(client_locality), sums, distribute)
        if isinstance(distribute, list) and distribute and setting.get("enabled") is not False
        else None
    )
    by_key: dict[tuple[int, str], Group] = {}
    for i, (ep, loc, priority) in enumerate(zip(lb_endpoints, localities, priorities, strict=True)):
        if priority is None:
            continue
        key = (priority, label(loc))
        group = by_key.get(key)
        if group is None:
            group = by_key[key] = Group(key[1], priority, 0)
        group.lb_endpoints.append(ep)
        group.weight += max(weights[i], 1)
    for group in by_key.values():
        if set_weights is not None and set_weights.get(group.locality) is not None:
            group.weight = int(set_weights[group.locality] or 1)
    groups = [by_key[key] for key in sorted(by_key)]
    return Placed(groups, balancer.locality_weighted)


def _ep(port: int) -> Json:
    return {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": port}}}}
