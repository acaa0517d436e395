"""Through a real Envoy, with each engine (the embedded module, and `meshroute serve` as its
ext_proc): every decision kind, the control headers a client must not be able to forge, retries,
timeouts, hot reload, the decisions counted per outcome; and what only one engine has: serve down
fails closed (extproc), a route table the module cannot load keeps the old one serving (embedded).

Upstreams are two echo servers (tests/e2e/echo.py); the config is tests/e2e/features.yaml.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from meshroute.envoy.options import EMBEDDED, EXTPROC
from meshroute.procs import ProcessGroup, wait_until
from tests.e2e.engines import only_engine
from tests.e2e.feature_stack import MODULE_PANICS, OUTCOME_REQUESTS, FeatureStack, Response


@pytest.fixture(scope="module")
def features(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStack]:
    work = tmp_path_factory.mktemp(f"features-{engine}")
    with ProcessGroup(work / "logs") as group:
        stack = FeatureStack(work, group, engine=engine, metrics=True)
        try:
            yield stack
        finally:
            stack.close()


def test_route_reaches_the_chosen_subset(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/v2")
    assert r.status == 200
    assert r.json()["server"] == "v1"  # /v2 is a path here; the route sends it to subset v1


def test_gateway_listener_routes_by_gateway_host(features: FeatureStack) -> None:
    r = features.gateway("app.gw.test", "/app/x")
    assert (r.status, r.json()["server"]) == (200, "v2")
    assert r.header("server") == "istio-envoy"  # tasks §9
    # the same request on the mesh listener: the VS is bound to the gateway only
    assert features.mesh("app.gw.test", "/app/x").header("x-echo-server") is None
    # a host the Gateway does not serve: no route (404)
    assert features.gateway("other.example", "/app/x").status == 404


def test_gateways_of_one_proxy_merge_on_one_listener(features: FeatureStack) -> None:
    # edge (*.gw.test, routes app.gw.test) and edge-more (login.gw.test with httpsRedirect,
    # *.more.gw.test) select the same proxy and share port 8081 (semantics §4).
    login = features.gateway("login.gw.test", "/sign-in?next=/a")
    assert (login.status, login.header("location")) == (301, "https://login.gw.test/sign-in?next=/a")
    assert features.echo_v1.count("/sign-in") == 0  # the VirtualService routing it never runs
    # under edge's *.gw.test, routed by a VirtualService bound to edge-more only: the merged view
    more = features.gateway("api.more.gw.test", "/more/x")
    assert (more.status, more.json()["server"]) == (200, "v1")
    assert features.gateway("app.gw.test", "/app/x").json()["server"] == "v2"  # edge's own route
    assert features.gateway("nothing.more.gw.test", "/").status == 404


def test_https_redirect_is_per_virtual_host(features: FeatureStack) -> None:
    # edge-shop redirects *.shop.gw.test; cart.shop.gw.test, more specific, is a host of
    # edge-cart's plain server, whose vhost does not require TLS: routed, not redirected (Istio
    # sets require_tls per virtual host and Envoy picks the most specific domain, semantics §4).
    cart = features.gateway("cart.shop.gw.test", "/cart/x")
    assert (cart.status, cart.json()["server"]) == (200, "v1")
    assert features.echo_v1.count("/cart/x") >= 1
    other = features.gateway("other.shop.gw.test", "/pay?id=1")
    assert (other.status, other.header("location")) == (301, "https://other.shop.gw.test/pay?id=1")
    assert features.echo_v1.count("/pay") + features.echo_v2.count("/pay") == 0


def test_https_gateway_terminates_tls_and_routes(features: FeatureStack) -> None:
    r = features.https("/app/tls")
    assert (r.status, r.header("x-echo-server")) == (200, "v2")
    assert r.json()["headers"]["x-forwarded-proto"] == "https"


def test_consistent_hash_pins_a_key_to_one_endpoint(features: FeatureStack) -> None:
    # DestinationRule consistentHash on x-user: serve passes the key in x-meshroute-hash, Envoy's
    # ring hash picks the endpoint. Same user -> same server; many users -> both servers.
    chosen: dict[str, set[str]] = {}
    for i in range(24):
        user = f"user-{i % 8}"
        server = features.mesh("echo.test", "/hash", {"x-user": user}).header("x-echo-server")
        chosen.setdefault(user, set()).add(str(server))
    assert all(len(servers) == 1 for servers in chosen.values()), chosen
    assert set().union(*chosen.values()) == {"v1", "v2"}
    seen = features.echo_v1.requests + features.echo_v2.requests
    assert all("x-meshroute-hash" not in headers for _, _, headers in seen)


def test_uri_and_authority_rewrite(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/rewrite/a/b?q=1")
    body = r.json()
    assert r.status == 200
    assert body["path"] == "/rewritten/a/b?q=1"
    assert body["headers"]["host"] == "rewritten.test"


def test_redirect_is_answered_by_envoy(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/redirect")
    assert r.status == 302
    assert r.header("location") == "http://other.test/elsewhere"
    assert features.echo_v1.count("/redirect") == 0


def test_direct_response(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/direct")
    assert (r.status, r.body) == (418, b"short and stout")


def test_request_and_response_header_operations(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/headers", {"x-remove-me": "1", "x-add": "client", "x-set": "client"})
    seen = r.json()["headers"]
    assert seen["x-set"] == "set-by-mesh"
    assert "x-remove-me" not in seen
    assert seen["x-add"] in ("client,added-by-mesh", "client, added-by-mesh")
    assert r.header("x-resp") == "from-mesh"
    assert r.header("x-upstream-drop") is None
    assert r.header("x-echo-server") == "v2"


CORS_ORIGIN = "https://app.example"
PREFLIGHT = {
    "origin": CORS_ORIGIN,
    "access-control-request-method": "POST",
    "access-control-request-headers": "x-token",
}


def cors_headers(r: Response) -> dict[str, str]:
    return {k.lower(): v for k, v in r.headers if k.lower().startswith("access-control-")}


def test_cors_preflight_is_answered_by_serve(features: FeatureStack) -> None:
    before = features.echo_v1.count("/cors")
    r = features.mesh("echo.test", "/cors/api", PREFLIGHT, method="OPTIONS")
    assert (r.status, r.body) == (200, b"")
    assert cors_headers(r) == {
        "access-control-allow-origin": CORS_ORIGIN,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "x-token",
        "access-control-max-age": "86400",
        "access-control-expose-headers": "x-echo-server",
    }
    assert features.echo_v1.count("/cors") == before  # never reached the upstream


def test_cors_actual_request_gets_the_response_headers(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/cors/api", {"origin": "https://web.trusted.example"})  # regex origin
    assert (r.status, r.json()["server"]) == (200, "v1")
    assert cors_headers(r) == {
        "access-control-allow-origin": "https://web.trusted.example",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "x-echo-server",
    }
    assert r.header("x-resp") == "from-mesh"  # the route's response ops still apply


@pytest.mark.parametrize("origin", [None, "https://evil.example", "https://web.trusted.example.evil"])
def test_cors_disallowed_or_missing_origin_gets_no_cors_headers(
    features: FeatureStack, origin: str | None
) -> None:
    r = features.mesh("echo.test", "/cors/api", {"origin": origin} if origin else {})
    assert (r.status, r.json()["server"]) == (200, "v1")
    assert cors_headers(r) == {}
    assert r.header("x-resp") == "from-mesh"


def test_cors_disallowed_preflight_is_forwarded_or_ignored(features: FeatureStack) -> None:
    evil = {**PREFLIGHT, "origin": "https://evil.example"}
    before = features.echo_v1.count("/cors")
    r = features.mesh("echo.test", "/cors/api", evil, method="OPTIONS")  # FORWARD (default)
    assert (r.status, r.json()["method"], cors_headers(r)) == (200, "OPTIONS", {})
    assert features.echo_v1.count("/cors") == before + 1
    r = features.mesh("echo.test", "/cors-ignore/api", evil, method="OPTIONS")  # IGNORE
    assert (r.status, r.body) == (200, b"")
    assert cors_headers(r) == {"access-control-allow-methods": "GET,POST", "access-control-max-age": "60"}
    assert features.echo_v1.count("/cors") == before + 1


def test_retry_recovers_from_a_failing_first_attempt(features: FeatureStack) -> None:
    before = features.echo_v1.count("/flaky/one")
    r = features.mesh("echo.test", "/flaky/one")
    assert r.status == 200
    assert features.echo_v1.count("/flaky/one") - before == 2  # 503, then 200


def test_attempts_zero_means_no_retry(features: FeatureStack) -> None:
    before = features.echo_v1.count("/status/503")
    assert features.mesh("echo.test", "/status/503").status == 503
    assert features.echo_v1.count("/status/503") - before == 1


def test_route_timeout(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/sleep/1500")
    assert r.status == 504
    assert 0.25 <= r.seconds < 1.2
    assert features.mesh("echo.test", "/sleep/10").status == 200


def test_no_route_is_404(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/not-routed")
    assert r.status == 404
    assert features.echo_v1.count("/not-routed") + features.echo_v2.count("/not-routed") == 0


def test_undefined_subset_is_503(features: FeatureStack) -> None:
    assert features.mesh("echo.test", "/nosubset").status == 503


def test_mirror_sends_a_copy_to_the_mirror_subset(features: FeatureStack) -> None:
    path = f"/mirror/{uuid.uuid4().hex}"
    # a forged header for another mirror slot must not add a second copy anywhere
    r = features.mesh("echo.test", path, {"x-meshroute-mirror-1": "outbound|80|v1|echo.test"})
    assert (r.status, r.json()["server"]) == (200, "v1")
    wait_until(lambda: features.echo_v2.count(path) == 1, 2.0, "the mirror's copy received")
    [(_, _, shadow)] = [req for req in features.echo_v2.requests if req[1] == path]
    assert shadow["host"] == "echo.test"  # Istio >= 1.28: no "-shadow" suffix
    assert not [k for k in shadow if k.startswith("x-meshroute-")], shadow
    wait_until(lambda: features.upstream_idle("outbound|80|v1|echo.test"), 5.0, "Envoy idle towards v1")
    assert features.echo_v1.count(path) == 1  # the primary only: the forged slot did nothing
    primary = r.json()["headers"]
    assert not [k for k in primary if k.startswith("x-meshroute-") and k != "x-meshroute-mirror-0"]
    # Envoy reads the mirror cluster header after every request-header removal it offers, so the
    # primary keeps the header serve set for the mirror that fired (docs/envoy.md); never a client's.
    assert primary.get("x-meshroute-mirror-0") == "outbound|80|v2|echo.test"


def test_forged_mirror_header_sends_no_copy(features: FeatureStack) -> None:
    path = f"/v1/{uuid.uuid4().hex}"
    forged = {f"x-meshroute-mirror-{i}": "outbound|80|v2|echo.test" for i in range(4)}
    r = features.mesh("echo.test", path, forged)
    assert (r.status, r.json()["server"]) == (200, "v1")
    assert not [k for k in r.json()["headers"] if k.startswith("x-meshroute-")]
    wait_until(lambda: features.upstream_idle("outbound|80|v2|echo.test"), 5.0, "Envoy idle towards v2")
    assert features.echo_v2.count(path) == 0


def test_passthrough_to_an_ip_literal_with_a_port(features: FeatureStack) -> None:
    # Unknown host: the core picks PassthroughCluster (ALLOW_ANY), serve names the address.
    r = features.mesh(f"127.0.0.1:{features.echo_v1.port}", "/passthrough")
    assert (r.status, r.header("x-echo-server")) == (200, "v1")
    assert "x-envoy-original-dst-host" not in r.json()["headers"]
    # a DNS name has no original destination address here: 503, even with a forged header
    assert features.mesh("unknown.example", "/passthrough").status == 503
    forged = {"x-envoy-original-dst-host": f"127.0.0.1:{features.echo_v1.port}"}
    before = features.echo_v1.count("/passthrough")
    assert features.mesh("unknown.example", "/passthrough", forged).status == 503
    assert features.echo_v1.count("/passthrough") == before


FORGED = {
    "x-meshroute-cluster": "outbound|80|v2|echo.test",
    "x-envoy-fault-abort-request": "418",
    "x-envoy-fault-delay-request": "2000",
    "x-envoy-upstream-rq-timeout-ms": "1",
    "x-envoy-max-retries": "5",
    "x-envoy-retry-on": "5xx",
    "x-envoy-original-dst-host": "127.0.0.1:1",
}


@pytest.mark.parametrize("name", sorted(FORGED))
def test_client_cannot_forge_control_headers(features: FeatureStack, name: str) -> None:
    before = features.echo_v1.count("/status/503")
    r = features.mesh("echo.test", "/status/503", {name: FORGED[name]})
    assert r.status == 503  # the echo's own answer: no fault, no other cluster
    assert r.header("x-echo-server") == "v1"
    assert r.seconds < 1.5
    assert features.echo_v1.count("/status/503") - before == 1  # no forged retries
    seen = features.echo_v1.requests[-1][2]
    assert "x-meshroute-cluster" not in seen


def test_all_forged_headers_at_once(features: FeatureStack) -> None:
    r = features.mesh("echo.test", "/v1", FORGED)
    assert (r.status, r.header("x-echo-server")) == (200, "v1")


def test_hot_reload_applies_good_config_and_keeps_last_good_on_bad(features: FeatureStack) -> None:
    route_v2 = features.config_text.replace(
        "  - name: only-known\n    match: [{uri: {prefix: /v1}}, {uri: {prefix: /v2}}, {uri: {exact: /}}]\n"
        "    route: [{destination: {host: echo.test, subset: v1}}]",
        "  - name: only-known\n    match: [{uri: {prefix: /v1}}, {uri: {prefix: /v2}}, {uri: {exact: /}}]\n"
        "    route: [{destination: {host: echo.test, subset: v2}}]",
    )
    assert route_v2 != features.config_text
    try:
        with features.traffic("echo.test", "/v1") as load:
            features.apply(route_v2)
            assert features.mesh("echo.test", "/v1").header("x-echo-server") == "v2"
            broken = "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
            bad = features.apply(route_v2 + broken + "spec: {hosts: [], http: [{}]}\n", ok=False)
            assert bad["ok"] is False and bad["errors"]
            assert features.mesh("echo.test", "/v1").header("x-echo-server") == "v2"
        assert load.sent >= 20
        assert load.failed == [], load.failed
    finally:
        features.apply(features.config_text)


@only_engine(EXTPROC)
def test_extproc_down_fails_closed(features: FeatureStack) -> None:
    features.stop_serve()
    before = features.echo_v2.count("/v1")
    try:
        r = features.mesh("echo.test", "/v1", {"x-meshroute-cluster": "outbound|80|v2|echo.test"})
        assert r.status == 503  # status_on_error; never the client's chosen cluster
        assert features.echo_v2.count("/v1") == before
    finally:
        features.start_serve()
    assert features.mesh("echo.test", "/v1").status == 200


@only_engine(EXTPROC)
def test_envoy_stats_show_one_stream_per_request(features: FeatureStack) -> None:
    stats = features.envoy_stats()
    started = sum(v for k, v in stats.items() if k.endswith("streams_started"))
    assert started > 0, sorted(k for k in stats if "ext_proc" in k)
    assert json.dumps(stats)  # stats are plain numbers


def test_circuit_breaker_rejects_overflow_immediately(features: FeatureStack) -> None:
    # tasks §6: maxConnections 1 + http1MaxPendingRequests 1 -> one request in flight, one
    # waiting; every other concurrent request gets a local 503 with x-envoy-overloaded at once.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: features.mesh("cb.test", "/sleep/800"), range(5)))
    ok = [r for r in results if r.status == 200]
    overflow = [r for r in results if r.status == 503]
    assert len(ok) + len(overflow) == 5
    assert 1 <= len(ok) <= 2, [(r.status, r.seconds) for r in results]
    assert all(r.header("x-envoy-overloaded") == "true" and r.seconds < 0.5 for r in overflow)
    stats = features.envoy_stats()
    assert stats["cluster.outbound|80||cb.test.upstream_rq_pending_overflow"] >= len(overflow) >= 3


def test_outlier_detection_ejects_the_failing_endpoint(features: FeatureStack) -> None:
    # od.test: v1 answers /fail-on/v1 with 503, v2 with 200; one 5xx ejects v1 for 30 s.
    statuses = [features.mesh("od.test", "/fail-on/v1").status for _ in range(20)]
    assert statuses.count(503) <= 2, statuses  # before the ejection took effect
    assert statuses[-10:] == [200] * 10
    stats = features.envoy_stats()
    assert stats["cluster.outbound|80||od.test.outlier_detection.ejections_enforced_total"] >= 1


def test_dns_resolution_serviceentry(features: FeatureStack) -> None:
    r = features.mesh("dns.test", "/x")
    assert (r.status, r.header("x-echo-server")) == (200, "v2")


def test_kubernetes_service_endpoints(features: FeatureStack) -> None:
    for host in ("k8s-echo", "k8s-echo.default.svc.cluster.local:9080"):
        r = features.mesh(host, "/x")
        assert (r.status, r.header("x-echo-server")) == (200, "v1"), host


def test_consistent_hash_on_source_ip(features: FeatureStack) -> None:
    # Every test client is 127.0.0.1: one endpoint for all (by chance: 2^-19 for 20 requests).
    servers = {features.mesh("sticky.test", "/x").header("x-echo-server") for _ in range(20)}
    assert len(servers) == 1 and servers <= {"v1", "v2"}, servers


def test_decisions_are_counted_per_outcome(features: FeatureStack) -> None:
    """serve's ``meshroute_decisions_total`` (extproc) or the module's ``meshroute_decisions`` on
    Envoy's /stats/prometheus (embedded): one count per request, under its outcome."""
    before = features.decisions()
    for outcome, (send, status, count) in OUTCOME_REQUESTS.items():
        for _ in range(count):
            assert send(features).status == status, outcome
    # Counted before the answer is applied: what Envoy answered is already on the page.
    after = features.decisions()
    sent = {outcome: count for outcome, (_, _, count) in OUTCOME_REQUESTS.items()}
    assert {o: after.get(o, 0) - before.get(o, 0) for o in sent} == sent
    if features.engine == EMBEDDED:
        assert features.prometheus()[(MODULE_PANICS, ())] == 0
    else:
        assert features.metrics()[("meshroute_stream_failures_total", ())] == 0


