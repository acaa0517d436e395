"""Gateway workloads (meshroute.config.workloads, semantics §4): which gateway proxies a config
has, which Gateways each gets and in which order, the servers Istio's merge keeps, and finding a
proxy's view by its labels."""

from __future__ import annotations

from pathlib import Path

import pytest

import meshroute
from meshroute.config.index import build_index
from meshroute.config.model import build_model
from meshroute.config.workloads import GatewayWorkload, gateway_workloads, merge_servers, resolve

# compile_helpers first: it makes meshroute importable while the Rust extension is not built.
from tests.compile_helpers import resources


def gateway(
    name: str, servers: str, ns: str = "default", selector: str = "{istio: ingressgateway}", ts: str = ""
) -> str:
    stamp = f", creationTimestamp: '{ts}'" if ts else ""
    return (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
        f"metadata: {{name: {name}, namespace: {ns}{stamp}}}\n"
        f"spec:\n  selector: {selector}\n  servers:\n{servers}"
    )


def server(
    port: int, hosts: str, protocol: str = "HTTP", name: str = "http", tls: str = "", bind: str = ""
) -> str:
    out = f"  - port: {{number: {port}, name: {name}, protocol: {protocol}}}\n    hosts: {hosts}\n"
    if tls:
        out += f"    tls: {tls}\n"
    if bind:
        out += f"    bind: {bind}\n"
    return out


def pod(name: str, ns: str, labels: str) -> str:
    return (
        "apiVersion: v1\nkind: Pod\n"
        f"metadata: {{name: {name}, namespace: {ns}, labels: {labels}}}\nspec: {{}}\n"
    )


def workloads(*texts: str) -> list[GatewayWorkload]:
    return gateway_workloads(build_model(resources(*texts)))


def kept(*texts: str) -> dict[int, list[tuple[str, int]]]:
    """Port -> (Gateway name, server index) of the servers the one workload keeps."""
    (w,) = workloads(*texts)
    return {port: [(gw.resource.name, s.index) for s, gw in entries] for port, entries in w.servers.items()}


# --- which proxies, which Gateways -----------------------------------------------------------


def test_a_selector_without_known_workload_is_a_proxy_with_those_labels() -> None:
    (w,) = workloads(
        gateway("b", server(80, "[b.example.com]"), ns="apps"),
        gateway("a", server(80, "[a.example.com]"), ns="istio-system"),
    )
    # the namespace of the first Gateway in config order; merge order: by name
    assert (w.name, w.namespace, dict(w.labels)) == (
        "workload:apps/istio=ingressgateway",
        "apps",
        {"istio": "ingressgateway"},
    )
    assert [gw.ref for gw in w.gateways] == ["istio-system/a", "apps/b"]


def test_known_workloads_are_the_proxies_and_get_every_gateway_they_carry_labels_for() -> None:
    found = workloads(
        pod("ingress", "istio-system", "{istio: ingressgateway, app: edge}"),
        pod("ingress-2", "istio-system", "{istio: ingressgateway, app: edge}"),  # the same workload
        pod("egress", "istio-system", "{istio: egressgateway}"),
        gateway("in", server(80, "['*']")),
        gateway("edge-only", server(8080, "['*']"), selector="{app: edge}"),
        gateway("out", server(80, "[cnn.com]"), selector="{istio: egressgateway}"),
        gateway("everyone", server(9090, "['*']"), selector="{}"),
    )
    assert [(w.name, [gw.resource.name for gw in w.gateways]) for w in found] == [
        ("workload:istio-system/app=edge,istio=ingressgateway", ["edge-only", "everyone", "in"]),
        ("workload:istio-system/istio=egressgateway", ["everyone", "out"]),
    ]


def test_selector_less_gateways_alone_make_one_proxy() -> None:
    (w,) = workloads(
        gateway("a", server(80, "['*']"), selector="{}"),
        gateway("b", server(81, "['*']"), ns="x", selector="{}"),
    )
    assert (w.name, [gw.ref for gw in w.gateways]) == ("workload:default/", ["default/a", "x/b"])


def test_merge_order_is_creation_time_then_name_then_namespace() -> None:
    (w,) = workloads(
        gateway("z", server(80, "[z.com]"), ts="2020-01-01T00:00:00Z"),
        gateway("b", server(80, "[b.com]"), ns="y"),
        gateway("b", server(80, "[b2.com]"), ns="x"),
        gateway("a", server(80, "[a.com]"), ts="2021-01-01T00:00:00Z"),
    )
    assert [gw.ref for gw in w.gateways] == ["x/b", "y/b", "default/z", "default/a"]


# --- Istio's merge -------------------------------------------------------------------------


def test_http_servers_of_several_gateways_share_the_port() -> None:
    assert kept(
        gateway("a", server(80, "[a.com]")), gateway("b", server(80, "[b.com]", protocol="HTTP2"))
    ) == {80: [("a", 0), ("b", 0)]}


def test_first_protocol_on_a_port_wins() -> None:
    # TestMergeGateways tcp-http-server-config / tcp-tcp-server-config; TestGatewayConflicts
    tcp, http = server(80, "['*']", "TCP", "tcp"), server(80, "['*']")
    assert kept(gateway("a", tcp), gateway("b", http)) == {80: [("a", 0)]}
    assert kept(gateway("a", http), gateway("b", tcp)) == {80: [("a", 0)]}
    assert kept(gateway("a", tcp), gateway("b", tcp)) == {80: [("a", 0)]}
    # another bind is another listener in Istio: both kept
    assert kept(gateway("a", tcp), gateway("b", server(80, "['*']", bind="10.0.0.2"))) == {
        80: [("a", 0), ("b", 0)]
    }


