"""Locality load balancing and slow start in the proxyless client: ``meshroute._core.Balancer``
placing endpoints in Envoy's priorities as istiod would for the calling workload
(``localityLbSetting``: failover, ``failoverPriority``, ``distribute``; Istio's own expectations
are ported in rust/meshroute-lb/src/locality.rs), and the transport end to end against echo
upstreams on 127.0.0.1 whose WorkloadEntries carry localities. Sync and async; seeded, and the
statistical checks state their tolerance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping

import pytest

from meshroute._core import Balancer
from tests.client.conftest import Bookinfo, Caller, server_of

REVIEWS = "http://reviews:9080/reviews/0"
CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"
EPS = [(f"10.0.0.{i}:80", 1) for i in range(6)]
WHERE = ["us/a", "us/a", "us/b", "us/b", "eu/c", "eu/c"]
OUTLIER = {"consecutive5xxErrors": 2, "maxEjectionPercent": 100, "interval": "1s", "baseEjectionTime": "30s"}


def policy(lb: Mapping[str, object] | None = None, outlier: bool = True) -> str:
    out: dict[str, object] = {"loadBalancer": {"simple": "ROUND_ROBIN", **(lb or {})}}
    if outlier:
        out["outlierDetection"] = OUTLIER
    return json.dumps(out)


def test_default_failover_needs_outlier_detection() -> None:
    """Istio's mesh default (locality LB enabled) fails over by locality once the rule has
    outlier detection: same zone, then same region, then anywhere."""
    b = Balancer(EPS, policy(), seed=1, localities=WHERE, client_locality="us/a")
    assert b.priorities == [0, 0, 1, 1, 2, 2]
    assert not b.locality_weighted, "default failover: no locality weights"
    assert Counter(b.pick() for _ in range(100)) == {0: 50, 1: 50}
    flat = Balancer(EPS, policy(outlier=False), seed=1, localities=WHERE, client_locality="us/a")
    assert flat.priorities == [0] * 6
    disabled = Balancer(
        EPS, policy({"localityLbSetting": {"enabled": False}}), localities=WHERE, client_locality="us/a"
    )
    assert disabled.priorities == [0] * 6
    assert Balancer(EPS, policy({"localityLbSetting": {}})).unsupported == []


def test_traffic_spills_over_as_endpoints_are_ejected() -> None:
    """1 of 2 endpoints left in the client's zone: health 1.4 × 50 % = 70 %, so 30 % of the
    requests go to the next priority (seeded; 3 000 picks, ± 3 %)."""
    b = Balancer(EPS, policy(), seed=2, localities=WHERE, client_locality="us/a")
    b.record(0, 503)
    assert b.record(0, 503), "ejected at the second consecutive 5xx"
    assert b.priority_load == [70, 30, 0]
    picks = Counter(b.pick() for _ in range(3000))
    assert picks[0] == 0 and picks[4] + picks[5] == 0
    assert abs((picks[2] + picks[3]) / 3000 - 0.30) < 0.03, picks
    b.record(1, 503)
    b.record(1, 503)
    assert b.priority_load == [0, 100, 0]
    assert set(Counter(b.pick() for _ in range(20))) == {2, 3}


def test_region_failover_rule_and_failover_priority() -> None:
    rule = {"localityLbSetting": {"failover": [{"from": "eu", "to": "us"}]}}
    b = Balancer(EPS, policy(rule), localities=WHERE, client_locality="eu/c")
    assert b.priorities == [1, 1, 1, 1, 0, 0]
    assert b.locality_weighted
    labels = [{"version": "v1" if i % 2 == 0 else "v2"} for i in range(6)]
    by_label = {"localityLbSetting": {"failoverPriority": ["version", "topology.kubernetes.io/region"]}}
    b = Balancer(
        EPS,
        policy(by_label),
        localities=WHERE,
        labels=labels,
        client_locality="eu/c",
        client_labels={"version": "v2"},
    )
    # v2 in eu first, v2 elsewhere next, every v1 last (the region label comes from the locality).
    assert b.priorities == [2, 1, 2, 1, 2, 0]
    with pytest.raises(ValueError, match="one entry per endpoint"):
        Balancer(EPS, "{}", localities=["us"])


def test_distribute_weights_localities_and_drops_the_others() -> None:
    rule = {"localityLbSetting": {"distribute": [{"from": "us/*", "to": {"us/a": 25, "eu/*": 75}}]}}
    b = Balancer(EPS, policy(rule), seed=3, localities=WHERE, client_locality="us/b")
    assert b.priorities == [0, 0, None, None, 0, 0], "us/b is not in the rule: left out"
    picks = Counter(b.pick() for _ in range(400))
    # Locality weights are scheduled (EDF), not drawn: exactly 100 / 300.
    assert abs(picks[0] + picks[1] - 100) <= 1 and abs(picks[4] + picks[5] - 300) <= 1, picks


def test_slow_start_ramps_up_endpoints_new_to_the_cluster() -> None:
    warmup = policy({"warmup": {"duration": "10s"}}, outlier=False)
    first = Balancer(EPS[:2], warmup, seed=4, now=100.0)
    assert first.slow_start == (10.0, 1.0, 10.0)
    # No previous balancer: the initial endpoints are not warming up (Envoy's initial hosts).
    assert Counter(first.pick(now=100.0) for _ in range(20)) == {0: 10, 1: 10}
    grown = Balancer(EPS[:3], warmup, seed=4, now=100.0, previous=first)
    # 2.5 s into 10 s: the new endpoint weighs 0.25 (the minimum is 0.1): 0.25 / 2.25 of 900.
    assert Counter(grown.pick(now=102.5) for _ in range(900))[2] == pytest.approx(100, abs=2)
    # Warm: plain rotation.
    assert Counter(grown.pick(now=110.0) for _ in range(30)) == {0: 10, 1: 10, 2: 10}
    # Carried over again, the join time stays the one it had.
    again = Balancer(EPS[:3], warmup, seed=4, now=200.0, previous=grown)
    assert Counter(again.pick(now=200.0) for _ in range(30)) == {0: 10, 1: 10, 2: 10}
    assert Balancer(EPS, policy({"warmupDurationSecs": "5s"})).slow_start == (5.0, 1.0, 10.0)
    random = json.dumps({"loadBalancer": {"simple": "RANDOM", "warmup": {"duration": "5s"}}})
    assert Balancer(EPS, random).slow_start is None, "only ROUND_ROBIN and LEAST_REQUEST"


def reviews_in(where: dict[str, str], bookinfo: Bookinfo, rule: str) -> list[str]:
    """The Bookinfo reviews WorkloadEntries again, each with a locality, and ``rule``."""
    docs = []
    for name, locality in where.items():
        version = name.rpartition("-")[2]
        labels = "{app: reviews, version: " + version + "}"
        port = bookinfo.servers[name].port
        docs.append(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
            f"metadata: {{name: {name}, namespace: default}}\n"
            f"spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {labels}, locality: {locality}}}\n"
        )
    return [*docs, rule]


RULE = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN%s}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}}]
"""
WHERE_REVIEWS = {"reviews-v1": "us/a", "reviews-v2": "us/b", "reviews-v3": "eu/c"}


