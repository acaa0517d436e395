"""Routing through the proxyless client: Bookinfo's request-routing and traffic-shifting tasks
(tasks §1, §2), consistent hashing, local answers, what the upstream sees. Each test runs on the
sync and the async transport."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from tests.client.conftest import TASKS, Bookinfo, Caller, route_of, server_of

REVIEWS = "http://reviews:9080/reviews/0"
V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
V2 = "outbound|9080|v2|reviews.default.svc.cluster.local"


def test_jason_goes_to_v2_everyone_else_to_v1(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(TASKS / "virtual-service-reviews-test-v2.yaml"), seed=1)
    jason = c.many([(REVIEWS, {"end-user": "jason"})] * 10)
    others = c.many([(REVIEWS, {"end-user": user}) for user in ("", "alice", "Jason", "bob")] * 3)
    assert {(r.status_code, server_of(r), route_of(r).cluster) for r in jason} == {(200, "reviews-v2", V2)}
    assert {(r.status_code, server_of(r), route_of(r).cluster) for r in others} == {(200, "reviews-v1", V1)}
    info = route_of(jason[0])
    assert (info.outcome, info.endpoint, info.attempts, info.flags) == (
        "route",
        f"127.0.0.1:{bookinfo.servers['reviews-v2'].port}",
        1,
        "",
    )


def binomial_bounds(n: int, p: float, alpha: float) -> tuple[int, int, float]:
    """The narrowest [lo, hi] with P(X < lo) < alpha/2 and P(X > hi) < alpha/2, X ~ B(n, p), and
    P(X outside [lo, hi]): the probability that a correct 80/20 split fails the test."""
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    lo, hi = 0, n
    while sum(pmf[: lo + 1]) < alpha / 2:
        lo += 1
    while sum(pmf[hi:]) < alpha / 2:
        hi -= 1
    return lo, hi, sum(pmf[:lo]) + sum(pmf[hi + 1 :])


def test_80_20_split_within_binomial_tolerance(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    n = 400
    lo, hi, false_failure = binomial_bounds(n, 0.2, 1e-4)
    assert false_failure < 1e-4, (lo, hi, false_failure)
    c = caller(bookinfo.mesh_with(TASKS / "virtual-service-reviews-80-20.yaml"), seed=7)
    got = Counter(server_of(r) for r in c.many([(REVIEWS, {})] * n))
    assert set(got) == {"reviews-v1", "reviews-v2"}
    assert lo <= got["reviews-v2"] <= hi, (got, lo, hi)


def test_binomial_bounds_are_what_they_claim() -> None:
    lo, hi, p = binomial_bounds(400, 0.2, 1e-4)
    assert (lo, hi) == (50, 112) and p < 1e-4  # mean 80, sd 8: about ±4 sd


CONSISTENT_HASH = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: end-user}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""


def test_consistent_hash_pins_each_user(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(CONSISTENT_HASH), seed=3)
    users = [f"user-{i}" for i in range(12)]
    responses = c.many([(REVIEWS, {"end-user": u}) for u in users] * 5)
    by_user: dict[str, set[str]] = {}
    for i, r in enumerate(responses):
        assert r.status_code == 200
        by_user.setdefault(users[i % len(users)], set()).add(server_of(r))
    assert all(len(servers) == 1 for servers in by_user.values()), by_user
    # 12 users on 3 endpoints: all on one would be a hashing bug (probability 3^-11).
    assert len(set().union(*by_user.values())) > 1
    # The hash key is the client's own business: the upstream never sees x-meshroute-hash.
    assert all("x-meshroute-hash" not in h for s in bookinfo.servers.values() for _, _, h in s.requests)


COOKIE_HASH = CONSISTENT_HASH.replace(
    "consistentHash: {httpHeaderName: end-user}",
    "consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}",
)


def test_generated_cookie_pins_the_client(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(COOKIE_HASH), seed=5)
    first = c.get(REVIEWS)
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("session=") and "Max-Age=60" in cookie and "Path=/" in cookie, cookie
    # The client (httpx's cookie jar) sends it back: every later request sticks to one endpoint.
    later = c.many([(REVIEWS, {})] * 15)
    assert {server_of(r) for r in later} == {server_of(first)}
    assert all("set-cookie" not in r.headers for r in later)


def test_source_ip_hash_pins_the_client(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    mesh = bookinfo.mesh_with(CONSISTENT_HASH.replace("{httpHeaderName: end-user}", "{useSourceIp: true}"))
    picked = set()
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"):
        c = caller(mesh, seed=1, source_ip=ip)
        servers = {server_of(r) for r in c.many([(REVIEWS, {"end-user": str(i)}) for i in range(6)])}
        assert len(servers) == 1, (ip, servers)  # one client, one endpoint, whatever the request
        picked |= servers
    assert len(picked) > 1, "six clients on three endpoints all on one (probability 3^-5)"


def test_upstream_sees_the_request_not_the_control_headers(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    c = caller(bookinfo.mesh_with(TASKS / "virtual-service-reviews-test-v2.yaml"), seed=1)
    forged = {
        "x-meshroute-cluster": "outbound|9080|v3|reviews.default.svc.cluster.local",
        "x-envoy-max-retries": "9",
    }
    r = c.get(REVIEWS + "?q=1", {**forged, "x-custom": "kept"})
    assert (r.status_code, server_of(r)) == (200, "reviews-v1")
    seen = r.json()
    assert seen["path"] == "/reviews/0?q=1"
    assert seen["headers"]["host"] == "reviews:9080"
    assert seen["headers"]["x-custom"] == "kept"
    assert not [h for h in seen["headers"] if h.startswith(("x-meshroute-", "x-envoy-"))]


HEADER_OPS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new, authority: reviews.internal}
    headers:
      request: {set: {x-set: one}, add: {x-added: two}, remove: [x-drop]}
      response: {set: {x-answer: three}, remove: [x-upstream-drop]}
    route: [{destination: {host: reviews, subset: v1}}]
"""


