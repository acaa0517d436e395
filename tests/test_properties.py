"""Differential tests: the Rust route table against the pure-Python oracle (STYLE habit 11).

Hypothesis generates services, DestinationRules and one VirtualService per service from the match
vocabulary of ``tests/oracle.py``, writes them as YAML, loads them with ``meshroute.load`` and
compares the decision for many requests with the oracle's. Requests are built *from* the generated
match blocks (then sometimes broken on purpose), so most of them exercise a real route rather than
falling through to 404.

Profiles: ``fast`` (default, 100 tables) and ``slow`` (``HYPOTHESIS_PROFILE=slow``, 1500 tables).
"""

from __future__ import annotations

import os
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import meshroute

from .oracle import Oracle, Outcome, Request

settings.register_profile(
    "fast", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

SERVICES = ("alpha", "beta", "gamma")
PORTS = (80, 8080, 9080)
SUBSETS = ("v1", "v2", "v3")
UNDEFINED_SUBSET = "v9"  # never defined by a DR: routes to it must give no_cluster 503
SEGMENTS = ("api", "v1", "users", "static", "Api", "b7")
HEADERS = ("x-user", "x-ver", "end-user")
PARAMS = ("q", "debug", "v")
METHODS = ("GET", "POST", "PUT", "DELETE")
# method matchers and methods each accepts
METHOD_MATCHES = {
    ("exact", "GET"): ("GET",),
    ("prefix", "P"): ("POST", "PUT"),
    ("regex", "(GET|PUT)"): ("GET", "PUT"),
}
WORD = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=4)
REQUESTS_PER_TABLE = 40

Strategy = st.SearchStrategy[str]
Draw = Any  # hypothesis' draw function


@dataclass
class Table:
    """Generated config plus, for every generated regex, a strategy producing strings it matches."""

    docs: list[dict[str, Any]] = field(default_factory=list)
    samplers: dict[str, Strategy] = field(default_factory=dict)
    ports: dict[str, tuple[int, ...]] = field(default_factory=dict)
    subsets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    undefined: bool = False  # may routes name subsets no DestinationRule defines?


# -- regexes that Python `re` (oracle) and RE2 (Istio) read the same way ----------------------------

REGEX_TOKENS: tuple[tuple[str, Strategy], ...] = (
    ("[a-z]+", st.text(string.ascii_lowercase, min_size=1, max_size=3)),
    (r"\d+", st.text(string.digits, min_size=1, max_size=3)),
    (".*", st.text(string.ascii_letters + string.digits + "/-", max_size=4)),
    ("(api|users)", st.sampled_from(["api", "users"])),
    *((seg, st.just(seg)) for seg in SEGMENTS),
)


@st.composite
def regex(draw: Draw, table: Table, *, path: bool) -> str:
    tokens = draw(st.lists(st.sampled_from(REGEX_TOKENS), min_size=1, max_size=3))
    sep = "/" if path else "-"
    pattern = "".join(sep + p if path or i else p for i, (p, _) in enumerate(tokens))
    parts = [s for _, s in tokens]
    table.samplers[pattern] = st.tuples(*parts).map(
        lambda xs: "".join(sep + x if path or i else x for i, x in enumerate(xs))
    )
    return pattern


# -- config ------------------------------------------------------------------------------------------


@st.composite
def string_match(draw: Draw, table: Table, *, presence: bool) -> dict[str, str]:
    kinds = ["exact", "prefix", "regex", *(["present"] if presence else [])]
    kind = draw(st.sampled_from(kinds))
    if kind == "present":
        return {}
    if kind == "regex":
        return {"regex": draw(regex(table, path=False))}
    return {kind: draw(WORD)}


