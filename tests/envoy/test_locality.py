"""Locality load balancing in what ``envoy-config`` writes (``meshroute.envoy.locality``): each
cluster's endpoints grouped per locality with Istio's priorities and weights for the mesh client
(``--locality``, ``--source-label``), ``locality_weighted_lb_config`` / the module's
``locality_weighted``, and slow start under both ``--lb`` modes; the placement compared with
meshroute-lb's (the client's ``Balancer``) on Istio's own cases.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from meshroute._core import Balancer
from meshroute.envoy import Options
from meshroute.envoy.cli import options_for
from meshroute.envoy.locality import distribute_weights, place
from tests.envoy.helpers import assert_valid, clusters, embedded_module, generate

HOST = "svc.example.test"
NAME = f"outbound|80||{HOST}"
MODULE = "/abs/libmeshroute_envoy.so"

# One endpoint per locality (10.0.0.1-5): the client sits in us/a/s1.
ENTRY = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.example.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, locality: us/a/s1, labels: {net: n1}}
  - {address: 10.0.0.2, locality: us/a/s2, labels: {net: n2}}
  - {address: 10.0.0.3, locality: us/b, labels: {net: n1}}
  - {address: 10.0.0.4, locality: eu/c, labels: {net: n1}, weight: 3}
  - {address: 10.0.0.5, locality: ap/d, labels: {net: n2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: default}
spec:
  host: svc.example.test
  trafficPolicy:
"""
OUTLIER = "    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 30s}\n"


def rule(load_balancer: str, outlier: bool = True) -> str:
    return ENTRY + f"    loadBalancer: {load_balancer}\n" + (OUTLIER if outlier else "")


def cluster_of(tmp_path: Path, text: str, **options: Any) -> dict[str, Any]:
    opts = {"locality": "us/a/s1", **options}
    if opts.get("lb") == "rust":
        opts.setdefault("lb_module", MODULE)
    generated = generate(tmp_path, text, Options(**opts))
    return clusters(generated.config)[NAME]


def groups(cluster: dict[str, Any]) -> list[tuple[int, str, int, list[str]]]:
    """(priority, locality, weight, endpoint addresses) of each LocalityLbEndpoints."""
    out = []
    for group in cluster["load_assignment"]["endpoints"]:
        where = group.get("locality", {})
        label = "/".join(where[k] for k in ("region", "zone", "sub_zone") if k in where)
        addresses = [ep["endpoint"]["address"]["socket_address"]["address"] for ep in group["lb_endpoints"]]
        out.append((group.get("priority", 0), label, group["load_balancing_weight"], addresses))
    return out


def module_config(cluster: dict[str, Any]) -> dict[str, Any]:
    typed = cluster["load_balancing_policy"]["policies"][0]["typed_extension_config"]["typed_config"]
    config: dict[str, Any] = json.loads(typed["lb_policy_config"]["value"])
    return config


def test_default_failover_places_by_distance_from_the_client(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, rule("{simple: ROUND_ROBIN}"))
    assert groups(cluster) == [
        (0, "us/a/s1", 1, ["10.0.0.1"]),
        (1, "us/a/s2", 1, ["10.0.0.2"]),
        (2, "us/b", 1, ["10.0.0.3"]),
        (3, "ap/d", 1, ["10.0.0.5"]),
        (3, "eu/c", 3, ["10.0.0.4"]),
    ]
    # The default failover does not weigh localities (Istio sets no locality_weighted_lb_config).
    assert "locality_weighted_lb_config" not in cluster.get("common_lb_config", {})
    assert cluster["common_lb_config"]["healthy_panic_threshold"] == {"value": 0.0}


def test_no_outlier_detection_no_failover(tmp_path: Path) -> None:
    cluster = cluster_of(tmp_path, rule("{simple: ROUND_ROBIN}", outlier=False))
    assert {priority for priority, *_ in groups(cluster)} == {0}
    assert len(groups(cluster)) == 5  # still one LocalityLbEndpoints per locality


