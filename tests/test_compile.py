"""compile_config: resources -> the docs/ir.md IR. Bookinfo end to end, then one behaviour per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from meshroute.compile import compile_config

# compile_helpers first: it makes meshroute importable while the Rust extension is not built.
from tests.compile_helpers import (
    BOOKINFO,
    BOOKINFO_APP,
    BOOKINFO_DRS,
    SNIPPETS,
    clusters,
    codes,
    compile_all,
    files,
    resources,
    service,
    view_id,
    walk,
)

NET = BOOKINFO / "networking"
REVIEWS = "reviews.default.svc.cluster.local"
GW = "default/bookinfo-gateway"


def bookinfo(*extra: Path) -> dict[str, Any]:
    ir, diags = compile_all(files(BOOKINFO_APP, BOOKINFO_DRS, NET / "bookinfo-gateway.yaml", *extra))
    assert not [d.render() for d in diags if d.is_error]
    return ir


def cluster_of(result: dict[str, Any], index: int = 0) -> str:
    t = result["targets"][index]
    return f"outbound|{t['port']}|{t['subset'] or ''}|{t['host']}"


# --- the IR's shape (Rust rejects unknown fields) ------------------------------------------------

TOP_KEYS = {
    "version",
    "virtual_services",
    "gateways",
    "targets",
    "policies",
    "scopes",
    "routes",
    "views",
    "mesh",
    "gateway_views",
    "gateway_servers",
    "default_extra",
}
VIEW_KEYS = {"gateway", "namespace", "scope", "ports", "https_redirect_hosts", "unknown_host", "vhosts"}
ROUTE_KEYS = {"vs", "index", "name", "matches", "action", "rewrite", "fault", "response_headers", "extra"}
MATCH_KEYS = {
    "name",
    "uri",
    "ignore_uri_case",
    "scheme",
    "method",
    "authority",
    "headers",
    "without_headers",
    "query_params",
    "gateways",
    "port",
    "source_labels",
    "source_namespace",
}
DEST_KEYS = {"target", "weight", "request_headers", "response_headers", "authority"}


def check_shape(ir: dict[str, Any]) -> None:
    assert set(ir) == TOP_KEYS and ir["version"] == 1
    assert ir["gateways"][0] == "mesh" and ir["policies"][0] == "{}"
    json.dumps(ir)  # JSON-able
    for policy in ir["policies"]:
        json.loads(policy)
    for view in ir["views"]:
        assert set(view) == VIEW_KEYS and 0 <= view["scope"] < len(ir["scopes"])
        for vh in view["vhosts"]:
            keys = {"domains", "routes", "default_target", "default_port"}
            assert keys <= set(vh) <= keys | {"ports"}  # ports: absent = every port
            assert all(0 <= r < len(ir["routes"]) for r in vh["routes"])
            assert all(d == d.lower() for d in vh["domains"])
    for scope in ir["scopes"]:
        for tid, _port, pid in scope["clusters"]:
            assert 0 <= tid < len(ir["targets"]) and 0 <= pid < len(ir["policies"])
    for route in ir["routes"]:
        assert set(route) == ROUTE_KEYS
        for m in route["matches"]:
            assert set(m) == MATCH_KEYS and m["gateways"]
        for d in route["action"].get("route", {}).get("destinations", []):
            assert set(d) == DEST_KEYS and d["weight"] > 0
    views = [ns["default_view"] for ns in ir["mesh"]["namespaces"].values()]
    views += [p for g in ir["gateway_views"].values() for p in g.values()] + [ir["mesh"]["other_view"]]
    assert all(0 <= v < len(ir["views"]) for v in views)


SAMPLES = sorted(p.name for p in NET.glob("virtual-service-*.yaml"))


@pytest.mark.parametrize("name", SAMPLES)
def test_every_bookinfo_virtual_service_compiles_with_clusters_for_its_routes(name: str) -> None:
    ir = bookinfo(NET / name)
    check_shape(ir)
    view = view_id(ir)
    existing = clusters(ir, view)
    for vh in ir["views"][view]["vhosts"]:
        for rid in vh["routes"]:
            for d in ir["routes"][rid]["action"]["route"]["destinations"]:
                t = ir["targets"][d["target"]]
                assert f"outbound|9080|{t['subset'] or ''}|{t['host']}" in existing


def test_bookinfo_baseline_default_routes_and_gateway() -> None:
    ir = bookinfo()
    result = walk(ir, "reviews", "/reviews/0")
    assert result["outcome"] == "default" and result["targets"][0]["host"] == REVIEWS
    vh = next(v for v in ir["views"][view_id(ir)]["vhosts"] if REVIEWS in v["domains"])
    # Istio's generateVirtualHostDomains order: the host, its absolute form, then the short names
    # (own namespace: name, name.ns.svc, name.ns); Bookinfo's services set no clusterIP.
    assert vh["domains"] == [REVIEWS, f"{REVIEWS}.", "reviews", "reviews.default.svc", "reviews.default"]
    assert vh["default_port"] == 9080
    assert {f"outbound|9080|{s}|{REVIEWS}" for s in ("", "v1", "v2", "v3")} - set(clusters(ir, 0)) == {
        f"outbound|9080|{s}|{REVIEWS}" for s in ("v1", "v2", "v3")
    }  # only referenced targets exist
    page = walk(ir, "anything.example", "/productpage", gateway=GW)
    assert (
        page["outcome"] == "route"
        and cluster_of(page) == "outbound|9080||productpage.default.svc.cluster.local"
    )
    assert walk(ir, "x", "/static/css", gateway=GW)["outcome"] == "route"
    assert walk(ir, "x", "/other", gateway=GW)["outcome"] == "no_route"
    # The Gateway resource's view, and its proxy's (the workload it selects, semantics §4): the
    # same routes, the workload's blocks bound to the workload.
    workload = "workload:default/istio=ingressgateway"
    assert ir["gateway_views"] == {GW: {"8080": view_id(ir, GW)}, workload: {"8080": view_id(ir, workload)}}
    assert ir["views"][view_id(ir, GW)]["ports"] == [8080]
    assert ir["views"][view_id(ir, workload)]["ports"] == [8080]
    for host, path in [("anything.example", "/productpage"), ("x", "/static/css"), ("x", "/other")]:
        merged, alone = walk(ir, host, path, gateway=workload), walk(ir, host, path, gateway=GW)
        assert (merged["outcome"], merged.get("targets")) == (alone["outcome"], alone.get("targets"))
    assert ir["gateway_servers"] == [[8080, ["*"], workload]]


def test_request_routing_all_v1_then_jason_to_v2() -> None:
    ir = bookinfo(NET / "virtual-service-all-v1.yaml")
    assert cluster_of(walk(ir, "reviews", "/")) == f"outbound|9080|v1|{REVIEWS}"
    ir = bookinfo(NET / "virtual-service-all-v1.yaml", NET / "virtual-service-reviews-test-v2.yaml")
    assert cluster_of(walk(ir, "reviews", "/", {"end-user": "jason"})) == f"outbound|9080|v2|{REVIEWS}"
    for headers in ({}, {"end-user": "Jason"}, {"end-user": "jason2"}):
        assert cluster_of(walk(ir, "reviews.default", "/", headers)) == f"outbound|9080|v1|{REVIEWS}"
    assert f"outbound|9080|v2|{REVIEWS}" in clusters(ir, view_id(ir))
    # the later file's `reviews` replaced the one from all-v1 (like kubectl apply)
    assert ir["virtual_services"].count({"namespace": "default", "name": "reviews"}) == 1
    route = walk(ir, "reviews", "/", {"end-user": "jason"})["route"]
    assert route["matches"][0]["headers"] == [{"name": "end-user", "match": {"exact": "jason"}}]


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("virtual-service-reviews-50-v3.yaml", [("v1", 50), ("v3", 50)]),
        ("virtual-service-reviews-80-20.yaml", [("v1", 80), ("v2", 20)]),
        ("virtual-service-reviews-90-10.yaml", [("v1", 90), ("v2", 10)]),
        ("virtual-service-reviews-v2-v3.yaml", [("v2", 50), ("v3", 50)]),
    ],
)
def test_traffic_shifting_weights(name: str, weights: list[tuple[str, int]]) -> None:
    result = walk(bookinfo(NET / name), "reviews", "/")
    assert [(t["subset"], t["weight"]) for t in result["targets"]] == weights


def test_fault_injection_delay_and_abort() -> None:
    ir = bookinfo(NET / "virtual-service-ratings-test-delay.yaml")
    jason = walk(ir, "ratings", "/ratings/0", {"end-user": "jason"})["route"]
    assert jason["fault"] == {"delay": {"fixed_delay_ms": 7000, "per_million": 1_000_000}, "abort": None}
    assert walk(ir, "ratings", "/ratings/0")["route"]["fault"] is None
    ir = bookinfo(NET / "virtual-service-ratings-test-abort.yaml")
    jason = walk(ir, "ratings", "/", {"end-user": "jason"})["route"]
    assert jason["fault"]["abort"] == {"http_status": 500, "grpc_status": None, "per_million": 1_000_000}
    ir = bookinfo(NET / "fault-injection-details-v1.yaml")
    assert walk(ir, "details", "/")["route"]["fault"]["abort"]["http_status"] == 555


def test_request_timeout_inline_vs() -> None:
    snippets = SNIPPETS / "request-timeouts"
    ir = bookinfo(snippets / "ratings-delay-2s.yaml", snippets / "reviews-v2-timeout-0.5s.yaml")
    route = walk(ir, "reviews", "/")["route"]
    assert route["extra"]["timeout_ms"] == 500
    assert route["extra"]["retries"]["attempts"] == 2
    ratings = walk(ir, "ratings", "/")["route"]
    assert ratings["extra"]["timeout_ms"] is None
    assert ratings["fault"]["delay"] == {"fixed_delay_ms": 2000, "per_million": 1_000_000}
    assert ir["default_extra"]["retries"]["retry_on"].startswith("connect-failure,refused-stream")


# --- gateways -------------------------------------------------------------------------------------

GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["app/*.example.com"]
    tls: {mode: SIMPLE, credentialName: c}
"""


