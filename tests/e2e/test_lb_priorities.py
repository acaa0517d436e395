"""Priorities and locality weights: Envoy's own balancer against meshroute-lb inside Envoy
(``--lb rust``), on clusters whose endpoints carry priorities, localities and health.

Hosts marked UNHEALTHY (and hand-picked priorities and weights) are nothing ``envoy-config``
writes (its locality placement, ``--locality``, is tested in test_locality_failover.py), so this
test edits the two generated clusters as istiod's EDS would have them, the same way in both
Envoys: ``prio.lb.test`` has priority 0 = {a, b marked UNHEALTHY} and priority 1 = {c, d};
``zones.lb.test`` has, at priority 0, locality ``us/a`` (weight 3) = {a} and ``us/b``
(weight 1) = {b, c marked UNHEALTHY}, with Envoy's ``locality_weighted_lb_config`` in the
``envoy`` Envoy and ``"locality_weighted": true`` in the module's ``lb_policy_config`` in the
``rust`` one. Both ROUND_ROBIN, one worker each. What the module reads of them comes through the
policy ABI (priorities, healthy hosts, ``get_host_locality``, ``get_locality_*``: docs/envoy.md).

Expected (Envoy's arithmetic, overprovisioning factor 1.4):
- ``prio``: priority 0 is 50 % healthy, so its health is 70 %: 30 % of the requests spill to
  priority 1 (c and d), b gets none;
- ``zones``: ``us/b`` is 50 % healthy, its effective weight 1 × min(1, 1.4 × 0.5) = 0.7 against
  ``us/a``'s 3: a gets 3 / 3.7 = 81 % (EDF over localities: no randomness), b the rest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from meshroute.envoy.options import EMBEDDED, LB_ENVOY, LB_RUST
from meshroute.envoy.process import start_envoy, write_bootstrap
from meshroute.procs import LOOPBACK, ProcessGroup, free_port
from tests.e2e.echo import Echo
from tests.e2e.feature_stack import request

pytestmark = pytest.mark.timeout(300)

LBS = (LB_ENVOY, LB_RUST)
SERVERS = ("a", "b", "c", "d")
PICKS = "dynamicmodulescustom.meshroute_lb_picks"

CONFIG = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: lb, namespace: default}
spec:
  hosts: [prio.lb.test, zones.lb.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: ${A}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: prio, namespace: default}
spec: {host: prio.lb.test, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: zones, namespace: default}
spec: {host: zones.lb.test, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}}
"""


def endpoint(port: int, healthy: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "endpoint": {"address": {"socket_address": {"address": LOOPBACK, "port_value": port}}}
    }
    if not healthy:
        out["health_status"] = "UNHEALTHY"
    return out


def locality(name: str) -> dict[str, str]:
    region, zone = name.split("/")
    return {"region": region, "zone": zone}


def edit(cluster: dict[str, Any], lb: str, ports: dict[str, int]) -> None:
    """The cluster as istiod's EDS would give it (see the module docstring)."""
    host = cluster["name"].rpartition("|")[2]
    if host not in ("prio.lb.test", "zones.lb.test"):
        return
    assignment = cluster["load_assignment"]
    if host == "prio.lb.test":
        assignment["endpoints"] = [
            {"priority": 0, "lb_endpoints": [endpoint(ports["a"]), endpoint(ports["b"], healthy=False)]},
            {"priority": 1, "lb_endpoints": [endpoint(ports["c"]), endpoint(ports["d"])]},
        ]
    elif host == "zones.lb.test":
        assignment["endpoints"] = [
            {
                "locality": locality("us/a"),
                "load_balancing_weight": 3,
                "lb_endpoints": [endpoint(ports["a"])],
            },
            {
                "locality": locality("us/b"),
                "load_balancing_weight": 1,
                "lb_endpoints": [endpoint(ports["b"]), endpoint(ports["c"], healthy=False)],
            },
        ]
        if lb == LB_ENVOY:
            cluster.setdefault("common_lb_config", {})["locality_weighted_lb_config"] = {}
        else:
            typed = cluster["load_balancing_policy"]["policies"][0]["typed_extension_config"]["typed_config"]
            config = json.loads(typed["lb_policy_config"]["value"])
            typed["lb_policy_config"]["value"] = json.dumps({**config, "locality_weighted": True})


