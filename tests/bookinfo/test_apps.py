"""The Bookinfo apps alone, behind a fake mesh (tests/bookinfo/fake_mesh.py) instead of Envoy.

Client timeouts are shrunk (``Timeouts``) so timeout behaviour is tested in well under a second;
``test_bookinfo_timeouts_are_bookinfos`` pins the real values.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from meshroute.bookinfo import (
    APPS,
    SERVED_BY,
    Bookinfo,
    Timeouts,
    read_plan,
    start_bookinfo,
    workload_entries,
)
from meshroute.bookinfo import productpage as pp
from meshroute.bookinfo.services import RATINGS_UNAVAILABLE, REVIEWS_VERSIONS
from meshroute.config import analyze
from meshroute.mesh import bookinfo_path
from meshroute.procs import LOOPBACK, ProcessGroup, free_port
from tests.bookinfo.fake_mesh import FakeMesh, Fault

SHORT = Timeouts(productpage=0.4, reviews_attempts=2, ratings=0.15)


@pytest.fixture(scope="module")
def apps() -> Iterator[tuple[Bookinfo, FakeMesh]]:
    mesh = FakeMesh()
    bookinfo = start_bookinfo(mesh.port, timeouts=SHORT)
    mesh.ports = bookinfo.plan
    try:
        yield bookinfo, mesh
    finally:
        bookinfo.close()
        mesh.close()


@pytest.fixture
def mesh(apps: tuple[Bookinfo, FakeMesh]) -> FakeMesh:
    apps[1].reset()
    return apps[1]


def call(
    port: int, path: str, method: str = "GET", body: str = "", headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], str, float]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    start = time.monotonic()
    try:
        conn.request(method, path, body=body.encode() or None, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read().decode()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, time.monotonic() - start
    finally:
        conn.close()


def page(apps: tuple[Bookinfo, FakeMesh], path: str = "/productpage", **headers: str) -> tuple[str, float]:
    status, got, body, seconds = call(apps[0].plan["productpage-v1"], path, headers=headers)
    assert status == 200
    assert got[SERVED_BY] == "productpage-v1"
    return body, seconds


def test_every_app_says_who_served_it(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    paths = {
        "productpage": "/productpage",
        "details": "/details/0",
        "reviews": "/reviews/0",
        "ratings": "/ratings/0",
    }
    assert sorted(apps[0].plan) == sorted(APPS)
    for name, port in apps[0].plan.items():
        status, headers, body, _ = call(port, paths[name.split("-")[0]])
        assert (status, headers[SERVED_BY]) == (200, name)
        assert name in body


def test_all_v1_page_has_no_stars(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    body, _ = page(apps)
    assert pp.served_by(body) == ["productpage-v1", "details-v1", "reviews-v1"]
    assert "glyphicon glyphicon-star" not in body
    assert "William Shakespeare" in body
    assert "unavailable" not in body
    assert mesh.calls_to("ratings:9080") == []


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
def test_reviews_v2_and_v3_call_ratings_and_show_stars(
    apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh, version: str, color: str
) -> None:
    mesh.reset(reviews=f"reviews-{version}")
    body, _ = page(apps)
    assert pp.served_by(body) == ["productpage-v1", "details-v1", f"reviews-{version}", "ratings-v1"]
    assert pp.star_colors(body) == {color}
    assert f"<div class='text-{color}-500'><span id='glyphicon glyphicon-star'>" in body
    assert len(mesh.calls_to("ratings:9080")) == 1


def test_login_cookie_header_and_query_set_end_user(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    port = apps[0].plan["productpage-v1"]
    form = urllib.parse.urlencode({"username": "jason", "passwd": "password"})
    status, headers, _, _ = call(
        port, "/login", "POST", form, {"content-type": "application/x-www-form-urlencoded"}
    )
    assert (status, headers["location"]) == (302, "/productpage")
    cookie = headers["set-cookie"].split(";")[0]
    mesh.reset(reviews="reviews-v2")
    for how in ({"cookie": cookie}, {"end-user": "jason"}):
        page(apps, **how, **{"x-request-id": "req-1"})
    page(apps, "/productpage?u=jason")
    reviews, ratings = mesh.calls_to("reviews:9080"), mesh.calls_to("ratings:9080")
    assert [c.headers.get("end-user") for c in reviews + ratings] == ["jason"] * 6
    assert [c.headers["x-request-id"] for c in reviews[:2] + ratings[:2]] == ["req-1"] * 4
    status, headers, _, _ = call(port, "/logout", headers={"cookie": cookie})
    assert status == 302 and "Max-Age=0" in headers["set-cookie"]


def test_anonymous_sends_no_end_user(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    page(apps)
    (details,) = mesh.calls_to("details:9080")
    (reviews,) = mesh.calls_to("reviews:9080")
    assert "end-user" not in details.headers and "end-user" not in reviews.headers
    assert reviews.headers["x-request-id"] == details.headers["x-request-id"]


def test_reviews_error_is_retried_once(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    mesh.faults["reviews:9080"] = Fault(abort=503)
    body, _ = page(apps)
    assert "Error fetching product reviews" in body and pp.REVIEWS_ERROR in body
    assert len(mesh.calls_to("reviews:9080")) == 2
    assert pp.served_by(body) == ["productpage-v1", "details-v1"]


def test_reviews_timeout_twice_then_error(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    mesh.faults["reviews:9080"] = Fault(delay=1.0)
    body, seconds = page(apps)
    assert pp.REVIEWS_ERROR in body
    assert 2 * SHORT.productpage <= seconds < 2 * SHORT.productpage + 0.4
    assert len(mesh.calls_to("reviews:9080")) == 2


def test_details_failure(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    mesh.faults["details:9080"] = Fault(abort=500)
    body, _ = page(apps)
    assert "Error fetching product details" in body and pp.DETAILS_ERROR in body
    assert pp.REVIEWS_ERROR not in body
    assert len(mesh.calls_to("details:9080")) == 1  # only reviews is retried


@pytest.mark.parametrize("fault", [Fault(abort=500), Fault(delay=1.0)], ids=["abort", "timeout"])
def test_ratings_failure_shows_unavailable(
    apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh, fault: Fault
) -> None:
    mesh.reset(reviews="reviews-v2")
    mesh.faults["ratings:9080"] = fault
    body, seconds = page(apps)
    assert body.count(RATINGS_UNAVAILABLE) == 2  # one per review
    assert pp.star_colors(body) == set()
    assert pp.served_by(body) == ["productpage-v1", "details-v1", "reviews-v2"]
    assert seconds < SHORT.productpage  # reviews answers within productpage's timeout


def test_bookinfo_timeouts_are_bookinfos() -> None:
    assert (pp.TIMEOUT, pp.REVIEWS_ATTEMPTS) == (3.0, 2)
    assert {v: t for v, (t, _) in REVIEWS_VERSIONS.items()} == {"v1": None, "v2": 10.0, "v3": 2.5}
    assert Timeouts() == Timeouts(3.0, 2, None)


def test_gateway_paths(apps: tuple[Bookinfo, FakeMesh], mesh: FakeMesh) -> None:
    port = apps[0].plan["productpage-v1"]
    assert call(port, "/static/bootstrap/css/bootstrap.min.css")[0] == 200
    status, _, body, _ = call(port, "/api/v1/products")
    assert status == 200 and json.loads(body)[0]["title"] == "The Comedy of Errors"
    assert json.loads(call(port, "/api/v1/products/0")[2])["id"] == 0
    mesh.reset(reviews="reviews-v3")
    assert json.loads(call(port, "/api/v1/products/0/reviews")[2])["served_by"] == "reviews-v3"
    assert call(port, "/api/v1/products/7")[0] == 404
    assert call(port, "/nope")[0] == 404
    assert call(apps[0].plan["details-v1"], "/details/x")[0] == 404


def test_workload_entries_are_selected_by_bookinfo_services() -> None:
    text = workload_entries({name: 40000 + i for i, name in enumerate(APPS)})
    assert text.count("kind: WorkloadEntry") == len(APPS)
    assert "name: reviews-v3\n  namespace: default\n" in text
    assert "  ports:\n    http: 40004\n  labels:\n    app: reviews\n    version: v3\n" in text


def test_workload_entries_load_with_bookinfo(tmp_path: Path) -> None:
    entries = tmp_path / "entries.yaml"
    entries.write_text(workload_entries({name: 40000 + i for i, name in enumerate(APPS)}))
    analysis = analyze([bookinfo_path(), str(entries)])
    assert analysis.ok, analysis.diagnostics
    # every subset Bookinfo's apps run now has a workload; only the optional versions have none
    unselected = {d.message.split("'")[1] for d in analysis.diagnostics if d.code == "dr-subset-no-workload"}
    assert unselected <= {"v2", "v2-mysql", "v2-mysql-vm"}
    assert not any("reviews" in d.message for d in analysis.diagnostics if d.code == "dr-subset-no-workload")


def test_module_runs_every_app_in_one_process(tmp_path: Path) -> None:
    ports_file = tmp_path / "ports.json"
    fixed = free_port()
    cmd = [sys.executable, "-m", "meshroute.bookinfo", "--mesh-port", "1", "--ports-file", str(ports_file)]
    with ProcessGroup(tmp_path / "logs") as group:
        proc = group.start("bookinfo", [*cmd, "--port", f"ratings-v1={fixed}"])
        proc.wait_until(ports_file.exists, timeout=20, what="listening")
        plan = read_plan(ports_file)
        assert sorted(plan) == sorted(APPS) and plan["ratings-v1"] == fixed
        assert call(plan["ratings-v1"], "/ratings/0")[1][SERVED_BY] == "ratings-v1"
        # the mesh port is closed: productpage still answers, with both errors
        body = call(plan["productpage-v1"], "/productpage")[2]
        assert pp.DETAILS_ERROR in body and pp.REVIEWS_ERROR in body
        assert proc.stop() == 0
