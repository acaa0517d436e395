"""The embedded engine's listeners and the live files (``meshroute.envoy.live``): layout, content,
write order, atomic writes, clean-up; ``envoy-config --engine embedded / --live-dir``.

A real Envoy following these files is tested in tests/e2e/test_run.py; ``envoy --mode validate``
on them in tests/envoy/test_envoy_validate.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

import meshroute
from meshroute.cli import main
from meshroute.compile import expand_vhost_pool
from meshroute.config import analyze
from meshroute.envoy import Options, build, module
from meshroute.envoy.http import EXT_PROC_FILTER
from meshroute.envoy.live import Acks, LiveConfig, LiveFiles, generate
from meshroute.extproc import EXTPROC_CLUSTER
from tests.envoy.helpers import clusters, hcm, listeners
from tests.envoy.tls_helpers import TLS_GATEWAY, self_signed

SERVICES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 18080}}]
"""
NEW_SERVICE = """
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: new, namespace: default}
spec:
  hosts: [new.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 127.0.0.1, ports: {http: 18081}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8090, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
ROUTE = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  http: [{route: [{destination: {host: echo.test}}], timeout: %s}]
"""


def _embedded(tmp_path: Path) -> Options:
    return Options(engine="embedded", files_dir=str(tmp_path / "files"))


def test_embedded_chain_is_the_extproc_chain_with_the_module_first(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "secure.example.com")
    path = tmp_path / "gateway.yaml"
    path.write_text(TLS_GATEWAY.format(cert=cert, key=key))
    analysis = analyze([path])
    ports = {443: 18443, 80: 18080}
    extproc = build(analysis, Options(bind_ports=ports))
    embedded = build(analysis, Options(bind_ports=ports, engine="embedded", files_dir=str(tmp_path)))
    assert EXTPROC_CLUSTER in clusters(extproc.config)
    assert EXTPROC_CLUSTER not in clusters(embedded.config)
    assert set(clusters(extproc.config)) - set(clusters(embedded.config)) == {EXTPROC_CLUSTER}
    assert embedded.filters == {
        "meshroute-mesh": {"gateway_port": None, "source_namespace": None, "source_labels": {}},
        "meshroute-gateway-443": {"gateway_port": 443, "source_namespace": None, "source_labels": {}},
        "meshroute-gateway-80": {"gateway_port": 80, "source_namespace": None, "source_labels": {}},
    }
    assert extproc.filters == {}
    old, new = listeners(extproc.config), listeners(embedded.config)
    assert old.keys() == new.keys()
    for name in old:
        for old_chain, new_chain in zip(old[name]["filter_chains"], new[name]["filter_chains"], strict=True):
            before, after = hcm(old_chain), hcm(new_chain)
            first = after["http_filters"][0]
            expected_name = (
                "meshroute-mesh" if name == "mesh_outbound" else f"meshroute-{name.replace('_', '-')}"
            )
            assert first == {
                "name": expected_name,
                "config_discovery": {
                    "config_source": {
                        "path_config_source": {"path": str(tmp_path / f"ecds-{expected_name}.yaml")},
                        "resource_api_version": "V3",
                    },
                    "type_urls": [
                        "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
                    ],
                },
            }
            assert before["http_filters"][0]["name"] == EXT_PROC_FILTER
            assert after["http_filters"][1:] == before["http_filters"][1:]  # fault, router: unchanged
            # the rest is identical, but for the httpsRedirect route turning the module off
            rest = {k: v for k, v in after.items() if k not in ("http_filters", "route_config")}
            assert rest == {k: v for k, v in before.items() if k not in ("http_filters", "route_config")}
            for old_vh, new_vh in zip(
                before["route_config"]["virtual_hosts"], after["route_config"]["virtual_hosts"], strict=True
            ):
                for old_route, new_route in zip(old_vh["routes"], new_vh["routes"], strict=True):
                    if "typed_per_filter_config" in old_route:
                        assert new_route["typed_per_filter_config"] == {
                            expected_name: {
                                "@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                                "disabled": True,
                            }
                        }
                        old_route = {k: v for k, v in old_route.items() if k != "typed_per_filter_config"}
                        new_route = {k: v for k, v in new_route.items() if k != "typed_per_filter_config"}
                    assert new_route == old_route


