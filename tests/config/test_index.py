"""The cross-referenced model (meshroute.config.index and its helpers): duplicates, visibility,
Sidecar imports, delegates, DestinationRule lookup/merge/effective policy, diagnostics."""

from __future__ import annotations

from typing import Any

import pytest

from meshroute.config.delegate import has_conflict, merge_matches, merge_route
from meshroute.config.hosts import alt_hosts, gateway_ref, matches, most_specific
from meshroute.config.httpmodel import Destination, HTTPMatch, HTTPRoute, Retries, StringMatch
from meshroute.config.httpparse import parse_http_match, parse_http_route
from meshroute.config.index import build_index, pick_for_host
from meshroute.config.policy import effective_policy

# compile_helpers first: it makes meshroute importable while the Rust extension is not built.
from tests.compile_helpers import BOOKINFO_APP, BOOKINFO_DRS, codes, files, resources, service
from tests.conftest import SAMPLES


def vs(name: str, ns: str = "default", body: str = "", hosts: str = "[reviews]") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, "
        f"namespace: {ns}}}\nspec:\n  hosts: {hosts}\n{body}"
    )


def dr(name: str, ns: str, host: str, body: str = "") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, "
        f"namespace: {ns}}}\nspec:\n  host: '{host}'\n{body}"
    )


ROUTE_V1 = "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n"

# --- hosts -----------------------------------------------------------------------------------


def test_host_helpers() -> None:
    assert matches("*.foo.com", "a.b.foo.com") and not matches("*.foo.com", "foo.com")
    assert most_specific("a.foo.com", ["*", "*.foo.com", "*.com"]) == "*.foo.com"
    # Istio's alternative names: the absolute name (trailing dot) first, then the short names.
    assert alt_hosts("r.a.svc.cluster.local", "a")[:2] == ["r.a.svc.cluster.local.", "r"]
    assert gateway_ref("istio-system/gw", "x") == "istio-system/gw"


# --- duplicates, names --------------------------------------------------------------------------


def test_duplicate_resource_later_replaces_earlier_with_warning() -> None:
    first = vs("reviews", body=ROUTE_V1)
    second = vs("reviews", body="  http:\n  - route:\n    - destination: {host: reviews}\n")
    index = build_index(resources(service("reviews"), first, second))
    assert codes(index.diagnostics) == ["duplicate-resource"]
    [only] = index.model.virtual_services
    assert only.http[0].destinations[0].destination == Destination("reviews.default.svc.cluster.local")
    assert only.resource.file == "doc2.yaml"


def test_snake_case_fields_are_normalised() -> None:
    text = vs(
        "r",
        body="  export_to: ['.']\n  http:\n  - match: [{ignore_uri_case: true, "
        "uri: {prefix: /a}}]\n    route: [{destination: {host: reviews}}]\n",
    )
    [info] = build_index(resources(text)).model.virtual_services
    assert info.export_to == (".",)
    assert info.http[0].blocks[0].ignore_uri_case is True


def test_gateway_names_resolve_with_vs_namespace_and_unknown_is_error() -> None:
    gw = (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: a}\n"
        "spec: {servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]}\n"
    )
    body = (
        "  gateways: [gw, b/gw, mesh]\n  http:\n  - match: [{gateways: [./gw2]}]\n"
        "    route: [{destination: {host: r}}]\n"
    )
    index = build_index(resources(gw, service("r", "a"), vs("v", "a", body, "[r]")))
    [info] = index.model.virtual_services
    assert info.gateways == ("a/gw", "b/gw", "mesh")
    assert info.http[0].blocks[0].gateways == ("a/gw2",)
    unknown = [d for d in index.diagnostics if d.code == "vs-gateway-unknown"]
    assert [(d.severity.value, d.path) for d in unknown] == [
        ("warning", ("spec", "gateways", 1)),
        ("warning", ("spec", "http", 0, "match", 0, "gateways", 0)),
    ]


# --- visibility, precedence, Sidecar -------------------------------------------------------------


