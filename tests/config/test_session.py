"""ConfigSession / MeshSession: after any sequence of edits, the diagnostics are those of a full
load of the same files, and the session's table — patched by the Rust core after an edit compiled
alone — routes every request as a table built from a full load does.

Edits are drawn from a seeded generator over the generated mesh (``meshroute bench --scale``'s
``edge`` variant: Gateways, Sidecars, exportTo, a client-side DestinationRule, warnings). Some keep
the edited resource's shape (compiled alone, an IR patch), others do not (a full compile); both
must agree with a full load.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshroute._core import RouteTable
from meshroute.bench.scale import write_mesh
from meshroute.compile import ir_json
from meshroute.config import analyze
from meshroute.config.session import ConfigSession
from meshroute.errors import ConfigError
from meshroute.mesh import MeshSession

SERVICES = 60
NAMESPACES = 20
PROXY = "workload:istio-system/istio=ingressgateway"  # the edge Gateways' proxy (semantics §4)


def _requests(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(0, n, 3):
        host = f"svc{i}.ns{i % NAMESPACES}"
        for source in ("ns0", f"ns{i % NAMESPACES}", "ns10", "elsewhere"):
            out.append({"host": host, "path": "/api/x", "source_namespace": source})
            out.append({"host": host, "headers": {"end-user": "jason"}, "source_namespace": source})
        out.append({"host": host, "path": "/", "source_namespace": "ns1", "seed": 3})
    for i in range(0, n, 10):  # every VS bound to the edge Gateways
        g = (i // 10) % 3
        out.append(
            {"host": f"svc{i}.edge{g}.example.com", "gateway": "istio-system/edge" + str(g), "port": 80}
        )
        for gateway in (f"istio-system/edge{g}", PROXY):  # a Gateway alone, and merged in its proxy
            for canary in ("1", "2"):
                out.append(
                    {
                        "host": f"svc{i}.edge{g}.example.com",
                        "gateway": gateway,
                        "port": 80,
                        "headers": {"x-canary": canary},
                    }
                )
    out.append({"host": "api.ext.example.com", "headers": {"x-version": "v9"}, "source_namespace": "ns0"})
    return out


def _answers(table: RouteTable, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for req in requests:
        args = {k: v for k, v in req.items() if k not in ("host", "seed")}
        for seed in (0, 1, req.get("seed", 2)):
            out.append(table.route(req["host"], seed=seed, **args).to_dict())
    return out


# --- Edits: each takes the text of one namespace file and returns it changed (or None) ----------

Edit = Callable[[str, random.Random], "str | None"]


def _sub_nth(pattern: str, text: str, rng: random.Random, repl: Callable[[re.Match[str]], str]) -> str | None:
    found = list(re.finditer(pattern, text))
    if not found:
        return None
    m = rng.choice(found)
    return text[: m.start()] + repl(m) + text[m.end() :]


def weights(text: str, rng: random.Random) -> str | None:
    w = rng.randrange(0, 101)
    return _sub_nth(
        r"weight: 90\}, \{destination: \{host: (\w+), subset: v2\}, weight: 10",
        text,
        rng,
        lambda m: f"weight: {w}}}, {{destination: {{host: {m[1]}, subset: v2}}, weight: {100 - w}",
    )


def header_value(text: str, rng: random.Random) -> str | None:
    return _sub_nth(r"exact: jason", text, rng, lambda m: f"exact: {rng.choice(['jason', 'kim', 'ann'])}")


def new_subset_route(text: str, rng: random.Random) -> str | None:
    # a route to a subset no route used before (a new target), sometimes one no DR defines
    return _sub_nth(
        r"subset: v2\}\}\]", text, rng, lambda m: f"subset: {rng.choice(['v1', 'v3', 'v2'])}}}}}]"
    )


def subset_names(text: str, rng: random.Random) -> str | None:
    return _sub_nth(
        r"\{name: v2, labels: \{version: v2\}\}",
        text,
        rng,
        lambda m: f"{{name: {rng.choice(['v2', 'v3'])}, labels: {{version: v2}}}}",
    )


def pool_size(text: str, rng: random.Random) -> str | None:
    return _sub_nth(r"maxConnections: \d+", text, rng, lambda m: f"maxConnections: {rng.randrange(1, 500)}")


def extra_lines(text: str, rng: random.Random) -> str | None:
    # lines added inside a VS document: every later document moves
    return _sub_nth(r"  http:\n", text, rng, lambda m: "  http:\n" + "  # note\n" * rng.randrange(1, 4))


def drop_lines(text: str, rng: random.Random) -> str | None:
    return _sub_nth(r"(  # note\n)+", text, rng, lambda m: "")


def canary(text: str, rng: random.Random) -> str | None:  # a VS bound to Gateways (edge.yaml)
    return _sub_nth(
        r"x-canary: \{exact: '\d'\}", text, rng, lambda m: f"x-canary: {{exact: '{rng.choice('12')}'}}"
    )


def rename_host(text: str, rng: random.Random) -> str | None:  # shape change: full compile
    return _sub_nth(r"hosts: \[(svc\d+)\]", text, rng, lambda m: f"hosts: [{m[1]}, {m[1]}-alias.example.com]")


def bad_timeout(text: str, rng: random.Random) -> str | None:  # an error: the analysis is not ok
    return _sub_nth(r"timeout: 5s", text, rng, lambda m: "timeout: -5s")


def fix_timeout(text: str, rng: random.Random) -> str | None:
    return _sub_nth(r"timeout: -5s", text, rng, lambda m: "timeout: 5s")


def service_port(text: str, rng: random.Random) -> str | None:  # not a VS or DR: full compile
    return _sub_nth(
        r"ports: \[\{port: 8080, name: http\}\]",
        text,
        rng,
        lambda m: "ports: [{port: 8080, name: http}, {port: 9090, name: http-b}]",
    )


EDITS: list[Edit] = [
    weights,
    weights,
    canary,
    header_value,
    new_subset_route,
    subset_names,
    pool_size,
    extra_lines,
    drop_lines,
    rename_host,
    bad_timeout,
    service_port,
]
FAST = {
    "canary",
    "weights",
    "header_value",
    "new_subset_route",
    "subset_names",
    "pool_size",
    "extra_lines",
    "drop_lines",
}


@pytest.fixture(scope="module")
def requests() -> list[dict[str, Any]]:
    return _requests(SERVICES)


def test_random_edits_agree_with_a_full_load(tmp_path: Path, requests: list[dict[str, Any]]) -> None:
    files = write_mesh(SERVICES, tmp_path, variant="edge")
    ns_files = [f for f in files if f.name.startswith("ns")]
    # A second VS for svc0's host (vs-duplicate-mesh-host on both): edits move and change it.
    text = ns_files[0].read_text()
    vs = text[text.index("kind: VirtualService") : text.index("---", text.index("kind: VirtualService"))]
    ns_files[0].write_text(
        text + "---\napiVersion: networking.istio.io/v1\n" + vs.replace("name: svc0,", "name: svc0-copy,")
    )
    ns_files += [ns_files[0]] * 4  # edited more often
    edge = next(f for f in files if f.name == "edge.yaml")  # the VSs bound to Gateways
    session = MeshSession(tmp_path)
    session.refresh()
    assert session.last.kind == "full"
    rng = random.Random(20261206)
    kinds: dict[str, int] = {}
    fast_edits = 0
    for step in range(60):
        edit = rng.choice(EDITS)
        path = edge if edit is canary else rng.choice(ns_files)
        # an error is fixed at the next step (the session compiles fully after a config with errors)
        for change in (edit, fix_timeout) if edit is bad_timeout else (edit,):
            changed = change(path.read_text(), rng)
            if changed is None:
                continue
            path.write_text(changed)
            was_ok = session.last.analysis.ok
            _check(session, tmp_path, requests, (step, change.__name__))
            update = session.last
            kinds[update.kind] = kinds.get(update.kind, 0) + 1
            if change.__name__ in FAST and update.kind != "unchanged" and was_ok:
                assert update.kind == "patch", (step, change.__name__, update.why)
                fast_edits += 1
    assert fast_edits >= 10 and kinds.get("full", 0) >= 3, kinds


def _check(session: MeshSession, root: Path, requests: list[dict[str, Any]], where: tuple[int, str]) -> None:
    """Refresh ``session``; its diagnostics and its table's answers must be a full load's."""
    full = analyze([root])
    try:
        mesh = session.refresh()
    except ConfigError as exc:
        assert not full.ok, where
        assert list(exc.diagnostics) == full.diagnostics, where
        return
    update = session.last
    assert update.analysis.diagnostics == full.diagnostics == list(mesh.diagnostics), where
    assert full.ok, where
    theirs = RouteTable.from_json(ir_json(full.ir or {}))
    assert _answers(mesh.table, requests) == _answers(theirs, requests), where
    if update.kind == "patch":  # the IR the session patched in place builds the same table
        rebuilt = RouteTable.from_json(ir_json(update.analysis.ir or {}))
        assert _answers(rebuilt, requests) == _answers(theirs, requests), where


def test_only_the_edited_document_is_parsed(tmp_path: Path) -> None:
    (path,) = [p for p in write_mesh(40, tmp_path) if p.name == "ns01.yaml"]
    session = ConfigSession([tmp_path])
    session.refresh()
    before = session.documents.parsed
    path.write_text(
        path.read_text().replace("weight: 90", "weight: 80", 1).replace("weight: 10", "weight: 20", 1)
    )
    update = session.refresh()
    assert update.kind == "patch" and session.documents.parsed == before + 1
    assert session.refresh().kind == "unchanged"


def test_a_removed_file_and_a_new_one(tmp_path: Path, requests: list[dict[str, Any]]) -> None:
    files = write_mesh(SERVICES, tmp_path)
    session = ConfigSession([tmp_path])
    session.refresh()
    files[3].unlink()
    update = session.refresh()
    assert update.kind == "full"
    assert update.analysis.diagnostics == analyze([tmp_path]).diagnostics
    extra = tmp_path / "zz.yaml"
    extra.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: z, namespace: ns1}\n"
        "spec: {ports: [{port: 80, name: http}]}\n"
    )
    update = session.refresh()
    assert update.kind == "full" and len(update.analysis.resources) == len(analyze([tmp_path]).resources)


def test_an_edit_keeps_the_diagnostics_of_its_shape(tmp_path: Path, requests: list[dict[str, Any]]) -> None:
    """A VS whose host another VS names too keeps its vs-duplicate-mesh-host warning through an
    edit (at the line the host is on now), and the documents after it move theirs."""
    path = write_mesh(SERVICES, tmp_path)[0]
    text = path.read_text()
    start = text.index("kind: VirtualService")
    vs = text[start : text.index("---", start)]
    copy = "---\napiVersion: networking.istio.io/v1\n" + vs.replace("name: svc0,", "name: svc0-copy,")
    path.write_text(
        text[: text.index("apiVersion: networking.istio.io/v1\nkind: VirtualService")]
        + copy[4:]
        + "---\n"
        + text[text.index("apiVersion: networking.istio.io/v1\nkind: VirtualService") :]
    )
    session = MeshSession(tmp_path)
    assert [d.code for d in session.refresh().diagnostics] == ["vs-duplicate-mesh-host"] * 2
    for old, new in (
        ("spec:\n  hosts: [svc0]", "spec:\n  # a note\n  # another\n  hosts: [svc0]"),
        ("exact: jason", "exact: kim"),
    ):
        path.write_text(path.read_text().replace(old, new, 1))  # the copy (first in the file)
        _check(session, tmp_path, requests, (0, old))
        assert session.last.kind == "patch", session.last.why


def test_an_edit_of_a_vs_bound_to_gateways_reaches_their_proxy(
    tmp_path: Path, requests: list[dict[str, Any]]
) -> None:
    """The edge Gateways select one proxy, which merges them (semantics §4): a patch renews the
    Gateway's view and the proxy's."""
    edge = next(f for f in write_mesh(SERVICES, tmp_path, variant="edge") if f.name == "edge.yaml")
    session = MeshSession(tmp_path)
    session.refresh()
    for k in range(3):
        text = edge.read_text()
        start = text.index(f"name: svc{k * 10}-edge,")
        at = text.index("x-canary: {exact: ", start)
        old = text[at : at + len("x-canary: {exact: '1'}")]
        new = old.replace("'1'", "'2'") if "'1'" in old else old.replace("'2'", "'1'")
        edge.write_text(text[:at] + new + text[at + len(old) :])
        _check(session, tmp_path, requests, (k, "canary"))
        assert session.last.kind == "patch", session.last.why


TCP_CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec: {selector: {app: echo}, ports: [{name: tcp, port: 9000}, {name: http, port: 8080}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec: {host: echo, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo]
  http: [{route: [{destination: {host: echo, subset: v1}}], timeout: 1s}]
  tcp: [{route: [{destination: {host: echo, subset: v1}}]}]
"""


