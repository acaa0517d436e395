"""VirtualService corsPolicy in serve: preflights answered locally, CORS response headers, origin
matching (Envoy's CORS filter as Istio configures it; the behaviour is measured in tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import RouteTable
from meshroute.extproc import CLUSTER_HEADER
from meshroute.extproc.context import MESH_LISTENER, Routing
from meshroute.extproc.servicer import header_pairs
from meshroute.mesh import Mesh, load

from .conftest import DATA, headers_request, mutation
from .test_servicer import process

CONFIG = r"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /ignore}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}]
      allowMethods: [GET]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      maxAge: 10s
      allowCredentials: true
      unmatchedPreflights: IGNORE
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /star}}]
    corsPolicy:
      allowOrigins: [{prefix: "https://"}]
      allowMethods: ["*"]
      allowHeaders: ["*"]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /any}}]
    corsPolicy:
      allowOrigins: [{regex: ".*"}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /ops}}]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}]
      exposeHeaders: [x-b, x-c]
    headers:
      response:
        set: {x-resp: "1", access-control-allow-origin: "https://route.example"}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /plain}}]
    route: [{destination: {host: ratings}}]
  - corsPolicy:
      allowOrigins:
      - {exact: "https://a.example"}
      - {prefix: "https://pre."}
      - {regex: "https://[a-z]+\\.b\\.example"}
      - {regex: "https://x\\d+"}
      allowMethods: [GET, POST]
      allowHeaders: [x-a, x-z]
      exposeHeaders: [x-b]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: ratings}}]
"""

ALLOWED = "https://a.example"
PREFLIGHT = [("origin", ALLOWED), ("access-control-request-method", "POST")]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Mesh:
    path: Path = tmp_path_factory.mktemp("cors") / "vs.yaml"
    path.write_text(CONFIG)
    return load(DATA / "bookinfo" / "platform", path)


def respond(
    mesh: Mesh | RouteTable, path: str, headers: Any = (), method: str = "GET"
) -> tuple[pb.ProcessingResponse, pb.ProcessingResponse | None]:
    """(request_headers reply, response_headers reply or None when the stream ends after one)."""
    pairs = header_pairs(headers_request("ratings", path, method, headers).request_headers)
    if isinstance(mesh, RouteTable):
        _, data, response, _, _ = mesh.extproc_answer(MESH_LISTENER, pairs, 1)
    else:
        _, data, response, _, _ = Routing(mesh, seed=1).respond(pairs, MESH_LISTENER)
    decoded = None if response is None else pb.ProcessingResponse.FromString(response)
    return pb.ProcessingResponse.FromString(data), decoded


def outcome(mesh: Mesh, path: str, headers: Any = (), method: str = "GET") -> str:
    pairs = header_pairs(headers_request("ratings", path, method, headers).request_headers)
    return Routing(mesh, seed=1).respond(pairs, MESH_LISTENER)[0]


def imm_headers(resp: pb.ProcessingResponse) -> list[tuple[str, str]]:
    return [(o.header.key, o.header.raw_value.decode()) for o in resp.immediate_response.headers.set_headers]


def resp_headers(resp: pb.ProcessingResponse | None) -> list[tuple[str, str]]:
    assert resp is not None
    mut = resp.response_headers.response.header_mutation
    return [(o.header.key, o.header.raw_value.decode()) for o in mut.set_headers]


def cors_only(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.startswith("access-control-")]


# === preflight ===


def test_allowed_preflight_is_answered_locally_with_every_cors_header(mesh: Mesh) -> None:
    req, response = respond(mesh, "/x", PREFLIGHT, "OPTIONS")
    assert response is None  # the stream ends after the reply
    assert req.WhichOneof("response") == "immediate_response"
    imm = req.immediate_response
    assert (imm.status.code, imm.details, imm.body) == (200, "cors_response", b"")
    # Envoy's order; expose-headers too: the filter's response half runs on its own reply
    assert imm_headers(req) == [
        ("access-control-allow-origin", ALLOWED),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET,POST"),
        ("access-control-allow-headers", "x-a,x-z"),
        ("access-control-max-age", "86400"),
        ("access-control-expose-headers", "x-b"),
    ]
    assert not req.HasField("mode_override")
    assert outcome(mesh, "/x", PREFLIGHT, "OPTIONS") == "cors_preflight"  # what serve counts