def test_a_tls_host_on_a_port_belongs_to_the_first_server() -> None:
    https = "{mode: SIMPLE, credentialName: c}"
    (w,) = workloads(
        gateway("a", server(443, "[a.com, b.com]", "HTTPS", "https", https)),
        gateway("b", server(443, "[b.com]", "HTTPS", "https", https)),  # b.com again: dropped whole
        gateway("c", server(443, "[c.com]", "HTTPS", "https", https)),
        gateway("d", server(80, "[x.com]", tls="{httpsRedirect: true}")),
        gateway("e", server(80, "[x.com]", tls="{httpsRedirect: true}")),  # a tls block all the same
        gateway("f", server(80, "[x.com]")),  # no tls block: merged
    )
    assert {p: [(gw.resource.name, s.index) for s, gw in e] for p, e in w.servers.items()} == {
        443: [("a", 0), ("c", 0)],
        80: [("d", 0), ("f", 0)],
    }
    assert [(s.gateway.resource.name, s.reason) for s in w.skipped] == [
        ("b", "an earlier server on port 443 has TLS host b.com"),
        ("e", "an earlier server on port 80 has TLS host x.com"),
    ]


def test_after_a_tls_server_istio_keeps_one_server_without_tls() -> None:
    # Istio tracks the binds of a TLS port from its second server on, so the first plain server
    # after a TLS one is kept (its route configuration is http.443), a second one is not.
    https = "{mode: SIMPLE, credentialName: c}"
    servers, skipped = merge_servers(
        list(
            build_index(
                resources(
                    gateway(
                        "a",
                        server(443, "[a.com]", "HTTPS", "https", https)
                        + server(443, "[b.com]", "HTTP", "plain")
                        + server(443, "[c.com]", "HTTP2", "plain2")
                        + server(443, "[d.com]", "HTTPS", "https-d", https),
                    )
                )
            ).model.gateways.values()
        )
    )
    assert [s.index for s, _ in servers[443]] == [0, 1, 3]
    assert [s.server.index for s in skipped] == [2]


def test_http_views_leave_out_passthrough_and_tcp_servers() -> None:
    (w,) = workloads(
        gateway(
            "a",
            server(443, "[p.com]", "HTTPS", "https", "{mode: PASSTHROUGH}")
            + server(443, "[s.com]", "HTTPS", "https-s", "{mode: SIMPLE, credentialName: c}")
            + server(31400, "['*']", "TCP", "tcp"),
        )
    )
    assert w.http_ports == [443]
    assert [s.hosts for s, _ in w.http_servers(443)] == [(("*", "s.com"),)]


# --- finding a proxy -------------------------------------------------------------------------


def test_resolve_by_labels_and_namespace() -> None:
    gws = list(
        build_index(
            resources(
                gateway("in", server(80, "['*']")),
                gateway("special", server(81, "['*']"), selector="{istio: ingressgateway, tier: special}"),
            )
        ).model.gateways.values()
    )
    names = [
        "workload:istio-system/istio=ingressgateway,tier=special",
        "workload:istio-system/app=edge,istio=ingressgateway",
        "workload:other/istio=ingressgateway",
    ]
    assert resolve(names, gws, {"istio": "ingressgateway", "tier": "special"}) == names[0]
    assert resolve(names, gws, {"istio": "ingressgateway"}) == names[2]  # exactly these labels
    # in istio-system no workload has exactly these labels: one that gets the same Gateways
    assert resolve(names, gws, {"istio": "ingressgateway"}, "istio-system") == names[1]
    assert resolve(names, gws, {"app": "edge", "istio": "ingressgateway"}, "other") == names[2]
    with pytest.raises(
        LookupError, match="no gateway workload with istio=ingressgateway in namespace nowhere"
    ):
        resolve(names, gws, {"istio": "ingressgateway"}, "nowhere")
    with pytest.raises(LookupError, match="no Gateway selects a gateway proxy with app=x"):
        resolve(names, gws, {"app": "x"})


def test_mesh_gateway_for_routes_through_the_merged_proxy(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            gateway("a", server(80, "['*.example.com']")),
            gateway("b", server(80, "[login.example.com]", tls="{httpsRedirect: true}")),
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: app}\nspec:\n"
            "  hosts: [app.example.com]\n  gateways: [a]\n  http: [{directResponse: {status: 200}}]\n",
        ]
    )
    (tmp_path / "c.yaml").write_text(text)
    mesh = meshroute.load(tmp_path)
    name = mesh.gateway_for({"istio": "ingressgateway"})
    assert name == "workload:default/istio=ingressgateway"
    assert mesh.route("app.example.com", gateway=name).outcome == "direct_response"
    login = mesh.route("login.example.com", gateway=name).to_dict()
    assert (login["outcome"], login["redirect"]) == (
        "redirect",
        {"location": "https://login.example.com/", "status": 301},
    )
    # each Gateway alone: a does not redirect the login host (404), b has no route for app
    assert mesh.route("login.example.com", gateway="default/a").outcome == "no_route"
    assert mesh.route("app.example.com", gateway="default/b").outcome == "no_route"
    with pytest.raises(LookupError):
        mesh.gateway_for({"istio": "egressgateway"})