class Stack:
    def __init__(self, echoes: dict[str, Echo], envoys: dict[str, tuple[int, int]]) -> None:
        self.echoes = echoes
        self.envoys = envoys  # lb -> (mesh port, admin port)

    def served(self, lb: str, host: str, n: int) -> Counter[str]:
        port = self.envoys[lb][0]
        seen: Counter[str] = Counter()
        for _ in range(n):
            r = request(port, host, "/")
            assert r.status == 200, (lb, host, r.status, r.body[:200])
            seen[r.header("x-echo-server") or "?"] += 1
        return seen


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("lb-priorities")
    echoes = {name: Echo(name) for name in SERVERS}
    try:
        config_dir = work / "config"
        config_dir.mkdir()
        (config_dir / "config.yaml").write_text(CONFIG.replace("${A}", str(echoes["a"].port)))
        ports = {name: echo.port for name, echo in echoes.items()}
        envoys: dict[str, tuple[int, int]] = {}
        with ProcessGroup(work / "logs") as group:
            for lb in LBS:
                mesh_port, admin_port = free_port(), free_port()
                out = work / f"envoy-{lb}.yaml"
                write_bootstrap(
                    [config_dir], out, extproc="unix:/nonexistent", mesh_port=mesh_port,
                    admin_port=admin_port, engine=EMBEDDED, lb=lb, seed=5, access_log="",
                )  # fmt: skip
                bootstrap = yaml.safe_load(Path(out).read_text())
                for cluster in bootstrap["static_resources"]["clusters"]:
                    edit(cluster, lb, ports)
                Path(out).write_text(yaml.safe_dump(bootstrap, sort_keys=False))
                proc = start_envoy(group, out, admin_port, name=f"envoy-{lb}")
                assert proc.alive(), proc.log_tail()
                envoys[lb] = (mesh_port, admin_port)
            yield Stack(echoes, envoys)
    finally:
        for echo in echoes.values():
            echo.close()


def report(what: str, **by_lb: object) -> None:
    print(f"[lb-priorities] {what}: " + "; ".join(f"{lb}={value}" for lb, value in by_lb.items()))


def test_traffic_spills_to_priority_one_by_the_overprovisioning_factor(stack: Stack) -> None:
    n = 600
    seen = {lb: stack.served(lb, "prio.lb.test", n) for lb in LBS}
    report(f"priority 0 = a + unhealthy b, priority 1 = c, d; {n} requests", **seen)
    spill = {lb: (s["c"] + s["d"]) / n for lb, s in seen.items()}
    for lb, s in seen.items():
        assert s["b"] == 0, (lb, s)
        # 30 % to priority 1: a per-request draw (binomial, σ ≈ 1.9 %), ± 7 %.
        assert abs(spill[lb] - 0.30) <= 0.07, (lb, s)
    assert abs(spill[LB_ENVOY] - spill[LB_RUST]) <= 0.10, spill


def test_locality_weights_scaled_by_each_localitys_health(stack: Stack) -> None:
    n = 370
    seen = {lb: stack.served(lb, "zones.lb.test", n) for lb in LBS}
    report(f"us/a (3) = a, us/b (1) = b + unhealthy c; {n} requests", **seen)
    for lb, s in seen.items():
        assert s["c"] == 0 and s["d"] == 0, (lb, s)
        # 3 / 3.7 of 370 = 300, scheduled (EDF), not drawn: ± 5.
        assert abs(s["a"] - 300) <= 5, (lb, s)
    assert abs(seen[LB_ENVOY]["a"] - seen[LB_RUST]["a"]) <= 6, seen
