"""Benchmark scenarios: generated route tables of growing size, and Bookinfo.

A generated scenario is one Service ``svc`` (port 8080, subsets v1/v2) and one VirtualService with
``n`` routes whose match kind follows ``mix``. Requests are spread evenly over all routes (plus a
few that match nothing), so a linear walk pays its average cost and an indexed one cannot hide
behind "the first route always wins".
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import meshroute
from meshroute.bench.decisions import BOOKINFO_REQUESTS, Req
from tests.conftest import SAMPLES

MIXES = ("prefix", "exact", "header", "regex", "mixed")
SIZES = (10, 100, 1000, 10_000)
KINDS = ("prefix", "exact", "header", "regex")


@dataclass(frozen=True)
class Scenario:
    name: str
    docs: list[dict[str, Any]]
    requests: list[Req]

    def load(self) -> meshroute.Mesh:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{self.name}.yaml"
            path.write_text(yaml.safe_dump_all(self.docs, sort_keys=False))
            return meshroute.load(path)

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump_all(self.docs, sort_keys=False))
        return path


def _kind(mix: str, i: int) -> str:
    return KINDS[i % len(KINDS)] if mix == "mixed" else mix


def _match(kind: str, i: int) -> dict[str, Any]:
    if kind == "prefix":
        return {"uri": {"prefix": f"/p{i}/"}}
    if kind == "exact":
        return {"uri": {"exact": f"/e{i}"}}
    if kind == "header":
        return {"headers": {"x-tenant": {"exact": f"t{i}"}}}
    return {"uri": {"regex": f"/r{i}/[0-9]+"}}


def _request(kind: str, i: int) -> Req:
    if kind == "prefix":
        return ("svc", f"/p{i}/items?page=2", "GET", {})
    if kind == "exact":
        return ("svc", f"/e{i}", "GET", {})
    if kind == "header":
        return ("svc", "/", "GET", {"x-tenant": f"t{i}"})
    return ("svc", f"/r{i}/12345", "GET", {})


def generated(n: int, mix: str, n_requests: int = 10_000) -> Scenario:
    subsets = [{"name": s, "labels": {"version": s}} for s in ("v1", "v2")]
    routes = [
        {"match": [_match(_kind(mix, i), i)],
         "route": [{"destination": {"host": "svc", "subset": "v1" if i % 2 == 0 else "v2"}}]}
        for i in range(n)
    ]  # fmt: skip
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "default"},
         "spec": {"selector": {"app": "svc"}, "ports": [{"name": "http", "port": 8080}]}},
        {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
         "metadata": {"name": "svc", "namespace": "default"}, "spec": {"host": "svc", "subsets": subsets}},
        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
         "metadata": {"name": "svc", "namespace": "default"}, "spec": {"hosts": ["svc"], "http": routes}},
    ]  # fmt: skip
    rng = random.Random(n * 31 + len(mix))  # fixed: the same requests in every run
    requests = []
    for _ in range(n_requests):
        if rng.random() < 0.02:
            requests.append(("svc", "/nowhere", "GET", {}))  # 404 after trying everything
        else:
            i = rng.randrange(n)
            requests.append(_request(_kind(mix, i), i))
    return Scenario(f"{mix}-{n}", docs, requests)


BOOKINFO_FILES = (
    "bookinfo/platform/kube/bookinfo.yaml",
    "bookinfo/networking/destination-rule-all.yaml",
    "bookinfo/networking/virtual-service-reviews-test-v2.yaml",
)
# (request, expected cluster) pairs a reader can check against tasks §1 and semantics §2.17; the
# requests are also `meshroute bench`'s default mix.
_FQDN = "outbound|9080|{}|{}.default.svc.cluster.local"
BOOKINFO_EXPECTED: tuple[tuple[Req, str], ...] = tuple(
    zip(
        BOOKINFO_REQUESTS,
        (
            _FQDN.format("v2", "reviews"),  # end-user: jason
            _FQDN.format("v1", "reviews"),
            _FQDN.format("", "ratings"),
            _FQDN.format("", "details"),
            _FQDN.format("", "productpage"),
        ),
        strict=True,
    )
)


def bookinfo(n_requests: int = 10_000) -> Scenario:
    docs = [d for f in BOOKINFO_FILES for d in yaml.safe_load_all((SAMPLES / f).read_text()) if d]
    cycle = [req for req, _ in BOOKINFO_EXPECTED]
    return Scenario("bookinfo", docs, [cycle[i % len(cycle)] for i in range(n_requests)])