def test_a_tcp_route_edit_is_compiled_in_full_and_http_edits_keep_tcp(tmp_path: Path) -> None:
    """The IR's tcp section is never patched (docs/ir.md, "TCP services"): an edit of a VS's
    tcp routes is a full compile; an HTTP-only edit is a patch and the table keeps the tcp routes."""
    path = tmp_path / "echo.yaml"
    path.write_text(TCP_CONFIG)
    session = MeshSession(tmp_path)
    mesh = session.refresh()
    assert mesh.route("echo", port=9000).cluster == "outbound|9000|v1|echo.default.svc.cluster.local"
    path.write_text(path.read_text().replace("timeout: 1s", "timeout: 2s"))
    mesh = session.refresh()
    assert session.last.kind == "patch", session.last.why
    assert mesh.route("echo", port=9000).cluster == "outbound|9000|v1|echo.default.svc.cluster.local"
    assert mesh.route("echo", port=8080).to_dict()["timeout_ms"] == 2000
    path.write_text(
        path.read_text().replace(
            "tcp: [{route: [{destination: {host: echo, subset: v1}}]}]",
            "tcp: [{route: [{destination: {host: echo, subset: v2}}]}]",
        )
    )
    mesh = session.refresh()
    assert session.last.kind == "full" and "tcp routes changed" in session.last.why
    assert mesh.route("echo", port=9000).cluster == "outbound|9000|v2|echo.default.svc.cluster.local"


def test_every_destination_rule_edit_is_served(tmp_path: Path) -> None:
    """120 DestinationRule edits in a row, each decision reflecting its own edit. The rule
    lookup memoises merged rules by the ids of the rules merged; a replaced rule freed and its id
    given to a later rule once served that later rule the old policy (about one run in two of
    the scale benchmark's edits)."""
    from meshroute.bench.edits import _dr_edit

    write_mesh(8, tmp_path)
    files = sorted(tmp_path.glob("ns*.yaml"))
    session = MeshSession(tmp_path)
    session.refresh()
    for k in range(120):
        i = k % len(files)
        size = 1000 + k
        files[i].write_text(_dr_edit(files[i].read_text(), i, size))
        mesh = session.refresh()
        assert session.last.kind == "patch", session.last.why
        policy = mesh.route(f"svc{i}.ns{i}", "/", source_namespace="ns1", seed=k).to_dict()["traffic_policy"]
        assert policy["connectionPool"]["tcp"]["maxConnections"] == size, (k, policy)
