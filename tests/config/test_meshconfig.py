"""The mesh config document (semantics §12): each field meshroute reads changes what a config
compiles to, in both forms (meshroute.io MeshConfig, Istio's ``istio`` ConfigMap)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

import meshroute
from meshroute.config import analyze
from meshroute.config.extras import default_retries
from meshroute.config.meshconfig import MeshSettings, mesh_settings
from tests.compile_helpers import resources

APP = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{port: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {ports: [{port: 8080, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: sleep, namespace: client}
spec: {ports: [{port: 80, name: http}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - match: [{uri: {prefix: /slow}}]
    timeout: 3s
    retries: {attempts: 1}
    route: [{destination: {host: web}}]
  - route: [{destination: {host: web}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: shop}
spec:
  host: web
  subsets: [{name: v1, labels: {version: v1}}]
"""


def meshroute_doc(spec: str) -> str:
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return f"apiVersion: meshroute.io/v1alpha1\nkind: MeshConfig\nmetadata: {{name: mesh}}\nspec:\n{body}\n"


def configmap_doc(mesh: str) -> str:
    body = textwrap.indent(textwrap.dedent(mesh).strip(), "    ")
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        f"data:\n  mesh: |-\n{body}\n"
    )


FORMS = {"meshroute": meshroute_doc, "configmap": configmap_doc}


def load(tmp_path: Path, *texts: str) -> meshroute.Mesh:
    path = tmp_path / "config.yaml"
    path.write_text("\n---\n".join(texts))
    return meshroute.load(path)


def route(mesh: meshroute.Mesh, host: str, path: str = "/", ns: str = "client") -> dict[str, Any]:
    result: dict[str, Any] = mesh.route(host, path, source_namespace=ns).to_dict()
    return result


@pytest.mark.parametrize("form", sorted(FORMS))
def test_outbound_traffic_policy_registry_only(tmp_path: Path, form: str) -> None:
    sidecar = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  outboundTrafficPolicy: {mode: ALLOW_ANY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: client}
spec:
  egress: [{hosts: ["./*", "shop/*"]}]
"""
    mesh = load(tmp_path, APP, sidecar, FORMS[form]("outboundTrafficPolicy: {mode: REGISTRY_ONLY}"))
    # No Sidecar, or one without outboundTrafficPolicy: the mesh's REGISTRY_ONLY (502, §6).
    assert route(mesh, "example.org", ns="other")["status"] == 502
    assert route(mesh, "example.org", ns="client")["status"] == 502
    # A Sidecar's own policy wins.
    assert route(mesh, "example.org", ns="shop")["cluster"] == "PassthroughCluster"
    assert route(mesh, "web.shop")["outcome"] == "route"


def test_without_mesh_config_istio_defaults(tmp_path: Path) -> None:
    mesh = load(tmp_path, APP)
    assert route(mesh, "example.org")["cluster"] == "PassthroughCluster"
    d = route(mesh, "web.shop")
    assert d["retries"] == default_retries() and d["timeout_ms"] is None
    assert mesh_settings([])[0] == MeshSettings()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_default_retry_policy_and_route_timeout(tmp_path: Path, form: str) -> None:
    spec = """
defaultHttpRetryPolicy: {attempts: 4, retryOn: "5xx,503", backoff: 50ms}
defaultHttpRouteTimeout: 15s
"""
    mesh = load(tmp_path, APP, FORMS[form](spec))
    plain = route(mesh, "web.shop")  # a VS route without retries / timeout
    assert plain["retries"]["attempts"] == 4
    assert plain["retries"]["retry_on"] == "5xx,503,retriable-status-codes"
    assert plain["retries"]["backoff_ms"] == 50
    assert plain["timeout_ms"] == 15000
    slow = route(mesh, "web.shop", "/slow")  # the route's own settings win
    assert slow["timeout_ms"] == 3000 and slow["retries"]["attempts"] == 1
    default = route(mesh, "api.shop")  # a service without VS: its default route
    assert default["virtual_service"] is None
    assert default["retries"]["attempts"] == 4 and default["timeout_ms"] == 15000


def test_default_retry_policy_attempts_zero_disables_retries(tmp_path: Path) -> None:
    mesh = load(tmp_path, APP, meshroute_doc("defaultHttpRetryPolicy: {attempts: 0}"))
    assert route(mesh, "web.shop")["retries"] == {"attempts": 0}
    assert route(mesh, "api.shop")["retries"] == {"attempts": 0}


def test_root_namespace(tmp_path: Path) -> None:
    root = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api, namespace: mesh-root}
spec:
  host: api.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: mesh-root}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""
    with_root = load(tmp_path, APP, root, meshroute_doc("rootNamespace: mesh-root"))
    # A DR in the root namespace applies to every client; its Sidecar is the mesh default (§3.1, §6).
    assert route(with_root, "api.shop")["traffic_policy"] == {"loadBalancer": {"simple": "RANDOM"}}
    assert route(with_root, "example.org")["status"] == 502
    without = load(tmp_path, APP, root)  # mesh-root is an ordinary namespace
    assert route(without, "api.shop")["traffic_policy"] == {}
    assert route(without, "example.org")["cluster"] == "PassthroughCluster"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_default_export_to(tmp_path: Path, form: str) -> None:
    spec = """
