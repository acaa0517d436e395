"""PEAK_EWMA in the proxyless client (docs/client.md, "PEAK_EWMA"): the DestinationRule annotation
``meshroute.io/load-balancer: PEAK_EWMA`` reaches the cluster's balancer through the compiled
policy, the transport reports every attempt's latency, and against real upstreams on 127.0.0.1
(tests/e2e/echo.py) an endpoint made slow by ``/sleep-on/<name>/<ms>`` gets clearly less traffic
than under ROUND_ROBIN — and its share back once it is fast again and its estimate has decayed on
the transport's (injected) clock. Seeded, bounded loops, sync and async."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from meshroute._core import Balancer, ListenerContext
from meshroute.config.load import load_text
from meshroute.config.validate import validate_resources
from tests.client.conftest import Bookinfo, Caller, route_of, server_of

CLUSTER = "outbound|9080||reviews.default.svc.cluster.local"
SLOW_MS = 80
SLOW = f"http://reviews:9080/sleep-on/reviews-v3/{SLOW_MS}"  # reviews-v3 answers 80 ms late
FAST = "http://reviews:9080/reviews/0"
EPS = [("10.0.0.1:80", 1), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)]
PEAK_POLICY = '{"loadBalancer": {"meshroute.io/load-balancer": "PEAK_EWMA"}}'


def rule(annotation: str | None, simple: str = "ROUND_ROBIN") -> str:
    """A DestinationRule for reviews (every version, one cluster) and a VirtualService to it."""
    meta = "{name: reviews, namespace: default}"
    if annotation is not None:
        meta = meta[:-1] + f", annotations: {{meshroute.io/load-balancer: {annotation}}}}}"
    return f"""
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {meta}
spec:
  host: reviews
  trafficPolicy: {{loadBalancer: {{simple: {simple}}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http: [{{route: [{{destination: {{host: reviews}}}}]}}]
"""


def test_the_annotation_is_validated() -> None:
    good = load_text(rule("PEAK_EWMA"), "dr.yaml").resources
    assert [d for d in validate_resources(good) if d.severity == "error"] == []
    bad = load_text(rule("FASTEST"), "dr.yaml").resources
    (diag,) = [d for d in validate_resources(bad) if d.code == "dr-load-balancer-annotation-invalid"]
    assert diag.severity == "error" and "'FASTEST'" in diag.message and "PEAK_EWMA" in diag.message
    assert diag.path == ("metadata", "annotations", "meshroute.io/load-balancer")


def test_the_annotation_reaches_the_cluster_policy_in_place_of_simple(bookinfo: Bookinfo) -> None:
    mesh = bookinfo.mesh_with(rule("PEAK_EWMA"))
    policy = mesh.table.cluster_policy(ListenerContext(), CLUSTER)
    assert policy is not None
    assert json.loads(policy)["loadBalancer"] == {
        "simple": "ROUND_ROBIN",
        "meshroute.io/load-balancer": "PEAK_EWMA",
    }
    assert Balancer(EPS, policy).kind == "PEAK_EWMA"
    # A consistent hash in force keeps the cluster on it (the annotation does not apply there).
    hashed = rule("PEAK_EWMA").replace("{simple: ROUND_ROBIN}", "{consistentHash: {httpHeaderName: u}}")
    policy = bookinfo.mesh_with(hashed).table.cluster_policy(ListenerContext(), CLUSTER)
    assert policy is not None and Balancer(EPS, policy).kind == "RING_HASH"


def test_balancer_learns_latencies_on_the_callers_clock() -> None:
    b = Balancer(EPS, PEAK_POLICY, seed=1)
    assert b.kind == "PEAK_EWMA" and b.latency_estimate(0) is None
    b.record(0, 200, 10.0, 0.200)
    b.record(1, 200, 10.0, 0.010)
    b.record(2, "connect-failure", 10.0, 0.001)  # no answer: counts as at least 1 s
    assert (b.latency_estimate(0, 10.0), b.latency_estimate(1, 10.0)) == (0.2, 0.01)
    assert b.latency_estimate(2, 10.0) == 1.0
    assert b.latency_estimate(0, 20.0) == pytest.approx(0.2 * 0.36787944)  # τ = 10 s later
    # Two different candidates, the cheaper wins: 1 unless the pair is (0, 2); 2 never.
    picks = Counter(b.pick(now=10.0) for _ in range(60))
    assert set(picks) == {0, 1} and picks[1] > picks[0], picks
    # Outlier detection and the other balancers are unchanged by a latency.
    rr = Balancer(EPS, '{"loadBalancer": {"simple": "ROUND_ROBIN"}}')
    assert rr.record(0, 200, 0.0, 0.5) is False and rr.latency_estimate(0) is None


def shares(c: Caller, url: str, n: int, clock: list[float] | None = None, step: float = 0.5) -> Counter[str]:
    """The servers that answered ``n`` GETs of ``url``, one after the other; with ``clock`` (the
    transport's injected clock) ``step`` seconds pass before each."""
    servers: Counter[str] = Counter()
    for _ in range(n if clock is not None else 1):
        if clock is not None:
            clock[0] += step
        responses = c.many([(url, {})] * (1 if clock is not None else n))
        assert {r.status_code for r in responses} == {200}
        servers.update(server_of(r) for r in responses)
    return servers


def test_a_slow_endpoint_gets_clearly_less_than_under_round_robin(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    n = 60
    rr = shares(caller(bookinfo.mesh_with(rule(None)), seed=3), SLOW, n)
    peak = caller(bookinfo.mesh_with(rule("PEAK_EWMA")), seed=3)
    ewma = shares(peak, SLOW, n)
    print(f"[peak-ewma] v3 {SLOW_MS} ms slower, {n} requests: ROUND_ROBIN {dict(rr)}, PEAK_EWMA {dict(ewma)}")
    assert rr["reviews-v3"] == n // 3  # rotation: exactly a third
    # Each endpoint is tried once while unknown; then the slow one's estimate (~80 ms against
    # ~1-3 ms) keeps it out until it decays (tens of seconds at τ = 10 s): a probe or two here.
    assert ewma["reviews-v3"] <= 4, ewma
    assert ewma["reviews-v1"] + ewma["reviews-v2"] >= n - 4
    stats = peak.transport.stats(CLUSTER)
    assert stats is not None and stats["upstream_rq_active"] == 0


def test_the_slow_endpoint_recovers_its_share_once_fast_and_its_estimate_decayed(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    now = [100.0]
    c = caller(bookinfo.mesh_with(rule("PEAK_EWMA")), seed=5, clock=lambda: now[0])
    v3 = f"127.0.0.1:{bookinfo.servers['reviews-v3'].port}"

    def estimate_ms() -> float:
        estimates = c.transport.latency_estimates(CLUSTER)
        seconds = estimates.get(v3) if estimates is not None else None
        assert seconds is not None, estimates
        return 1000 * seconds

    slow = shares(c, SLOW, 30, now)  # 15 s of the transport's clock
    assert slow["reviews-v3"] <= 3, slow
    assert estimate_ms() > SLOW_MS * 0.2  # its 80 ms, decayed since its last answer
    # reviews-v3 is fast again (the plain path), but its ~80 ms estimate has to decay below the
    # others' ~1-3 ms before it is tried: ln(80 / 2) τ ≈ 37 s after its last answer.
    still = shares(c, FAST, 10, now)  # 5 s more
    assert still["reviews-v3"] <= 2, still
    # 60 s later its estimate is down to e^-7 of 80 ms: it is tried, answers fast, and is an
    # endpoint like the others again. Requests 2 s apart here: the three fast endpoints' own
    # latency hiccups (a 10 ms peak keeps one out for ~15 s) fade within a few requests, so the
    # shares are about even.
    now[0] += 60.0
    healed = shares(c, FAST, 45, now, step=2.0)
    print(f"[peak-ewma] reviews-v3: slow {dict(slow)}, fast {dict(still)}, 60 s later {dict(healed)}")
    assert estimate_ms() < SLOW_MS / 4
    assert healed["reviews-v3"] >= 8, healed  # a third is 15
    response = c.get(FAST)
    assert route_of(response).cluster == CLUSTER


@pytest.mark.parametrize("mode", ["sync"])
def test_concurrent_clients_keep_off_the_slow_endpoint(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    """Six threads at once through one transport: the in-flight counts and the estimates work
    together; round robin ignores both."""

    def load(c: Caller) -> Counter[str]:
        def worker(_: int) -> list[str]:
            return [server_of(r) for r in c.many([(SLOW, {})] * 12)]

        with ThreadPoolExecutor(6) as pool:
            return Counter(s for batch in pool.map(worker, range(6)) for s in batch)

    rr = load(caller(bookinfo.mesh_with(rule(None)), seed=7))
    ewma = load(caller(bookinfo.mesh_with(rule("PEAK_EWMA")), seed=7))
    print(f"[peak-ewma] 6 threads x 12: ROUND_ROBIN {dict(rr)}, PEAK_EWMA {dict(ewma)}")
    assert sum(ewma.values()) == sum(rr.values()) == 72
    assert rr["reviews-v3"] == 24
    assert ewma["reviews-v3"] <= 8, ewma
