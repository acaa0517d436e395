"""Incremental compiles (docs/incremental.md) of meshes with per-port vhosts (docs/ir.md "VHost"
``ports``; semantics §1.1) and DestinationRule-selected views (semantics §3.1): after each edit the
patched table answers as a full load does, and the edit was a patch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshroute._core import RouteTable
from meshroute.compile import ir_json
from meshroute.config import analyze
from meshroute.mesh import MeshSession

CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: known, namespace: default}
spec: {clusterIP: 10.0.0.1, ports: [{name: http, port: 80}, {name: http-alt, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: short, namespace: default}
spec:
  hosts: [known.default]
  http: [{route: [{destination: {host: known.default.svc.cluster.local, subset: v1}, weight: 90},
                  {destination: {host: known.default.svc.cluster.local, subset: v2}, weight: 10}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: known, namespace: default}
spec:
  hosts: [known]
  http: [{match: [{headers: {end-user: {exact: jason}}}], route: [{destination: {host: known, subset: v2}}]},
         {route: [{destination: {host: known, subset: v1}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: known, namespace: default}
spec:
  host: known
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: known-canary, namespace: default}
spec:
  host: known
  workloadSelector: {matchLabels: {app: canary}}
  exportTo: ["."]
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""

REQUESTS: list[dict[str, Any]] = [
    {"host": host, "port": port, "source_namespace": "default", "source_labels": labels, "headers": headers}
    for host in ("known", "known.default", "known.default.svc.cluster.local")
    for port in (80, 8080, 9090)
    for labels in ({}, {"app": "canary"})
    for headers in ({}, {"end-user": "jason"})
]


def _answers(table: RouteTable) -> list[dict[str, Any]]:
    out = []
    for req in REQUESTS:
        args = {k: v for k, v in req.items() if k != "host"}
        for seed in (0, 1, 2, 7):
            out.append(table.route(req["host"], seed=seed, **args).to_dict())
    return out


def test_edits_of_a_per_port_mesh_patch_as_a_full_load_compiles(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(CONFIG)
    session = MeshSession(tmp_path)
    session.refresh()
    ir = analyze([tmp_path]).ir
    assert ir is not None
    # known.default is the VS short's on port 80 and stays known's on 8080 (semantics §1.1).
    domains = [(vh["domains"], vh.get("ports")) for vh in ir["views"][0]["vhosts"]]
    assert (["known.default"], [80]) in domains and (["known.default"], [8080]) in domains
    for old, new in (
        ("weight: 90", "weight: 70"),  # the VS of the non-service host
        ("weight: 10", "weight: 30"),
        ("exact: jason", "exact: kim"),  # the service's VS (its 8080 remainder vhost too)
        ("simple: LEAST_REQUEST", "simple: RANDOM"),  # the selecting DR
    ):
        path.write_text(path.read_text().replace(old, new, 1))
        mesh = session.refresh()
        assert session.last.kind == "patch", session.last.why
        full = analyze([tmp_path])
        assert full.ok
        assert _answers(mesh.table) == _answers(RouteTable.from_json(ir_json(full.ir or {}))), old
