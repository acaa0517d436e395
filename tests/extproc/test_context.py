"""Listener context from gRPC metadata, and Gateway selection for gateway listeners."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute.extproc import CLUSTER_HEADER
from meshroute.extproc.context import (
    MESH_LISTENER,
    ContextError,
    Gateways,
    Listener,
    Routing,
    listener_from_metadata,
)
from meshroute.extproc.request import request_fields
from meshroute.mesh import bookinfo_path, load

from .conftest import DATA, headers_request, mutation


def test_no_metadata_is_the_mesh_listener() -> None:
    assert listener_from_metadata([("user-agent", "grpc-c")]) is MESH_LISTENER


def test_mesh_listener_with_source() -> None:
    md = [
        ("x-meshroute-listener", "mesh"),
        ("x-meshroute-source-namespace", "test"),
        ("x-meshroute-source-labels", "app=productpage, version=v1"),
    ]
    assert listener_from_metadata(md) == Listener(
        "mesh", None, "test", {"app": "productpage", "version": "v1"}
    )


def test_gateway_listener_needs_a_port() -> None:
    assert listener_from_metadata(
        [("x-meshroute-listener", "gateway"), ("x-meshroute-port", "443")]
    ) == Listener("gateway", 443)
    with pytest.raises(ContextError):
        listener_from_metadata([("x-meshroute-listener", "gateway")])


@pytest.mark.parametrize(
    "md",
    [[("x-meshroute-listener", "sidecar")], [("x-meshroute-source-labels", "novalue")]],
)
def test_bad_context_is_an_error(md: list[tuple[str, str]]) -> None:
    with pytest.raises(ContextError):
        listener_from_metadata(md)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("*", "anything.org", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "example.com", False),
        ("ns1/*.example.com", "a.example.com", True),
        ("./bookinfo.com", "bookinfo.com", True),
        ("Bookinfo.com", "bookinfo.com", True),
        ("bookinfo.com", "www.bookinfo.com", False),
    ],
)
def test_gateway_server_host_rule(pattern: str, host: str, matches: bool) -> None:
    gws = Gateways.from_resources([gateway("gw", "one", [(8080, [pattern])])])
    assert (gws.select(8080, host) == "gw/one") is matches


def gateway(ns: str, name: str, servers: list[tuple[int, list[str]]]) -> SimpleNamespace:
    spec = {
        "servers": [
            {"port": {"number": p, "name": "http", "protocol": "HTTP"}, "hosts": h} for p, h in servers
        ]
    }
    return SimpleNamespace(kind="Gateway", namespace=ns, name=name, spec=spec)


def test_gateway_selection_is_first_match_in_config_order() -> None:
    gws = Gateways.from_resources(
        [
            SimpleNamespace(kind="VirtualService", namespace="a", name="x", spec={}),
            gateway("a", "wild", [(8080, ["*.example.com"])]),
            gateway("b", "exact", [(9090, ["x"]), (8080, ["other/api.example.com", "bookinfo.com"])]),
            gateway("c", "any", [(8080, ["*"])]),
        ]
    )
    assert gws.select(8080, "api.example.com") == "a/wild"
    assert gws.select(8080, "bookinfo.com") == "b/exact"
    assert gws.select(8080, "else.org") == "c/any"
    assert gws.select(9090, "x") == "b/exact"
    assert gws.select(9090, "y") is None
    assert gws.select(7070, "x") is None


def test_gateway_listener_routes_through_the_selected_gateway() -> None:
    routing = Routing(load(bookinfo_path()))
    listener = Listener("gateway", 8080)
    ok = routing.decide(
        request_fields(headers_request("bookinfo.example:80", "/productpage").request_headers), listener
    )
    sets, _ = mutation(pb.ProcessingResponse.FromString(ok.request))
    assert sets[CLUSTER_HEADER] == [("outbound|9080||productpage.default.svc.cluster.local", False)]
    # No Gateway has a server on 9999: 404 without consulting the route table.
    missing = routing.decide(
        request_fields(headers_request("x", "/productpage").request_headers), Listener("gateway", 9999)
    )
    imm = pb.ProcessingResponse.FromString(missing.request).immediate_response
    assert (missing.outcome, imm.status.code, imm.details) == ("no_route", 404, "route_not_found")


SOURCE_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceNamespace: test}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"""


@pytest.mark.parametrize(
    ("listener", "subset"),
    [
        (MESH_LISTENER, "v1"),
        (Listener("mesh", None, None, {"app": "productpage", "version": "v1"}), "v2"),
        (Listener("mesh", None, "test", None), "v3"),
    ],
)
def test_source_context_reaches_the_route_table(tmp_path: Path, listener: Listener, subset: str) -> None:
    (tmp_path / "vs.yaml").write_text(SOURCE_VS)
    routing = Routing(
        load(
            Path(bookinfo_path()) / "platform",
            DATA / "bookinfo" / "networking" / "destination-rule-all.yaml",
            tmp_path,
        )
    )
    fqdn = headers_request("reviews.default.svc.cluster.local:9080")  # short names resolve per namespace
    ans = routing.decide(request_fields(fqdn.request_headers), listener)
    sets, _ = mutation(pb.ProcessingResponse.FromString(ans.request))
    assert sets[CLUSTER_HEADER] == [(f"outbound|9080|{subset}|reviews.default.svc.cluster.local", False)]
