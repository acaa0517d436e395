"""``meshroute envoy-config``: output, flags, and errors as diagnostics (never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import meshroute
from meshroute.cli import main
from tests.conftest import SAMPLES
from tests.envoy.helpers import clusters, ext_proc_metadata, listeners


def test_writes_yaml_with_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "envoy.yaml"
    args = [
        "envoy-config",
        meshroute.bookinfo_path(),
        "--engine",
        "extproc",
        "--extproc",
        "unix:/tmp/mr.sock",
    ]
    args += ["--workers", "2"]
    args += ["--mesh-port", "25001", "--admin-port", "25000", "--bind-port", "8080=28080"]
    args += ["--source-namespace", "prod", "--source-label", "app=web", "--access-log", "/dev/null"]
    code = main([*args, "-o", str(out)])
    assert code == 0
    assert capsys.readouterr().out == ""
    config = yaml.safe_load(out.read_text())
    assert config["admin"]["address"]["socket_address"]["port_value"] == 25000
    by_name = listeners(config)
    assert by_name["gateway_8080"]["address"]["socket_address"]["port_value"] == 28080
    mesh = by_name["mesh_outbound"]
    assert mesh["address"]["socket_address"]["port_value"] == 25001
    assert ext_proc_metadata(mesh["filter_chains"][0])["x-meshroute-source-labels"] == "app=web"
    extproc = clusters(config)["meshroute_extproc"]["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["pipe"]["path"] for e in extproc] == ["/tmp/mr.sock.0", "/tmp/mr.sock.1"]


def test_stdout_and_warnings_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    sample = SAMPLES / "tcp-echo/tcp-echo-all-v1.yaml"
    assert main(["envoy-config", str(sample), "--engine", "extproc"]) == 0
    captured = capsys.readouterr()
    assert yaml.safe_load(captured.out)["static_resources"]["listeners"][0]["name"] == "mesh_outbound"
    # The sample names tcp-echo without its Service: the TCP route's cluster does not exist.
    assert "warning[envoy-tcp-cluster]" in captured.err


def test_config_errors_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    sample = SAMPLES / "validation-testdata/serviceentry-invalid.yaml"
    assert main(["envoy-config", str(sample), "--engine", "extproc"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error[" in captured.err
    assert "Traceback" not in captured.err


BAD_FLAGS = [["--bind-port", "80"], ["--source-label", "novalue"], ["--extproc", "nope"]]


@pytest.mark.parametrize("flag", BAD_FLAGS)
def test_bad_flags_exit_2(flag: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envoy-config", meshroute.bookinfo_path(), *flag]) == 2
    assert "meshroute envoy-config:" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["extproc", "embedded"])
def test_lb_rust_balances_the_service_clusters_with_the_module(engine: str, tmp_path: Path) -> None:
    from meshroute.envoy.module import module_path

    out = tmp_path / "envoy.yaml"
    args = ["envoy-config", meshroute.bookinfo_path(), "--engine", engine, "--lb", "rust", "--seed", "4"]
    assert main([*args, "-o", str(out)]) == 0
    by_name = clusters(yaml.safe_load(out.read_text()))
    reviews = by_name["outbound|9080||reviews.default.svc.cluster.local"]
    assert "lb_policy" not in reviews
    typed = reviews["load_balancing_policy"]["policies"][0]["typed_extension_config"]["typed_config"]
    assert typed["dynamic_module_config"]["module"]["local"]["filename"] == str(module_path())
    assert '"seed": 4' in typed["lb_policy_config"]["value"]
    # Without --lb rust the seed stays the HTTP filter's.
    assert main(["envoy-config", meshroute.bookinfo_path(), "--engine", engine, "-o", str(out)]) == 0
    reviews = clusters(yaml.safe_load(out.read_text()))["outbound|9080||reviews.default.svc.cluster.local"]
    assert reviews["lb_policy"] == "LEAST_REQUEST" and "load_balancing_policy" not in reviews


def test_strings_envoy_reads_as_booleans_are_quoted() -> None:
    """Envoy's YAML parser reads y / n as booleans: a locality or label value named so stays a
    string in the files envoy-config writes."""
    import yaml

    from meshroute.envoy.common import envoy_yaml

    data = {"locality": {"region": "y", "zone": "N", "sub_zone": "yes"}, "name": "n"}
    text = envoy_yaml(data)
    assert "'y'" in text and "'N'" in text and "'n'" in text
    assert yaml.safe_load(text) == data