@st.composite
def match_block(draw: Draw, table: Table, ports: tuple[int, ...]) -> dict[str, Any]:
    block: dict[str, Any] = {}
    uri = draw(st.sampled_from(["none", "exact", "prefix", "regex"]))
    if uri == "regex":
        block["uri"] = {"regex": draw(regex(table, path=True))}
    elif uri != "none":
        segs = draw(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=2))
        block["uri"] = {uri: "/" + "/".join(segs)}
    if uri != "none" and draw(st.booleans()):
        block["ignoreUriCase"] = True
    if draw(st.integers(0, 3)) == 0:
        block["method"] = dict([draw(st.sampled_from(sorted(METHOD_MATCHES)))])
    names = draw(st.lists(st.sampled_from(HEADERS), max_size=2, unique=True))
    if names:
        block["headers"] = {n: draw(string_match(table, presence=True)) for n in names}
    without = [n for n in draw(st.lists(st.sampled_from(HEADERS), max_size=1)) if n not in names]
    if without:
        block["withoutHeaders"] = {n: draw(string_match(table, presence=True)) for n in without}
    params = draw(st.lists(st.sampled_from(PARAMS), max_size=2, unique=True))
    if params:
        block["queryParams"] = {
            p: draw(st.sampled_from([{}, {"exact": ""}, {"exact": "1"}, {"regex": r"\d+"}])) for p in params
        }
    if draw(st.integers(0, 4)) == 0:
        block["port"] = draw(st.sampled_from(ports))
    return block


@st.composite
def destination(draw: Draw, table: Table, own: str) -> dict[str, Any]:
    host = draw(st.sampled_from([own, own, *table.ports]))
    dest: dict[str, Any] = {"host": host}
    choices = [*SUBSETS, UNDEFINED_SUBSET] if table.undefined else list(table.subsets[host])
    subset = draw(st.sampled_from([None, None, *choices, *choices]))
    if subset:
        dest["subset"] = subset
    if draw(st.booleans()):
        dest["port"] = {"number": draw(st.sampled_from(table.ports[host]))}
    return dest


@st.composite
def http_route(draw: Draw, table: Table, own: str, index: int) -> dict[str, Any]:
    route: dict[str, Any] = {}
    if draw(st.booleans()):
        route["name"] = f"r{index}"
    n_blocks = draw(st.sampled_from([0, 1, 1, 2, 2, 3]))  # 0 = catch-all, which hides later routes
    if n_blocks:
        route["match"] = [draw(match_block(table, table.ports[own])) for _ in range(n_blocks)]
    action = draw(st.sampled_from(["route"] * 6 + ["redirect", "direct"]))
    if action == "redirect":
        route["redirect"] = {"uri": "/moved/" + draw(WORD)}
        if draw(st.booleans()):
            route["redirect"]["authority"] = "elsewhere.example.com"
        if draw(st.booleans()):
            route["redirect"]["redirectCode"] = draw(st.sampled_from([302, 307, 308]))
    elif action == "direct":
        route["directResponse"] = {"status": draw(st.sampled_from([200, 418, 503]))}
    else:
        dests = draw(st.lists(destination(table, own), min_size=1, max_size=3))
        route["route"] = [{"destination": d} for d in dests]
        if len(dests) > 1:
            weights = draw(st.lists(st.integers(0, 100), min_size=len(dests), max_size=len(dests)))
            weights[0] = weights[0] or 1  # validation: the total must be > 0
            for item, w in zip(route["route"], weights, strict=True):
                item["weight"] = w
        if draw(st.integers(0, 3)) == 0:
            route["rewrite"] = {"uri": draw(st.sampled_from(["/", "/rw", "/v2/"]))}
    return route


