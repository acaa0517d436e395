"""Helpers for the compiler tests: load YAML, compile, and read the IR the way Rust will.

``walk`` is a tiny IR reader (view -> vhost -> first matching route) covering only what these tests
use (exact/prefix uri, exact/present headers, config-time filters); the real evaluator is Rust.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshroute.compile import compile_config
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.load import Resource, load_paths, load_text
from tests.conftest import BOOKINFO, SAMPLES

SNIPPETS = SAMPLES / "istio-io-task-snippets"
BOOKINFO_APP = BOOKINFO / "platform" / "kube" / "bookinfo.yaml"
BOOKINFO_DRS = BOOKINFO / "networking" / "destination-rule-all.yaml"


def resources(*texts: str) -> list[Resource]:
    out: list[Resource] = []
    for i, text in enumerate(texts):
        result = load_text(text, f"doc{i}.yaml")
        assert not result.diagnostics, [d.render() for d in result.diagnostics]
        out.extend(result.resources)
    return out


def files(*paths: Path) -> list[Resource]:
    result = load_paths(paths)
    assert not result.diagnostics, [d.render() for d in result.diagnostics]
    return result.resources


def compile_all(res: list[Resource]) -> tuple[dict[str, Any], list[Diagnostic]]:
    ir, diags = compile_config(res)
    assert not [d for d in diags if d.code == "compile-internal"], [d.render() for d in diags]
    return ir, diags


def codes(diags: list[Diagnostic]) -> list[str]:
    return sorted(d.code for d in diags)


def service(name: str, ns: str = "default", ports: tuple[int, ...] = (80,), extra: str = "") -> str:
    port_list = ", ".join(f"{{port: {p}, name: http-{p}}}" for p in ports)
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}{extra}}}\n"
        f"spec: {{selector: {{app: {name}}}, ports: [{port_list}]}}\n"
    )


def view_id(
    ir: Mapping[str, Any],
    gateway: str = "mesh",
    ns: str = "default",
    labels: Mapping[str, str] | None = None,
    port: int | None = None,
) -> int:
    if gateway != "mesh":
        ports = ir["gateway_views"][gateway]
        return int(ports[str(port)] if port is not None else next(iter(ports.values())))
    entry = ir["mesh"]["namespaces"].get(ns)
    if entry is None:
        return int(ir["mesh"]["other_view"])
    for sc in entry["sidecars"]:
        if all((labels or {}).get(k) == v for k, v in sc["labels"].items()):
            return int(sc["view"])
    return int(entry["default_view"])


def vhost(ir: Mapping[str, Any], view: int, host: str) -> dict[str, Any] | None:
    """Domain choice: exact > longest wildcard suffix > ``*``."""
    host = host.lower().split(":")[0]
    best: tuple[int, dict[str, Any]] | None = None
    for vh in ir["views"][view]["vhosts"]:
        for domain in vh["domains"]:
            if domain == host:
                return dict(vh)
            if domain == "*":
                rank = 0
            elif domain.startswith("*") and host.endswith(domain[1:]) and len(host) > len(domain) - 1:
                rank = len(domain)
            else:
                continue
            if best is None or rank > best[0]:
                best = (rank, vh)
    return dict(best[1]) if best else None


def _string(sm: Mapping[str, Any] | None, value: str | None) -> bool:
    if sm is None:
        return True
    if value is None:
        return False
    if "exact" in sm:
        return bool(value == sm["exact"])
    if "prefix" in sm:
        return value.startswith(sm["prefix"])
    return "present" in sm


def _filters(block: Mapping[str, Any], gid: int, ctx: Mapping[str, Any]) -> bool:
    labels = ctx.get("labels") or {}
    return (
        gid in block["gateways"]
        and (block["port"] is None or ctx.get("port") in (None, block["port"]))
        and all(labels.get(k) == v for k, v in block["source_labels"].items())
        and block["source_namespace"] in (None, ctx.get("ns"))
    )


def walk(
    ir: Mapping[str, Any],
    host: str,
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    gateway: str = "mesh",
    ns: str = "default",
    labels: Mapping[str, str] | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """Route a request through the IR: the route taken and its (first) target, or the outcome."""
    vid = view_id(ir, gateway, ns, labels, port)
    view = ir["views"][vid]
    vh = vhost(ir, vid, host)
    if vh is None:
        return {"outcome": view["unknown_host"], "view": vid}
    gid = ir["gateways"].index(gateway)
    ctx = {"ns": ns, "labels": labels, "port": port}
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    passed = False
    for rid in vh["routes"]:
        route = ir["routes"][rid]
        blocks = route["matches"] or [None]
        for block in blocks:
            if block is not None and not _filters(block, gid, ctx):
                continue
            passed = True
            if block is None or (
                _string(block["uri"], path)
                and all(_string(h["match"], headers.get(h["name"])) for h in block["headers"])
            ):
                return {"outcome": "route", "route": route, "view": vid, "targets": _targets(ir, route)}
    if not passed and vh["default_target"] is not None:
        return {"outcome": "default", "view": vid, "targets": [ir["targets"][vh["default_target"]]]}
    return {"outcome": "no_route", "view": vid}


def _targets(ir: Mapping[str, Any], route: Mapping[str, Any]) -> list[dict[str, Any]]:
    dests = route["action"].get("route", {}).get("destinations", [])
    return [{**ir["targets"][d["target"]], "weight": d["weight"]} for d in dests]


def clusters(ir: Mapping[str, Any], view: int) -> dict[str, str]:
    """Envoy cluster name -> policy JSON for a view's scope."""
    out = {}
    for tid, port, pid in ir["scopes"][ir["views"][view]["scope"]]["clusters"]:
        t = ir["targets"][tid]
        out[f"outbound|{port}|{t['subset'] or ''}|{t['host']}"] = ir["policies"][pid]
    return out
