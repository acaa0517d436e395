"""TCP traffic shifting on the mesh side through a real Envoy (semantics §2.15, envoy/meshtcp.py).

The gateway version is test_tcp_shifting.py; here the tcp-echo VirtualService is bound to the
mesh, as a client pod's sidecar sees it: Istio's TCP Traffic Shifting task (80/20 between v1 and
v2) with ``gateways: [mesh]``. envoy-config gives tcp-echo's TCP service port 9000 a ``tcp_proxy``
listener (bound elsewhere with ``--bind-port``) whose weighted clusters are the route's; Envoy
picks per connection. Both engines: the TCP listener must not depend on the HTTP decider.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshroute.config import analyze
from meshroute.envoy import Options
from meshroute.envoy.process import start_envoy
from meshroute.procs import ProcessGroup, free_port
from tests.e2e.engines import bootstrap
from tests.e2e.test_tcp_shifting import TCP_ECHO, TcpStack, tolerance

CONNECTIONS = 300
SHARE = 0.2  # weight 20 of 100 to v2
TOLERANCE = tolerance(CONNECTIONS, SHARE, 1e-4)  # exact binomial bound: a false failure < 1e-4
SERVICE_PORT = 9000

MESH_VS = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {"name": "tcp-echo", "namespace": "default"},
    "spec": {
        "hosts": ["tcp-echo"],
        "tcp": [
            {
                "route": [
                    {
                        "destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v1"},
                        "weight": 80,
                    },
                    {
                        "destination": {"host": "tcp-echo", "port": {"number": 9000}, "subset": "v2"},
                        "weight": 20,
                    },
                ]
            }
        ],
    },
}
# tcp-echo-all-v1.yaml brings the DestinationRule (subsets v1, v2); its gateway VS is replaced.
DESTINATION_RULE = next(
    d
    for d in yaml.safe_load_all((TCP_ECHO / "tcp-echo-all-v1.yaml").read_text())
    if d and d["kind"] == "DestinationRule"
)


class MeshTcpStack(TcpStack):
    def start_mesh(self) -> None:
        if self.envoy is not None:
            self.envoy.stop()
        config = self.work / "mesh-tcp.yaml"
        config.write_text(yaml.safe_dump_all([DESTINATION_RULE, MESH_VS]))
        paths = [TCP_ECHO / "tcp-echo-services.yaml", config, self.entries]
        analysis = analyze(paths)
        assert analysis.ok, [d.render() for d in analysis.errors]
        self.port, admin = free_port(), free_port()
        options = Options(
            extproc=(f"unix:{self.work}/no-serve.sock",),
            mesh_port=free_port(),
            admin_port=admin,
            bind_ports={SERVICE_PORT: self.port, 9001: free_port()},
            access_log=str(self.work / "access.log"),
        )
        self.step += 1
        path, codes = bootstrap(paths, self.work / f"envoy-{self.step}.yaml", options, self.engine)
        assert codes == [d.code for d in analysis.diagnostics]  # nothing of ours to report
        listeners = {x["name"]: x for x in yaml.safe_load(path.read_text())["static_resources"]["listeners"]}
        assert "mesh_tcp_9000" in listeners and "mesh_tcp_9001" in listeners
        self.envoy = start_envoy(self.group, path, admin, name=f"envoy-{self.step}")


@pytest.fixture(scope="module")
def mesh_tcp(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshTcpStack]:
    work = tmp_path_factory.mktemp(f"mesh-tcp-{engine}")
    with ProcessGroup(work / "logs") as group:
        stack = MeshTcpStack(work, group, engine)
        try:
            stack.start_mesh()
            yield stack
        finally:
            stack.close()


def test_mesh_tcp_80_20(mesh_tcp: MeshTcpStack) -> None:
    before = {v: e.connections for v, e in mesh_tcp.echoes.items()}
    replies = [mesh_tcp.reply() for _ in range(CONNECTIONS)]
    prefixes = [r.split(" ", 1)[0] for r in replies]
    assert set(prefixes) <= {"one", "two"}, sorted(set(replies))
    two = prefixes.count("two")
    expected = SHARE * CONNECTIONS
    print(f"mesh tcp shifting: {two}/{CONNECTIONS} to v2 (expected {expected:.0f} ± {TOLERANCE})")
    assert abs(two - expected) <= TOLERANCE, two
    after = {v: e.connections - before[v] for v, e in mesh_tcp.echoes.items()}
    assert after == {"v1": CONNECTIONS - two, "v2": two}


def test_route_agrees_with_listener(mesh_tcp: MeshTcpStack, tmp_path: Path) -> None:
    """route() answers a connection to tcp-echo:9000 from the same tcp route, without HTTP fields."""
    import meshroute

    config = tmp_path / "vs.yaml"
    config.write_text(yaml.safe_dump_all([DESTINATION_RULE, MESH_VS]))
    mesh = meshroute.load(TCP_ECHO / "tcp-echo-services.yaml", config)
    d = mesh.route("tcp-echo", port=SERVICE_PORT, seed=1).to_dict()
    assert d["virtual_service"] == "default/tcp-echo" and d["protocol"] == "tcp"
    assert "retries" not in d and "timeout_ms" not in d
