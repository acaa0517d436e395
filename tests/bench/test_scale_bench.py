"""``meshroute bench --scale``: generated meshes measured in fresh processes, JSON and table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshroute.bench import scale
from meshroute.cli import main


def test_scale_bench_measures_each_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    assert main(["bench", "--scale", "20,40", "--seconds", "0.05", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| services | files | resources |" in printed and "C-YAML parse" in printed
    results = json.loads(out.read_text())
    assert [r["services"] for r in results["rows"]] == [20, 40]
    row = results["rows"][1]
    assert (row["files"], row["resources"], row["warnings"], row["views"]) == (20, 120, 0, 22)
    assert row["distinct_vhosts"] == 80  # each service: as seen from its own namespace, and not
    assert row["floor"]["documents"] == 120 and row["floor_ratio"] > 0
    assert 0 < row["seconds"]["parse"] < row["seconds"]["total"] and row["peak_rss_mb"] > 0
    for mix in ("spread", "hot"):
        assert row["route_us"][mix]["outcomes"] == {"route": row["route_us"][mix]["requests"]}
    assert results["goals"]["seconds"] is None and results["goals"]["growth"] == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scale", "0"], "positive service counts"),
        (["--scale", "x"], "comma-separated"),
        (["--scale", "10", "--envoy"], "no envoy"),
        (["--scale", "10", "cfg.yaml"], "no paths"),
    ],
)
def test_scale_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", *argv]) == 2
    assert message in capsys.readouterr().err


def test_edge_variant_validates(tmp_path: Path) -> None:
    from meshroute.config import analyze

    files = scale.write_mesh(30, tmp_path, variant="edge")
    analysis = analyze(files)
    assert analysis.ok
    assert sorted(d.code for d in analysis.diagnostics) == ["dr-host-unknown", "vs-subset-undefined"]
    kinds = {r.kind for r in analysis.resources}
    assert kinds == {"Service", "DestinationRule", "VirtualService", "Gateway", "Sidecar", "ServiceEntry"}