def test_embedded_needs_an_absolute_files_dir() -> None:
    with pytest.raises(ValueError, match="files_dir"):
        build(analyze([meshroute.bookinfo_path()]), Options(engine="embedded"))
    with pytest.raises(ValueError, match="engine"):
        build(analyze([meshroute.bookinfo_path()]), Options(engine="wasm"))


def test_mesh_filter_carries_the_source_workload() -> None:
    options = Options(source_namespace="prod", source_labels={"app": "web"})
    assert module.listener_context("meshroute-mesh", options) == {
        "gateway_port": None,
        "source_namespace": "prod",
        "source_labels": {"app": "web"},
    }
    with pytest.raises(ValueError):
        module.listener_context("meshroute-gateway-x", options)


def test_module_path_names_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "_envoy" / module.MODULE_FILE
    monkeypatch.setattr(module, "packaged_module", lambda: missing)
    with pytest.raises(module.ModuleNotBuiltError, match="cargo build --release -p meshroute-envoy"):
        meshroute.envoy_module_path()
    missing.parent.mkdir()
    missing.write_bytes(b"")
    assert meshroute.envoy_module_path() == missing


def test_packaged_module_lives_in_the_package() -> None:
    assert module.packaged_module() == Path(meshroute.__file__).parent / "_envoy" / "libmeshroute_envoy.so"