def gw_vs(name: str, ns: str, hosts: str, http: str, extra: str = "") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, "
        f"namespace: {ns}}}\nspec:\n  hosts: {hosts}\n  gateways: [istio-system/gw]\n{extra}  http:\n{http}"
    )


def test_gateway_merges_vss_per_host_and_moves_catch_alls_last() -> None:
    first = gw_vs(
        "a",
        "app",
        "[shop.example.com]",
        "  - route: [{destination: {host: a}}]\n"
        "  - match: [{uri: {prefix: /never}}]\n    route: [{destination: {host: a}}]\n",
    )
    second = gw_vs(
        "b",
        "app",
        "[shop.example.com]",
        "  - match: [{uri: {prefix: /b}}, {uri: {prefix: /}}]\n    route: [{destination: {host: b}}]\n",
    )
    third = gw_vs(
        "c",
        "app",
        "[shop.example.com]",
        "  - match: [{uri: {prefix: /c}}]\n    route: [{destination: {host: c}}]\n",
    )
    ir, diags = compile_all(
        resources(
            GATEWAY, service("a", "app"), service("b", "app"), service("c", "app"), first, second, third
        )
    )
    assert not [d for d in diags if d.is_error]
    check_shape(ir)
    host = "shop.example.com"

    def target(path: str) -> str:
        res = walk(ir, host, path, gateway="istio-system/gw", port=80)
        return str(res["targets"][0]["host"].split(".")[0])

    assert (target("/b/x"), target("/c"), target("/never"), target("/zzz")) == ("b", "c", "a", "a")
    vid = view_id(ir, "istio-system/gw", port=80)
    [vh] = ir["views"][vid]["vhosts"]
    order = [(ir["routes"][r]["vs"], [m["uri"] for m in ir["routes"][r]["matches"]]) for r in vh["routes"]]
    a, b, c = (ir["virtual_services"].index({"namespace": "app", "name": n}) for n in "abc")
    assert order == [
        (b, [{"prefix": "/b"}]),
        (c, [{"prefix": "/c"}]),
        (a, []),  # a's catch-all, a's later route dropped (unreachable in Istio too)
        (b, [{"prefix": "/b"}, {"prefix": "/"}]),  # the split copy keeps match index 1 for "/"
    ]


