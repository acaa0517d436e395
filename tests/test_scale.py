"""Large meshes load in linear time without changing a byte of what they compile to.

The fingerprints below were recorded with the compiler as it was before the scale work (indexes
instead of scans, shared per-namespace pieces, the one-pass loader): the IR of the generated
meshes (``meshroute.bench.scale``) and their diagnostics must stay exactly the same.

Re-recorded once since, for a change of Istio fidelity rather than of the scale work: service
vhosts now carry the domains Istio's ``generateVirtualHostDomains`` gives (the absolute name with a
trailing dot, short names in Istio's order, cluster IPs; semantics §1.1), and
``vs-duplicate-mesh-host`` follows Istio's analyzer (every VS of a conflict is reported, so
"local-vs" has two warnings where it had one). Before re-recording, every mesh here was checked
to compile to the same IR with the shared per-namespace pieces switched off (``views._plain_ok``
returning None), as the original recording was; test_shared_pieces_compile_like_the_general_path
keeps checking that for the 60-service meshes.

"wild-vs" alone was re-recorded once more, for Istio fidelity again (semantics §1.1): its wildcard
host ``*.ns5.svc.cluster.local`` overlaps the services of ns5, so it is no vhost domain of its own
on a sidecar any more (those services keep their exact VirtualServices; other names under it go
to the catch-all). The IR differs only there: every mesh view lost that one-domain vhost, and
the route pool the one route only it used.

"edge" alone was re-recorded once more, for gateway workloads (semantics §4): its three Gateways
select the same proxy (``istio: ingressgateway``), which Istio gives all three, merged per port.
The IR gained that proxy's views, appended (a GatewayId, one view per port, the routes only they
use, a ``gateway_views`` entry), and ``gateway_servers`` now names the proxy's view instead of
each Gateway; with those taken out again it is the recorded IR, byte for byte
(test_edge_ir_is_the_recorded_one_plus_the_gateway_workload).
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
from meshroute.config.gateway import parse_gateway
from meshroute.config.load import load_text

# sha256 of /tmp/scale/gen.py's output for 100 services (the issue's generator, one file).
ISSUE_GENERATOR_100 = "48da0b20c2e98b287eac3b6b92931abed7c337fdc75b7c9647c7781d6136e6b8"
# (services, variant) -> sha256 of json.dumps(ir), sha256 of the diagnostics (see _fingerprint).
BEFORE = {
    (100, "plain"): (
        "58d064ad7ef0498c7b1f17224b3b9c63df6e88fa4b202637fb990e78f7a5e4f5",
        "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
    ),
    (200, "edge"): (
        "12300866f04f10b35b0c7eb9fa6ebe13b98da73b8e53f13bbebe37ccbe2239ce",
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
        "3437bc33f1bbd8a74b38dddc106190993c660b5a3793a4130e1a83934943e8f0",
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
        "f9ba183b4d0e8ace9b0eaf39e527d9de5965eaddbe7f32c587ace43c07718e04",
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
        "1941e929f257fbb53d6f402f045b76372ba28b64da2059f3e0da121046caa50e",
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
        "0070367f5504457a67708854d7fac4c24a6c582fb9f886fb4d401f78ade2c299",
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
        "019669a094299222ecf7ed8d6ed4955782cc84e6e940b4f661c03ea72f304600",
        "7c1b5f58a73bd1f89f0e579963d243145b7d58e3e343e4b04f857af7c0bd9039",
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
        "1ca5088806deced5cd4483b4e505a4311520b0e5d65f4f9f1d54fe6140a61726",
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
        "89c40b6edea99a69fc4a6e71d7bc3e4129b04967cceeaa5e39e294f99c895295",
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
        "2a9e498f38a5e36584e683bf5e4c87a9f230572c960e2b534b33215ca59962f6",
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
        "384621b0be285bcf01b0bc3080798bcb4fa2419a39f757fcea6fded9f23b80af",
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
        "468d052efa340709f490011a4395f8e08e04b30f3f27f13c7344e93058014305",
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
    return _sha(json.dumps(_without_ports(analysis.ir))), _sha(json.dumps(diags))


def _without_ports(ir: Any) -> Any:
    """The IR without the vhosts' ``ports`` lists (docs/ir.md "VHost"), which came after these
    fingerprints were recorded: every service vhost lists its service's ports
    (:func:`test_vhost_ports_are_the_service_ports` checks them), so the recorded hashes keep
    showing that nothing else changed."""
    if not isinstance(ir, dict):
        return ir

    def strip(vh: Any) -> Any:
        return {k: v for k, v in vh.items() if k != "ports"} if isinstance(vh, dict) else vh

    out = {**ir, "views": [{**v, "vhosts": [strip(vh) for vh in v["vhosts"]]} for v in ir["views"]]}
    if "vhost_pool" in ir:
        out["vhost_pool"] = [strip(vh) for vh in ir["vhost_pool"]]
    return out


def test_vhost_ports_are_the_service_ports(tmp_path: Path) -> None:
    """Each mesh vhost of the plain mesh serves its service's ports, and only those (Istio's
    route table per port, semantics §1.1); gateway vhosts serve every port of their view."""
    analysis = _analysis(tmp_path, 100, "plain")
    assert analysis.ir is not None
    ir = expand_vhost_pool(analysis.ir)
    targets = ir["targets"]
    ports = {
        f"{r.name}.{r.namespace}.svc.cluster.local": sorted(p["port"] for p in r.spec["ports"])
        for r in analysis.resources
        if r.kind == "Service"
    }
    for view in ir["views"]:
        for vhost in view["vhosts"]:
            if view["gateway"] != 0:
                assert "ports" not in vhost
            else:
                assert vhost["ports"] == ports[targets[vhost["default_target"]]["host"]]


def test_generator_writes_what_the_issue_generated(tmp_path: Path) -> None:
    [path] = write_mesh(100, tmp_path, single_file=True)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ISSUE_GENERATOR_100


@pytest.mark.parametrize(("services", "variant"), sorted(BEFORE))
def test_ir_and_diagnostics_are_unchanged(tmp_path: Path, services: int, variant: str) -> None:
    analysis = _analysis(tmp_path, services, variant)
    assert analysis.ok
    assert _fingerprint(analysis, tmp_path) == BEFORE[(services, variant)]


# The "edge" IR as recorded before gateway workloads (see the module docstring).
EDGE_BEFORE_WORKLOADS = "82995ed5495359b295d1b99bbcf63b64c32ce53fbd4ff6a349063844156199b8"


def test_edge_ir_is_the_recorded_one_plus_the_gateway_workload(tmp_path: Path) -> None:
    analysis = _analysis(tmp_path, 200, "edge")
    ir = analysis.ir
    assert ir is not None
    workloads = [name for name in ir["gateway_views"] if name.startswith("workload:")]
    assert workloads == ["workload:istio-system/istio=ingressgateway"]
    added = sorted(v for name in workloads for v in ir["gateway_views"][name].values())
    first = len(ir["views"]) - len(added)
    assert added == list(range(first, len(ir["views"])))  # appended
    before = {r for view in ir["views"][:first] for vhost in view["vhosts"] for r in vhost["routes"]}
    routes = len(ir["routes"]) - len(
        {r for view in ir["views"][first:] for vhost in view["vhosts"] for r in vhost["routes"]} - before
    )
    assert max(before) < routes
    gateways = [parse_gateway(r) for r in analysis.resources if r.kind == "Gateway"]
    recorded = {
        **ir,
        "gateways": ir["gateways"][: -len(workloads)],
        "routes": ir["routes"][:routes],
        "views": ir["views"][:first],
        "gateway_views": {k: v for k, v in ir["gateway_views"].items() if k not in workloads},
        "gateway_servers": [[s.port, [h for _, h in s.hosts], gw.ref] for gw in gateways for s in gw.servers],
    }
    assert _sha(json.dumps(_without_ports(recorded))) == EDGE_BEFORE_WORKLOADS
    # The proxy routes each Gateway's hosts as that Gateway alone does (their hosts are apart).
    table = RouteTable.from_json(ir_json(ir))
    for g, host in [
        (0, "svc0.edge0.example.com"),
        (1, "x.edge1.example.com"),
        (2, "svc20.edge2.example.com"),
    ]:
        for path in ("/", "/api", "/other"):
            alone = table.route(host, path, gateway=f"istio-system/edge{g}", port=80, seed=3).to_dict()
            merged = table.route(host, path, gateway=workloads[0], port=80, seed=3).to_dict()
            assert {**merged, "gateway": None} == {**alone, "gateway": None}


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_ir_with_one_more_resource_is_unchanged(tmp_path: Path, extra: str) -> None:
    text, ir_sha, diags_sha = EXTRAS[extra]
    write_mesh(60, tmp_path)
    (tmp_path / "extra.yaml").write_text(text)
    analysis = analyze([tmp_path])
    assert _fingerprint(analysis, tmp_path) == (ir_sha, diags_sha)


# Domains one vhost takes from another (semantics §1.1): a namespace-private VS naming a service's
# short names, a public one doing so, ServiceEntry hosts equal to short names, addresses, a
# headless service.
CLAIMS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: alias-claim, namespace: ns1}
spec:
  hosts: [svc2.ns2, svc3.ns3.svc]
  exportTo: ['.']
  http: [{route: [{destination: {host: svc1}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pub-claim, namespace: ns4}
spec:
  hosts: [svc5.ns5]
  http: [{route: [{destination: {host: svc4}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: short, namespace: ns6}
spec:
  hosts: [svc7.ns7, svc6]
  ports: [{number: 80, name: http, protocol: HTTP}]
  addresses: [10.1.2.3, 10.9.0.0/16, "2001:db8::5"]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: ns8}
spec: {clusterIP: None, ports: [{port: 80, name: http}]}
"""