def test_mesh_precedence_private_then_explicit_then_public() -> None:
    public = vs("public", "a", ROUTE_V1, "[reviews.default.svc.cluster.local]")
    explicit = vs("explicit", "b", "  exportTo: [c]\n" + ROUTE_V1, "[reviews.default.svc.cluster.local]")
    private = vs("private", "c", "  exportTo: ['.']\n" + ROUTE_V1, "[reviews.default.svc.cluster.local]")
    index = build_index(resources(service("reviews"), public, explicit, private))
    assert [v.name for v in index.mesh_virtual_services("c", None)] == ["private", "explicit", "public"]
    assert [v.name for v in index.mesh_virtual_services("d", None)] == ["public"]
    dups = [d for d in index.diagnostics if d.code == "vs-duplicate-mesh-host"]
    # Every VS of the conflict, as Istio's ConflictingMeshGatewayHostsAnalyzer reports it: the
    # public one too (it reaches c), although sidecars in c use "private".
    assert sorted(d.name for d in dups) == ["explicit", "private", "public"]


def test_exact_host_beats_wildcard_and_longest_wildcard_wins() -> None:
    wide = vs("wide", "default", ROUTE_V1, "['*.svc.cluster.local']")
    narrow = vs("narrow", "default", ROUTE_V1, "['*.default.svc.cluster.local']")
    exact = vs("exact", "default", ROUTE_V1, "[reviews]")
    index = build_index(resources(wide, narrow, exact))
    cands = index.mesh_virtual_services("default", None)
    assert pick_for_host("reviews.default.svc.cluster.local", cands).name == "exact"  # type: ignore[union-attr]
    assert pick_for_host("x.default.svc.cluster.local", cands).name == "narrow"  # type: ignore[union-attr]
    assert pick_for_host("x.other.svc.cluster.local", cands).name == "wide"  # type: ignore[union-attr]


def sidecar(ns: str, spec: str, name: str = "default") -> str:
    return (
        f"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec:\n{spec}"
    )


def test_sidecar_egress_imports_and_root_default() -> None:
    root = sidecar("istio-system", "  egress: [{hosts: ['./*', 'istio-system/*']}]\n")
    own = sidecar("b", "  egress: [{hosts: ['a/r.a.svc.cluster.local']}]\n  outboundTrafficPolicy: {}\n")
    index = build_index(resources(service("r", "a"), service("s", "a"), service("t", "c"), root, own))
    assert index.default_sidecar("c") is not None and index.default_sidecar("c").namespace == "istio-system"  # type: ignore[union-attr]
    hosts_c = [s.host for s in index.visible_services("c", index.default_sidecar("c"))]
    assert hosts_c == ["t.c.svc.cluster.local"]  # "." = the client's namespace
    sc_b = index.default_sidecar("b")
    assert sc_b is not None and sc_b.unknown_host == "blackhole"
    assert [s.host for s in index.visible_services("b", sc_b)] == ["r.a.svc.cluster.local"]


def test_sidecar_tilde_trims_everything() -> None:
    trimmed = sidecar("a", "  egress: [{hosts: ['~/*']}]\n")
    index = build_index(resources(service("r", "a"), trimmed))
    assert index.visible_services("a", index.default_sidecar("a")) == []


# --- delegates ------------------------------------------------------------------------------------


def _match(raw: dict[str, Any]) -> HTTPMatch:
    return parse_http_match(raw, "default", "cluster.local")


def _route(raw: dict[str, Any]) -> HTTPRoute:
    return parse_http_route(raw, "default", "cluster.local")


def test_delegate_match_conflicts() -> None:
    root = _match({"uri": {"prefix": "/api"}, "headers": {"x": {"exact": "1"}}})
    assert not has_conflict(root, _match({"uri": {"prefix": "/api/v1"}}))
    assert has_conflict(root, _match({"uri": {"prefix": "/web"}}))
    assert has_conflict(root, _match({"headers": {"x": {"exact": "2"}}}))
    assert has_conflict(_match({"uri": {"regex": "/a.*"}}), _match({"uri": {"exact": "/a"}}))
    assert has_conflict(_match({"port": 80}), _match({"port": 81}))
    assert has_conflict(_match({"gateways": ["a/gw"]}), _match({"gateways": ["a/gw", "mesh"]}))
    assert has_conflict(_match({"sourceNamespace": "x"}), _match({}))
    assert not has_conflict(_match({"sourceLabels": {"a": "1"}}), _match({"sourceLabels": {"b": "2"}}))


