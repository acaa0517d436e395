"""Large meshes load in linear time without changing a byte of what they compile to.

The fingerprints below were recorded with the compiler as it was before the scale work (indexes
instead of scans, shared per-namespace pieces, the one-pass loader): the IR of the generated
meshes (``meshroute.bench.scale``) and their diagnostics must stay exactly the same.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from meshroute._core import RouteTable
from meshroute.bench.scale import request_mix, write_mesh
from meshroute.compile import expand_vhost_pool, ir_json
from meshroute.config import Analysis, analyze
from meshroute.config.load import load_text

# sha256 of /tmp/scale/gen.py's output for 100 services (the issue's generator, one file).
ISSUE_GENERATOR_100 = "48da0b20c2e98b287eac3b6b92931abed7c337fdc75b7c9647c7781d6136e6b8"
# (services, variant) -> sha256 of json.dumps(ir), sha256 of the diagnostics (see _fingerprint).
BEFORE = {
    (100, "plain"): (
        "016efdf9ddf42fee8df9862139f10caece40168aac5556cab6072eb83fedc383",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    (200, "edge"): (
        "b4d2094ffbdfec8abf0bced92cf218a9dc5145cce9c700fd7d3472c21c4421bd",
        "99b092a15b45c22bc9dae9808c6202d3b9bd749e29d30617cf7914d35b894bfa",
    ),
}

# The 60-service mesh plus one of these (file extra.yaml, read first), each a case the shared
# per-namespace pieces must leave alone or handle: sha256 of the IR and of the diagnostics
# recorded before the scale work.
EXTRAS: dict[str, tuple[str, str, str]] = {
    # a public DestinationRule in ns1 for a service of ns2
    "consumer-dr": (
        """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc2-consumer, namespace: ns1}
spec:
  host: svc2.ns2.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: v1, labels: {version: v1}}]
""",
        "0a8567c4be32182c1fabc12e7b7d70ccdb434adf7222088bc79a10ada75309fc",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # two rules for one host, merged
    "second-dr": (
        """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc3-more, namespace: ns3}
spec:
  host: svc3
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v3, labels: {version: v3}}]
""",
        "5ab7835039b87e6f410eeb015b88fb8b95b7cc9b9b4a2a58241b24ee745e5566",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a public wildcard VirtualService
    "wild-vs": (
        """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild, namespace: ns4}
spec:
  hosts: ['*.ns5.svc.cluster.local']
  http: [{route: [{destination: {host: svc5.ns5.svc.cluster.local, subset: v2}}]}]
""",
        "eea935f17551d76a29325943de712042839011170113a1bfda3a8c230475dc2a",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a Sidecar with egress hosts in ns6, one without (REGISTRY_ONLY) in ns7
    "sidecars": (
        """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns6}
spec:
  egress: [{hosts: ['./*', 'ns7/*']}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: ns7}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""",
        "0503870800449de1615c8650913ee82ac8e096966e2982fb99b891a805cb9d7c",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a VirtualService exported to its own namespace only
    "local-vs": (
        """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: local, namespace: ns8}
spec:
  hosts: [svc9.ns9.svc.cluster.local, external.example.com]
  exportTo: ['.']
  http: [{route: [{destination: {host: svc9.ns9.svc.cluster.local, subset: v1}}]}]
""",
        "e62b1ecf6795ca83442ce9693f7c6520aafdc07ad0ff0c1d0f9cf612723db1ad",
        "c29e755b1f044e01d51157b9343d795850f3516c0b2282ff507ec92cd80805b7",
    ),
    # a Service exported to its own namespace only
    "svc-export": (
        """\
apiVersion: v1
kind: Service
metadata:
  name: hidden
  namespace: ns9
  annotations: {networking.istio.io/exportTo: '.'}
spec: {ports: [{port: 80, name: http}]}
""",
        "93d40cbb51c23a2a92394f9519efe4c6492f3cb4462c6ac77df750b310061931",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a short name that is also a VirtualService host
    "collision": (
        """\
apiVersion: v1
kind: Service
metadata: {name: a.b, namespace: ns2}
spec: {ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ab, namespace: ns1}
spec:
  hosts: [a.b, ext.example.org]
  http: [{route: [{destination: {host: svc1}}]}]
""",
        "217dc15a883312e06ce052d1c990cc0bac043bbc62c897094823b6a5beaa0478",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a root-namespace wildcard rule, a service without rules and two ports
    "root-dr": (
        """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all, namespace: istio-system}
spec:
  host: '*.svc.cluster.local'
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: v1
kind: Service
metadata: {name: nodr, namespace: ns4}
spec: {ports: [{port: 80, name: http}, {port: 81, name: grpc}]}
""",
        "59b98a9b962171e05228a9a88a3b6afe04b2497ab187d455145218c5e758cda0",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a wildcard rule in an ordinary namespace
    "wild-dr-ns": (
        """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: wild, namespace: ns5}
