"""`meshroute demo`: Istio's Bookinfo traffic tasks replayed on the shipped config.

Each step applies task YAML on top of the Bookinfo base (later files replace earlier resources of the
same kind/namespace/name, as ``kubectl apply`` does), then shows the decisions for the requests the
Istio task makes, so the outcome can be compared with istio.io.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass

from meshroute.errors import ConfigError
from meshroute.mesh import Mesh, bookinfo_path, load
from meshroute.render import render_diagnostics

TASKS = os.path.join(os.path.dirname(__file__), "data", "tasks")
JASON = {"end-user": "jason"}


@dataclass(frozen=True)
class Step:
    title: str
    files: tuple[str, ...]


STEPS = (
    Step("Baseline: Bookinfo with every service on v1 (virtual-service-all-v1)", ()),
    Step("Request routing: jason -> reviews v2", ("virtual-service-reviews-test-v2.yaml",)),
    Step(
        "Fault injection: 7s delay on ratings for jason",
        ("virtual-service-reviews-test-v2.yaml", "virtual-service-ratings-test-delay.yaml"),
    ),
    Step(
        "Fault injection: HTTP 500 abort on ratings for jason",
        ("virtual-service-reviews-test-v2.yaml", "virtual-service-ratings-test-abort.yaml"),
    ),
    Step("Traffic shifting: reviews 50% v1 / 50% v3", ("virtual-service-reviews-50-v3.yaml",)),
    Step("Traffic shifting: reviews 80% v1 / 20% v2", ("virtual-service-reviews-80-20.yaml",)),
    Step(
        "Request timeouts: reviews v2 with a 0.5s timeout, ratings delayed 2s",
        ("reviews-v2-timeout-0.5s.yaml", "ratings-delay-2s.yaml"),
    ),
)


def run() -> int:
    """Print each step and what meshroute decides for the task's requests. Returns an exit code."""
    base = bookinfo_path()
    try:
        mesh = load(base)
    except ConfigError as exc:
        print(render_diagnostics(exc.diagnostics, None))
        return 1
    print(f"meshroute demo: Bookinfo config from {base}")
    print(render_diagnostics(mesh.warnings, len(mesh.analysis.resources)))
    for number, step in enumerate(STEPS):
        print(f"\n[{number}] {step.title}")
        for name in step.files:
            print(f"    applied {name}")
        mesh = load(base, *(os.path.join(TASKS, f) for f in step.files))
        _show_step(mesh)
    return 0


def _show_step(mesh: Mesh) -> None:
    ingress = mesh.route("bookinfo.example.com", "/productpage", gateway="default/bookinfo-gateway")
    print(f"    ingress GET /productpage -> {_short(ingress.to_dict())}")
    missing = mesh.route("bookinfo.example.com", "/nope", gateway="default/bookinfo-gateway")
    print(f"    ingress GET /nope        -> {_short(missing.to_dict())}")
    for user, headers in (("jason", JASON), ("anonymous", None)):
        reviews = mesh.route("reviews:9080", "/reviews/0", headers=headers, seed=1)
        ratings = mesh.route("ratings:9080", "/ratings/0", headers=headers, seed=1)
        print(f"    {user:>9}: reviews -> {_short(reviews.to_dict())}")
        print(f"    {user:>9}: ratings -> {_short(ratings.to_dict())}")
    batch = mesh.route_many([("reviews", "/reviews/0")] * 10_000, seed=7)
    counts = collections.Counter(d.subset for d in batch)
    shares = ", ".join(f"{k}: {v / 100:.1f}%" for k, v in sorted(counts.items(), key=str))
    print(f"    10 000 anonymous reviews requests -> {shares}")


def _short(d: dict[str, object]) -> str:
    outcome = d["outcome"]
    if outcome == "route":
        text = f"{d['cluster']}"
        fault = d.get("fault")
        if isinstance(fault, dict) and fault.get("delay_ms"):
            text += f" after a {fault['delay_ms']} ms injected delay"
        if d.get("timeout_ms"):
            text += f" (timeout {d['timeout_ms']} ms)"
        return text
    return f"{outcome} {d['status']}"
