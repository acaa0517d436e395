"""Locality failover through a real Envoy, from what ``envoy-config --locality`` writes (no
editing of the generated clusters): the proxy sits in ``us/a``; ``loc.lb.test`` has endpoint
``a`` in ``us/a`` and ``b`` in ``eu/b``, ROUND_ROBIN with outlier detection, so istiod's placement
(meshroute.envoy.locality) puts ``a`` at priority 0 and ``b`` at priority 1. ``a`` takes every
request until it starts answering 503 and is ejected; then every request fails over to ``b``.
Once in an ``--lb envoy`` and once in an ``--lb rust`` Envoy (one worker each).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshroute.envoy.options import EMBEDDED, LB_ENVOY, LB_RUST
from meshroute.envoy.process import envoy_config_args, start_envoy
from meshroute.procs import ProcessGroup, free_port, wait_until
from tests.e2e.echo import Echo
from tests.e2e.feature_stack import request as send

pytestmark = pytest.mark.timeout(300)

HOST = "loc.lb.test"
CLUSTER = f"outbound|80||{HOST}"
CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: loc, namespace: default}
spec:
  hosts: [loc.lb.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: ${A}}, locality: us/a, labels: {name: a}}
  - {address: 127.0.0.1, ports: {http: ${B}}, locality: eu/b, labels: {name: b}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: loc, namespace: default}
spec:
  host: loc.lb.test
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 120s, maxEjectionPercent: 100}
"""


@pytest.fixture(params=[LB_ENVOY, LB_RUST])
def envoy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, dict[str, Echo]]]:
    lb = request.param
    echoes = {name: Echo(name) for name in ("a", "b")}
    try:
        config_dir = tmp_path / "config"
        config_dir.mkdir()
        text = CONFIG.replace("${A}", str(echoes["a"].port)).replace("${B}", str(echoes["b"].port))
        (config_dir / "config.yaml").write_text(text)
        mesh_port, admin_port = free_port(), free_port()
        out = tmp_path / "envoy.yaml"
        args = envoy_config_args(
            [config_dir], extproc="unix:/nonexistent", mesh_port=mesh_port, admin_port=admin_port,
            engine=EMBEDDED, lb=lb, seed=3, access_log="",
        )  # fmt: skip
        command = [
            sys.executable,
            "-m",
            "meshroute",
            "envoy-config",
            *args,
            "--locality",
            "us/a",
            "-o",
            str(out),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        bootstrap = yaml.safe_load(out.read_text())
        (cluster,) = [c for c in bootstrap["static_resources"]["clusters"] if c["name"] == CLUSTER]
        priorities = [(g.get("priority", 0), g["locality"]) for g in cluster["load_assignment"]["endpoints"]]
        assert priorities == [(0, {"region": "us", "zone": "a"}), (1, {"region": "eu", "zone": "b"})]
        with ProcessGroup(tmp_path / "logs") as group:
            proc = start_envoy(group, out, admin_port, name=f"envoy-{lb}")
            assert proc.alive(), proc.log_tail()
            yield mesh_port, echoes
    finally:
        for echo in echoes.values():
            echo.close()


def served(port: int, n: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        r = send(port, HOST, "/")
        seen[f"{r.header('x-echo-server') or '?'} {r.status}"] += 1
    return seen


def test_local_endpoint_takes_everything_until_ejected_then_traffic_fails_over(
    envoy: tuple[int, dict[str, Echo]],
) -> None:
    port, echoes = envoy
    before = served(port, 40)
    assert before == Counter({"a 200": 40}), before  # priority 0 is fully healthy: all of it
    echoes["a"].status = 503
    # a answers 503 until outlier detection ejects it (3 consecutive 5xx), then b serves.
    wait_until(lambda: send(port, HOST, "/").header("x-echo-server") == "b", 20, "failover to b")
    a_count = len(echoes["a"].requests)
    after = served(port, 40)
    assert after == Counter({"b 200": 40}), after
    assert len(echoes["a"].requests) == a_count  # the ejected local endpoint gets nothing