def test_the_client_zone_first_then_failover_when_its_endpoint_fails(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    mesh = bookinfo.mesh_with(*reviews_in(WHERE_REVIEWS, bookinfo, RULE % ""))
    c = caller(mesh, seed=5, clock=lambda: 0.0, locality="us/a")
    assert {server_of(r) for r in c.many([(REVIEWS, {})] * 6)} == {"reviews-v1"}
    bookinfo.servers["reviews-v1"].status = 500
    failing = c.many([(REVIEWS, {})] * 3)
    assert [r.status_code for r in failing] == [500] * 3, "the third 500 ejects reviews-v1"
    after = c.many([(REVIEWS, {})] * 6)
    assert {r.status_code for r in after} == {200}
    assert {server_of(r) for r in after} == {"reviews-v2"}, "same region before another region"
    assert c.transport.locality == "us/a"
    # A client in eu stays in eu; its locality from its labels.
    labels = {"app": "productpage", "topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "c"}
    eu = caller(mesh, seed=5, clock=lambda: 0.0, source_labels=labels)
    assert eu.transport.locality == "eu/c"
    assert {server_of(r) for r in eu.many([(REVIEWS, {})] * 4)} == {"reviews-v3"}


def test_distribute_through_the_transport(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    rule = RULE % ', localityLbSetting: {distribute: [{from: "us/*", to: {"us/a": 80, "eu/c": 20}}]}'
    mesh = bookinfo.mesh_with(*reviews_in(WHERE_REVIEWS, bookinfo, rule))
    c = caller(mesh, seed=6, clock=lambda: 0.0, locality="us/b")
    served = Counter(server_of(r) for r in c.many([(REVIEWS, {})] * 50))
    assert set(served) == {"reviews-v1", "reviews-v3"} and abs(served["reviews-v3"] - 10) <= 1, served


def test_an_endpoint_new_to_the_cluster_warms_up_after_an_update(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    no_outlier = RULE.replace("    outlierDetection", "    # no outlier detection\n    #")
    rule = no_outlier % ", warmup: {duration: 60s}"
    without_v3 = {"reviews-v1": "us/a", "reviews-v2": "us/a"}
    # reviews-v3 first under other labels, so the reviews Service does not select it.
    port = bookinfo.servers["reviews-v3"].port
    hidden = (
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata: {name: reviews-v3, namespace: default}\n"
        f"spec: {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: other}}}}\n"
    )
    before = bookinfo.mesh_with(*reviews_in(without_v3, bookinfo, rule), hidden)
    after = bookinfo.mesh_with(*reviews_in({**without_v3, "reviews-v3": "us/a"}, bookinfo, rule))
    now = [100.0]
    c = caller(before, seed=7, clock=lambda: now[0])
    assert {server_of(r) for r in c.many([(REVIEWS, {})] * 4)} == {"reviews-v1", "reviews-v2"}
    c.transport.update(after)
    # Just joined: 10 % of its weight (the minimum): about 1 request in 21.
    joined = Counter(server_of(r) for r in c.many([(REVIEWS, {})] * 42))
    assert 1 <= joined["reviews-v3"] <= 3, joined
    now[0] = 160.0  # the 60 s window is over
    warm = Counter(server_of(r) for r in c.many([(REVIEWS, {})] * 30))
    assert warm == {"reviews-v1": 10, "reviews-v2": 10, "reviews-v3": 10}, warm