def test_gateway_server_host_namespace_and_domains() -> None:
    shop = gw_vs("shop", "app", "['*.example.com']", "  - route: [{destination: {host: a}}]\n")
    other = gw_vs(
        "other",
        "elsewhere",
        "[x.example.com]",
        "  - route: [{destination: {host: a.app.svc.cluster.local}}]\n",
    )
    ir, _ = compile_all(resources(GATEWAY, service("a", "app"), shop, other))
    https = ir["views"][view_id(ir, "istio-system/gw", port=443)]
    assert sorted(d for vh in https["vhosts"] for d in vh["domains"]) == ["*.example.com"]  # "app/" only
    http = ir["views"][view_id(ir, "istio-system/gw", port=80)]
    assert sorted(d for vh in http["vhosts"] for d in vh["domains"]) == ["*.example.com", "x.example.com"]
    assert http["unknown_host"] == "not_found"


def test_https_redirect_and_vs_not_exported_to_gateway_namespace() -> None:
    gw = GATEWAY.replace('    hosts: ["*"]\n', '    hosts: ["*"]\n    tls: {httpsRedirect: true}\n', 1)
    hidden = gw_vs(
        "hidden",
        "app",
        "[a.example.com]",
        "  - route: [{destination: {host: a}}]\n",
        extra="  exportTo: ['.']\n",
    )
    ir, _ = compile_all(resources(gw, service("a", "app"), hidden))
    view = ir["views"][view_id(ir, "istio-system/gw", port=80)]
    assert view["https_redirect_hosts"] == ["*"] and view["vhosts"] == []
    assert ir["views"][view_id(ir, "istio-system/gw", port=443)]["https_redirect_hosts"] == []
    assert ir["views"][view_id(ir)]["https_redirect_hosts"] == []