def test_delegate_match_merge_overlays_delegate_on_root() -> None:
    merged = merge_matches(
        [_match({"uri": {"prefix": "/a"}, "headers": {"x": {"exact": "1"}}, "port": 80})],
        [_match({"headers": {"y": {"exact": "2"}}, "name": "d"})],
    )
    assert merged == [
        HTTPMatch(
            name="d",
            uri=StringMatch("prefix", "/a"),
            headers={"x": StringMatch("exact", "1"), "y": StringMatch("exact", "2")},
            port=80,
        )
    ]
    assert merge_matches([_match({"uri": {"prefix": "/a"}})], [_match({"uri": {"prefix": "/b"}})]) is None
    route = merge_route(
        _route({"name": "root", "timeout": "1s", "retries": {"attempts": 1}}),
        _route({"name": "leaf", "timeout": "2s", "route": []}),
    )
    assert route is not None
    assert (route.name, route.timeout, route.retries) == ("root-leaf", "2s", Retries({"attempts": 1}))


def test_delegate_vs_replaces_root_route_in_place() -> None:
    root_body = """  http:
  - name: first
    match: [{uri: {exact: /first}}]
    route: [{destination: {host: reviews}}]
  - name: api
    match: [{uri: {prefix: /api}}]
    timeout: 3s
    delegate: {name: leaf, namespace: team}
  - delegate: {name: missing}
"""
    leaf = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: leaf, namespace: team}
spec:
  exportTo: [default]
  http:
  - name: v2
    match: [{uri: {prefix: /api/v2}}]
    route: [{destination: {host: ratings}}]
  - name: web
    match: [{uri: {prefix: /web}}]
    route: [{destination: {host: ratings}}]
  - name: rest
    route: [{destination: {host: ratings}}]