def test_import_meshroute_stays_light() -> None:
    code = (
        "import sys, meshroute; meshroute.envoy_module_path; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'envoy', 'xds') "
        "or m.startswith('meshroute.envoy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# === the live files ===


class Recorder(Acks):
    """Records each step with the files as they are when the step's write is done."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.steps: list[tuple[str, tuple[str, ...], dict[str, Any]]] = []

    @contextlib.contextmanager
    def step(self, kind: str, names: Sequence[str] = ()) -> Iterator[None]:
        yield
        self.steps.append((kind, tuple(names), self.state()))

    def drain(self) -> None:
        self.steps.append(("drain", (), {}))

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("lds.yaml", "cds.yaml"):
            path = self.dir / name
            if path.is_file():
                out[name] = [r["name"] for r in yaml.safe_load(path.read_text())["resources"]]
        for path in self.dir.glob("ecds-*.yaml"):
            out[path.name] = table_of(path)
        return out


def table_of(ecds: Path) -> str:
    (resource,) = yaml.safe_load(ecds.read_text())["resources"]
    config = json.loads(resource["typed_config"]["filter_config"]["value"])
    assert resource["typed_config"]["filter_name"] == "meshroute"
    return str(config["table"])


def _config(tmp_path: Path, text: str, options: Options) -> LiveConfig:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    compiled = generate([str(path)], options)
    assert compiled.config is not None, compiled.report
    return compiled.config


def test_live_files_make_before_break(tmp_path: Path) -> None:
    live = tmp_path / "files"
    options = _embedded(tmp_path)
    fake_module = tmp_path / "libmeshroute_envoy.so"
    files = LiveFiles(live, engine="embedded", module_file=fake_module, seed=3, keep_ir=2)
    recorder = Recorder(live)
    first = files.apply(_config(tmp_path, SERVICES + ROUTE % "1s", options), recorder)
    assert first.generation == 1 and first.routes
    assert sorted(p.name for p in live.iterdir()) == [
        "cds.yaml", "ecds-meshroute-mesh.yaml", "ir-1.json", "lds.yaml",
    ]  # fmt: skip
    assert [s[0] for s in recorder.steps] == ["cds", "lds"]
    mesh_ecds = live / "ecds-meshroute-mesh.yaml"
    (resource,) = yaml.safe_load(mesh_ecds.read_text())["resources"]
    assert resource["name"] == "meshroute-mesh"
    typed_config = resource["typed_config"]
    assert typed_config["dynamic_module_config"] == {"module": {"local": {"filename": str(fake_module)}}}
    assert json.loads(typed_config["filter_config"]["value"]) == {
        "table": str(live / "ir-1.json"),
        "listener": {"gateway_port": None, "source_namespace": None, "source_labels": {}},
        "seed": 3,
    }
    # The file holds the pooled IR (compile.ir_json): the ServiceEntry's vhost is the same object
    # in both namespace views, since its domains do not depend on the client's namespace.
    table = expand_vhost_pool(json.loads((live / "ir-1.json").read_text()))
    assert table == analyze([tmp_path / "config.yaml"]).ir

    # Nothing changed: nothing written, same generation.
    recorder.steps.clear()
    same = files.apply(_config(tmp_path, SERVICES + ROUTE % "1s", options), recorder)
    assert (same.generation, same.changed, recorder.steps) == (1, False, [])

    # A new service and a Gateway port: clusters first, then the new listener's filter config, the
    # routes of the running listener, and the listener last.
    recorder.steps.clear()
    grown = files.apply(_config(tmp_path, SERVICES + NEW_SERVICE + ROUTE % "2s", options), recorder)
    assert grown.generation == 2
    assert grown.clusters[0] == ["outbound|80||new.test"] and grown.listeners[0] == ["gateway_8090"]
    assert [s[0] for s in recorder.steps] == ["cds", "ecds", "lds"]
    cds_state = recorder.steps[0][2]
    assert "outbound|80||new.test" in cds_state["cds.yaml"] and "gateway_8090" not in cds_state["lds.yaml"]
    # the new listener's filter config (with the new table) existed before the listener did
    assert cds_state["ecds-meshroute-mesh.yaml"] == str(live / "ir-1.json")  # routes not switched yet
    ecds_step = recorder.steps[1]
    assert ecds_step[1] == ("meshroute-mesh",)
    assert ecds_step[2]["ecds-meshroute-mesh.yaml"] == str(live / "ir-2.json")
    assert ecds_step[2]["ecds-meshroute-gateway-8090.yaml"] == str(live / "ir-2.json")
    assert "gateway_8090" not in ecds_step[2]["lds.yaml"]
    assert "gateway_8090" in recorder.steps[2][2]["lds.yaml"]

    # Removing them: routes first, then the listener, then (after a drain) the cluster; the stale
    # filter config and all but the newest IR files (keep_ir=2) go last.
    recorder.steps.clear()
    shrunk = files.apply(_config(tmp_path, SERVICES + ROUTE % "3s", options), recorder)
    assert shrunk.clusters[1] == ["outbound|80||new.test"] and shrunk.listeners[1] == ["gateway_8090"]
    assert [s[0] for s in recorder.steps] == ["ecds", "lds", "drain", "cds"]
    assert "outbound|80||new.test" in recorder.steps[0][2]["cds.yaml"]  # still there
    assert "gateway_8090" in recorder.steps[0][2]["lds.yaml"]
    assert "gateway_8090" not in recorder.steps[1][2]["lds.yaml"]
    assert "outbound|80||new.test" not in recorder.steps[3][2]["cds.yaml"]
    assert sorted(p.name for p in live.iterdir()) == [
        "cds.yaml", "ecds-meshroute-mesh.yaml", "ir-2.json", "ir-3.json", "lds.yaml",
    ]  # fmt: skip

    # A second LiveFiles on the same directory (envoy-config run again) continues from the files.
    again = LiveFiles(live, engine="embedded", module_file=fake_module, seed=3)
    assert again.generation == 3
    assert again.apply(_config(tmp_path, SERVICES + ROUTE % "3s", options)).changed is False


def test_live_files_extproc_serve_copy(tmp_path: Path) -> None:
    live = tmp_path / "files"
    options = Options()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(SERVICES + ROUTE % "1s")
    compiled = generate([str(config_path)], options, serve_copy=True)
    assert compiled.config is not None and compiled.config.serve_yaml is not None
    files = LiveFiles(live, engine="extproc")
    recorder = Recorder(live)
    files.apply(compiled.config, recorder)
    assert sorted(p.name for p in live.iterdir()) == ["cds.yaml", "lds.yaml", "serve-config.yaml"]
    # serve's copy is the same config: it compiles to the same IR
    assert analyze([live / "serve-config.yaml"]).ir == analyze([config_path]).ir
    config_path.write_text(SERVICES + ROUTE % "2s")
    recorder.steps.clear()
    changed = generate([str(config_path)], options, serve_copy=True).config
    assert changed is not None
    assert files.apply(changed, recorder).summary() == "routes changed"
    assert [s[0] for s in recorder.steps] == ["serve"]


def test_writes_are_atomic_and_private_keys_stay_private(tmp_path: Path) -> None:
    live = tmp_path / "files"
    files = LiveFiles(live, engine="extproc")
    config = _config(tmp_path, SERVICES, Options())
    files.apply(LiveConfig(config.base, config.listeners, config.clusters, inline_keys=True))
    assert stat.S_IMODE(os.stat(live / "lds.yaml").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(live / "cds.yaml").st_mode) == 0o644
    assert not [p for p in live.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_invalid_config_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(SERVICES + ROUTE % "-1s")
    compiled = generate([str(path)], Options())
    assert compiled.config is None
    assert "error[" in compiled.report


# === envoy-config ===


@pytest.fixture
def fake_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    so = tmp_path / "pkg" / module.MODULE_FILE
    so.parent.mkdir()
    so.write_bytes(b"")
    monkeypatch.setattr(module, "packaged_module", lambda: so)
    return so


def test_envoy_config_embedded_writes_files_next_to_the_bootstrap(tmp_path: Path, fake_module: Path) -> None:
    out = tmp_path / "envoy.yaml"
    code = main(
        ["envoy-config", meshroute.bookinfo_path(), "--engine", "embedded", "-o", str(out), "--seed", "1"]
    )
    assert code == 0
    config = yaml.safe_load(out.read_text())
    assert "dynamic_resources" not in config
    assert EXTPROC_CLUSTER not in clusters(config)
    files = tmp_path / "envoy.yaml.d"
    assert sorted(p.name for p in files.iterdir()) == [
        "ecds-meshroute-gateway-8080.yaml", "ecds-meshroute-mesh.yaml", "ir-1.json",
    ]  # fmt: skip
    assert table_of(files / "ecds-meshroute-mesh.yaml") == str(files / "ir-1.json")


def test_envoy_config_default_engine_is_embedded(tmp_path: Path, fake_module: Path) -> None:
    out = tmp_path / "envoy.yaml"
    assert main(["envoy-config", meshroute.bookinfo_path(), "-o", str(out)]) == 0
    assert EXTPROC_CLUSTER not in clusters(yaml.safe_load(out.read_text()))
    assert (tmp_path / "envoy.yaml.d" / "ecds-meshroute-mesh.yaml").is_file()


def test_envoy_config_embedded_to_stdout_needs_a_directory(
    fake_module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["envoy-config", meshroute.bookinfo_path(), "--engine", "embedded"]) == 2
    assert "--files-dir" in capsys.readouterr().err


def test_envoy_config_embedded_without_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(module, "packaged_module", lambda: tmp_path / "missing.so")
    args = ["envoy-config", meshroute.bookinfo_path(), "--engine", "embedded", "-o", str(tmp_path / "e.yaml")]
    assert main(args) == 1
    assert "cargo build --release -p meshroute-envoy" in capsys.readouterr().err


def test_envoy_config_live_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live"
    args = ["envoy-config", meshroute.bookinfo_path(), "--engine", "extproc", "--live-dir", str(live)]
    args += ["--admin-port", "25000"]
    assert main(args) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert "static_resources" not in config
    assert config["node"] == {"id": "meshroute", "cluster": "meshroute"}
    assert config["dynamic_resources"] == {
        "lds_config": {"path_config_source": {"path": str(live / "lds.yaml")}, "resource_api_version": "V3"},
        "cds_config": {"path_config_source": {"path": str(live / "cds.yaml")}, "resource_api_version": "V3"},
    }
    lds = yaml.safe_load((live / "lds.yaml").read_text())
    assert [r["@type"] for r in lds["resources"]] == [
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    ] * 2
    cds = yaml.safe_load((live / "cds.yaml").read_text())
    assert EXTPROC_CLUSTER in [r["name"] for r in cds["resources"]]
    before = (live / "lds.yaml").stat().st_ino
    assert main(args) == 0
    assert (live / "lds.yaml").stat().st_ino == before  # unchanged content is not rewritten


# === meshroute run: what fails before anything starts ===


def test_run_refuses_a_work_dir_inside_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text(SERVICES)
    assert main(["run", str(tmp_path), "--work-dir", str(tmp_path / "work")]) == 2
    assert "--work-dir must not be inside a CONFIG path" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_run_embedded_without_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(module, "packaged_module", lambda: tmp_path / "missing.so")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "config.yaml").write_text(SERVICES)
    assert main(["run", str(tmp_path / "config.yaml"), "--engine", "embedded"]) == 1
    assert "cargo build --release -p meshroute-envoy" in capsys.readouterr().err
    assert list((tmp_path / "tmp").iterdir()) == []  # no work directory left behind


def test_run_invalid_config_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.yaml").write_text(SERVICES + ROUTE % "-1s")
    assert main(["run", str(tmp_path / "config.yaml"), "--work-dir", str(tmp_path / "work")]) == 1
    err = capsys.readouterr().err
    assert "error[" in err and "Traceback" not in err