spec:
  host: '*.ns6.svc.cluster.local'
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
""",
        "6d1b8ee62bb7d7c705ab3c9ab0777e944feee0407018ae7b5c4b5ad7b6d8a1ad",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    # a mesh-wide default Sidecar
    "mesh-sidecar": (
        """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: istio-system}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""",
        "d9c67b7424743ede37c2aa14821504213ad2c97af21c05c002bd74ae0474d2e8",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _analysis(tmp_path: Path, services: int, variant: str) -> Analysis:
    write_mesh(services, tmp_path, variant=variant)
    return analyze([tmp_path])


def _fingerprint(analysis: Analysis, root: Path) -> tuple[str, str]:
    diags = [
        [
            d.severity.value,
            d.code,
            d.message,
            os.path.relpath(d.file, root) if d.file else None,
            d.line,
            d.kind,
            d.namespace,
            d.name,
            list(d.path),
        ]
        for d in analysis.diagnostics
    ]
    return _sha(json.dumps(analysis.ir)), _sha(json.dumps(diags))


def test_generator_writes_what_the_issue_generated(tmp_path: Path) -> None:
    [path] = write_mesh(100, tmp_path, single_file=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ISSUE_GENERATOR_100


@pytest.mark.parametrize(("services", "variant"), sorted(BEFORE))
def test_ir_and_diagnostics_are_unchanged(tmp_path: Path, services: int, variant: str) -> None:
    analysis = _analysis(tmp_path, services, variant)
    assert analysis.ok
    assert _fingerprint(analysis, tmp_path) == BEFORE[(services, variant)]


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_ir_with_one_more_resource_is_unchanged(tmp_path: Path, extra: str) -> None:
    text, ir_sha, diags_sha = EXTRAS[extra]
    write_mesh(60, tmp_path)
    (tmp_path / "extra.yaml").write_text(text)
    analysis = analyze([tmp_path])
    assert _fingerprint(analysis, tmp_path) == (ir_sha, diags_sha)


def _decisions(table: RouteTable, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [table.route(**r, seed=7).to_dict() for r in requests]


def test_pooled_vhosts_route_like_the_flat_ir(tmp_path: Path) -> None:
    analysis = _analysis(tmp_path, 200, "edge")
    ir = analysis.ir
    assert ir is not None
    pooled = ir_json(ir)
    flat = json.dumps(ir)
    compact = json.loads(pooled)
    refs = [vhost for view in compact["views"] for vhost in view["vhosts"]]
    # 22 mesh views share a service's vhost (two per service: seen from its namespace or not)
    assert sum(isinstance(r, int) for r in refs) > 0.9 * len(refs)
    assert len(compact["vhost_pool"]) < len(refs) / 5
    assert expand_vhost_pool(compact) == json.loads(flat)
    requests: list[dict[str, Any]] = [
        {"host": host, "path": path, "headers": headers, "source_namespace": ns}
        for host, path, headers, ns in request_mix(200, 300)
    ]
    requests += [
        {"host": "svc3.ns3", "path": "/", "source_namespace": "ns3"},  # exported to ns3 only
        {"host": "svc3.ns3", "path": "/", "source_namespace": "ns4"},
        {"host": "svc3", "path": "/", "source_namespace": "ns3"},
        {"host": "svc1.ns1", "path": "/", "source_namespace": "ns0"},  # Sidecar imports ns1
        {"host": "svc2.ns2", "path": "/", "source_namespace": "ns0"},  # ... not ns2
        {"host": "svc2.ns2", "path": "/", "source_namespace": "ns1", "headers": {"end-user": "jason"}},
        {"host": "svc7.ns7", "path": "/", "source_namespace": "ns10"},  # REGISTRY_ONLY
        {"host": "api.ext.example.com", "path": "/", "source_namespace": "ns0"},
        {"host": "svc0.edge0.example.com", "path": "/", "gateway": "istio-system/edge0"},
        {"host": "x.edge1.example.com", "path": "/", "gateway": "istio-system/edge1"},
        {"host": "svc0", "path": "/", "gateway": "istio-system/edge0", "port": 8080},
    ]
    expected = _decisions(RouteTable.from_json(flat), requests)
    assert _decisions(RouteTable.from_json(pooled), requests) == expected
    outcomes = {d["outcome"] for d in expected}
    assert {"route", "no_cluster", "no_route"} <= outcomes, outcomes


def test_lines_are_found_when_a_diagnostic_needs_them() -> None:
    # The loader records no lines on its first pass; a diagnostic reads them afterwards.
    text = """\
apiVersion: v1
kind: Service
metadata: {name: a}
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: b}
  spec:
    hosts: [a]
    http:
    - route:
      - destination: {host: a}
        weight: 5
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c}
spec:
  host: a
  host: b
"""
    loaded = load_text(text, "x.yaml")
    vs, dr = loaded.resources[1], loaded.resources[2]
    assert (vs.line, dr.line) == (8, 18)
    assert vs.line_of(("spec", "http", 0, "route", 0, "weight")) == 16
    assert dr.line_of(("spec", "host")) == 23  # the duplicate key is the one kept
    assert [(d.code, d.line) for d in loaded.diagnostics] == [("yaml-duplicate-key", 23)]