@pytest.mark.parametrize("extra", sorted([*EXTRAS, "claims"]))
def test_shared_pieces_compile_like_the_general_path(
    tmp_path: Path, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every namespace view built without the shared pieces (views._plain_ok returning None) is
    # the same IR, byte for byte, as the views built from them.
    import meshroute.config.views as views

    write_mesh(60, tmp_path)
    (tmp_path / "extra.yaml").write_text(CLAIMS if extra == "claims" else EXTRAS[extra][0])
    shared = json.dumps(analyze([tmp_path]).ir)
    monkeypatch.setattr(views, "_plain_ok", lambda index, ctx: None)
    assert json.dumps(analyze([tmp_path]).ir) == shared


def test_claimed_domains_route_to_their_claimant(tmp_path: Path) -> None:
    write_mesh(60, tmp_path)
    (tmp_path / "extra.yaml").write_text(CLAIMS)
    analysis = analyze([tmp_path])
    assert analysis.ok and analysis.ir is not None
    table = RouteTable.from_json(ir_json(analysis.ir))

    def seen(host: str, ns: str) -> tuple[Any, Any, Any]:
        d = table.route(host, "/", source_namespace=ns).to_dict()
        return d["vhost"], d["virtual_service"], d["cluster"]

    # ns1's private VS takes svc2.ns2 there (VSs before services), not elsewhere
    assert seen("svc2.ns2", "ns1") == (
        "svc2.ns2",
        "ns1/alias-claim",
        "outbound|8080||svc1.ns1.svc.cluster.local",
    )
    assert seen("svc2.ns2", "ns0")[1] == "ns2/svc2"
    # a ServiceEntry host is its own, not another service's short name
    assert seen("svc7.ns7", "ns0") == ("svc7.ns7", None, "outbound|80||svc7.ns7")
    assert seen("svc6", "ns6") == ("svc6", None, "outbound|80||svc6")
    assert seen("10.1.2.3", "ns0")[2] == "outbound|80||svc7.ns7"
    assert seen("pod-1.headless.ns8", "ns0")[0] == "*.headless.ns8"


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
