"""meshroute run's compile process: an edit compiled alone comes back as an IR patch with the
listeners of the previous config and, for a DestinationRule, its host's clusters built again;
everything equals what a full generate of the same files gives."""

from __future__ import annotations

import json
from pathlib import Path

from meshroute._core import RouteTable
from meshroute.bench.scale import write_mesh
from meshroute.envoy.live import generate
from meshroute.envoy.live_session import generate_live
from meshroute.envoy.options import Options


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_edits_come_back_as_patches_equal_to_a_full_generate(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    files = write_mesh(40, config_dir, variant="edge")
    ns1 = next(f for f in files if f.name == "ns01.yaml")
    options = Options(engine="embedded", files_dir=str(tmp_path / "files"))
    paths = [str(config_dir)]
    first = generate_live(paths, options, False, None)
    assert first.config is not None and first.config.ir_json is not None and first.config.ir_patch is None
    table = RouteTable.from_json(first.config.ir_json)
    tag = first.config.ir_tag
    for old, new in (
        ("weight: 90", "weight: 30"),  # a VirtualService: same listeners and clusters
        ("maxConnections: 100", "maxConnections: 7"),  # a DestinationRule: its host's clusters
        ("{name: v2, labels: {version: v2}}", "{name: v9, labels: {version: v2}}"),  # subsets
    ):
        _edit(ns1, old, new)
        patched = generate_live(paths, options, False, tag)
        full = generate(paths, options)
        assert patched.config is not None and full.config is not None
        assert patched.config.ir_patch is not None and patched.config.ir_base == tag, old
        assert patched.config.listeners == full.config.listeners
        assert patched.config.clusters == full.config.clusters, old
        assert patched.config.filters == full.config.filters
        assert patched.report == full.report
        table = table.patched(patched.config.ir_patch)
        rebuilt = RouteTable.from_json(full.config.ir_json or "")
        for host in ("svc1.ns1", "svc21.ns1", "svc3.ns3"):
            for user in ("jason", "bob"):
                args = {"headers": {"end-user": user}, "source_namespace": "ns1", "seed": 4}
                assert table.route(host, **args).to_dict() == rebuilt.route(host, **args).to_dict()
        tag = patched.config.ir_tag
    clusters = {c["name"]: c for c in full.config.clusters}
    assert "outbound|8080|v9|svc1.ns1.svc.cluster.local" in clusters
    breakers = json.dumps(clusters["outbound|8080||svc1.ns1.svc.cluster.local"]["circuit_breakers"])
    assert '"max_connections": 7' in breakers


def test_a_file_touched_but_not_changed_changes_nothing(tmp_path: Path) -> None:
    config_dir = tmp_path / "config"
    files = write_mesh(10, config_dir)
    options = Options(engine="embedded", files_dir=str(tmp_path / "files"))
    first = generate_live([str(config_dir)], options, False, None)
    assert first.config is not None
    files[0].write_text(files[0].read_text())
    again = generate_live([str(config_dir)], options, False, first.config.ir_tag)
    assert again.config is not None
    assert (again.config.ir_json, again.config.ir_patch) == (None, None)
    assert again.config.clusters == first.config.clusters