def test_rewrites_and_header_operations(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    c = caller(bookinfo.mesh_with(HEADER_OPS))
    r = c.get("http://reviews:9080/old/x?q=1", {"x-drop": "gone", "x-set": "client's"})
    assert (r.status_code, server_of(r)) == (200, "reviews-v1")
    seen = r.json()
    assert seen["path"] == "/new/x?q=1"
    assert seen["headers"]["host"] == "reviews.internal"
    assert (seen["headers"]["x-set"], seen["headers"]["x-added"]) == ("one", "two")
    assert "x-drop" not in seen["headers"]
    assert r.headers["x-answer"] == "three" and "x-upstream-drop" not in r.headers


def test_local_answers(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    no_route = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /only}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /moved}}]
    redirect: {uri: /elsewhere}
"""
    c = caller(bookinfo.mesh_with(no_route))
    missing = c.get(REVIEWS)
    assert (missing.status_code, route_of(missing).outcome, route_of(missing).flags) == (
        404,
        "no_route",
        "NR",
    )
    moved = c.get("http://reviews:9080/moved")
    assert moved.status_code == 301 and moved.headers["location"] == "http://reviews:9080/elsewhere"
    # ratings has no endpoint in this config: Envoy's 503 "no healthy upstream".
    empty = c.get("http://ratings:9080/ratings/0")
    assert (empty.status_code, empty.text, route_of(empty).flags) == (503, "no healthy upstream", "UH")


def test_dns_service_entries_resolve_when_the_request_connects(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    port = bookinfo.servers["httpbin-v1"].port
    entries = f"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.test]
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {port}}}]
  resolution: DNS
  endpoints: [{{address: localhost}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: self, namespace: default}}
spec:
  hosts: [localhost]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: DNS
"""
    c = caller(bookinfo.mesh_with(entries))
    r = c.get("http://api.example.test/one")
    assert (r.status_code, server_of(r), r.json()["headers"]["host"]) == (
        200,
        "httpbin-v1",
        "api.example.test",
    )
    assert (route_of(r).cluster, route_of(r).endpoint) == (
        "outbound|80||api.example.test",
        f"localhost:{port}",
    )
    # No endpoints: the host itself is resolved (semantics §5).
    r = c.get(f"http://localhost:{port}/two")
    assert (r.status_code, route_of(r).cluster) == (200, f"outbound|{port}||localhost")


def test_unknown_hosts_follow_the_outbound_traffic_policy(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    port = bookinfo.servers["httpbin-v1"].port
    allow = caller(bookinfo.mesh_with())
    r = allow.get(f"http://localhost:{port}/plain")
    assert (r.status_code, server_of(r), route_of(r).cluster) == (200, "httpbin-v1", "PassthroughCluster")
    registry_only = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    strict = caller(bookinfo.mesh_with(registry_only))
    r = strict.get(f"http://localhost:{port}/plain")
    assert (r.status_code, route_of(r).outcome) == (502, "no_cluster")
    assert bookinfo.served("httpbin-v1") == 1


SELECTED_CANARY = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-canary-clients, namespace: default}
spec:
  host: reviews
  workloadSelector: {matchLabels: {track: canary}}
  subsets: [{name: canary, labels: {version: v3}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {track: canary}}]
    route: [{destination: {host: reviews, subset: canary}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


def test_a_selector_destination_rule_gives_the_client_it_selects_its_subsets(
    bookinfo: Bookinfo, caller: Callable[..., Caller]
) -> None:
    """DestinationRule workloadSelector (semantics §3.1): the subset exists for the selected
    client's clusters only; everyone else keeps the namespace's rule (v1)."""
    mesh = bookinfo.mesh_with(SELECTED_CANARY)
    canary = caller(mesh, seed=1, source_labels={"app": "productpage", "track": "canary"})
    assert {server_of(r) for r in canary.many([("http://reviews:9080/reviews/0", {})] * 4)} == {"reviews-v3"}
    plain = caller(mesh, seed=1, source_labels={"app": "productpage"})
    assert {server_of(r) for r in plain.many([("http://reviews:9080/reviews/0", {})] * 4)} == {"reviews-v1"}
