"""The answers serve writes (``Routing.respond``, the core's exchange serialized by
``meshroute_extproc``): each outcome, control headers, retries, rewrites, header ops, the hash key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import ListenerContext, RouteTable
from meshroute.extproc import CLUSTER_HEADER, CONTROL_HEADERS, HASH_HEADER
from meshroute.extproc.context import MESH_LISTENER, Routing
from meshroute.extproc.servicer import empty_answer, header_pairs
from meshroute.mesh import Mesh, bookinfo_path, load

from .conftest import headers_request, mutation

CONFIG = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, ttl: 0s}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: uid}
  - name: ip
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /grpc}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /abort}}]
    fault:
      abort: {httpStatus: 418, percentage: {value: 100}}
      delay: {fixedDelay: 1.5s, percentage: {value: 100}}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /redirect}}]
    redirect: {uri: /new, authority: x.example.com}
    headers: {response: {set: {x-r: "1"}}}
  - match: [{uri: {prefix: /direct}}]
    directResponse: {status: 418, body: {string: teapot}}
  - match: [{uri: {prefix: /rewrite}}]
    rewrite: {uri: /v2/, authority: rev.example}
    timeout: 2s
    retries: {attempts: 3, retryOn: "5xx,unavailable,503,gateway-error", perTryTimeout: 0.3s}
    headers:
      request: {set: {x-a: "1", x-envoy-max-retries: "99"}, add: {x-b: "2"}, remove: [x-c]}
      response: {set: {x-ra: "1"}, add: {x-rb: "2"}, remove: [x-rc]}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /noretry}}]
    retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /query}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{uri: {prefix: /ip}}]
    route: [{destination: {host: reviews, subset: ip}}]
  - match: [{uri: {prefix: /nowhere}}]
    route: [{destination: {host: nowhere.example.com}}]
  - match: [{uri: {prefix: /cookie}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews, subset: v2}}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Mesh:
    path: Path = tmp_path_factory.mktemp("cfg") / "reviews.yaml"
    path.write_text(CONFIG)
    return load(Path(bookinfo_path()) / "platform", path)


def answer(
    mesh: Mesh, path: str, headers: Any = (), authority: str = "reviews:9080"
) -> pb.ProcessingResponse:
    return pb.ProcessingResponse.FromString(respond(Routing(mesh, seed=1), path, headers, authority)[1])


def respond(
    routing: Routing,
    path: str,
    headers: Any = (),
    authority: str = "reviews:9080",
    listener: ListenerContext = MESH_LISTENER,
) -> tuple[str, bytes, bytes | None, bool, bool]:
    """What the servicer gets for one request_headers message."""
    return routing.respond(
        header_pairs(headers_request(authority, path, headers=headers).request_headers), listener
    )


def only(sets: dict[str, list[tuple[str, bool]]], name: str) -> str:
    [(value, append)] = sets[name]
    assert append is False
    return value


# === each outcome ===


def test_route_sets_cluster_and_clears_route_cache_with_a_mutation(mesh: Mesh) -> None:
    resp = answer(mesh, "/")
    assert resp.WhichOneof("response") == "request_headers"
    assert resp.request_headers.response.HasField("header_mutation")
    sets, _removes = mutation(resp)
    assert only(sets, CLUSTER_HEADER) == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert not resp.HasField("mode_override")


def test_abort_http_is_a_fault_header_after_the_delay(mesh: Mesh) -> None:
    sets, _ = mutation(answer(mesh, "/abort"))
    assert only(sets, "x-envoy-fault-abort-request") == "418"
    assert only(sets, "x-envoy-fault-delay-request") == "1500"
    assert CLUSTER_HEADER in sets


def test_abort_grpc_uses_the_numeric_code(mesh: Mesh) -> None:
    sets, removes = mutation(answer(mesh, "/grpc"))
    assert only(sets, "x-envoy-fault-abort-grpc-request") == "14"
    assert "x-envoy-fault-abort-request" in removes


def test_delay_only(mesh: Mesh) -> None:
    sets, removes = mutation(answer(mesh, "/delay"))
    assert only(sets, "x-envoy-fault-delay-request") == "2000"
    assert "x-envoy-fault-abort-request" in removes


def test_redirect_is_an_immediate_response_with_location(mesh: Mesh) -> None:
    imm = answer(mesh, "/redirect/x?q=1").immediate_response
    assert imm.status.code == 301 and imm.details == "redirect"
    hdrs = {o.header.key: o.header.raw_value for o in imm.headers.set_headers}
    assert hdrs == {"location": b"http://x.example.com/new?q=1", "x-r": b"1"}


def test_direct_response(mesh: Mesh) -> None:
    imm = answer(mesh, "/direct").immediate_response
    assert (imm.status.code, imm.body, imm.details) == (418, b"teapot", "direct_response")


def test_no_route() -> None:
    routing = Routing(load(bookinfo_path()))
    # the gateway VS only has productpage paths
    outcome, data, response, _, _ = respond(routing, "/", authority="reviews", listener=ListenerContext(8080))
    imm = pb.ProcessingResponse.FromString(data).immediate_response
    assert (outcome, imm.status.code, imm.details, response) == ("no_route", 404, "route_not_found", None)


def test_unknown_mesh_host_passes_through(mesh: Mesh) -> None:
    sets, _ = mutation(answer(mesh, "/", authority="unknown.example.org"))
    assert only(sets, CLUSTER_HEADER) == "PassthroughCluster"  # Istio's ALLOW_ANY default


def test_no_cluster(mesh: Mesh) -> None:
    imm = answer(mesh, "/nowhere").immediate_response
    assert (imm.status.code, imm.details) == (503, "cluster_not_found")


REGISTRY_ONLY = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


def test_registry_only_unknown_host_is_the_cores_502(tmp_path: Path) -> None:
    (tmp_path / "sidecar.yaml").write_text(REGISTRY_ONLY)
    routing = Routing(load(Path(bookinfo_path()) / "platform", tmp_path))
    outcome, data, response, _, _ = respond(routing, "/", authority="unknown.example.org")
    imm = pb.ProcessingResponse.FromString(data).immediate_response
    assert (outcome, imm.status.code, imm.details, response) == ("no_cluster", 502, "cluster_not_found", None)
    assert routing.mesh.route("unknown.example.org").status == 502  # the decision's own status


# === control headers ===

PASS_THROUGH = ["/", "/abort", "/grpc", "/delay", "/rewrite", "/noretry", "/query", "/ip", "/cookie"]


@pytest.mark.parametrize("header", CONTROL_HEADERS)
@pytest.mark.parametrize("path", PASS_THROUGH)
def test_forged_control_headers_are_overwritten_or_removed(mesh: Mesh, header: str, path: str) -> None:
    resp = answer(mesh, path, headers=[(header, "forged")])
    sets, removes = mutation(resp)
    if header in sets:
        assert [v for v, append in sets[header]] != ["forged"]
        assert all(append is False for _, append in sets[header]), "a control header must overwrite"
    else:
        assert header in removes


def test_route_ops_cannot_touch_control_headers(mesh: Mesh) -> None:
    sets, _ = mutation(answer(mesh, "/rewrite"))
    assert only(sets, "x-envoy-max-retries") == "3"  # the VS set 99 through headers.request.set


# === timeouts, retries, rewrites, header ops ===


def test_timeout_and_retries_mapping(mesh: Mesh) -> None:
    sets, _removes = mutation(answer(mesh, "/rewrite/1"))
    assert only(sets, "x-envoy-upstream-rq-timeout-ms") == "2000"
    assert only(sets, "x-envoy-max-retries") == "3"
    assert only(sets, "x-envoy-retry-on") == "5xx,gateway-error,retriable-status-codes"
    assert only(sets, "x-envoy-retry-grpc-on") == "unavailable"
    assert only(sets, "x-envoy-retriable-status-codes") == "503"
    assert only(sets, "x-envoy-upstream-rq-per-try-timeout-ms") == "300"


def test_default_retries_are_istios_mesh_default(mesh: Mesh) -> None:
    sets, removes = mutation(answer(mesh, "/"))
    assert only(sets, "x-envoy-max-retries") == "2"
    assert only(sets, "x-envoy-retry-on") == "connect-failure,refused-stream,retriable-status-codes"
    assert only(sets, "x-envoy-retry-grpc-on") == "unavailable,cancelled"
    # since Istio 1.24 the default policy does not retry a 503 response: no status codes
    assert "x-envoy-retriable-status-codes" in removes
    assert "x-envoy-upstream-rq-timeout-ms" in removes  # no VS timeout: none (route timeout 0s)


def test_attempts_zero_removes_every_retry_header(mesh: Mesh) -> None:
    _, removes = mutation(answer(mesh, "/noretry"))
    for name in ("x-envoy-max-retries", "x-envoy-retry-on", "x-envoy-retry-grpc-on"):
        assert name in removes


RETRY_HEADERS = (
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-upstream-rq-per-try-timeout-ms",
)


@pytest.mark.parametrize(
    ("retry_on", "expected"),
    [
        ("5xx", {"x-envoy-retry-on": "5xx"}),
        ("503,504", {"x-envoy-retry-on": "retriable-status-codes",
                     "x-envoy-retriable-status-codes": "503,504"}),
        ("deadline-exceeded,internal", {"x-envoy-retry-grpc-on": "deadline-exceeded,internal"}),
        ("resource-exhausted", {"x-envoy-retry-grpc-on": "resource-exhausted"}),
        (" reset , 5xx ,reset", {"x-envoy-retry-on": "reset,5xx"}),
    ],
)  # fmt: skip
def test_retry_on_split(mesh: Mesh, retry_on: str, expected: dict[str, str]) -> None:
    # The IR's retries exactly as given (some of these retryOn spellings never pass validation).
    ir = json.loads(json.dumps(mesh.analysis.ir))
    [route] = [
        r for r in ir["routes"] if r["matches"] and r["matches"][0].get("uri") == {"prefix": "/noretry"}
    ]
    route["extra"]["retries"] = {"attempts": 1, "retry_on": retry_on}
    table = RouteTable.from_json(json.dumps(ir))
    pairs = header_pairs(headers_request(path="/noretry").request_headers)
    sets, removes = mutation(
        pb.ProcessingResponse.FromString(table.extproc_answer(MESH_LISTENER, pairs, 1)[1])
    )
    got = {name: only(sets, name) for name in RETRY_HEADERS if name in sets}
    assert got == {"x-envoy-max-retries": "1", **expected}
    assert set(RETRY_HEADERS) - set(got) <= set(removes)  # every other retry header removed


def test_rewrite_and_request_header_ops(mesh: Mesh) -> None:
    sets, removes = mutation(answer(mesh, "/rewrite/1?z"))
    assert only(sets, ":path") == "/v2//1?z"
    assert only(sets, ":authority") == "rev.example"
    assert only(sets, "x-a") == "1"
    assert sets["x-b"] == [("2", True)]  # add = BoolValue append (Envoy 1.40 ignores append_action)
    assert "x-c" in removes


def test_response_header_ops_ask_for_the_response_phase(mesh: Mesh) -> None:
    _, data, response, _, _ = respond(Routing(mesh), "/rewrite")
    first = pb.ProcessingResponse.FromString(data)
    assert first.mode_override.response_header_mode == 1  # SEND
    assert response is not None
    mut = pb.ProcessingResponse.FromString(response).response_headers.response.header_mutation
    assert [(o.header.key, o.header.raw_value, o.append.value) for o in mut.set_headers] == [
        ("x-ra", b"1", False),
        ("x-rb", b"2", True),
    ]
    assert list(mut.remove_headers) == ["x-rc"]


def test_no_response_ops_no_response_phase(mesh: Mesh) -> None:
    _, data, response, _, _ = respond(Routing(mesh), "/")
    assert response is None and not pb.ProcessingResponse.FromString(data).HasField("mode_override")


# === consistent hash key ===


@pytest.mark.parametrize(
    ("path", "headers", "expected"),
    [
        ("/rewrite", [("x-user", "alice")], "alice"),
        ("/rewrite", [("x-user", "a"), ("x-user", "b")], "a,b"),
        ("/rewrite", [], None),
        ("/cookie", [("cookie", "a=1; session=s42")], "s42"),
        ("/cookie", [("cookie", "a=1"), ("cookie", "session=s7")], "s7"),
        ("/cookie", [("cookie", "sessionx=1")], None),
        ("/query?a=1&uid=u9", [], "u9"),
        ("/query?a=1", [], None),
    ],
)
def test_hash_key(mesh: Mesh, path: str, headers: list[tuple[str, str]], expected: str | None) -> None:
    sets, removes = mutation(answer(mesh, path, headers=[*headers, (HASH_HEADER, "forged")]))
    if expected is None:
        assert HASH_HEADER in removes and HASH_HEADER not in sets
    else:
        assert only(sets, HASH_HEADER) == expected
    assert CLUSTER_HEADER in sets  # the hash key comes with, not instead of, the other headers


def test_hash_key_of_a_non_utf8_value_is_read_as_latin1(mesh: Mesh) -> None:
    msg = headers_request(path="/rewrite").request_headers
    msg.headers.headers.add(key="x-user", raw_value=b"caf\xe9")
    data = Routing(mesh).respond(header_pairs(msg), MESH_LISTENER)[1]
    sets, _ = mutation(pb.ProcessingResponse.FromString(data))
    assert only(sets, HASH_HEADER) == "café"


def test_source_ip_hash_leaves_the_key_to_envoy(mesh: Mesh) -> None:
    _sets, removes = mutation(answer(mesh, "/ip", headers=[(HASH_HEADER, "forged")]))
    assert HASH_HEADER in removes


# === fault flags and misc ===


def test_fault_flags(mesh: Mesh) -> None:
    outcome, _, _, delay, abort = respond(Routing(mesh, seed=1), "/abort")
    assert (outcome, delay, abort) == ("abort", True, True)
    assert respond(Routing(mesh, seed=1), "/delay")[2:] == (None, True, False)
    assert respond(Routing(mesh, seed=1), "/")[2:] == (None, False, False)


@pytest.mark.parametrize("kind", ["request_body", "request_trailers", "response_headers", "response_body"])
def test_empty_answer_has_the_right_kind(kind: str) -> None:
    assert pb.ProcessingResponse.FromString(empty_answer(kind)).WhichOneof("response") == kind