def test_disallowed_preflight_is_forwarded_by_default(mesh: Mesh) -> None:
    headers = [("origin", "https://evil.example"), ("access-control-request-method", "POST")]
    req, response = respond(mesh, "/x", headers, "OPTIONS")
    assert response is None
    sets, _ = mutation(req)
    assert sets[CLUSTER_HEADER] == [("outbound|9080||ratings.default.svc.cluster.local", False)]
    assert not req.HasField("mode_override")  # nothing to add to the response


def test_disallowed_preflight_with_ignore_gets_a_local_200_without_origin_or_expose(mesh: Mesh) -> None:
    headers = [("origin", "https://evil.example"), ("access-control-request-method", "PUT")]
    req, response = respond(mesh, "/ignore", headers, "OPTIONS")
    assert response is None
    assert req.immediate_response.status.code == 200
    assert imm_headers(req) == [  # as measured on Envoy 1.40: only allow-origin / expose-headers go
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", "GET"),
        ("access-control-allow-headers", "x-a"),
        ("access-control-max-age", "10"),
    ]
    allowed, _ = respond(mesh, "/ignore", PREFLIGHT, "OPTIONS")
    assert ("access-control-allow-origin", ALLOWED) in imm_headers(allowed)


def test_wildcard_methods_and_headers_echo_the_request(mesh: Mesh) -> None:
    headers = [*PREFLIGHT, ("access-control-request-headers", "x-one, x-two")]
    req, _ = respond(mesh, "/star", headers, "OPTIONS")
    assert imm_headers(req) == [
        ("access-control-allow-origin", ALLOWED),
        ("access-control-allow-methods", "POST"),
        ("access-control-allow-headers", "x-one, x-two"),
    ]
    req, _ = respond(mesh, "/star", PREFLIGHT, "OPTIONS")  # no request headers: an empty header
    assert ("access-control-allow-headers", "") in imm_headers(req)


@pytest.mark.parametrize(
    "headers",
    [
        [("origin", ALLOWED)],  # no access-control-request-method: an ordinary request
        [("origin", ALLOWED), ("access-control-request-method", "")],
    ],
)
def test_options_without_a_request_method_is_an_actual_request(mesh: Mesh, headers: Any) -> None:
    req, response = respond(mesh, "/x", headers, "OPTIONS")
    assert req.WhichOneof("response") == "request_headers"
    assert ("access-control-allow-origin", ALLOWED) in resp_headers(response)


# === actual requests ===


def test_actual_request_with_allowed_origin_gets_response_headers(mesh: Mesh) -> None:
    req, response = respond(mesh, "/x", [("origin", ALLOWED)])
    assert req.WhichOneof("response") == "request_headers"
    assert req.mode_override.response_header_mode == 1  # SEND, appended per request
    assert CLUSTER_HEADER in mutation(req)[0]
    assert resp_headers(response) == [
        ("access-control-allow-origin", ALLOWED),
        ("access-control-allow-credentials", "true"),
        ("access-control-expose-headers", "x-b"),
    ]


@pytest.mark.parametrize("headers", [[], [("origin", "")], [("origin", "https://evil.example")]])
def test_no_or_disallowed_origin_changes_nothing(mesh: Mesh, headers: Any) -> None:
    req, response = respond(mesh, "/x", headers)
    assert response is None and not req.HasField("mode_override")
    plain, _ = respond(mesh, "/x")
    assert req == plain


def test_cors_headers_follow_the_route_response_ops_and_win(mesh: Mesh) -> None:
    req, response = respond(mesh, "/ops", [("origin", ALLOWED)])
    assert req.mode_override.response_header_mode == 1
    assert resp_headers(response) == [  # the route's ops (Istio sorts them by name), then CORS
        ("access-control-allow-origin", "https://route.example"),
        ("x-resp", "1"),
        ("access-control-allow-origin", ALLOWED),  # applied last: the CORS filter's value wins
        ("access-control-expose-headers", "x-b,x-c"),
    ]
    # without an allowed origin: the route's response ops only, as before
    _, response = respond(mesh, "/ops", [("origin", "https://evil.example")])
    assert resp_headers(response) == [
        ("access-control-allow-origin", "https://route.example"),
        ("x-resp", "1"),
    ]


def test_credentials_header_only_when_allowed(mesh: Mesh) -> None:
    _, response = respond(mesh, "/ops", [("origin", ALLOWED)])
    assert "access-control-allow-credentials" not in dict(resp_headers(response))