defaultServiceExportTo: ["."]
defaultVirtualServiceExportTo: ["."]
defaultDestinationRuleExportTo: ["."]
"""
    mesh = load(tmp_path, APP, FORMS[form](spec))
    # The services of shop are not seen from client: unknown hosts there.
    assert route(mesh, "web.shop")["cluster"] == "PassthroughCluster"
    # In shop, the VS and DR apply.
    d = route(mesh, "web", ns="shop")
    assert d["virtual_service"] == "shop/web"
    exported = """
apiVersion: v1
kind: Service
metadata:
  name: pub
  namespace: shop
  annotations: {networking.istio.io/exportTo: "*"}
spec: {ports: [{port: 80, name: http}]}
"""
    mesh = load(tmp_path, APP, exported, FORMS[form](spec))
    assert route(mesh, "pub.shop")["cluster"] == "outbound|80||pub.shop.svc.cluster.local"


def test_default_virtual_service_export_to_keeps_vs_from_other_namespaces(tmp_path: Path) -> None:
    mesh = load(tmp_path, APP, meshroute_doc('defaultVirtualServiceExportTo: ["."]'))
    # From client the VS of shop does not exist: the service's default route.
    assert route(mesh, "web.shop")["virtual_service"] is None
    assert route(mesh, "web.shop", ns="shop")["virtual_service"] == "shop/web"


def test_default_destination_rule_export_to(tmp_path: Path) -> None:
    to_subset = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: to-v1, namespace: client}
spec:
  hosts: [web.shop.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: web.shop.svc.cluster.local, subset: v1}}]}]
"""
    mesh = load(tmp_path, APP, to_subset, meshroute_doc('defaultDestinationRuleExportTo: ["."]'))
    # The DR of shop (exported to shop only) defines v1 nowhere client can see: no cluster, 503.
    assert route(mesh, "web.shop")["outcome"] == "no_cluster"
    assert load(tmp_path, APP, to_subset).route("web.shop", source_namespace="client").outcome == "route"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_cluster_domain(tmp_path: Path, form: str) -> None:
    mesh = load(tmp_path, APP, FORMS[form]("clusterDomain: corp.local"))
    d = route(mesh, "web.shop")
    assert d["cluster"] == "outbound|80||web.shop.svc.corp.local"
    assert route(mesh, "web.shop.svc.corp.local.")["vhost"] == "web.shop.svc.corp.local."
    assert route(mesh, "web.shop.svc.cluster.local")["cluster"] == "PassthroughCluster"
    # the document wins over the caller's domain
    path = tmp_path / "config.yaml"
    assert meshroute.load(path, domain="other.local").route("web.shop").cluster == d["cluster"]


def test_invalid_mesh_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(meshroute.ConfigError) as err:
        load(tmp_path, APP, meshroute_doc("outboundTrafficPolicy: {mode: BLOCK}"))
    assert [d.code for d in err.value.diagnostics if d.is_error] == ["enum-invalid"]


def test_several_mesh_configs_the_last_is_used(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "\n---\n".join(
            [APP, meshroute_doc("clusterDomain: first.local"), configmap_doc("clusterDomain: second.local")]
        )
    )
    analysis = analyze([path])
    assert [d.code for d in analysis.diagnostics] == ["mesh-config-duplicate"]
    assert analysis.ir is not None
    assert {t["host"] for t in analysis.ir["targets"]} >= {"web.shop.svc.second.local"}


def test_unknown_fields_only_warn(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("\n---\n".join([APP, configmap_doc("outboundTraficPolicy: {mode: REGISTRY_ONLY}")]))
    analysis = analyze([path])
    assert analysis.ok
    assert [d.code for d in analysis.diagnostics] == ["mesh-config-unknown-field"]


def test_settings_from_resources() -> None:
    docs = resources(
        configmap_doc(
            """
outbound_traffic_policy: {mode: REGISTRY_ONLY}
root_namespace: ops
default_virtual_service_export_to: ["."]
"""
        )
    )
    settings, diags = mesh_settings(docs)
    assert diags == []
    assert (settings.unknown_host, settings.root_namespace, settings.virtual_service_export_to) == (
        "blackhole",
        "ops",
        (".",),
    )
