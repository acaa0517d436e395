"""``meshroute._core.Balancer`` (rust/meshroute-py/src/balancer.rs over meshroute-lb) and
``RouteTable.cluster_policy``: the pieces the client is built on, without any I/O."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import meshroute
from meshroute._core import Balancer, ListenerContext
from tests.client.conftest import Bookinfo, Caller, route_of, server_of

EPS = [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)]


def test_policy_kinds_and_hash_sources() -> None:
    assert Balancer(EPS).kind == "LEAST_REQUEST"
    assert Balancer(EPS, '{"loadBalancer": {"simple": "ROUND_ROBIN"}}').kind == "ROUND_ROBIN"
    assert Balancer(EPS, '{"loadBalancer": {"simple": "PASSTHROUGH"}}').kind == "PASSTHROUGH"
    ring = Balancer(EPS, '{"loadBalancer": {"consistentHash": {"httpHeaderName": "End-User"}}}')
    assert (ring.kind, ring.hash_source) == ("RING_HASH", ("header", "end-user", None, None))
    maglev = json.dumps(
        {
            "loadBalancer": {
                "consistentHash": {"httpCookie": {"name": "s", "ttl": "1m"}, "maglev": {"tableSize": 1009}}
            }
        }
    )
    assert (Balancer(EPS, maglev).kind, Balancer(EPS, maglev).hash_source) == (
        "MAGLEV",
        ("cookie", "s", None, 60.0),
    )
    source_ip = '{"loadBalancer": {"consistentHash": {"useSourceIp": true}}}'
    assert Balancer(EPS, source_ip).hash_source == ("source_ip", None, None, None)
    assert Balancer(EPS, '{"connectionPool": {"tcp": {"connectTimeout": "250ms"}}}').connect_timeout == 0.25
    assert Balancer(EPS, '{"tls": {"mode": "SIMPLE"}}').unsupported == ["tls"]


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        Balancer(EPS, "[]")
    with pytest.raises(ValueError, match="not a prime"):
        Balancer(
            EPS, '{"loadBalancer": {"consistentHash": {"useSourceIp": true, "maglev": {"tableSize": 1000}}}}'
        )


def test_seeded_picks_and_weights() -> None:
    policy = '{"loadBalancer": {"simple": "ROUND_ROBIN"}}'
    weighted = Balancer([("a:1", 3), ("b:1", 1)], policy, seed=1)
    assert Counter(weighted.pick() for _ in range(400)) == {0: 300, 1: 100}
    assert [Balancer(EPS, "{}", seed=5).pick() for _ in range(3)] == [Balancer(EPS, "{}", seed=5).pick()] * 3
    ring = Balancer(EPS, '{"loadBalancer": {"consistentHash": {"httpHeaderName": "u"}}}', seed=1)
    assert len({ring.pick("user-1") for _ in range(20)}) == 1
    assert ring.pick(b"user-1") == ring.pick("user-1")


def test_least_request_avoids_busy_endpoints() -> None:
    b = Balancer(EPS, "{}", seed=3)
    for _ in range(5):
        b.start(0)
        b.start(1)
    assert Counter(b.pick() for _ in range(300))[2] > 150  # P2C: 2 is picked whenever sampled
    for _ in range(5):
        b.finish(0)
    assert b.active(0) == 0 and b.active(1) == 5
    with pytest.raises(IndexError):
        b.start(3)


def test_circuit_breaker_tickets() -> None:
    b = Balancer(
        EPS, '{"connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}}}'
    )
    first, second = b.acquire(), b.acquire()
    assert first is not None and second is not None
    assert b.is_active(first) and not b.is_active(second), "the second waits for the connection"
    assert b.acquire() is None, "pending queue full: overflow"
    b.release(first)
    assert b.is_active(second), "the pending request got the connection"
    b.release(second)
    stats = b.stats()
    assert (stats["upstream_rq_pending_overflow"], stats["upstream_rq_active"]) == (1, 0)
    retries = Balancer(EPS, '{"connectionPool": {"http": {"maxRetries": 1}}}')
    ticket = retries.acquire_retry()
    assert ticket is not None and retries.acquire_retry() is None
    retries.release_retry(ticket)
    assert retries.acquire_retry() is not None


def test_outlier_ejection_and_return_on_the_callers_clock() -> None:
    policy = json.dumps(
        {
            "loadBalancer": {"simple": "ROUND_ROBIN"},
            "outlierDetection": {"consecutive5xxErrors": 2, "interval": "1s", "baseEjectionTime": "10s",
                                 "maxEjectionPercent": 100},
        }
    )  # fmt: skip
    b = Balancer(EPS, policy, seed=1)
    assert b.pick(now=0.0) is not None  # the first time seen starts the sweep timer
    assert b.record(1, 500, 0.5) is False
    assert b.record(1, "connect-failure", 0.6) is True  # a local failure counts as a 503
    assert b.is_ejected(1) and b.healthy_count == 2
    assert 1 not in {b.pick(now=5.0) for _ in range(20)}
    assert b.sweep(10.0) == [] and b.is_ejected(1)
    assert b.sweep(11.0) == [1] and not b.is_ejected(1)
    with pytest.raises(ValueError, match="unknown outcome"):
        b.record(0, "bogus", 1.0)


def test_any_clock_value_is_safe() -> None:
    b = Balancer(EPS, '{"outlierDetection": {"consecutive5xxErrors": 1, "interval": "1s"}}', seed=1)
    for now in (float("nan"), -5.0, 0.0, 1e300, float("inf"), 3.0):
        assert b.pick(now=now) is not None
        b.record(0, 200, now)
    assert b.record(1, 503, 1e300) is True  # far in the future: still ejects, never overflows
    assert b.sweep(float("inf")) == [] and b.is_ejected(1)  # time saturates (~31 700 years)


def test_cluster_policy_is_the_decisions_traffic_policy(bookinfo: Bookinfo) -> None:
    rule = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v1, labels: {version: v1}, trafficPolicy: {connectionPool: {tcp: {maxConnections: 7}}}}
"""
    mesh = bookinfo.mesh_with(rule)
    decision = mesh.route("reviews", "/reviews/0")
    cluster = "outbound|9080|v1|reviews.default.svc.cluster.local"
    assert decision.cluster == cluster
    policy = mesh.table.cluster_policy(ListenerContext(), cluster)
    assert policy is not None and json.loads(policy) == decision.to_dict()["traffic_policy"]
    assert (
        mesh.table.cluster_policy(ListenerContext(), "outbound|9080|v9|reviews.default.svc.cluster.local")
        is None
    )


def test_weights_and_localities_come_from_the_config(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    port = bookinfo.servers["reviews-v1"].port
    weighted = f"""
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-v1, namespace: default}}
spec:
  address: 127.0.0.1
  ports: {{http: {port}}}
  labels: {{app: reviews, version: v1}}
  weight: 3
  locality: eu-west1/zone-a
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http: [{{route: [{{destination: {{host: reviews}}}}]}}]
"""
    c = caller(bookinfo.mesh_with(weighted), seed=1)
    got = c.many([("http://reviews:9080/", {})] * 50)
    counts = Counter(server_of(r) for r in got)
    assert counts == {"reviews-v1": 30, "reviews-v2": 10, "reviews-v3": 10}  # EDF: exactly 3:1:1
    v1 = next(r for r in got if server_of(r) == "reviews-v1")
    assert route_of(v1).locality == "eu-west1/zone-a"


def test_import_meshroute_does_not_import_httpx() -> None:
    code = (
        "import sys, meshroute; meshroute.load(meshroute.bookinfo_path()); assert 'httpx' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(meshroute.__file__).parents[2])