"""
    index = build_index(
        resources(service("reviews"), service("ratings", "team"), vs("root", body=root_body), leaf)
    )
    merged = index.merged["default/root"]
    assert [(i, r.name) for i, r in merged] == [(0, "first"), (1, "api-v2"), (1, "api-rest")]
    assert merged[1][1].destinations[0].destination == Destination("ratings.team.svc.cluster.local")
    assert merged[2][1].match == (HTTPMatch(uri=StringMatch("prefix", "/api")),)
    assert merged[2][1].timeout == "3s"  # inherited from the root route
    assert codes(index.diagnostics) == ["delegate-conflict", "delegate-missing"]
    conflict = next(d for d in index.diagnostics if d.code == "delegate-conflict")
    assert (conflict.name, conflict.path) == ("leaf", ("spec", "http", 1, "match"))


def test_delegate_not_exported_to_root_namespace_is_missing() -> None:
    leaf = vs("leaf", "team", "  exportTo: ['.']\n  http: [{route: [{destination: {host: r}}]}]\n", "[]")
    root = vs("root", "default", "  http: [{delegate: {name: leaf, namespace: team}}]\n", "[r]")
    index = build_index(resources(service("r"), leaf, root))
    assert index.merged["default/root"] == []
    assert "delegate-missing" in codes(index.diagnostics)


# --- DestinationRules -----------------------------------------------------------------------------


def test_dr_lookup_path_client_then_service_then_root() -> None:
    in_client = dr("c", "client", "r.svc-ns.svc.cluster.local", "  subsets: [{name: from-client}]\n")
    in_service = dr("s", "svc-ns", "r", "  subsets: [{name: from-service}]\n")
    in_root = dr("root", "istio-system", "r.svc-ns.svc.cluster.local", "  subsets: [{name: from-root}]\n")
    private_service = dr("p", "svc-ns", "r", "  exportTo: ['.']\n  subsets: [{name: private}]\n")
    index = build_index(resources(service("r", "svc-ns"), in_client, in_root, private_service, in_service))
    host = "r.svc-ns.svc.cluster.local"
    rule = index.model.rules.lookup(host, "client", "svc-ns")
    assert rule is not None and rule.namespace == "client"
    rule = index.model.rules.lookup(host, "other", "svc-ns")
    assert rule is not None and list(rule.subsets) == ["from-service"]  # the private one is not exported
    rule = index.model.rules.lookup(host, "svc-ns", "svc-ns")
    assert rule is not None and list(rule.subsets) == ["private"]  # own namespace sees all; first DR wins
    assert index.model.rules.lookup("x.y.svc.cluster.local", "client", "y") is None


def test_dr_lookup_in_root_namespace_when_nothing_closer() -> None:
    in_root = dr(
        "root", "istio-system", "*.svc.cluster.local", "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n"
    )
    index = build_index(resources(service("r", "a"), in_root))
    assert index.model.rules.effective("r.a.svc.cluster.local", None, 80, "b", "a") == {
        "tls": {"mode": "ISTIO_MUTUAL"}
    }


def test_several_drs_for_one_host_merge_first_policy_and_first_subset_win() -> None:
    a = dr(
        "a",
        "default",
        "r",
        "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n  subsets: [{name: v1, labels: {version: v1}}]\n",
    )
    b = dr(
        "b",
        "default",
        "r",
        "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
        "  subsets: [{name: v1, labels: {version: other}}, {name: v2}]\n",
    )
    index = build_index(resources(service("r"), a, b))
    rule = index.model.rules.lookup("r.default.svc.cluster.local", "default", "default")
    assert rule is not None
    assert rule.traffic_policy == {"loadBalancer": {"simple": "RANDOM"}}
    assert list(rule.subsets) == ["v1", "v2"] and rule.subsets["v1"].labels == {"version": "v1"}


def test_most_specific_dr_host_wins_without_merging_across_hosts() -> None:
    wide = dr("w", "default", "*.default.svc.cluster.local", "  subsets: [{name: wide}]\n")
    exact = dr("e", "default", "r", "  subsets: [{name: exact}]\n")
    index = build_index(resources(service("r"), wide, exact))
    rule = index.model.rules.lookup("r.default.svc.cluster.local", "default", "default")
    assert rule is not None and list(rule.subsets) == ["exact"]


TOP = {
    "connectionPool": {"tcp": {"maxConnections": 1}, "http": {"http1MaxPendingRequests": 1}},
    "loadBalancer": {"simple": "RANDOM"},
    "retryBudget": {"percent": 5},
    "portLevelSettings": [{"port": {"number": 8080}, "outlierDetection": {"consecutive5xxErrors": 2}}],
}


def test_effective_policy_port_level_replaces_top_level_wholesale() -> None:
    assert effective_policy(TOP, None, 8080) == {"outlierDetection": {"consecutive5xxErrors": 2}}
    assert effective_policy(TOP, None, 80) == {k: v for k, v in TOP.items() if k != "portLevelSettings"}


def test_effective_policy_subset_overrides_per_block() -> None:
    subset = {"connectionPool": {"http": {"maxRetries": 3}}, "tunnel": {"targetHost": "h", "targetPort": 1}}
    out = effective_policy(TOP, subset, 80)
    assert out["connectionPool"] == {"http": {"maxRetries": 3}}  # the top tcp limit is discarded
    assert out["loadBalancer"] == {"simple": "RANDOM"} and out["retryBudget"] == {"percent": 5}
    assert out["tunnel"] == {"targetHost": "h", "targetPort": 1}


def test_effective_policy_subset_port_level_replaces_all_four_blocks() -> None:
    subset = {
        "loadBalancer": {"simple": "LEAST_REQUEST"},
        "portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}],
    }
    assert effective_policy(TOP, subset, 80) == {"tls": {"mode": "SIMPLE"}, "retryBudget": {"percent": 5}}
    assert effective_policy(TOP, subset, 81)["loadBalancer"] == {"simple": "LEAST_REQUEST"}


# --- cross-resource diagnostics -------------------------------------------------------------------


def test_cross_resource_diagnostics_all_reported_with_paths() -> None:
    body = """  http:
  - route:
    - destination: {host: reviews, subset: v9}
    - destination: {host: nowhere.example.com}
    - destination: {host: multi}
    mirror: {host: reviews, subset: v1}