def test_failover_rule_orders_regions_and_weighs_localities(tmp_path: Path) -> None:
    lb = "{simple: ROUND_ROBIN, localityLbSetting: {enabled: true, failover: [{from: us, to: eu}]}}"
    for mode in ("envoy", "rust"):
        cluster = cluster_of(tmp_path, rule(lb), lb=mode)
        assert [(p, loc) for p, loc, *_ in groups(cluster)] == [
            (0, "us/a/s1"),
            (1, "us/a/s2"),
            (2, "us/b"),
            (3, "eu/c"),
            (4, "ap/d"),
        ], mode
        if mode == "envoy":
            assert cluster["common_lb_config"]["locality_weighted_lb_config"] == {}
        else:
            assert module_config(cluster)["locality_weighted"] is True
            assert "common_lb_config" not in cluster


def test_distribute_sets_weights_and_drops_unlisted_localities(tmp_path: Path) -> None:
    lb = (
        "{simple: ROUND_ROBIN, localityLbSetting: {distribute: "
        "[{from: 'us/*', to: {'us/a/*': 70, 'eu/c': 30}}]}}"
    )
    for mode in ("envoy", "rust"):
        cluster = cluster_of(tmp_path, rule(lb, outlier=False), lb=mode)
        assert groups(cluster) == [
            (0, "eu/c", 30, ["10.0.0.4"]),
            (0, "us/a/s1", 35, ["10.0.0.1"]),
            (0, "us/a/s2", 35, ["10.0.0.2"]),
        ], mode
        if mode == "envoy":
            assert cluster["common_lb_config"] == {"locality_weighted_lb_config": {}}
        else:
            assert module_config(cluster) == {
                "cluster": NAME,
                "policy": "ROUND_ROBIN",
                "locality_weighted": True,
            }


def test_failover_priority_splits_by_the_client_labels(tmp_path: Path) -> None:
    lb = "{simple: ROUND_ROBIN, localityLbSetting: {failoverPriority: [net]}}"
    cluster = cluster_of(tmp_path, rule(lb), source_labels={"net": "n1"})
    assert [(p, loc) for p, loc, *_ in groups(cluster)] == [
        (0, "eu/c"),
        (0, "us/a/s1"),
        (0, "us/b"),
        (1, "ap/d"),
        (1, "us/a/s2"),
    ]
    assert cluster["common_lb_config"]["locality_weighted_lb_config"] == {}


def test_without_a_client_locality_or_labels_nothing_is_placed(tmp_path: Path) -> None:
    generated = generate(tmp_path, rule("{simple: ROUND_ROBIN}"), Options())
    cluster = clusters(generated.config)[NAME]
    (group,) = cluster["load_assignment"]["endpoints"]
    assert set(group) == {"lb_endpoints"} and len(group["lb_endpoints"]) == 5
    # Labels without a locality: still nothing (Istio places only for a proxy with a locality).
    generated = generate(tmp_path, rule("{simple: ROUND_ROBIN}"), Options(source_labels={"net": "n1"}))
    assert len(clusters(generated.config)[NAME]["load_assignment"]["endpoints"]) == 1
    # The client's topology labels give its locality, as in the proxyless client.
    labels = {"topology.kubernetes.io/region": "us", "topology.kubernetes.io/zone": "a"}
    cluster = cluster_of(tmp_path, rule("{simple: ROUND_ROBIN}"), locality="", source_labels=labels)
    assert groups(cluster)[0][:2] == (0, "us/a/s1") and groups(cluster)[1][:2] == (0, "us/a/s2")


def test_locality_flag() -> None:
    options = options_for(["cfg", "--engine", "extproc", "--locality", "us/a/s1", "--source-label", "app=x"])
    assert (options.locality, options.client_locality) == ("us/a/s1", "us/a/s1")
    labels = ["--source-label", "topology.kubernetes.io/region=eu"]
    assert options_for(["cfg", "--engine", "extproc", *labels]).client_locality == "eu"


