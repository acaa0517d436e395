"""Golden simulation tests (STYLE habit 9): config in, calls in, decision out.

Each case is a directory ``tests/golden/<case>/`` with

``config.yaml``
    ``apply``: sample files (relative to ``tests/data/istio-samples``) applied in order *as ``kubectl
    apply`` would*: a later document with the same kind/namespace/name replaces the earlier one in
    place (an update keeps its creation order). Istio's tasks are written that way (apply
    ``virtual-service-all-v1.yaml``, then ``virtual-service-reviews-test-v2.yaml`` replaces VS
    ``reviews``). ``inline``: a list of extra documents, applied after the files.
``istio`` (optional): for a case transcribed from an Istio test that checks virtual-host domain
    lists, ``namespace`` (the sidecar's), ``vhosts`` (Istio's expected domain lists, each exactly
    one vhost's, in order), ``complete: true`` when those are every vhost of the sidecar's
    view, ``absent`` (domains the test expects no vhost to have) and ``port`` (the test checks the
    route table of that port: only the vhosts serving it count) (:func:`test_istio_vhost_domains`).
``calls.yaml``
    A list of requests: ``name`` (unique), ``host``, and optionally ``path``, ``method``, ``headers``
    (mapping or list of ``[name, value]`` pairs), ``scheme``, ``port``, ``gateway``,
    ``gateway_labels`` (a gateway workload instead of ``gateway``: the proxy with these labels,
    in ``source_namespace`` when given, found with ``Mesh.gateway_for``), ``source_labels``,
    ``source_namespace``, ``seed`` (default 1, so weighted picks are reproducible) and a
    free-text ``note``.
``expected.yaml``
    ``calls: {<name>: {<key>: <value>, ...}}``: the ``Decision.to_dict()`` keys to check, written by
    hand from the Istio docs. Only the listed keys are compared, unless the file has
    ``strict: true`` or the entry has ``strict: true`` (then the whole dict must be equal). A value
    ``{one_of: [a, b]}`` accepts any of the listed values (weighted routes).

``UPDATE_GOLDEN=1`` rewrites ``expected.yaml`` from current behaviour, keeping comments and the keys
already listed (new calls get a default key set); review the diff before committing it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

import meshroute

from .conftest import SAMPLES

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "config.yaml").is_file())
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CALL_KEYS = frozenset(
    {"name", "note", "host", "path", "method", "headers", "scheme", "port", "gateway", "gateway_labels",
     "source_labels", "source_namespace", "protocol", "seed"}
)  # fmt: skip
DEFAULT_KEYS = ("outcome", "status", "virtual_service", "route_index", "match_index", "cluster")
SHOWN_IF_SET = ("fault", "rewrite", "redirect", "direct_response")


def apply_config(case: Path) -> list[dict[str, Any]]:
    """The documents of ``config.yaml`` after kubectl-apply semantics (see module docstring)."""
    config = yaml.safe_load((case / "config.yaml").read_text())
    docs: dict[tuple[str, str, str], dict[str, Any]] = {}
    stream = [d for f in config.get("apply", []) for d in yaml.safe_load_all((SAMPLES / f).read_text())]
    for doc in [*stream, *config.get("inline", [])]:
        if doc:
            meta = doc.get("metadata", {})
            docs[(doc["kind"], meta.get("namespace", "default"), meta["name"])] = doc
    return list(docs.values())


@cache
def mesh_for(case: str) -> meshroute.Mesh:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{case}.yaml"
        path.write_text(yaml.safe_dump_all(apply_config(GOLDEN / case), sort_keys=False))
        return meshroute.load(path)


def decide(mesh: meshroute.Mesh, call: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(call) - CALL_KEYS
    assert not unknown, f"call {call.get('name')}: unknown keys {sorted(unknown)}"
    headers = call.get("headers")
    gateway = call.get("gateway", "mesh")
    if "gateway_labels" in call:
        assert "gateway" not in call, f"call {call.get('name')}: gateway or gateway_labels, not both"
        gateway = mesh.gateway_for(call["gateway_labels"], call.get("source_namespace"))
    d = mesh.route(
        call["host"],
        call.get("path", "/"),
        call.get("method", "GET"),
        list(headers.items()) if isinstance(headers, Mapping) else [tuple(h) for h in headers or []],
        scheme=call.get("scheme", "http"),
        port=call.get("port"),
        gateway=gateway,
        source_labels=call.get("source_labels"),
        source_namespace=call.get("source_namespace"),
        protocol=call.get("protocol", "http"),
        seed=call.get("seed", 1),
    )
    return d.to_dict()


def accepts(want: Any, got: Any) -> bool:
    if isinstance(want, Mapping) and set(want) == {"one_of"}:
        return got in want["one_of"]
    return bool(want == got)


def mismatches(expected: Mapping[str, Any], got: Mapping[str, Any], strict: bool) -> list[str]:
    keys = set(expected) | set(got) if strict else set(expected)
    keys.discard("strict")
    return [
        f"  {k}: expected {expected.get(k)!r}, got {got.get(k)!r}"
        for k in sorted(keys)
        if not accepts(expected.get(k), got.get(k))
    ]


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    calls = yaml.safe_load((GOLDEN / case / "calls.yaml").read_text())
    names = [c["name"] for c in calls]
    assert len(set(names)) == len(names), "call names must be unique"
    mesh = mesh_for(case)
    results = {c["name"]: decide(mesh, c) for c in calls}
    if UPDATE:
        update_expected(GOLDEN / case / "expected.yaml", results)
        return
    expected = yaml.safe_load((GOLDEN / case / "expected.yaml").read_text())
    wanted = expected["calls"]
    assert set(wanted) == set(names), f"expected.yaml vs calls.yaml: {set(wanted) ^ set(names)}"
    report = []
    for name, got in results.items():
        strict = bool(expected.get("strict") or wanted[name].get("strict"))
        problems = mismatches(wanted[name], got, strict)
        if problems:
            report.append(f"{name}:\n" + "\n".join(problems))
    assert not report, f"{case}: {len(report)}/{len(calls)} calls differ\n" + "\n".join(report)


ISTIO_CASES = [
    c for c in CASES if "istio" in (yaml.safe_load((GOLDEN / c / "config.yaml").read_text()) or {})
]


@pytest.mark.parametrize("case", ISTIO_CASES)
def test_istio_vhost_domains(case: str) -> None:
    """The domain lists of an Istio test, exactly and in Istio's order, in the sidecar view of its
    namespace (each domain is also routed by the case's calls), and the domains it expects no vhost
    of that view to have."""
    from meshroute.compile import expand_vhost_pool

    want = yaml.safe_load((GOLDEN / case / "config.yaml").read_text())["istio"]
    ir = mesh_for(case).analysis.ir
    assert ir is not None
    ir = expand_vhost_pool(ir)
    namespaces = ir["mesh"]["namespaces"]
    view_id = namespaces[want["namespace"]]["default_view"]
    port = want.get("port")  # the route table of that port only: vhosts serving it (docs/ir.md "VHost")
    vhosts = ir["views"][view_id]["vhosts"]
    got = [vhost["domains"] for vhost in vhosts if port is None or port in vhost.get("ports", [port])]
    for domains in want.get("vhosts", []):
        assert domains in got, f"{case}: no vhost with exactly {domains}; vhosts: {got}"
    if want.get("complete"):
        assert sorted(got) == sorted(want["vhosts"])
    present = {domain for domains in got for domain in domains}
    for domain in want.get("absent", []):
        assert domain not in present, f"{case}: {domain} is a domain of a vhost; vhosts: {got}"


def update_expected(path: Path, results: Mapping[str, dict[str, Any]]) -> None:
    """Rewrite ``path`` from ``results``, keeping comments, key choice and satisfied ``one_of``s."""
    rt = YAML()
    rt.width = 110
    data = rt.load(path) if path.exists() else CommentedMap()
    calls = data.setdefault("calls", CommentedMap())
    for name in [n for n in calls if n not in results]:
        del calls[name]
    for name, got in results.items():
        entry = calls.get(name)
        if entry is None:
            keys = [*DEFAULT_KEYS, *(k for k in SHOWN_IF_SET if got.get(k) is not None)]
            calls[name] = CommentedMap((k, got.get(k)) for k in keys)
        elif data.get("strict") or entry.get("strict"):
            for k in [k for k in entry if k != "strict"]:
                del entry[k]
            entry.update(got)
        else:
            for k in [k for k in entry if k != "strict"]:
                if not accepts(entry[k], got.get(k)):
                    entry[k] = got.get(k)
    with path.open("w") as out:
        rt.dump(data, out)