def test_https_redirect_hosts_are_those_of_the_redirecting_servers_only() -> None:
    gw = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http-secure, protocol: HTTP}
    hosts: ["app/secure.example.com", "./*.admin.example.com"]
    tls: {httpsRedirect: true}
  - port: {number: 80, name: http-plain, protocol: HTTP}
    hosts: [plain.example.com]
  - port: {number: 80, name: http-again, protocol: HTTP}
    hosts: ["*/secure.example.com"]
    tls: {httpsRedirect: true}
"""
    ir, _ = compile_all(resources(gw))
    view = ir["views"][view_id(ir, "istio-system/gw", port=80)]
    # The `ns/` part filters VirtualServices only; duplicates are dropped, order kept.
    assert view["https_redirect_hosts"] == ["secure.example.com", "*.admin.example.com"]


def test_match_gateways_override_vs_gateways_and_drop_source_filters() -> None:
    text = gw_vs(
        "v",
        "app",
        "[a]",
        """  - match:
    - {uri: {prefix: /mesh}, gateways: [mesh], sourceLabels: {app: x}, sourceNamespace: app}
    - {uri: {prefix: /gw}, sourceLabels: {app: y}}
    route: [{destination: {host: a}}]
""",
    )
    ir, _ = compile_all(resources(GATEWAY, service("a", "app"), text))
    route = walk(ir, "a", "/mesh", ns="app")["route"]
    mesh_block, gw_block = route["matches"]
    assert (mesh_block["gateways"], mesh_block["source_labels"], mesh_block["source_namespace"]) == (
        [0],
        {},
        None,
    )
    assert gw_block["gateways"] == [ir["gateways"].index("istio-system/gw")]
    assert gw_block["source_labels"] == {"app": "y"}


# --- mesh views: precedence, visibility, Sidecar ----------------------------------------------


def mesh_vs(name: str, ns: str, hosts: str, http: str, extra: str = "") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, "
        f"namespace: {ns}}}\nspec:\n  hosts: {hosts}\n{extra}  http:\n{http}"
    )


TO_V = "  - route: [{{destination: {{host: r.a.svc.cluster.local, port: {{number: {port}}}}}}}]\n"


def test_sidecar_uses_one_vs_per_host_by_precedence() -> None:
    old = mesh_vs("old", "a", "[r.a.svc.cluster.local]", TO_V.format(port=1))
    new = mesh_vs("new", "b", "[r.a.svc.cluster.local]", TO_V.format(port=2))
    private = mesh_vs("private", "c", "[r.a.svc.cluster.local]", TO_V.format(port=3), "  exportTo: ['.']\n")
    ir, diags = compile_all(resources(service("r", "a", ports=(1, 2, 3)), old, new, private))
    # Istio's analyzer (ConflictingMeshGatewayHostsAnalyzer) reports every VS of a conflict, the
    # one sidecars use included: old, new (both exported everywhere) and private (exported to c,
    # which the public ones reach too).
    assert codes(diags).count("vs-duplicate-mesh-host") == 3
    assert walk(ir, "r.a", "/", ns="a")["targets"][0]["port"] == 1
    assert walk(ir, "r.a", "/", ns="c")["targets"][0]["port"] == 3  # own-namespace-only VS first
    assert walk(ir, "r.a", "/", ns="zzz")["targets"][0]["port"] == 1  # other_view


def test_export_to_hides_vs_and_service_from_other_namespaces() -> None:
    private_vs = mesh_vs("r", "a", "[r]", TO_V.format(port=80), "  exportTo: ['.']\n")
    hidden = service("h", "a", extra=", annotations: {networking.istio.io/exportTo: '.'}")
    ir, _ = compile_all(resources(service("r", "a"), hidden, private_vs, service("client", "b")))
    assert walk(ir, "r", "/", ns="a")["outcome"] == "route"
    assert walk(ir, "r.a", "/", ns="b")["outcome"] == "default"  # VS invisible: default route
    assert walk(ir, "r", "/", ns="b")["outcome"] == "passthrough"  # no bare alias across namespaces
    assert walk(ir, "h.a", "/", ns="b")["outcome"] == "passthrough"
    assert "outbound|80||h.a.svc.cluster.local" not in clusters(ir, view_id(ir, ns="b"))
    assert "outbound|80||h.a.svc.cluster.local" in clusters(ir, view_id(ir, ns="a"))


def test_sidecar_egress_and_outbound_policy_and_selector_views() -> None:
    sidecars = """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: b}