def test_warmup_in_both_modes(tmp_path: Path) -> None:
    lb = "{simple: LEAST_REQUEST, warmup: {duration: 20s, minimumPercent: 20, aggression: 1.5}}"
    envoy = cluster_of(tmp_path, rule(lb, outlier=False), locality="")
    assert envoy["least_request_lb_config"] == {
        "slow_start_config": {
            "slow_start_window": "20s",
            "min_weight_percent": {"value": 20.0},
            "aggression": {"default_value": 1.5, "runtime_key": "upstream.slow_start_aggression"},
        }
    }
    rust = cluster_of(tmp_path, rule(lb, outlier=False), locality="", lb="rust")
    assert module_config(rust) == {
        "cluster": NAME,
        "policy": "LEAST_REQUEST",
        "warmup": {"duration_ms": 20000, "aggression": 1.5, "min_weight_percent": 20.0},
    }
    legacy = cluster_of(tmp_path, rule("{simple: ROUND_ROBIN, warmupDurationSecs: 5s}", False), lb="rust")
    assert module_config(legacy)["warmup"] == {"duration_ms": 5000}
    # RANDOM has no slow start, in Envoy or the module.
    random = cluster_of(tmp_path, rule("{simple: RANDOM, warmupDurationSecs: 5s}", False), lb="rust")
    assert "warmup" not in module_config(random)


@pytest.mark.parametrize("mode", ["envoy", "rust"])
def test_envoy_accepts_the_placed_clusters(tmp_path: Path, mode: str) -> None:
    text = rule(
        "{simple: ROUND_ROBIN, warmupDurationSecs: 10s, localityLbSetting: "
        "{distribute: [{from: 'us/*', to: {'us/*': 80, 'eu/c': 20}}]}}"
    ) + (
        "  subsets:\n"
        "  - name: fo\n"
        "    labels: {net: n1}\n"
        "    trafficPolicy:\n"
        "      loadBalancer: {simple: LEAST_REQUEST, localityLbSetting: {failover: [{from: us, to: eu}]}}\n"
        "      outlierDetection: {consecutive5xxErrors: 1}\n"
    )
    options = Options(locality="us/a/s1", source_labels={"net": "n1"}, lb=mode)
    if mode == "rust":
        options = Options(
            locality="us/a/s1", source_labels={"net": "n1"}, lb=mode, lb_module=str(embedded_module())
        )
    generated = generate(tmp_path, text, options)
    by_name = clusters(generated.config)
    assert len(by_name[f"outbound|80|fo|{HOST}"]["load_assignment"]["endpoints"]) == 3
    assert_valid(tmp_path, generated.config)


# --- the placement against meshroute-lb's, on Istio's cases (rust/meshroute-lb locality tests) ---

# Istio's buildFakeCluster localities, one endpoint each.
FAKE = [
    "region1/zone1/subzone1",
    "region1/zone1/subzone2",
    "region1/zone1/subzone3",
    "region1/zone2",
    "region2",
    "region3",
]
CLIENT = "region1/zone1/subzone1"
N, C = "topology.istio.io/network", "topology.istio.io/cluster"
# labelled_cluster: three localities, endpoints with network / cluster labels.
LABELLED = [
    ("region1/zone1/subzone1", {"key": "value", N: "n1", C: "c1"}),
    ("region1/zone1/subzone1", {"key": "value", N: "n2", C: "c2"}),
    ("region1/zone1/subzone2", {"key": "value", N: "n1", C: "c1"}),
    ("region1/zone1/subzone2", {N: "n2", C: "c2"}),
    ("region2/zone1/subzone1", {"key": "value", N: "n1", C: "c1"}),
    ("region2/zone1/subzone1", {N: "n2", C: "c2"}),
]
FAILOVER = [{"from": "region1", "to": "region2"}]
CASES: dict[str, tuple[list[str], list[dict[str, str]], dict[str, Any], dict[str, str]]] = {
    "distribute between subzones": (
        FAKE, [{}] * 6,
        {"distribute": [{"from": CLIENT, "to": {
            "region1/zone1/subzone1": 80, "region1/zone1/subzone2": 15, "region1/zone1/subzone3": 5}}]},
        {},
    ),
    "distribute with wildcards": (
        FAKE, [{}] * 6,
        {"distribute": [{"from": "region1/*", "to": {"region1/zone1/*": 60, "region2/*": 40}}]},
        {},
    ),
    "failover all priorities": (FAKE, [{}] * 6, {"failover": FAILOVER}, {}),
    "failover default": (FAKE, [{}] * 6, {}, {}),
    "failoverPriority match network": (
        [loc for loc, _ in LABELLED], [lbl for _, lbl in LABELLED], {"failoverPriority": [N, C]},
        {N: "n1", C: "test"},
    ),
    "failoverPriority match all labels": (
        [loc for loc, _ in LABELLED], [lbl for _, lbl in LABELLED], {"failoverPriority": ["key", N, C]},
        {"key": "value", N: "n2", C: "c2"},
    ),
    "failoverPriority overridden value": (
        [loc for loc, _ in LABELLED], [lbl for _, lbl in LABELLED],
        {"failoverPriority": [f"{N}=n1"]}, {N: "n2", C: "test"},
    ),
    "failoverPriority with failover": (
        [loc for loc, _ in LABELLED], [lbl for _, lbl in LABELLED],
        {"failoverPriority": ["key", N, C], "failover": FAILOVER}, {"key": "value", N: "n2", C: "c2"},
    ),
}  # fmt: skip