"""
    unknown_dr = dr("ghost", "default", "ghost", "  subsets: [{name: v1}]\n")
    multi = service("multi", ports=(80, 81))
    index = build_index(
        [*files(BOOKINFO_APP, BOOKINFO_DRS), *resources(multi, vs("bad", body=body), unknown_dr)]
    )
    found = {(d.code, d.severity.value, d.path) for d in index.diagnostics if d.name in ("bad", "ghost")}
    assert found == {
        ("vs-subset-undefined", "warning", ("spec", "http", 0, "route", 0, "destination", "subset")),
        ("vs-host-unknown", "warning", ("spec", "http", 0, "route", 1, "destination", "host")),
        ("vs-port-required", "warning", ("spec", "http", 0, "route", 2, "destination")),
        ("dr-host-unknown", "warning", ("spec", "host")),
    }
    bad = next(d for d in index.diagnostics if d.code == "vs-subset-undefined")
    assert bad.file == "doc1.yaml" and bad.line == 8


def test_subset_no_workload_is_informative() -> None:
    index = build_index(files(BOOKINFO_APP, BOOKINFO_DRS))
    flagged = sorted((d.name, d.path[2]) for d in index.diagnostics if d.code == "dr-subset-no-workload")
    assert flagged == [("details", 1), ("ratings", 1), ("ratings", 2), ("ratings", 3)]
    assert all(d.severity.value == "warning" for d in index.diagnostics)


# --- IST0109, transcribed from Istio's analyzer tests ----------------------------------------------
# istio/istio pkg/config/analysis/analyzers/analyzers_test.go, cases
# "virtualServiceConflictingMeshGatewayHosts" and "virtualServiceConflictingMeshGatewayHostsWithExportTo"
# (ConflictingMeshGatewayHostsAnalyzer): their input files, unmodified (tests/data/SOURCE.md §3), and
# the VirtualServices each expects a ConflictingMeshGatewayVirtualServiceHosts message for.
ANALYZER_CASES = {
    "virtualservice_conflictingmeshgatewayhosts.yaml": {
        "team3/ratings",
        "team4/ratings",
        "foo/ratings",
        "bar/ratings",
        "foo/productpage",
        "foo/bogus-productpage",
        "team2/ratings",
    },
    "virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml": {
        "foo/productpage",
        "bar/productpage",
        "foo/productpage-c",
        "bar/productpage-c",
        "foo/productpage-d",
        "bar/productpage-d",
    },
}


@pytest.mark.parametrize("name", sorted(ANALYZER_CASES))
def test_duplicate_mesh_host_as_istio_analyzer(name: str) -> None:
    index = build_index(files(SAMPLES / "analyzer-testdata" / name))
    reported = [f"{d.namespace}/{d.name}" for d in index.diagnostics if d.code == "vs-duplicate-mesh-host"]
    assert len(reported) == len(set(reported))  # once per VirtualService
    assert set(reported) == ANALYZER_CASES[name]


def test_duplicate_mesh_host_not_reported_when_export_to_never_overlap() -> None:
    # The case (#10): two VSs for one host, each exported to its own namespace only.
    mine = vs("r", "a", "  exportTo: ['.']\n" + ROUTE_V1, "[reviews.default.svc.cluster.local]")
    theirs = vs("r", "b", "  exportTo: ['.']\n" + ROUTE_V1, "[reviews.default.svc.cluster.local]")
    index = build_index(resources(service("reviews"), mine, theirs))
    assert [d for d in index.diagnostics if d.code == "vs-duplicate-mesh-host"] == []
    shared = vs("s", "c", "  exportTo: [a]\n" + ROUTE_V1, "[reviews.default.svc.cluster.local]")
    index = build_index(resources(service("reviews"), mine, theirs, shared))
    dups = sorted(f"{d.namespace}/{d.name}" for d in index.diagnostics if d.code == "vs-duplicate-mesh-host")
    assert dups == ["a/r", "c/s"]  # both reach namespace a
