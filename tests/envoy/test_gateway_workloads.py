"""envoy-config and gateway workloads (semantics §4, docs/envoy.md): each port's listener serves the
servers every gateway proxy keeps once it merges the Gateways selecting it, and a gateway-listener
request is decided by the merged view of the proxy whose servers claim its host."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import meshroute
from meshroute._core import ListenerContext
from meshroute.cli import main
from meshroute.envoy.options import EMBEDDED, Options
from meshroute.errors import ConfigError
from meshroute.extproc.context import listener_from_metadata
from tests.envoy.helpers import ext_proc_metadata, generate, hcm, listeners

HTTP = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: default, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [foo.bar]
"""
TCP_THEN_HTTP = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: beta, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: tcp, protocol: TCP}
    hosts: [foo.bar]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: alpha, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [foo.bar]
"""


def test_a_port_no_gateway_server_uses_has_no_listener(tmp_path: Path) -> None:
    # TestHTTPGateway "no virtual services", call "undefined port": ErrNoListener on port 81.
    generated = generate(tmp_path, HTTP)
    assert set(listeners(generated.config)) == {"mesh_outbound", "gateway_80"}


def test_the_merged_proxy_decides_which_protocol_takes_a_port(tmp_path: Path) -> None:
    # TestGatewayConflicts "multiple protocols on a port - http first": beta (TCP) comes first in
    # the config, alpha (HTTP) first in the proxy's merge (by name): the port is HTTP.
    generated = generate(tmp_path, TCP_THEN_HTTP)
    (chain,) = listeners(generated.config)["gateway_80"]["filter_chains"]
    assert hcm(chain)["route_config"]["virtual_hosts"][0]["domains"] == ["*"]
    assert all(f["name"] != "envoy.filters.network.tcp_proxy" for f in chain["filters"])
    [(code, path, message)] = [(w.code, w.path, w.message) for w in generated.warnings]
    assert (code, path) == ("envoy-server-skipped", ("spec", "servers", 0))
    assert message.startswith(
        "port 80 already has a server of protocol HTTP: the gateway proxy merging Gateway default/beta"
    )


MERGED = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: more, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http-login, protocol: HTTP}
    hosts: [login.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8080, name: http-more, protocol: HTTP}
    hosts: ["*.more.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: more, namespace: default}
spec:
  hosts: [api.more.example.com, login.example.com]
  gateways: [more]
  http:
  - directResponse: {status: 200, body: {string: more}}
"""


def test_one_listener_serves_the_merged_gateways(tmp_path: Path) -> None:
    generated = generate(tmp_path, MERGED)
    (chain,) = listeners(generated.config)["gateway_8080"]["filter_chains"]
    redirect, plain = hcm(chain)["route_config"]["virtual_hosts"]
    assert redirect["domains"] == ["login.example.com"]
    assert redirect["routes"][-1]["redirect"] == {"https_redirect": True}
    assert plain["domains"] == ["*"]
    assert generated.warnings == []
    # The decision (both engines call exchange): a host under edge's *.example.com that a VS of
    # the other Gateway routes is decided by the proxy's merged view, not by edge alone.
    path = tmp_path / "config.yaml"
    mesh = meshroute.load(path)
    context = ListenerContext(8080)
    answer = mesh.table.exchange(context, [(b":authority", b"api.more.example.com"), (b":path", b"/")], 1)
    assert answer[:3] == ("reply", "direct_response", 200)
    answer = mesh.table.exchange(context, [(b":authority", b"login.example.com"), (b":path", b"/x")], 1)
    assert answer[:3] == ("reply", "redirect", 301)
    answer = mesh.table.exchange(context, [(b":authority", b"other.example.com"), (b":path", b"/")], 1)
    assert answer[:3] == ("reply", "no_route", 404)


# --- envoy-config for one gateway workload (Options.gateway_workload, --gateway-labels) ---

TWO_PROXIES = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw-a, namespace: default}
spec:
  selector: {istio: a}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [a.example.com]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw-a-tcp, namespace: default}
spec:
  selector: {istio: a}
  servers:
  - port: {number: 8080, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw-b, namespace: default}
