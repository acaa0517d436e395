"""What the client does on the way: circuit breaking (Istio's circuit-breaking task), outlier
ejection on an injected clock, retries, the route timeout, fault injection, mirrors, and a Mesh
swapped while requests are in flight. Sync and async alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from meshroute.client import MeshTransport
from meshroute.procs import wait_until
from tests.client.conftest import TASKS, Bookinfo, Caller, route_of, server_of
from tests.conftest import SAMPLES

HTTPBIN = "http://httpbin:8000"
REVIEWS = "http://reviews:9080/reviews/0"
SNIPPETS = SAMPLES / "istio-io-task-snippets"


def test_circuit_breaking_task(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    """maxConnections 1, http1MaxPendingRequests 1: of 6 concurrent requests to an upstream that
    takes 300 ms, one runs, one waits as pending, the others get an immediate 503 with
    ``x-envoy-overloaded`` (tasks: Istio's circuit-breaking task, semantics §3.6)."""
    mesh = bookinfo.mesh_with(SNIPPETS / "circuit-breaking" / "httpbin-destination-rule.yaml")
    c = caller(mesh, seed=1)
    results = c.concurrent(f"{HTTPBIN}/sleep/300", 6)
    overloaded = [(r, t) for r, t in results if r.status_code == 503]
    served = [(r, t) for r, t in results if r.status_code == 200]
    assert len(overloaded) + len(served) == 6
    assert len(served) >= 2 and len(overloaded) >= 1, [(r.status_code, t) for r, t in results]
    for r, took in overloaded:
        assert r.headers["x-envoy-overloaded"] == "true"
        assert (route_of(r).flags, route_of(r).attempts) == ("UO", 0)
        assert took < 0.25, "an overflow is answered at once, not after the upstream"
    # The pending request waited for the first one's connection (maxRequestsPerConnection 1).
    assert max(t for _, t in served) >= 0.55
    stats = c.transport.stats("outbound|8000||httpbin.default.svc.cluster.local")
    assert stats is not None
    assert stats["upstream_rq_pending_overflow"] == len(overloaded)
    assert stats["upstream_rq_active"] == stats["upstream_cx_active"] == 0, "everything released"
    assert bookinfo.served("httpbin-v1") == len(served)


OUTLIER = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
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


def test_failing_endpoint_is_ejected_until_base_ejection_time(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    now = [100.0]
    c = caller(bookinfo.mesh_with(OUTLIER), seed=2, clock=lambda: now[0])
    bookinfo.servers["reviews-v2"].status = 500
    # Round robin over three endpoints: v2's third consecutive 500 ejects it.
    first = c.many([(REVIEWS, {})] * 9)
    assert [r.status_code for r in first].count(500) == 3
    assert bookinfo.served("reviews-v2") == 3
    bookinfo.servers["reviews-v2"].status = None  # healthy again, but ejected

    def v2_share(seconds: float, n: int = 12) -> int:
        now[0] = seconds
        got = c.many([(REVIEWS, {})] * n)
        assert {r.status_code for r in got} == {200}
        return sum(server_of(r) == "reviews-v2" for r in got)

    assert v2_share(100.5) == 0
    assert v2_share(115.0) == 0
    assert v2_share(129.5) == 0, "still inside baseEjectionTime (30 s)"
    # The first sweep (every interval, 1 s) after the ejection time brings it back.
    assert v2_share(131.0) == 4
    stats = c.transport.stats("outbound|9080||reviews.default.svc.cluster.local")
    assert stats is not None and stats["ejections_active"] == 0


def test_every_endpoint_ejected_is_no_healthy_upstream(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    c = caller(bookinfo.mesh_with(OUTLIER), seed=2, clock=lambda: 0.0)
    for name in ("reviews-v1", "reviews-v2", "reviews-v3"):
        bookinfo.servers[name].status = 502
    assert {r.status_code for r in c.many([(REVIEWS, {})] * 9)} == {502}
    r = c.get(REVIEWS)
    assert (r.status_code, r.text, route_of(r).flags) == (503, "no healthy upstream", "UH")


RETRIES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{uri: {prefix: /sleep}}]
    timeout: 0.4s
    route: [{destination: {host: httpbin}}]
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: httpbin}}]
"""


def test_retry_recovers_a_failing_first_attempt(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(RETRIES), seed=4)
    r = c.get(f"{HTTPBIN}/flaky/a")
    assert (r.status_code, route_of(r).attempts, route_of(r).flags) == (200, 2, "")
    assert bookinfo.served("httpbin-v1", "/flaky/a") == 2
    # Always failing: 1 + 2 attempts, then the last answer stands.
    r = c.get(f"{HTTPBIN}/status/503")
    assert (r.status_code, route_of(r).attempts, route_of(r).flags) == (503, 3, "URX")
    assert bookinfo.served("httpbin-v1", "/status/503") == 3
    # A body is sent again with the retry, a streamed one too (read once, then sent whole).
    for content in (b"abcd", iter([b"ab", b"cd"])):
        key = f"/flaky/body-{type(content).__name__}"
        r = c.post(f"{HTTPBIN}{key}", content)
        assert (r.status_code, route_of(r).attempts) == (200, 2)
        seen = [h for _, path, h in bookinfo.servers["httpbin-v1"].requests if path == key]
        assert [h.get("content-length") for h in seen] == ["4", "4"], seen
        assert r.json()["method"] == "POST"
    # Istio's default policy (no VirtualService retries) does not retry a 503 answer.
    plain = caller(bookinfo.mesh_with(), seed=4)
    r = plain.get(f"{HTTPBIN}/flaky/b")
    assert (r.status_code, route_of(r).attempts) == (503, 1)


def test_route_timeout_fires(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(RETRIES), seed=4)
    started = time.monotonic()
    r = c.get(f"{HTTPBIN}/sleep/3000")
    took = time.monotonic() - started
    assert (r.status_code, r.text, route_of(r).flags) == (504, "upstream request timeout", "UT")
    assert 0.35 <= took < 2.0, took
    assert c.get(f"{HTTPBIN}/sleep/10").status_code == 200


def test_connect_failure_is_retried_elsewhere_then_ejected(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    """An endpoint nobody listens on: Istio's default retries (connect-failure) send the request
    to another endpoint, and outlier detection counts the failures."""
    gone = """
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v3, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: 1}
  labels: {app: reviews, version: v3}
