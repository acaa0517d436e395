"""Weighted destinations and fault percentages over many seeded draws.

Tolerance: every share must be within ±1 percentage point of its configured value over
N = 100 000 requests. The binomial standard deviation of a share p is sqrt(p(1-p)/N), at most
sqrt(0.25/1e5) ≈ 0.158 pp, so ±1 pp is more than 6 standard deviations: a correct implementation
fails this about once in 10^9 runs, while an off-by-one in the cumulative weights (e.g. 1/1/2 read
as 1/2/2, a 10 pp error) or a draw that ignores part of its range cannot pass. The seeds are
fixed, so the run is reproducible anyway; the tolerance argument is what makes the *choice* of
seed irrelevant.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

import meshroute

N = 100_000
TOLERANCE = 0.01  # ±1 pp, > 6 binomial sd at N = 1e5 (see module docstring)
FQDN = "reviews.default.svc.cluster.local"


def reviews_mesh(tmp_path: Path, http: list[dict[str, Any]]) -> meshroute.Mesh:
    """Service ``reviews`` (port 9080), subsets v1..v3, and a VS with the given ``http`` routes."""
    subsets = [{"name": s, "labels": {"version": s}} for s in ("v1", "v2", "v3")]
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "reviews"},
         "spec": {"ports": [{"name": "http", "port": 9080}], "selector": {"app": "reviews"}}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "reviews"},
         "spec": {"host": "reviews", "subsets": subsets}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "reviews"},
         "spec": {"hosts": ["reviews"], "http": http}},
    ]  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return meshroute.load(path)


def weighted(weights: dict[str, int]) -> list[dict[str, Any]]:
    dests = [{"destination": {"host": "reviews", "subset": s}, "weight": w} for s, w in weights.items()]
    return [{"route": dests}]


def shares(mesh: meshroute.Mesh, seed: int) -> dict[str, float]:
    decisions = mesh.route_many([("reviews", "/")] * N, seed=seed)
    counts = Counter(d.subset for d in decisions)
    assert {d.outcome for d in decisions} == {"route"}
    return {subset: n / N for subset, n in counts.items()}


@pytest.mark.parametrize(
    ("weights", "seed"),
    [
        ({"v1": 50, "v2": 30, "v3": 20}, 1),
        ({"v1": 1, "v2": 1, "v3": 2}, 2),  # relative weights: no "sum to 100" rule since Istio 1.15
        ({"v1": 90, "v2": 10}, 3),
        ({"v1": 0, "v2": 1, "v3": 3}, 4),  # weight 0 is dropped: v1 must never be picked
    ],
)
def test_weighted_shares_within_one_point(tmp_path: Path, weights: dict[str, int], seed: int) -> None:
    got = shares(reviews_mesh(tmp_path, weighted(weights)), seed)
    total = sum(weights.values())
    for subset, weight in weights.items():
        assert got.get(subset, 0.0) == pytest.approx(weight / total, abs=TOLERANCE), (subset, got)
        if weight == 0:
            assert subset not in got  # zero weight ⇒ exactly 0 picks, not "about 0"


def fault_route(delay_pct: float, abort_pct: float) -> list[dict[str, Any]]:
    fault = {
        "delay": {"fixedDelay": "2s", "percentage": {"value": delay_pct}},
        "abort": {"httpStatus": 503, "percentage": {"value": abort_pct}},
    }
    return [{"fault": fault, "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]


def test_fault_percentages_are_independent_draws(tmp_path: Path) -> None:
    """10 % delay and 50 % abort, drawn independently (semantics §2.12): ≈10 % delayed, ≈50 %
    aborted, ≈5 % both."""
    decisions = reviews_mesh(tmp_path, fault_route(10, 50)).route_many([("reviews", "/")] * N, seed=11)
    delayed = [d.delay_ms == 2000 for d in decisions]
    aborted = [d.outcome == "abort" for d in decisions]
    assert {d.delay_ms for d in decisions} <= {None, 2000}
    assert all(d.status == 503 for d, a in zip(decisions, aborted, strict=True) if a)
    assert sum(delayed) / N == pytest.approx(0.10, abs=TOLERANCE)
    assert sum(aborted) / N == pytest.approx(0.50, abs=TOLERANCE)
    both = sum(d and a for d, a in zip(delayed, aborted, strict=True))
    assert both / N == pytest.approx(0.05, abs=TOLERANCE)


def test_fault_fractional_percentage(tmp_path: Path) -> None:
    """Percent precision is 0.0001 % (value × 10 000 per million): 0.5 % must not round to 0 or 1."""
    decisions = reviews_mesh(tmp_path, fault_route(0.5, 0)).route_many([("reviews", "/")] * N, seed=12)
    share = sum(d.delay_ms is not None for d in decisions) / N
    assert share == pytest.approx(0.005, abs=0.002)  # sd ≈ 0.022 pp here, so ±0.2 pp is > 9 sd
    assert not any(d.outcome == "abort" for d in decisions)  # 0 % ⇒ never


def test_hundred_percent_and_absent_percentage(tmp_path: Path) -> None:
    """100 % always fires; a fault without `percentage` fires never (semantics §2.12, not "all")."""
    http = [
        {"match": [{"uri": {"prefix": "/always"}}],
         "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100}}},
         "route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
        {"fault": {"delay": {"fixedDelay": "1s"}},
         "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
    ]  # fmt: skip
    mesh = reviews_mesh(tmp_path, http)
    always = mesh.route_many([("reviews", "/always")] * 1000, seed=5)
    never = mesh.route_many([("reviews", "/other")] * 1000, seed=5)
    assert {(d.outcome, d.status) for d in always} == {("abort", 500)}
    assert {(d.outcome, d.delay_ms, d.subset) for d in never} == {("route", None, "v2")}


def test_same_seed_same_decision(tmp_path: Path) -> None:
    mesh = reviews_mesh(tmp_path, weighted({"v1": 1, "v2": 1, "v3": 1}))
    for seed in range(50):
        first = mesh.route("reviews", "/", seed=seed).to_dict()
        assert mesh.route("reviews", "/", seed=seed).to_dict() == first
    batch = [("reviews", "/")] * 200
    assert [d.cluster for d in mesh.route_many(batch, seed=9)] == [
        d.cluster for d in mesh.route_many(batch, seed=9)
    ]


def test_seeds_actually_vary_the_pick(tmp_path: Path) -> None:
    """Reproducible must not mean constant: 200 seeds over three equal weights reach every subset."""
    mesh = reviews_mesh(tmp_path, weighted({"v1": 1, "v2": 1, "v3": 1}))
    picked = {mesh.route("reviews", "/", seed=seed).cluster for seed in range(200)}
    assert picked == {f"outbound|9080|{s}|{FQDN}" for s in ("v1", "v2", "v3")}


def test_unseeded_calls_are_random(tmp_path: Path) -> None:
    mesh = reviews_mesh(tmp_path, weighted({"v1": 1, "v2": 1}))
    assert {d.subset for d in mesh.route_many([("reviews", "/")] * 200)} == {"v1", "v2"}