spec:
  selector: {istio: b}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [b.example.com]
  - port: {number: 9090, name: http-admin, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: default}
spec:
  hosts: [a.example.com]
  gateways: [gw-a]
  http:
  - directResponse: {status: 200, body: {string: a}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [b.example.com]
  gateways: [gw-b]
  http:
  - directResponse: {status: 200, body: {string: b}}
"""
PROXY_A = "workload:default/istio=a"


def _ask(mesh: meshroute.Mesh, context: ListenerContext, host: str) -> tuple[str, str, int]:
    headers = [(b":authority", host.encode()), (b":path", b"/")]
    kind, outcome, status, *_ = mesh.table.exchange(context, headers, 1)
    return kind, outcome, status


def test_every_gateway_proxy_without_the_option(tmp_path: Path) -> None:
    generated = generate(tmp_path, TWO_PROXIES)
    found = listeners(generated.config)
    assert set(found) == {"mesh_outbound", "gateway_8080", "gateway_9090"}
    (chain,) = found["gateway_8080"]["filter_chains"]
    assert ext_proc_metadata(chain) == {"x-meshroute-listener": "gateway", "x-meshroute-port": "8080"}
    mesh = meshroute.load(tmp_path / "config.yaml")
    context = listener_from_metadata(ext_proc_metadata(chain).items())
    assert _ask(mesh, context, "a.example.com")[2] == 200
    assert _ask(mesh, context, "b.example.com")[2] == 200


def test_one_gateway_proxy_gets_its_merged_servers_alone(tmp_path: Path) -> None:
    generated = generate(tmp_path, TWO_PROXIES, Options(gateway_workload=PROXY_A))
    found = listeners(generated.config)
    # gw-b's ports are another proxy's: no gateway_9090.
    assert set(found) == {"mesh_outbound", "gateway_8080"}
    (chain,) = found["gateway_8080"]["filter_chains"]
    assert hcm(chain)["route_config"]["virtual_hosts"][0]["domains"] == ["*"]
    assert ext_proc_metadata(chain) == {
        "x-meshroute-listener": "gateway",
        "x-meshroute-port": "8080",
        "x-meshroute-source-namespace": "default",
        "x-meshroute-source-labels": "istio=a",
    }
    # The proxy's Gateways in merge order (gw-a first): gw-a-tcp's TCP server cannot share the
    # port. gw-b's servers are not this proxy's and are not mentioned.
    [(code, name, message)] = [(w.code, w.name, w.message) for w in generated.warnings]
    assert (code, name) == ("envoy-server-skipped", "gw-a-tcp")
    assert message.startswith("port 8080 is already taken by an earlier HTTP server")


def test_a_proxy_answers_404_for_another_proxys_host(tmp_path: Path) -> None:
    generated = generate(tmp_path, TWO_PROXIES, Options(gateway_workload=PROXY_A))
    (chain,) = listeners(generated.config)["gateway_8080"]["filter_chains"]
    mesh = meshroute.load(tmp_path / "config.yaml")
    context = listener_from_metadata(ext_proc_metadata(chain).items())  # what serve builds
    assert context == ListenerContext(8080, "default", {"istio": "a"})
    assert _ask(mesh, context, "a.example.com") == ("reply", "direct_response", 200)
    assert _ask(mesh, context, "b.example.com") == ("reply", "no_route", 404)
    # The same answers as Mesh.route for that workload (route(gateway=...)).
    name = mesh.gateway_for({"istio": "a"}, "default")
    assert name == PROXY_A
    assert mesh.route("a.example.com", port=8080, gateway=name).outcome == "direct_response"
    assert mesh.route("b.example.com", port=8080, gateway=name).outcome == "no_route"


def test_the_module_gets_the_same_listener_context(tmp_path: Path) -> None:
    options = Options(gateway_workload=PROXY_A, engine=EMBEDDED, files_dir=str(tmp_path / "files"))
    generated = generate(tmp_path, TWO_PROXIES, options)
    assert set(generated.filters) == {"meshroute-mesh", "meshroute-gateway-8080"}
    context = generated.filters["meshroute-gateway-8080"]
    assert context == {"gateway_port": 8080, "source_namespace": "default", "source_labels": {"istio": "a"}}
    # What the module parses (rust/meshroute-envoy config.rs) equals what serve parses.
    as_module = ListenerContext(**context)
    extproc = generate(tmp_path, TWO_PROXIES, Options(gateway_workload=PROXY_A))
    (chain,) = listeners(extproc.config)["gateway_8080"]["filter_chains"]
    assert as_module == listener_from_metadata(ext_proc_metadata(chain).items())
    # Without the option the gateway filter's context is the port alone, as before.
    every = generate(tmp_path, TWO_PROXIES, replace(options, gateway_workload=""))
    assert every.filters["meshroute-gateway-8080"] == {
        "gateway_port": 8080,
        "source_namespace": None,
        "source_labels": {},
    }


WITH_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ingress-a, namespace: default}
spec:
  selector: {matchLabels: {istio: a}}
  template:
    metadata: {labels: {istio: a, app: ingress}}
    spec: {containers: [{name: istio-proxy, image: proxyv2}]}
"""


def test_the_workload_is_resolved_against_the_config(tmp_path: Path) -> None:
    # A known workload carries more labels than the selector: the name given (the selector's own
    # proxy, as resolved before the Deployment existed) resolves to it, as Mesh.gateway_for does.
    generated = generate(tmp_path, TWO_PROXIES + "---\n" + WITH_DEPLOYMENT, Options(gateway_workload=PROXY_A))
    (chain,) = listeners(generated.config)["gateway_8080"]["filter_chains"]
    assert ext_proc_metadata(chain)["x-meshroute-source-labels"] == "app=ingress,istio=a"
    mesh = meshroute.load(tmp_path / "config.yaml")
    assert mesh.gateway_for({"istio": "a"}) == "workload:default/app=ingress,istio=a"
    context = listener_from_metadata(ext_proc_metadata(chain).items())
    assert _ask(mesh, context, "a.example.com")[2] == 200
    assert _ask(mesh, context, "b.example.com")[2] == 404


def test_an_unknown_workload_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        generate(tmp_path, TWO_PROXIES, Options(gateway_workload="workload:default/istio=c"))
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.code == "envoy-gateway-workload"
    assert "no Gateway selects a gateway proxy with istio=c" in diagnostic.message


def test_envoy_config_gateway_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(TWO_PROXIES)
    out = tmp_path / "envoy.yaml"
    argv = ["envoy-config", str(config), "--engine", "extproc", "-o", str(out)]
    assert main([*argv, "--gateway-labels", "istio=b", "--gateway-namespace", "default"]) == 0
    found = listeners(yaml.safe_load(out.read_text()))
    assert set(found) == {"mesh_outbound", "gateway_8080", "gateway_9090"}
    (chain,) = found["gateway_8080"]["filter_chains"]
    assert ext_proc_metadata(chain)["x-meshroute-source-labels"] == "istio=b"
    # Comma-separated or repeated; labels a proxy of the config does not have are resolved as
    # Mesh.gateway_for resolves them (a proxy getting the same Gateways).
    assert main([*argv, "--gateway-labels", "istio=a,extra=1"]) == 0
    (chain,) = listeners(yaml.safe_load(out.read_text()))["gateway_8080"]["filter_chains"]
    assert ext_proc_metadata(chain)["x-meshroute-source-labels"] == "istio=a"
    capsys.readouterr()
    for bad, expected in [
        (["--gateway-labels", "istio=c"], "no Gateway selects a gateway proxy with istio=c"),
        (["--gateway-labels", "istio=a", "--gateway-namespace", "other"], "no gateway workload with istio=a"),
        (["--gateway-labels", "istio"], "--gateway-labels 'istio': expected K=V[,K=V]"),
        (["--gateway-namespace", "default"], "--gateway-namespace"),
    ]:
        assert main([*argv, *bad]) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("meshroute envoy-config: "), err
        assert expected in err, err


def test_run_rejects_an_unknown_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(TWO_PROXIES)
    code = main(["run", str(config), "--engine", "extproc", "--work-dir", str(tmp_path / "work"),
                 "--gateway-labels", "istio=c"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("meshroute run: no Gateway selects"), err