spec:
  egress: [{hosts: ["./*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: special, namespace: b}
spec:
  workloadSelector: {labels: {app: special}}
  egress: [{hosts: ["a/*"]}]
"""
    vs_text = mesh_vs("r", "a", "[r]", TO_V.format(port=80))
    ir, _ = compile_all(resources(service("r", "a"), service("own", "b"), vs_text, sidecars))
    entry = ir["mesh"]["namespaces"]["b"]
    assert [s["labels"] for s in entry["sidecars"]] == [{"app": "special"}]
    assert walk(ir, "r.a", "/", ns="b")["outcome"] == "blackhole"  # not imported, REGISTRY_ONLY
    assert walk(ir, "own", "/", ns="b")["outcome"] == "default"
    special = walk(ir, "r.a", "/", ns="b", labels={"app": "special", "v": "1"})
    assert special["outcome"] == "route" and ir["views"][special["view"]]["unknown_host"] == "passthrough"
    assert walk(ir, "own", "/", ns="b", labels={"app": "special"})["outcome"] == "passthrough"
    assert set(ir["mesh"]["namespaces"]) == {"a", "b", "default"}


def test_vs_with_no_routes_for_client_falls_back_to_default_route() -> None:
    text = mesh_vs(
        "r",
        "default",
        "[r]",
        "  - match: [{sourceLabels: {app: x}}]\n    route: [{destination: {host: r, subset: v1}}]\n",
    )
    drule = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
        "spec: {host: r, subsets: [{name: v1, labels: {v: '1'}}]}\n"
    )
    ir, _ = compile_all(resources(service("r"), text, drule))
    assert walk(ir, "r", "/")["outcome"] == "default"
    assert walk(ir, "r", "/", labels={"app": "x"})["outcome"] == "route"


# --- destinations, clusters, policies ---------------------------------------------------------


def test_undefined_subset_still_compiles_to_a_target_without_cluster() -> None:
    text = mesh_vs("r", "default", "[r]", "  - route: [{destination: {host: r, subset: nope}}]\n")
    ir, diags = compile_all(resources(service("r"), text))
    assert "vs-subset-undefined" in codes(diags)
    result = walk(ir, "r", "/")
    assert result["targets"][0]["subset"] == "nope"
    assert cluster_of(result) not in clusters(ir, view_id(ir))


def test_port_null_target_has_a_cluster_per_service_port_and_explicit_port_must_exist() -> None:
    text = mesh_vs(
        "m",
        "default",
        "[m]",
        "  - match: [{port: 81}]\n    route: [{destination: {host: m, port: {number: 9}}}]\n"
        "  - route: [{destination: {host: m}}]\n",
    )
    ir, diags = compile_all(resources(service("m", ports=(80, 81)), text))
    assert "vs-port-required" in codes(diags)
    existing = clusters(ir, view_id(ir))
    assert {"outbound|80||m.default.svc.cluster.local", "outbound|81||m.default.svc.cluster.local"} <= set(
        existing
    )
    assert "outbound|9||m.default.svc.cluster.local" not in existing
    route = walk(ir, "m", "/", port=81)["route"]
    assert route["matches"][0]["port"] == 81
    assert walk(ir, "m", "/", port=80)["targets"][0]["port"] is None  # listener port


def test_scope_policies_are_effective_dr_policies() -> None:
    drule = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}}
    portLevelSettings: [{port: {number: 9080}, loadBalancer: {simple: RANDOM}}]
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1}}
  - name: v2
    labels: {version: v2}
"""
    extra = mesh_vs(
        "reviews",
        "default",
        "[reviews]",
        "  - route: [{destination: {host: reviews, subset: v1}, weight: 1}, "
        "{destination: {host: reviews, subset: v2}, weight: 1}]\n",
    )
    ir, _ = compile_all([*files(BOOKINFO_APP), *resources(drule, extra)])
    policies = {k: json.loads(v) for k, v in clusters(ir, view_id(ir)).items()}
    assert policies[f"outbound|9080|v2|{REVIEWS}"] == {"loadBalancer": {"simple": "RANDOM"}}
    assert policies[f"outbound|9080|v1|{REVIEWS}"] == {
        "loadBalancer": {"simple": "RANDOM"},
        "outlierDetection": {"consecutive5xxErrors": 1},
    }
    assert policies["outbound|9080||ratings.default.svc.cluster.local"] == {}
    assert ir["policies"][0] == "{}" and len(ir["policies"]) == len(set(ir["policies"]))


# --- route translation --------------------------------------------------------------------------


def test_header_ops_order_single_and_weighted() -> None:
    http = """  - headers:
      request: {set: {x-b: route, X-A: route, host: new-host}, add: {x-c: route}, remove: [x-old]}
      response: {set: {x-r: route}}
    route:
    - destination: {host: r}
      headers: {request: {set: {x-c: dest}, add: {x-a: dest}}}
  - match: [{uri: {prefix: /w}}]
    headers: {request: {set: {x-a: route}}}
    route:
    - destination: {host: r}
      weight: 1
      headers: {request: {set: {x-a: dest, x-d: dest}}}
    - destination: {host: r}
      weight: 0
"""
    ir, _ = compile_all(resources(service("r"), mesh_vs("r", "default", "[r]", http)))
    vh = ir["views"][view_id(ir)]["vhosts"][0]
    single, weighted = (ir["routes"][r] for r in vh["routes"])
    [dest] = single["action"]["route"]["destinations"]
    # route: set x-a, x-b; add x-c | dest: set x-c; add x-a  (route first, then destination)
    # folded: the destination's set of x-c overrides the route's add of x-c
    assert dest["request_headers"] == {
        "set": [["x-a", "route"], ["x-b", "route"], ["x-c", "dest"]],
        "add": [["x-a", "dest"]],
        "remove": ["x-old"],
    }
    assert dest["authority"] == "new-host"
    assert dest["response_headers"]["set"] == [["x-r", "route"]]
    assert single["response_headers"]["set"] == [["x-r", "route"]]
    # weighted: destination ops first, route-level set then wins; the zero-weight destination is dropped
    [only] = weighted["action"]["route"]["destinations"]
    assert only["request_headers"]["set"] == [["x-d", "dest"], ["x-a", "route"]]


def test_retries_mirrors_cors_rewrite_redirect_direct_response() -> None:
    http = """  - match: [{uri: {prefix: /a}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,503", retryIgnorePreviousHosts: false}
    mirror: {host: r, subset: v2}
    mirrorPercentage: {value: 12.5}
    corsPolicy:
      allowOrigins: [{exact: "https://x"}]
      allowMethods: [GET]
      maxAge: 24h
      allowCredentials: true
    rewrite: {uri: /v1, authority: up}
    route: [{destination: {host: r}}]
  - match: [{uri: {prefix: /none}}]
    retries: {attempts: 0}
    route: [{destination: {host: r}}]
  - match: [{uri: {prefix: /redir}}]
    redirect: {uri: /new, authority: other, derivePort: FROM_REQUEST_PORT, scheme: https}
  - match: [{uri: {prefix: /regex}}]
    rewrite: {uriRegexRewrite: {match: "^/regex/(.*)$", rewrite: "/\\\\1"}}
    route: [{destination: {host: r}}]
  - directResponse: {status: 418, body: {string: teapot}}
"""
    ir, _ = compile_all(resources(service("r"), mesh_vs("r", "default", "[r]", http)))
    a = walk(ir, "r", "/a")["route"]
    assert a["extra"]["retries"] == {
        "attempts": 3,
        "retry_on": "5xx,503,retriable-status-codes",
        "per_try_timeout_ms": 2000,
        "backoff_ms": 25,
        "retry_remote_localities": False,
        "retry_ignore_previous_hosts": False,
    }
    assert a["extra"]["mirrors"] == [
        {
            "destination": {"host": "r.default.svc.cluster.local", "subset": "v2", "port": 80},
            "cluster": "outbound|80|v2|r.default.svc.cluster.local",
            "percent": 12.5,
        }
    ]
    assert a["extra"]["cors"]["allow_origins"] == [{"exact": "https://x"}]
    assert a["extra"]["cors"]["max_age_s"] == 86400 and a["extra"]["cors"]["allow_credentials"] is True
    assert a["rewrite"] == {"uri": "/v1", "authority": "up", "regex": None}
    assert walk(ir, "r", "/none")["route"]["extra"]["retries"] == {"attempts": 0}
    assert walk(ir, "r", "/redir")["route"]["action"] == {
        "redirect": {
            "uri": "/new",
            "authority": "other",
            "port": None,
            "derive_port": "FROM_REQUEST_PORT",
            "scheme": "https",
            "code": 301,
        }
    }
    assert walk(ir, "r", "/regex")["route"]["rewrite"]["regex"] == {
        "match": "^/regex/(.*)$",
        "rewrite": "/\\1",
    }
    assert walk(ir, "r", "/other")["route"]["action"] == {
        "direct_response": {"status": 418, "body": "teapot"}
    }


def test_fault_percent_defaults_and_match_translation() -> None:
    http = """  - match:
    - uri: {exact: /x}
      ignoreUriCase: true
      method: {exact: GET}
      headers: {X-Present: {}, x-any: {regex: "*"}}
      withoutHeaders: {x-no: {}}
      queryParams: {q: {exact: ""}}
    fault:
      delay: {fixedDelay: 1s, percent: 50}
      abort: {grpcStatus: UNAVAILABLE}
    route: [{destination: {host: r}}]
"""
    ir, _ = compile_all(resources(service("r"), mesh_vs("r", "default", "[r]", http)))
    route = ir["routes"][0]
    assert route["fault"] == {
        "delay": {"fixed_delay_ms": 1000, "per_million": 500_000},
        "abort": {"http_status": None, "grpc_status": "UNAVAILABLE", "per_million": 0},
    }
    [m] = route["matches"]
    assert m["uri"] == {"exact": "/x"} and m["ignore_uri_case"] and m["method"] == {"exact": "GET"}
    assert m["headers"] == [
        {"name": "x-present", "match": {"present": True}},
        {"name": "x-any", "match": {"present": True}},
    ]
    assert m["without_headers"] == [{"name": "x-no", "match": {"present": True}}]
    assert m["query_params"] == [{"name": "q", "match": {"exact": ""}}]


def test_snake_case_config_compiles_like_camel_case() -> None:
    snake = mesh_vs(
        "r",
        "default",
        "[r]",
        "  - match: [{uri: {prefix: /a}, ignore_uri_case: true}]\n"
        "    mirror: {host: r}\n    mirror_percent: 5\n"
        "    route: [{destination: {host: r}}]\n",
    )
    ir, _ = compile_all(resources(service("r"), snake))
    route = ir["routes"][0]
    assert route["matches"][0]["ignore_uri_case"] is True
    assert route["extra"]["mirrors"][0]["percent"] == 5.0


def test_odd_input_never_raises() -> None:
    odd = [
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: 5\n",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
        "spec: {hosts: [b], http: [7, {route: [{destination: 3}]},"
        " {match: [1], route: [{destination: {host: b}}]}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: c}\nspec: {host: [x]}\n",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: d}\n"
        "spec: {servers: [{port: 3}]}\n",
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: e}\nspec: {egress: [5]}\n",
        "apiVersion: v1\nkind: Service\nmetadata: {name: f}\nspec: {ports: [{port: x}, 4]}\n",
    ]
    ir, diags = compile_config(resources(*odd))
    check_shape(ir)
    assert "compile-internal" not in codes(diags)
    assert "vs-route-skipped" in codes(diags)