@only_engine(EMBEDDED)
def test_table_the_module_cannot_load_keeps_the_old_table_serving(features: FeatureStack) -> None:
    """The embedded counterpart of a config serve rejects: a route table the module refuses (an
    invalid IR written to the live files, as if the compiler had produced it) is rejected by Envoy
    for every listener's filter config, and the table before it keeps deciding."""
    assert features.updates is not None
    with features.traffic("echo.test", "/v1") as load:
        bad = features.updates.update(ir_json='{"routes": 3}')
        assert bad["ok"] is False, bad
        assert "Envoy rejected ecds-meshroute-mesh.yaml" in bad["errors"][0], bad
        assert features.mesh("echo.test", "/v1").header("x-echo-server") == "v1"
        assert features.gateway("app.gw.test", "/app/x").header("x-echo-server") == "v2"
    assert load.sent >= 20
    assert load.failed == [], load.failed
    stats = features.envoy_stats()
    assert stats["extension_config_discovery.http_filter.meshroute-mesh.config_fail"] >= 1
    assert features.envoy.alive()
    # the module's reason, on Envoy's log
    assert 'meshroute: filter "meshroute": config rejected: table' in features.envoy.log.read_text()
    assert "invalid IR" in features.envoy.log.read_text()
    good = features.apply(features.config_text)  # the compiled table again: accepted
    assert good["ok"] is True and good["generation"] > bad["generation"]
    assert features.mesh("echo.test", "/redirect").status == 302
