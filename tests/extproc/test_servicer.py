"""The real grpc.aio server on loopback, driven by a grpc client as Envoy would (not Envoy itself)."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

from meshroute.extproc import CLUSTER_HEADER
from meshroute.extproc.servicer import SERVICE

from .conftest import DATA, PROCESS, ThreadServer, headers_request, mutation

GATEWAY_MD = (("x-meshroute-listener", "gateway"), ("x-meshroute-port", "8080"))


def process(
    target: str, messages: list[bytes], metadata: Any = (), timeout: float = 5
) -> list[pb.ProcessingResponse]:
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(PROCESS)
        out = call(iter(messages), metadata=metadata, timeout=timeout)
        return [pb.ProcessingResponse.FromString(raw) for raw in out]


@pytest.fixture
def bookinfo(server_for: Any) -> ThreadServer:
    srv: ThreadServer = server_for("virtual-service-reviews-test-v2.yaml")
    return srv


def test_request_headers_are_routed_and_the_stream_ends(bookinfo: ThreadServer) -> None:
    jason = headers_request(headers=[("end-user", "jason")]).SerializeToString()
    [resp] = process(bookinfo.target, [jason])
    sets, _ = mutation(resp)
    assert sets[CLUSTER_HEADER] == [("outbound|9080|v2|reviews.default.svc.cluster.local", False)]


def test_values_sent_in_value_instead_of_raw_value_are_read(bookinfo: ThreadServer) -> None:
    msg = pb.ProcessingRequest()
    hm = msg.request_headers.headers
    hm.headers.add(key=":authority", value="reviews:9080")
    hm.headers.add(key=":path", raw_value=b"/reviews/0")
    hm.headers.add(key="end-user", value="jason")
    [resp] = process(bookinfo.target, [msg.SerializeToString()])
    sets, _ = mutation(resp)
    assert sets[CLUSTER_HEADER] == [("outbound|9080|v2|reviews.default.svc.cluster.local", False)]


def test_the_server_ends_the_stream_without_waiting_for_the_half_close(bookinfo: ThreadServer) -> None:
    requests: queue.Queue[bytes | None] = queue.Queue()
    requests.put(headers_request().SerializeToString())

    def feed() -> Iterator[bytes]:
        while (item := requests.get()) is not None:
            yield item

    with grpc.insecure_channel(bookinfo.target) as channel:
        call = channel.stream_stream(PROCESS)(feed(), timeout=5)
        first = next(call)
        assert pb.ProcessingResponse.FromString(first).WhichOneof("response") == "request_headers"
        with pytest.raises(StopIteration):  # trailers arrive while our side is still open
            next(call)
        assert call.code() == grpc.StatusCode.OK
        requests.put(None)


def test_gateway_listener_context_comes_from_metadata(bookinfo: ThreadServer) -> None:
    page = headers_request("bookinfo.example", "/productpage").SerializeToString()
    [resp] = process(bookinfo.target, [page], GATEWAY_MD)
    sets, _ = mutation(resp)
    assert sets[CLUSTER_HEADER] == [("outbound|9080||productpage.default.svc.cluster.local", False)]
    [resp] = process(
        bookinfo.target, [page], (("x-meshroute-listener", "gateway"), ("x-meshroute-port", "81"))
    )
    assert resp.immediate_response.status.code == 404


def test_response_phase_gets_the_response_header_ops(server_for: Any, tmp_path: Any) -> None:
    srv: ThreadServer = server_for()
    # Bookinfo has no response ops; use a holder whose config has some.
    from meshroute.extproc.reload import compile_routing

    (tmp_path / "vs.yaml").write_text(RESPONSE_OPS_VS)
    srv.holder.routing = compile_routing([str(DATA / "bookinfo" / "platform"), str(tmp_path)])
    req = headers_request("ratings", "/").SerializeToString()
    resp_headers = pb.ProcessingRequest(response_headers=pb.HttpHeaders()).SerializeToString()
    first, second = process(srv.target, [req, resp_headers])
    assert first.mode_override.response_header_mode == 1
    mut = second.response_headers.response.header_mutation
    assert [(o.header.key, o.header.raw_value) for o in mut.set_headers] == [("x-served-by", b"meshroute")]


RESPONSE_OPS_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - headers: {response: {set: {x-served-by: meshroute}}}
    route: [{destination: {host: ratings}}]
"""


@pytest.mark.parametrize("kind", ["request_body", "request_trailers", "response_body", "response_trailers"])
def test_other_messages_get_an_empty_answer_of_their_kind(bookinfo: ThreadServer, kind: str) -> None:
    msg = pb.ProcessingRequest()
    getattr(msg, kind).SetInParent()
    [resp] = process(bookinfo.target, [msg.SerializeToString()])
    assert resp.WhichOneof("response") == kind


@pytest.mark.parametrize(
    ("messages", "metadata", "code"),
    [
        ([b"\xff\xff\xff"], (), grpc.StatusCode.INVALID_ARGUMENT),  # not a ProcessingRequest
        ([b""], (), grpc.StatusCode.INVALID_ARGUMENT),  # no oneof set
        ([headers_request().SerializeToString()], (("x-meshroute-listener", "bogus"),),
         grpc.StatusCode.INVALID_ARGUMENT),
    ],
)  # fmt: skip
def test_bad_streams_fail_with_a_grpc_error_and_the_server_keeps_serving(
    bookinfo: ThreadServer, messages: list[bytes], metadata: Any, code: grpc.StatusCode
) -> None:
    before = bookinfo.holder.metrics.snapshot()["streams_failed"]
    with pytest.raises(grpc.RpcError) as err:
        process(bookinfo.target, messages, metadata)
    assert err.value.code() == code
    assert bookinfo.holder.metrics.snapshot()["streams_failed"] == before + 1
    [ok] = process(bookinfo.target, [headers_request().SerializeToString()])
    assert ok.WhichOneof("response") == "request_headers"


def test_an_exception_while_routing_is_an_internal_error(bookinfo: ThreadServer) -> None:
    class Broken:
        def respond(self, *args: Any) -> Any:
            raise RuntimeError("boom")

    good = bookinfo.holder.routing
    bookinfo.holder.routing = Broken()  # type: ignore[assignment]
    try:
        with pytest.raises(grpc.RpcError) as err:
            process(bookinfo.target, [headers_request().SerializeToString()])
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "boom" in (err.value.details() or "")
    finally:
        bookinfo.holder.routing = good


def test_counters(bookinfo: ThreadServer) -> None:
    metrics = bookinfo.holder.metrics
    histogram = metrics.stream_seconds.collect()[0]
    observed = next(s.value for s in histogram.samples if s.name.endswith("_count"))
    before = metrics.snapshot()
    process(bookinfo.target, [headers_request("ratings", "/").SerializeToString()])
    after = metrics.snapshot()
    assert after["streams_started"] == before["streams_started"] + 1
    assert after["decisions_route"] == before["decisions_route"] + 1
    histogram = metrics.stream_seconds.collect()[0]
    assert next(s.value for s in histogram.samples if s.name.endswith("_count")) == observed + 1


def test_health_is_serving(bookinfo: ThreadServer) -> None:
    with grpc.insecure_channel(bookinfo.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        bookinfo.call(bookinfo.health.enter_graceful_shutdown())
        resp = stub.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.NOT_SERVING