def test_a_fired_abort_answers_before_cors(mesh: Mesh) -> None:
    req, response = respond(mesh, "/abort", PREFLIGHT, "OPTIONS")
    assert req.WhichOneof("response") == "request_headers"  # the fault filter aborts; no preflight reply
    assert mutation(req)[0]["x-envoy-fault-abort-request"] == [("503", False)]
    assert response is None


# === origin matching ===


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (ALLOWED, True),
        ("https://a.example.evil", False),  # exact
        ("https://pre.anything", True),  # prefix
        ("https://pre", False),
        ("https://www.b.example", True),  # regex, full match
        ("https://www.b.example.evil", False),
        ("xhttps://www.b.example", False),
        ("https://x42", True),
        ("https://x\u0664\u0662", False),  # RE2's \d is ASCII (Python's re would say yes)
        ("HTTPS://A.EXAMPLE", False),  # case-sensitive
    ],
)
def test_origin_matching(mesh: Mesh, origin: str, allowed: bool) -> None:
    _, response = respond(mesh, "/x", [("origin", origin)])
    assert (response is not None) is allowed


def with_origins(mesh: Mesh, origins: list[dict[str, str]]) -> RouteTable:
    """The table with the catch-all route's ``allowOrigins`` replaced in the IR (some of these
    matchers never pass validation)."""
    ir = json.loads(json.dumps(mesh.analysis.ir))
    [route] = [r for r in ir["routes"] if not r["matches"] and (r.get("extra") or {}).get("cors")]
    route["extra"]["cors"]["allow_origins"] = origins
    return RouteTable.from_json(json.dumps(ir))


def allowed(table: RouteTable, origin: str) -> bool:
    _, response = respond(table, "/x", [("origin", origin)])
    return response is not None and ("access-control-allow-origin", origin) in resp_headers(response)


def test_a_matcher_matching_star_allows_every_origin(mesh: Mesh) -> None:
    # Envoy's isOriginAllowed: a matcher that matches "*" allows any origin
    for matcher in ({"exact": "*"}, {"prefix": ""}, {"regex": ".*"}, {"regex": "[*]"}):
        table = with_origins(mesh, [matcher])
        for origin in ("https://whatever.example", "null", "x"):
            assert allowed(table, origin), (matcher, origin)
    table = with_origins(mesh, [{"regex": "https://.*"}])  # does not match "*": only what it matches
    assert allowed(table, "https://whatever.example")
    assert not allowed(table, "http://whatever.example")
    no_origins = with_origins(mesh, [])
    assert not allowed(no_origins, "https://a")


# === no CORS: unchanged ===


def test_routes_without_cors_are_unchanged(mesh: Mesh) -> None:
    assert mesh.route("ratings", "/plain").to_dict()["cors"] is None
    plain, none = respond(mesh, "/plain")
    assert none is None and not plain.HasField("mode_override")
    for method, headers in (("GET", [("origin", ALLOWED)]), ("OPTIONS", PREFLIGHT)):
        req, response = respond(mesh, "/plain", headers, method)
        assert req == plain and response is None
        assert outcome(mesh, "/plain", headers, method) == "route"


def test_preflight_answer_ends_the_stream_through_the_server(server_for: Any, tmp_path: Path) -> None:
    from meshroute.extproc.reload import compile_routing

    srv = server_for()
    (tmp_path / "vs.yaml").write_text(CONFIG)
    srv.holder.routing = compile_routing([str(DATA / "bookinfo" / "platform"), str(tmp_path)])
    before = srv.holder.metrics.snapshot()["decisions_cors_preflight"]
    [preflight] = process(
        srv.target, [headers_request("ratings", "/x", "OPTIONS", PREFLIGHT).SerializeToString()]
    )
    assert preflight.immediate_response.status.code == 200
    assert srv.holder.metrics.snapshot()["decisions_cors_preflight"] == before + 1
    req = headers_request("ratings", "/x", headers=[("origin", ALLOWED)]).SerializeToString()
    resp_msg = pb.ProcessingRequest(response_headers=pb.HttpHeaders()).SerializeToString()
    first, second = process(srv.target, [req, resp_msg])
    assert first.mode_override.response_header_mode == 1
    assert ("access-control-allow-origin", ALLOWED) in resp_headers(second)