"""
    c = caller(bookinfo.mesh_with(OUTLIER, gone), seed=9, clock=lambda: 0.0)
    got = c.many([(REVIEWS, {})] * 12)
    assert {r.status_code for r in got} == {200}
    assert {server_of(r) for r in got} == {"reviews-v1", "reviews-v2"}
    assert max(route_of(r).attempts for r in got) == 2


FAULTS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: slow}}}]
    fault: {delay: {fixedDelay: 0.3s, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


def test_fault_abort_and_delay(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    abort = caller(bookinfo.mesh_with(TASKS / "virtual-service-ratings-test-abort.yaml"))
    r = abort.get("http://ratings:9080/ratings/0", {"end-user": "jason"})
    assert (r.status_code, r.text, route_of(r).flags, route_of(r).attempts) == (
        500,
        "fault filter abort",
        "FI",
        0,
    )
    delay = caller(bookinfo.mesh_with(FAULTS))
    started = time.monotonic()
    r = delay.get(REVIEWS, {"end-user": "slow"})
    assert time.monotonic() - started >= 0.3
    assert (r.status_code, server_of(r), route_of(r).flags) == (200, "reviews-v1", "DI")


MIRROR = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 100}
"""


def test_mirror_gets_a_copy(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(MIRROR))
    r = c.get(REVIEWS + "?copy=1", {"x-trace": "t1"})
    assert (r.status_code, server_of(r)) == (200, "reviews-v1")
    v2 = bookinfo.servers["reviews-v2"]
    wait_until(lambda: v2.count("/reviews/0?copy=1") == 1, timeout=5, what="the mirrored copy")
    _, _, headers = v2.requests[0]
    assert headers["host"] == "reviews:9080" and headers["x-trace"] == "t1"
    assert not [h for h in headers if h.startswith("x-meshroute-")]


def test_update_swaps_the_mesh_while_requests_are_in_flight(bookinfo: Bookinfo) -> None:
    to_v1 = bookinfo.mesh_with(TASKS / "virtual-service-reviews-test-v2.yaml")
    to_v3 = bookinfo.mesh_with(TASKS / "virtual-service-reviews-v3.yaml")
    transport = MeshTransport(to_v1, seed=1)
    with httpx.Client(transport=transport) as client:
        slow: list[httpx.Response] = []
        # The slow request: started on the old Mesh, still in flight when the new one arrives.
        sleeper = "http://reviews:9080/sleep/400"
        thread = threading.Thread(target=lambda: slow.append(client.get(sleeper)))
        thread.start()
        wait_until(lambda: bookinfo.served("reviews-v1", "/sleep") == 1, timeout=5, what="the slow request")
        transport.update(to_v3)
        assert transport.mesh is to_v3
        fresh = client.get(REVIEWS)
        thread.join(timeout=5)
    assert (slow[0].status_code, server_of(slow[0])) == (200, "reviews-v1")
    assert (fresh.status_code, server_of(fresh)) == (200, "reviews-v3")


def test_threads_share_one_transport_and_leave_nothing_held(bookinfo: Bookinfo) -> None:
    mesh = bookinfo.mesh_with(OUTLIER.replace("{simple: ROUND_ROBIN}", "{simple: LEAST_REQUEST}"))
    transport = MeshTransport(mesh, seed=3)
    with httpx.Client(transport=transport) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: client.get(f"{REVIEWS}?i={i}").status_code, range(200)))
    assert statuses == [200] * 200
    cluster = "outbound|9080||reviews.default.svc.cluster.local"
    stats = transport.stats(cluster)
    assert stats is not None and (stats["upstream_rq_total"], stats["upstream_rq_active"]) == (200, 0)
    upstream = transport._client.upstreams.cached(cluster)
    assert upstream is not None and [upstream.balancer.active(i) for i in range(3)] == [0, 0, 0]
    assert sum(bookinfo.served(f"reviews-v{v}") for v in (1, 2, 3)) == 200
