"""Listener context from gRPC metadata, and Gateway selection for gateway listeners (done by the
core from the IR's ``gateway_servers``, through serve's own path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import ListenerContext
from meshroute.extproc import CLUSTER_HEADER
from meshroute.extproc.context import MESH_LISTENER, ContextError, Routing, listener_from_metadata
from meshroute.extproc.servicer import header_pairs
from meshroute.mesh import bookinfo_path, load

from .conftest import DATA, headers_request, mutation


def test_no_metadata_is_the_mesh_listener() -> None:
    assert listener_from_metadata([("user-agent", "grpc-c")]) is MESH_LISTENER
    assert ListenerContext(None, None, []) == MESH_LISTENER


def test_mesh_listener_with_source() -> None:
    md = [
        ("x-meshroute-listener", "mesh"),
        ("x-meshroute-source-namespace", "test"),
        ("x-meshroute-source-labels", "app=productpage, version=v1"),
    ]
    assert listener_from_metadata(md) == ListenerContext(
        None, "test", [("app", "productpage"), ("version", "v1")]
    )


def test_gateway_listener_needs_a_port() -> None:
    assert listener_from_metadata(
        [("x-meshroute-listener", "gateway"), ("x-meshroute-port", "443")]
    ) == ListenerContext(443)
    with pytest.raises(ContextError):
        listener_from_metadata([("x-meshroute-listener", "gateway")])


@pytest.mark.parametrize(
    "md",
    [
        [("x-meshroute-listener", "sidecar")],
        [("x-meshroute-source-labels", "novalue")],
        [("x-meshroute-listener", "gateway"), ("x-meshroute-port", "99999")],
        [("x-meshroute-listener", "gateway"), ("x-meshroute-port", "0")],
    ],
)
def test_bad_context_is_an_error(md: list[tuple[str, str]]) -> None:
    with pytest.raises(ContextError):
        listener_from_metadata(md)


# === Gateway selection ===


def gateway(ns: str, name: str, servers: list[tuple[int, list[str]]], proxy: str = "ingressgateway") -> str:
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: Gateway",
        f"metadata: {{name: {name}, namespace: {ns}}}",
        "spec:",
        f"  selector: {{istio: {proxy}}}",
        "  servers:",
    ]
    for i, (port, hosts) in enumerate(servers):
        lines.append(f"  - port: {{number: {port}, name: http-{i}, protocol: HTTP}}")
        lines.append(f"    hosts: [{', '.join(repr(h) for h in hosts)}]")
    return "\n".join(lines)


def bound(ns: str, name: str, backend: str) -> str:
    """A VirtualService of every host, bound to Gateway ``ns/name``, routing to ``backend``: which
    backend a request reaches says which Gateway served it."""
    return f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: ["*"]
  gateways: [{ns}/{name}]
  http: [{{route: [{{destination: {{host: {backend}.default.svc.cluster.local}}}}]}}]"""


def served_by(tmp_path: Path, docs: list[str], port: int, host: str) -> str | None:
    """Which backend serves ``host`` on gateway listener ``port``; None for a 404."""
    (tmp_path / "gateways.yaml").write_text("\n---\n".join(docs))
    routing = Routing(load(Path(bookinfo_path()) / "platform", tmp_path))
    pairs = header_pairs(headers_request(host, "/").request_headers)
    outcome, data, _, _, _ = routing.respond(pairs, ListenerContext(port))
    if outcome == "no_route":
        return None
    [(cluster, _)] = mutation(pb.ProcessingResponse.FromString(data))[0][CLUSTER_HEADER]
    return cluster.split("|")[3].split(".")[0]


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
def test_gateway_server_host_rule(tmp_path: Path, pattern: str, host: str, matches: bool) -> None:
    # Gateway ns1/one has the server under test; ns1/any, after it, takes every other host. Each
    # selects a gateway proxy of its own (one proxy would merge them, semantics §4), so the
    # listener's request goes to the first proxy whose servers on the port match the host.
    docs = [
        gateway("ns1", "one", [(8080, [pattern])], proxy="one"),
        gateway("ns1", "any", [(8080, ["*"])], proxy="any"),
        bound("ns1", "one", "ratings"),
        bound("ns1", "any", "details"),
    ]
    assert served_by(tmp_path, docs, 8080, host) == ("ratings" if matches else "details")


def test_gateway_selection_is_first_match_in_config_order(tmp_path: Path) -> None:
    # three gateway proxies sharing the listener ports (one proxy would merge the Gateways, §4)
    docs = [
        gateway("a", "wild", [(8080, ["*.example.com"])], proxy="a"),
        gateway(
            "b", "exact", [(9090, ["x.test"]), (8080, ["other/api.example.com", "bookinfo.com"])], proxy="b"
        ),
        gateway("c", "any", [(8080, ["*"])], proxy="c"),
        bound("a", "wild", "ratings"),
        bound("b", "exact", "details"),
        bound("c", "any", "reviews"),
    ]
    for port, host, backend in [
        (8080, "api.example.com", "ratings"),
        (8080, "bookinfo.com", "details"),
        (8080, "else.org", "reviews"),
        (9090, "x.test", "details"),
        (9090, "y.test", None),
        (7070, "x.test", None),
    ]:
        assert served_by(tmp_path, docs, port, host) == backend, (port, host)


def test_gateway_listener_routes_through_the_selected_gateway() -> None:
    routing = Routing(load(bookinfo_path()))
    gateway = ListenerContext(8080)
    pairs = header_pairs(headers_request("bookinfo.example:80", "/productpage").request_headers)
    _, data, _, _, _ = routing.respond(pairs, gateway)
    sets, _ = mutation(pb.ProcessingResponse.FromString(data))
    assert sets[CLUSTER_HEADER] == [("outbound|9080||productpage.default.svc.cluster.local", False)]
    # No Gateway has a server on 9999: 404 without consulting the route table.
    pairs = header_pairs(headers_request("x", "/productpage").request_headers)
    outcome, data, _, _, _ = routing.respond(pairs, ListenerContext(9999))
    imm = pb.ProcessingResponse.FromString(data).immediate_response
    assert (outcome, imm.status.code, imm.details) == ("no_route", 404, "route_not_found")


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
        (ListenerContext(None, None, [("app", "productpage"), ("version", "v1")]), "v2"),
        (ListenerContext(None, "test"), "v3"),
    ],
)
def test_source_context_reaches_the_route_table(
    tmp_path: Path, listener: ListenerContext, subset: str
) -> None:
    (tmp_path / "vs.yaml").write_text(SOURCE_VS)
    routing = Routing(
        load(
            Path(bookinfo_path()) / "platform",
            DATA / "bookinfo" / "networking" / "destination-rule-all.yaml",
            tmp_path,
        )
    )
    fqdn = headers_request("reviews.default.svc.cluster.local:9080")  # short names resolve per namespace
    _, data, _, _, _ = routing.respond(header_pairs(fqdn.request_headers), listener)
    sets, _ = mutation(pb.ProcessingResponse.FromString(data))
    assert sets[CLUSTER_HEADER] == [(f"outbound|9080|{subset}|reviews.default.svc.cluster.local", False)]
