"""The public Python API: load → route → Decision, batches, errors, typing surface."""

from __future__ import annotations

from pathlib import Path

import pytest

import meshroute
from meshroute import ConfigError, Decision, Mesh

from .conftest import BOOKINFO

TASKS = Path(meshroute.__file__).parent / "data" / "tasks"
REVIEWS = "outbound|9080|{}|reviews.default.svc.cluster.local"


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return meshroute.load(meshroute.bookinfo_path(), TASKS / "virtual-service-reviews-test-v2.yaml")


def test_route_returns_decision_with_istio_answer(mesh: Mesh) -> None:
    jason = mesh.route("reviews", "/reviews/0", headers={"end-user": "jason"})
    assert isinstance(jason, Decision)
    assert (jason.outcome, jason.status, jason.cluster) == ("route", None, REVIEWS.format("v2"))
    assert (jason.virtual_service, jason.route_index, jason.match_index) == ("default/reviews", 0, 0)
    assert (jason.host, jason.subset, jason.port) == ("reviews.default.svc.cluster.local", "v2", 9080)
    other = mesh.route("reviews", "/reviews/0", headers={"end-user": "mary"})
    assert (other.cluster, other.route_index) == (REVIEWS.format("v1"), 1)


def test_to_dict_has_the_documented_keys(mesh: Mesh) -> None:
    d = mesh.route("reviews", "/", headers=[("end-user", "jason")]).to_dict()
    for key in (
        "outcome",
        "status",
        "virtual_service",
        "route_index",
        "route_name",
        "destination",
        "cluster",
        "timeout_ms",
        "retries",
        "fault",
        "request_headers",
        "response_headers",
        "rewrite",
        "redirect",
        "direct_response",
        "traffic_policy",
    ):
        assert key in d, key
    assert d["destination"] == {"host": "reviews.default.svc.cluster.local", "subset": "v2", "port": 9080}
    assert d["retries"]["attempts"] == 2  # Istio's default policy when a route sets none
    assert d["timeout_ms"] is None  # no timeout unless configured


def test_host_aliases_and_ports(mesh: Mesh) -> None:
    for host in (
        "reviews",
        "reviews:9080",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "REVIEWS.default.svc.cluster.local:9080",
    ):
        assert mesh.route(host, "/").cluster == REVIEWS.format("v1"), host
    # the bare name is a same-namespace alias only: from another namespace it is an unknown host,
    # which a sidecar passes through (mesh default outboundTrafficPolicy ALLOW_ANY)
    assert mesh.route("reviews", "/", source_namespace="other").cluster == "PassthroughCluster"
    assert mesh.route("reviews.default", "/", source_namespace="other").cluster == REVIEWS.format("v1")


def test_gateway_routes_and_404(mesh: Mesh) -> None:
    gw = "default/bookinfo-gateway"
    page = mesh.route("anything.example.com", "/productpage", gateway=gw)
    assert page.cluster == "outbound|9080||productpage.default.svc.cluster.local"
    assert page.virtual_service == "default/bookinfo"
    missing = mesh.route("anything.example.com", "/admin", gateway=gw)
    assert (missing.outcome, missing.status) == ("no_route", 404)
    assert mesh.route("x", "/productpage", gateway="bookinfo-gateway").cluster == page.cluster


def test_route_many_matches_route(mesh: Mesh) -> None:
    reqs = [("reviews", "/", "GET", {"end-user": "jason"}), ("ratings", "/ratings/1"), {"host": "details"}]
    got = [d.cluster for d in mesh.route_many(reqs)]
    assert got == [
        REVIEWS.format("v2"),
        "outbound|9080|v1|ratings.default.svc.cluster.local",
        "outbound|9080|v1|details.default.svc.cluster.local",
    ]


def test_seeded_calls_are_reproducible() -> None:
    mesh = meshroute.load(meshroute.bookinfo_path(), TASKS / "virtual-service-reviews-50-v3.yaml")
    first = [mesh.route("reviews", seed=s).subset for s in range(200)]
    assert first == [mesh.route("reviews", seed=s).subset for s in range(200)]
    assert set(first) == {"v1", "v3"}
    batch = [d.subset for d in mesh.route_many([("reviews", "/")] * 200, seed=5)]
    assert batch == [d.subset for d in mesh.route_many([("reviews", "/")] * 200, seed=5)]


def test_bad_arguments_raise_type_errors(mesh: Mesh) -> None:
    with pytest.raises(TypeError):
        mesh.route("reviews", headers={"end-user": 1})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        mesh.route_many([("reviews", "/", "GET", {}, "extra")])
    with pytest.raises(TypeError):
        mesh.route_many([42])
    with pytest.raises(ValueError, match="protocol must be 'http' or 'tcp'"):
        mesh.route("reviews", protocol="udp")


def test_a_tcp_connection_to_an_http_port_has_no_route(mesh: Mesh) -> None:
    """Bookinfo's ports are declared HTTP: a connection that is not HTTP gets no route (and no
    status), for route(), route_many() and explain() alike; an unknown host passes through."""
    d = mesh.route("reviews", port=9080, protocol="tcp")
    assert (d.outcome, d.status, d.cluster) == ("no_route", None, None)
    [same] = mesh.route_many([("reviews", "/")], port=9080, protocol="tcp")
    assert same.to_dict() == d.to_dict()
    assert mesh.explain("reviews", port=9080, protocol="tcp")["decision"]["outcome"] == "no_route"
    assert mesh.route("db.example.com", port=5432, protocol="tcp").cluster == "PassthroughCluster"


def test_config_error_carries_every_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
        "spec:\n  hosts: [reviews]\n  http:\n  - timeout: 0s\n    route:\n"
        "    - destination: {host: reviews}\n      weight: -1\n"
    )
    with pytest.raises(ConfigError) as info:
        meshroute.load(bad)
    errors = [d for d in info.value.diagnostics if d.is_error]
    assert len(errors) >= 2
    assert all(d.file == str(bad) and d.line is not None for d in errors)
    assert isinstance(info.value, ValueError)


def test_samples_load(samples: Path) -> None:
    mesh = meshroute.load(
        BOOKINFO / "platform",
        BOOKINFO / "networking" / "destination-rule-all.yaml",
        BOOKINFO / "networking" / "virtual-service-all-v1.yaml",
    )
    assert mesh.route("details", "/details/0").cluster == "outbound|9080|v1|details.default.svc.cluster.local"


def test_string_match_set_is_the_route_matcher() -> None:
    # RE2 full match, as a VirtualService header regex: \d is ASCII-only, a longer value fails.
    from meshroute._core import CompileError, StringMatchSet

    s = StringMatchSet.from_json('[{"exact": "a"}, {"prefix": "b-"}, {"regex": "c\\\\d+"}]')
    assert len(s) == 3
    assert [s.matches(v) for v in ("a", "b-x", "c12", "c12x", "c١٢", "ab")] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]
    with pytest.raises(CompileError, match=r"\[0\]\.regex"):
        StringMatchSet.from_json('[{"regex": "("}]')