def endpoint(i: int) -> dict[str, Any]:
    return {"endpoint": {"address": {"socket_address": {"address": f"10.0.0.{i}", "port_value": 80}}}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_placement_equals_meshroute_lbs(case: str) -> None:
    localities, labels, setting, client_labels = CASES[case]
    policy = {
        "loadBalancer": {"simple": "ROUND_ROBIN", "localityLbSetting": setting},
        "outlierDetection": {"consecutive5xxErrors": 5},
    }
    eps = [endpoint(i) for i in range(len(localities))]
    placed = place(eps, localities, labels, policy, CLIENT, client_labels)
    balancer = Balancer(
        [(f"10.0.0.{i}:80", 1) for i in range(len(eps))],
        json.dumps(policy),
        1,
        localities=localities,
        labels=[dict(lbl) for lbl in labels],
        client_locality=CLIENT,
        client_labels=client_labels,
    )
    mine: list[int | None] = [None] * len(eps)
    for group in placed.groups:
        for ep in group.lb_endpoints:
            mine[eps.index(ep)] = group.priority
    assert mine == balancer.priorities
    assert placed.locality_weighted == balancer.locality_weighted
    if not balancer.locality_weighted:
        return
    # Locality weights: the Balancer schedules priority 0's localities by weight (EDF, no draw),
    # so its picks over many rounds split as the weights written into the cluster.
    top = [g for g in placed.groups if g.priority == 0]
    total = sum(g.weight for g in top)
    rounds = 20
    picks: Counter[str] = Counter()
    for _ in range(total * rounds):
        index = balancer.pick()
        assert index is not None
        picks[localities[index]] += 1
    for group in top:
        assert abs(picks[group.locality] - group.weight * rounds) <= 2, (case, picks, top)


def test_distribute_weights_follow_istio_expectations() -> None:
    # TestApplyLocalitySetting/Distribute "distribution between subzones" (one endpoint each).
    weights = distribute_weights(
        CLIENT,
        dict.fromkeys(FAKE, 1),
        [
            {
                "from": CLIENT,
                "to": {
                    "region1/zone1/subzone1": 80,
                    "region1/zone1/subzone2": 15,
                    "region1/zone1/subzone3": 5,
                },
            }
        ],
    )
    assert weights == {
        "region1/zone1/subzone1": 80,
        "region1/zone1/subzone2": 15,
        "region1/zone1/subzone3": 5,
        "region1/zone2": None,
        "region2": None,
        "region3": None,
    }
    # No rule from the client's locality: weights unchanged.
    assert distribute_weights("eu", {"us": 2}, [{"from": "us", "to": {"us": 100}}]) is None
