"""``meshroute bench`` (decision mode): bounded, correct request mixes, readable and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meshroute
from meshroute.bench.decisions import BOOKINFO_REQUESTS, DEFAULT_CONFIG, derived_mix
from meshroute.cli import main

TINY = ["--seconds", "0.2", "--batch", "100"]

CONFIG = """\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: default}
spec: {host: web, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: [web]
  http:
  - match: [{headers: {x-user: {exact: ann}, x-beta: {prefix: "1"}}, uri: {prefix: /api/}}]
    route: [{destination: {host: web, subset: v2}}]
  - match: [{uri: {regex: "/r/[0-9]+"}}, {uri: {exact: /health}}]
    route: [{destination: {host: web, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ["*.example.com"]
  gateways: [istio-system/edge]
  http: [{route: [{destination: {host: web}}]}]
"""


def test_default_bench_routes_bookinfo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main(["bench", *TINY, "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| `mesh.route()`, one call |" in printed and "decisions/s" in printed
    results = json.loads(out.read_text())
    assert results["config"] == list(DEFAULT_CONFIG)
    assert results["mix"] == {"kind": "bookinfo", "requests": 5, "outcomes": {"route": 5}}
    route = results["route_us"]
    assert 0 < route["median"] <= route["p99"] and route["samples"] >= 1
    assert results["route_many"]["batch"] == 100 and results["route_many"]["decisions_per_s"] > 0
    assert results["load_ms"]["runs"] >= 1 and results["seconds"] < 5
    # The request-routing task is applied on top of Bookinfo: jason reaches reviews v2.
    mesh = meshroute.load(*DEFAULT_CONFIG)
    assert [mesh.route(*r).subset for r in BOOKINFO_REQUESTS[:2]] == ["v2", "v1"]


def test_derived_mix_and_json_on_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "web.yaml"
    cfg.write_text(CONFIG)
    mix = derived_mix(meshroute.load(cfg).analysis.resources)
    # "/" and the exact/prefix URIs, without headers and with the first match's headers; regex
    # matches add nothing and the gateway-only VirtualService is not routed in the mesh.
    paths = ["/", "/api/", "/health"]
    header_sets: list[dict[str, str]] = [{}, {"x-user": "ann", "x-beta": "1"}]
    assert mix == [("web", p, "GET", h) for p in paths for h in header_sets]

    assert main(["bench", str(cfg), *TINY, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["mix"]["kind"] == "derived" and results["mix"]["requests"] == 6
    # /api/ with the headers, /health with or without: routed; the rest has no matching route.
    assert results["mix"]["outcomes"] == {"route": 3, "no_route": 3}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "3"], "--duration is an --envoy option"),
        (["--envoy", "x.yaml"], "no CONFIG"),
        (["--envoy", "--seconds", "1"], "no CONFIG, --seconds"),
        (["--json", "mesh.yaml"], "an output file, not a config"),
        (["--seconds", "0"], "--seconds must be"),
    ],
)
def test_bad_option_combinations(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err


def test_config_errors_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {}\n"
    )
    assert main(["bench", str(bad), *TINY]) == 1
    assert "error" in capsys.readouterr().err
