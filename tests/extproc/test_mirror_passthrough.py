"""Per-request answer parts beyond the hash key: VirtualService mirrors (x-meshroute-mirror-<i>,
percentages drawn from the request's own stream, after the route's draws) and PassthroughCluster's
x-envoy-original-dst-host."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import ListenerContext
from meshroute.extproc import CONTROL_HEADERS, MAX_MIRRORS, MIRROR_HEADERS, ORIGINAL_DST_HEADER
from meshroute.extproc.context import MESH_LISTENER, Routing
from meshroute.extproc.servicer import header_pairs
from meshroute.mesh import Mesh, load

from .conftest import headers_request, mutation

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  location: MESH_INTERNAL
  resolution: STATIC
  # 8080 too: a request to echo.test:8080 is routed by echo.test's routes only if the service
  # has that port (sidecar route tables are per port, semantics §6)
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, labels: {version: v1}}, {address: 127.0.0.2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi, namespace: default}
spec:
  hosts: [multi.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  endpoints: [{address: 127.0.0.3}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.test
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  http:
  - match: [{uri: {prefix: /all}}]
    mirror: {host: echo.test, subset: v2}
    route: [{destination: {host: echo.test, subset: v1}}]
  - match: [{uri: {prefix: /half}}]
    mirror: {host: echo.test, subset: v2}
    mirrorPercentage: {value: 50}
    route: [{destination: {host: echo.test, subset: v1}}]
  - match: [{uri: {prefix: /never}}]
    mirror: {host: echo.test, subset: v2}
    mirrorPercentage: {value: 0}
    route: [{destination: {host: echo.test, subset: v1}}]
  - match: [{uri: {prefix: /list}}]
    mirrors:
    - destination: {host: echo.test, subset: v2}
    - destination: {host: multi.test}
      percentage: {value: 100}
    route: [{destination: {host: echo.test, subset: v1}}]
  - match: [{uri: {prefix: /many}}]
    mirrors:
    - {destination: {host: echo.test, subset: v1}}
    - {destination: {host: echo.test, subset: v2}}
    - {destination: {host: multi.test, port: {number: 80}}}
    - {destination: {host: multi.test, port: {number: 8080}}}
    - {destination: {host: echo.test}}
    route: [{destination: {host: echo.test, subset: v1}}]
  - route: [{destination: {host: echo.test, subset: v1}}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Mesh:
    path: Path = tmp_path_factory.mktemp("cfg") / "mirror.yaml"
    path.write_text(CONFIG)
    return load(path)


def respond(
    routing: Routing,
    path: str,
    authority: str = "echo.test",
    headers: Any = (),
    listener: ListenerContext = MESH_LISTENER,
) -> tuple[dict[str, list[tuple[str, bool]]], list[str]]:
    pairs = header_pairs(headers_request(authority, path, headers=headers).request_headers)
    _, data, _, _, _ = routing.respond(pairs, listener)
    return mutation(pb.ProcessingResponse.FromString(data))


def mirrored(sets: dict[str, list[tuple[str, bool]]]) -> list[str | None]:
    """The cluster each mirror policy sends to (None: that policy stays idle)."""
    out: list[str | None] = []
    for header in MIRROR_HEADERS:
        values = sets.get(header, [])
        assert len(values) <= 1 and all(append is False for _, append in values)
        out.append(values[0][0] if values else None)
    return out


# === mirrors ===


def test_every_mirror_header_is_a_control_header() -> None:
    assert len(MIRROR_HEADERS) == MAX_MIRRORS == 4
    assert set(MIRROR_HEADERS) <= set(CONTROL_HEADERS)


def test_mirror_at_100_percent_sets_its_header_and_removes_the_others(mesh: Mesh) -> None:
    sets, removes = respond(Routing(mesh), "/all")
    assert mirrored(sets) == ["outbound|80|v2|echo.test", None, None, None]
    assert set(MIRROR_HEADERS[1:]) <= set(removes)
    assert MIRROR_HEADERS[0] not in removes


@pytest.mark.parametrize("path", ["/all", "/half", "/never", "/list", "/many", "/"])
@pytest.mark.parametrize("header", MIRROR_HEADERS)
def test_forged_mirror_headers_never_survive(mesh: Mesh, path: str, header: str) -> None:
    forged = "outbound|80|v1|echo.test-forged"
    for seed in range(5):
        sets, removes = respond(Routing(mesh, seed=seed), path, headers=[(header, forged)])
        if header in sets:
            assert [v for v, _ in sets[header]] != [forged]
        else:
            assert header in removes


def test_mirror_at_0_percent_never_fires(mesh: Mesh) -> None:
    routing = Routing(mesh, seed=3)
    for _ in range(50):
        sets, removes = respond(routing, "/never")
        assert mirrored(sets) == [None] * MAX_MIRRORS
        assert set(MIRROR_HEADERS) <= set(removes)


def test_seeded_50_percent_is_drawn_per_request_and_reproducible(mesh: Mesh) -> None:
    def run(seed: int) -> list[bool]:
        routing = Routing(mesh, seed=seed)
        return [mirrored(respond(routing, "/half")[0])[0] is not None for _ in range(2000)]

    first = run(11)
    # one decision for every request: the draw must still vary per request
    assert 0.45 <= sum(first) / len(first) <= 0.55
    assert run(11) == first
    assert run(12) != first


def test_mirrors_list_form_in_order(mesh: Mesh) -> None:
    sets, _ = respond(Routing(mesh), "/list")
    # multi.test names no port and has two: Istio uses the listener port (here the authority's)
    assert mirrored(sets) == ["outbound|80|v2|echo.test", "outbound|80||multi.test", None, None]
    sets, _ = respond(Routing(mesh), "/list", authority="echo.test:8080")
    assert mirrored(sets)[1] == "outbound|8080||multi.test"


def test_more_mirrors_than_policies_keeps_the_first_and_warns(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="meshroute.serve"):
        routing = Routing(mesh)
    assert any("5 mirrors" in r.getMessage() and "http[4]" in r.getMessage() for r in caplog.records)
    sets, _ = respond(routing, "/many")
    assert mirrored(sets) == [
        "outbound|80|v1|echo.test",
        "outbound|80|v2|echo.test",
        "outbound|80||multi.test",
        "outbound|8080||multi.test",
    ]


# === PassthroughCluster ===


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("127.0.0.1:18080", "127.0.0.1:18080"),
        ("[::1]:80", "[::1]:80"),
        ("10.1.2.3:9080", "10.1.2.3:9080"),
        ("unknown.example", None),
        ("unknown.example:80", None),
        ("127.0.0.1", None),  # no port: no address to connect to
        ("[::1]", None),
    ],
)
def test_passthrough_sets_original_dst_only_for_ip_and_port(
    mesh: Mesh, authority: str, expected: str | None
) -> None:
    forged = [(ORIGINAL_DST_HEADER, "127.0.0.1:1")]
    sets, removes = respond(Routing(mesh), "/", authority=authority, headers=forged)
    assert [v for v, _ in sets["x-meshroute-cluster"]] == ["PassthroughCluster"]
    if expected is None:
        assert ORIGINAL_DST_HEADER not in sets
        assert ORIGINAL_DST_HEADER in removes
    else:
        assert sets[ORIGINAL_DST_HEADER] == [(expected, False)]
        assert ORIGINAL_DST_HEADER not in removes


def test_known_host_never_gets_an_original_dst(mesh: Mesh) -> None:
    sets, removes = respond(Routing(mesh), "/", headers=[(ORIGINAL_DST_HEADER, "127.0.0.1:1")])
    assert [v for v, _ in sets["x-meshroute-cluster"]] == ["outbound|80|v1|echo.test"]
    assert ORIGINAL_DST_HEADER not in sets
    assert ORIGINAL_DST_HEADER in removes