@st.composite
def tables(draw: Draw, *, undefined: bool = False) -> Table:
    table = Table(undefined=undefined)
    for name in draw(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True)):
        ports = tuple(draw(st.lists(st.sampled_from(PORTS), min_size=1, max_size=2, unique=True)))
        table.ports[name] = ports
        svc_ports = [{"name": f"http-{p}", "port": p} for p in ports]
        table.docs.append(_doc("v1", "Service", name, {"ports": svc_ports, "selector": {"app": name}}))
        subsets = draw(
            st.lists(st.sampled_from(SUBSETS), min_size=draw(st.sampled_from([0, 2, 3])), unique=True)
        )
        table.subsets[name] = tuple(subsets)
        if subsets:
            spec = {"host": name, "subsets": [{"name": s, "labels": {"version": s}} for s in subsets]}
            table.docs.append(_doc("networking.istio.io/v1", "DestinationRule", name, spec))
    for name in table.ports:
        if draw(st.integers(0, 4)):  # most services get a VS; some keep the default route
            routes = [draw(http_route(table, name, i)) for i in range(draw(st.integers(1, 5)))]
            spec = {"hosts": [name], "http": routes}
            table.docs.append(_doc("networking.istio.io/v1", "VirtualService", f"vs-{name}", spec))
    return table


def _doc(api: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "default"}, "spec": spec}


# -- requests -----------------------------------------------------------------------------------------


@st.composite
def satisfying(draw: Draw, table: Table, spec: dict[str, str]) -> str:
    """A value the StringMatch ``spec`` accepts."""
    if "exact" in spec:
        return spec["exact"]
    if "prefix" in spec:
        return spec["prefix"] + draw(st.sampled_from(["", "x", "-1", "/a"]))
    if "regex" in spec:
        return draw(table.samplers.get(spec["regex"], st.just("1")))  # \d+ of queryParams
    return draw(WORD)


@st.composite
def requests(draw: Draw, table: Table) -> Request:
    vss = {d["spec"]["hosts"][0]: d for d in table.docs if d["kind"] == "VirtualService"}
    kind = draw(st.sampled_from(["aim"] * 8 + ["service", "unknown"]))
    if kind == "unknown":
        return Request(draw(st.sampled_from(["example.com", "delta", "alpha.other"])), "/")
    name = draw(st.sampled_from(sorted(vss) if kind == "aim" and vss else sorted(table.ports)))
    blocks = [b for r in vss[name]["spec"]["http"] for b in r.get("match", [])] if name in vss else []
    block = draw(st.sampled_from(blocks)) if blocks else {}
    path, query, method = _aimed_path(draw, table, block), _aimed_query(draw, table, block), "GET"
    if "method" in block:
        method = draw(st.sampled_from(METHOD_MATCHES[next(iter(block["method"].items()))]))
    headers = [(n, draw(satisfying(table, s))) for n, s in block.get("headers", {}).items()]
    # Break the aim now and then: drop or add headers, change the method, repeat a header.
    if headers and draw(st.integers(0, 4)) == 0:
        headers.pop(draw(st.integers(0, len(headers) - 1)))
    for name_ in block.get("withoutHeaders", {}):
        if draw(st.integers(0, 2)) == 0:
            headers.append((name_, draw(WORD)))
    if draw(st.integers(0, 5)) == 0:
        headers.append((draw(st.sampled_from(HEADERS)), draw(WORD)))
    if headers and draw(st.integers(0, 7)) == 0:
        headers.append(headers[0])  # repeated ⇒ joined with ","
    if draw(st.integers(0, 7)) == 0:
        method = draw(st.sampled_from(METHODS))
    headers = [(n.upper() if draw(st.booleans()) else n, v) for n, v in headers]
    return _addressed(draw, table, name, block.get("port"), path + query, method, tuple(headers))


def _aimed_path(draw: Draw, table: Table, block: dict[str, Any]) -> str:
    uri = block.get("uri", {})
    if "regex" in uri:
        path: str = draw(table.samplers[uri["regex"]])
    elif "exact" in uri:
        path = uri["exact"]
    elif "prefix" in uri:
        path = uri["prefix"] + draw(st.sampled_from(["", "/x", "s", "/v1/7"]))
    else:
        path = "/" + "/".join(draw(st.lists(st.sampled_from(SEGMENTS), max_size=3)))
    if block.get("ignoreUriCase") or draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from([path.upper(), path.lower(), path.swapcase()]))
    if draw(st.integers(0, 9)) == 0:
        path += draw(st.sampled_from(["x", "/", "/api"]))
    return path


