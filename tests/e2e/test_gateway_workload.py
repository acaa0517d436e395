"""One gateway workload's Envoy through a real Envoy, both engines (docs/envoy.md, "One gateway
workload"; semantics §4).

Two gateway proxies (selectors ``istio: a`` and ``istio: b``) each get a Gateway on port 8080, for
``a.example.com`` and ``b.example.com``; a VirtualService bound to each routes its host to an echo
upstream of its own. ``envoy-config --gateway-labels istio=a`` (``Options.gateway_workload``, the
name resolved as ``Mesh.gateway_for`` resolves it) is proxy A: it routes A's host and answers 404
for B's, as Istio's A proxy would (no virtual host for it); B's upstream never sees a request.
The same config without the option is one Envoy playing both proxies: both hosts are routed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import meshroute
from meshroute.envoy import Options
from meshroute.envoy.options import EXTPROC
from meshroute.envoy.process import start_envoy
from meshroute.procs import LOOPBACK, ProcessGroup, free_port, wait_until
from meshroute.stack import start_serve
from tests.e2e.echo import Echo
from tests.e2e.engines import bootstrap
from tests.e2e.feature_stack import Response, request

GATEWAY_PORT = 8080
HOSTS = {"a": "a.example.com", "b": "b.example.com"}
SERVER_PORT = {"number": GATEWAY_PORT, "name": "http", "protocol": "HTTP"}


def config(ports: dict[str, int]) -> str:
    docs: list[dict[str, object]] = []
    for proxy, host in HOSTS.items():
        service = f"echo-{proxy}.test"
        docs += [
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": f"echo-{proxy}", "namespace": "default"},
                "spec": {
                    "hosts": [service],
                    "location": "MESH_EXTERNAL",
                    "resolution": "STATIC",
                    "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                    "endpoints": [{"address": LOOPBACK, "ports": {"http": ports[proxy]}}],
                },
            },
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "Gateway",
                "metadata": {"name": f"gw-{proxy}", "namespace": "default"},
                "spec": {
                    "selector": {"istio": proxy},
                    "servers": [{"port": SERVER_PORT, "hosts": [host]}],
                },
            },
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": f"vs-{proxy}", "namespace": "default"},
                "spec": {
                    "hosts": [host],
                    "gateways": [f"gw-{proxy}"],
                    "http": [{"route": [{"destination": {"host": service, "port": {"number": 80}}}]}],
                },
            },
        ]
    return yaml.safe_dump_all(docs)


@dataclass
class Proxies:
    """The echo upstreams, the config, and (extproc) serve: Envoys are started per test."""

    work: Path
    group: ProcessGroup
    engine: str
    config: Path
    echoes: dict[str, Echo]
    extproc: str

    def start_envoy(self, name: str, gateway_workload: str) -> int:
        """An Envoy from ``envoy-config`` with ``gateway_workload``; returns its gateway port."""
        port, admin = free_port(), free_port()
        options = Options(
            extproc=(self.extproc,),
            mesh_port=free_port(),
            admin_port=admin,
            bind_ports={GATEWAY_PORT: port},
            access_log=str(self.work / f"access-{name}.log"),
            gateway_workload=gateway_workload,
        )
        path, codes = bootstrap([self.config], self.work / f"envoy-{name}.yaml", options, self.engine)
        assert codes == []
        start_envoy(self.group, path, admin, name=f"envoy-{name}")
        return port


@pytest.fixture(scope="module")
def proxies(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    work = tmp_path_factory.mktemp(f"gateway-workload-{engine}")
    echoes = {proxy: Echo(proxy) for proxy in HOSTS}
    path = work / "config.yaml"
    path.write_text(config({proxy: echo.port for proxy, echo in echoes.items()}))
    extproc = f"unix:{work}/extproc.sock"
    try:
        with ProcessGroup(work / "logs") as group:
            if engine == EXTPROC:
                start_serve(group, [path], extproc, work / "status.json")
            yield Proxies(work, group, engine, path, echoes, extproc)
    finally:
        for echo in echoes.values():
            echo.close()


def _routed(port: int, host: str) -> Response:
    """The first answer for ``host`` that is not a 503 (Envoy is ready once /ready answers, but
    wait for the route rather than assume it)."""
    answers: list[Response] = []

    def answered() -> bool:
        answers.append(request(port, host, "/hello"))
        return answers[-1].status != 503

    wait_until(answered, timeout=15, what=f"an answer for {host}")
    return answers[-1]


def test_the_proxy_of_one_workload_serves_its_own_hosts_only(proxies: Proxies) -> None:
    workload = meshroute.load(proxies.config).gateway_for({"istio": "a"})
    assert workload == "workload:default/istio=a"
    port = proxies.start_envoy("a", workload)
    before = {proxy: len(echo.requests) for proxy, echo in proxies.echoes.items()}
    routed = _routed(port, HOSTS["a"])
    assert routed.status == 200, routed
    assert routed.json()["server"] == "a"
    other = request(port, HOSTS["b"], "/hello")
    assert other.status == 404, other
    assert other.header("server") == "istio-envoy"
    assert len(proxies.echoes["b"].requests) == before["b"]
    assert len(proxies.echoes["a"].requests) > before["a"]


def test_without_a_workload_one_envoy_plays_every_proxy(proxies: Proxies) -> None:
    port = proxies.start_envoy("every", "")
    for proxy, host in HOSTS.items():
        routed = _routed(port, host)
        assert routed.status == 200, routed
        assert routed.json()["server"] == proxy
