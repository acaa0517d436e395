"""RouteTable.patched (docs/ir.md, "Patch"): a table patched from config 1's IR decides as the full
build of config 2's IR; a bad patch raises CompileError and leaves the table answering."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from meshroute._core import CompileError, RouteTable
from meshroute.compile import expand_vhost_pool, ir_json
from tests.compile_helpers import compile_all, resources, service

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""

# Config 1 → config 2: jason's route moves from v2 to an even v2 / v3 split (one VirtualService's
# routes), and the reviews DestinationRule gains subset v3 with a consistent hash (its subsets).
REVIEWS_VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  gateways: [mesh, gw]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: {jason}
  - match: [{{uri: {{prefix: /ratings}}}}]
    route: [{{destination: {{host: ratings}}}}]
  - route: [{{destination: {{host: reviews, subset: v1}}}}]
"""
JASON_1 = "[{destination: {host: reviews, subset: v2}}]"
JASON_2 = (
    "[{destination: {host: reviews, subset: v2}, weight: 50},"
    " {destination: {host: reviews, subset: v3}, weight: 50}]"
)

REVIEWS_DR = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
{more}
"""
V3 = """  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}"""


def config(second: bool) -> dict[str, Any]:
    texts = [
        service("reviews", ports=(9080,)),
        service("ratings", ports=(9080,)),
        service("details", ns="prod", ports=(9080,)),
        GATEWAY,
        REVIEWS_VS.format(jason=JASON_2 if second else JASON_1),
        REVIEWS_DR.format(more=V3 if second else ""),
    ]
    ir, diags = compile_all(resources(*texts))
    assert not [d.render() for d in diags if d.is_error]
    # Through the text Rust reads (pooled vhosts), and back: the patch is written against it.
    parsed: dict[str, Any] = json.loads(ir_json(ir))
    return parsed


def remapped(entries: list[Any], out: list[Any], patch: list[Any]) -> list[int]:
    """IR 2's ``entries`` as ids of the patched table, whose entries are ``out`` (IR 1's, grown
    here): the id of an equal entry, else the next appended one (the entry goes into ``patch``)."""
    ids = []
    for entry in entries:
        if entry in out:
            ids.append(out.index(entry))
        else:
            out.append(entry)
            patch.append(entry)
            ids.append(len(out) - 1)
    return ids


def patch_between(ir1: dict[str, Any], ir2: dict[str, Any]) -> dict[str, Any]:
    """The patch turning IR 1's table into one that decides as IR 2's, written by hand: IR 2's
    targets, policies and routes mapped onto IR 1's ids (new ones appended), its changed scopes
    replaced, its changed vhosts placed."""
    one, two = expand_vhost_pool(ir1), expand_vhost_pool(ir2)
    patch: dict[str, Any] = {
        "patch": 1,
        "base": {k: len(one[k]) for k in ("routes", "targets", "policies", "scopes", "views")},
        "targets": [],
        "policies": [],
        "routes": [],
        "scopes": [],
        "vhosts": [],
        "placements": [],
        "view_scopes": [],
    }
    target = remapped(two["targets"], list(one["targets"]), patch["targets"])
    policy = remapped(two["policies"], list(one["policies"]), patch["policies"])

    def dests(route: dict[str, Any]) -> dict[str, Any]:
        action = route["action"]
        if "route" not in action:
            return route
        moved = [{**d, "target": target[d["target"]]} for d in action["route"]["destinations"]]
        return {**route, "action": {"route": {"destinations": moved}}}

    route = remapped([dests(r) for r in two["routes"]], list(one["routes"]), patch["routes"])
    for i, scope in enumerate(two["scopes"]):
        clusters = [[target[t], port, policy[p]] for t, port, p in scope["clusters"]]
        if i >= len(one["scopes"]) or clusters != one["scopes"][i]["clusters"]:
            patch["scopes"].append([i, {"clusters": clusters}])
    for v, (view1, view2) in enumerate(zip(one["views"], two["views"], strict=True)):
        assert len(view2["vhosts"]) >= len(view1["vhosts"])
        for pos, vhost in enumerate(view2["vhosts"]):
            default = vhost["default_target"]
            moved = {
                **vhost,
                "routes": [route[r] for r in vhost["routes"]],
                "default_target": None if default is None else target[default],
            }
            if pos < len(view1["vhosts"]) and moved == view1["vhosts"][pos]:
                continue
            if moved not in patch["vhosts"]:
                patch["vhosts"].append(moved)
            patch["placements"].append([v, pos, patch["vhosts"].index(moved)])
        if view2["scope"] != view1["scope"]:
            patch["view_scopes"].append([v, view2["scope"]])
    return patch


REQUESTS = [
    (host, path, headers)
    for host in ("reviews", "reviews.default.svc.cluster.local:9080", "ratings", "details.prod", "nope")
    for path in ("/", "/ratings/1")
    for headers in ({}, {"end-user": "jason"}, {"end-user": "jason", "x-user": "u7"})
]
CLIENTS = [
    {"source_namespace": "default"},
    {"source_namespace": "prod"},
    {"source_namespace": "elsewhere"},
    {"gateway": "default/gw", "port": 80},
]


def decisions(table: RouteTable) -> list[dict[str, Any]]:
    return [
        table.route(host, path, headers=headers, seed=seed, **client).to_dict()  # type: ignore[arg-type]
        for client in CLIENTS
        for host, path, headers in REQUESTS
        for seed in range(6)
    ]


@pytest.fixture(scope="module")
def irs() -> tuple[dict[str, Any], dict[str, Any]]:
    return config(False), config(True)


def test_patched_table_decides_as_the_full_build(irs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ir1, ir2 = irs
    patch = patch_between(ir1, ir2)
    assert patch["routes"] and patch["targets"] and patch["scopes"] and patch["placements"]
    assert len(patch["routes"]) < len(ir2["routes"])
    table1 = RouteTable.from_json(json.dumps(ir1))
    before = decisions(table1)
    patched = table1.patched(json.dumps(patch))
    want = decisions(RouteTable.from_json(json.dumps(ir2)))
    assert decisions(patched) == want
    assert want != before
    assert any(d["cluster"] == "outbound|9080|v3|reviews.default.svc.cluster.local" for d in want)
    assert decisions(table1) == before  # the old table is untouched
    assert patched.route_count == table1.route_count + len(patch["routes"])


def test_bad_patch_raises_and_the_table_keeps_answering(irs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    ir1, ir2 = irs
    table = RouteTable.from_json(json.dumps(ir1))
    before = decisions(table)
    patch = patch_between(ir1, ir2)
    stale = {**patch, "base": {**patch["base"], "routes": patch["base"]["routes"] + 1}}
    dangling = {**patch, "vhosts": [{**patch["vhosts"][0], "routes": [10_000]}, *patch["vhosts"][1:]]}
    for bad, path in [
        (stale, "patch.base.routes"),
        (dangling, "patch.vhosts[0].routes[0]"),
        ({**patch, "extra": 1}, "patch.extra"),
    ]:
        with pytest.raises(CompileError, match=rf"^{re.escape(path)}: "):
            table.patched(json.dumps(bad))
    with pytest.raises(CompileError):
        table.patched("not json")
    assert decisions(table) == before