def _aimed_query(draw: Draw, table: Table, block: dict[str, Any]) -> str:
    pairs = []
    for name, spec in block.get("queryParams", {}).items():
        if draw(st.integers(0, 5)) == 0:
            continue  # missing key
        if spec == {"exact": ""} and draw(st.booleans()):
            pairs.append(name)  # "?debug" (no "=") also matches exact ""
        else:
            pairs.append(f"{name}={draw(satisfying(table, spec)) if spec else draw(WORD)}")
    if draw(st.integers(0, 4)) == 0:
        pairs.append(f"{draw(st.sampled_from(PARAMS))}={draw(WORD)}")
    return "?" + "&".join(pairs) if pairs else ""


def _addressed(
    draw: Draw,
    table: Table,
    name: str,
    block_port: int | None,
    path: str,
    method: str,
    headers: tuple[tuple[str, str], ...],
) -> Request:
    """Pick an alias of the service and give the listener port in the authority, as ``port=``, or
    (single-port services only) not at all."""
    alias = draw(
        st.sampled_from([name, f"{name}.default", f"{name}.default.svc", f"{name}.default.svc.cluster.local"])
    )
    if draw(st.integers(0, 5)) == 0:
        alias = alias.upper()
    ports = table.ports[name]
    port = block_port if block_port is not None and draw(st.integers(0, 3)) else draw(st.sampled_from(ports))
    how = draw(st.sampled_from(["authority", "kwarg", "none"]))
    if how == "none" and len(ports) == 1:
        return Request(alias, path, method, headers)
    if how == "authority":
        return Request(f"{alias}:{port}", path, method, headers)
    return Request(alias, path, method, headers, port=port)


# -- comparison -----------------------------------------------------------------------------------------


def observed(mesh: meshroute.Mesh, req: Request, seed: int) -> Outcome:
    """The Rust decision projected onto the oracle's fields."""
    d = mesh.route(req.host, req.path, req.method, list(req.headers), port=req.port, seed=seed)
    full = d.to_dict()
    return Outcome(
        outcome=d.outcome,
        status=d.status,
        virtual_service=d.virtual_service,
        route_index=d.route_index,
        match_index=d.match_index,
        cluster=d.cluster if d.outcome == "route" else None,
        rewrite_path=(full.get("rewrite") or {}).get("path"),
        location=(full.get("redirect") or {}).get("location"),
    )


def load_docs(docs: list[dict[str, Any]]) -> meshroute.Mesh:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return meshroute.load(path)


def check_table(data: st.DataObject, table: Table) -> None:
    mesh = load_docs(table.docs)
    oracle = Oracle(table.docs)
    for _ in range(REQUESTS_PER_TABLE):
        req = data.draw(requests(table), label="request")
        seed = data.draw(st.integers(0, 2**63), label="seed")
        allowed = oracle.route(req)
        got = observed(mesh, req, seed)
        event(f"outcome={got.outcome} vs={'yes' if got.virtual_service else 'no'}")
        assert got in allowed, (
            f"\nrequest: {req}\nrust:    {got}\noracle:  {sorted(allowed, key=repr)}\n"
            f"config:\n{yaml.safe_dump_all(table.docs, sort_keys=False)}"
        )


@settings(PROFILE)
@given(data=st.data())
def test_rust_matches_oracle(data: st.DataObject) -> None:
    """Every route names only subsets its DestinationRule defines."""
    check_table(data, data.draw(tables(), label="table"))


@settings(PROFILE, max_examples=max(PROFILE.max_examples // 4, 10))
@given(data=st.data())
def test_undefined_subsets_match_oracle(data: st.DataObject) -> None:
    """Routes may name undefined subsets: Istio admits such config (the analyzer only warns,
    IST0101) and a request routed there gets 503 no_cluster (semantics §2.6, §7; docs/ir.md Scope)."""
    check_table(data, data.draw(tables(undefined=True), label="table"))
