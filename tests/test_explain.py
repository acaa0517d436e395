"""``Mesh.explain``: the blocks tried for a request, HTTP and TCP, with why each did or did not
match; its decision is ``route()``'s."""

from __future__ import annotations

from pathlib import Path

import meshroute

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  ports:
    - {name: http, port: 80}
    - {name: tcp, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
    - match: [{headers: {end-user: {exact: jason}}}]
      route: [{destination: {host: echo, subset: v2}}]
    - route: [{destination: {host: echo, subset: v1}}]
  tcp:
    - match: [{sourceLabels: {app: canary}}, {port: 9001}]
      route: [{destination: {host: echo, port: {number: 9000}, subset: v2}}]
    - route: [{destination: {host: echo, port: {number: 9000}, subset: v1}}]
"""


def _mesh(tmp_path: Path) -> meshroute.Mesh:
    path = tmp_path / "mesh.yaml"
    path.write_text(CONFIG)
    return meshroute.load(path)


def test_http_trace_names_the_condition_that_missed(tmp_path: Path) -> None:
    report = _mesh(tmp_path).explain("echo", "/", port=80)
    assert [b["result"] for b in report["trace"]] == ["no match: header end-user", "matched"]
    assert report["decision"]["cluster"] == "outbound|80|v1|echo.default.svc.cluster.local"
    assert "protocol" not in report["trace"][0]


def test_tcp_trace_walks_the_tcp_routes(tmp_path: Path) -> None:
    mesh = _mesh(tmp_path)
    report = mesh.explain("echo", port=9000)
    assert report["decision"]["protocol"] == "tcp"
    assert report["decision"]["cluster"] == "outbound|9000|v1|echo.default.svc.cluster.local"
    trace = report["trace"]
    assert [(b["route_index"], b["match_index"], b["result"]) for b in trace] == [
        (0, 0, "not applicable: source_labels"),
        (0, 1, "not applicable: port"),
        (1, None, "matched"),
    ]
    assert all(b["protocol"] == "tcp" and b["virtual_service"] == "default/echo" for b in trace)


def test_tcp_trace_stops_at_the_block_that_holds(tmp_path: Path) -> None:
    report = _mesh(tmp_path).explain("echo", port=9000, source_labels={"app": "canary"})
    assert [(b["route_index"], b["match_index"], b["result"]) for b in report["trace"]] == [(0, 0, "matched")]
    assert report["decision"]["cluster"] == "outbound|9000|v2|echo.default.svc.cluster.local"
