"""What ``pip install meshroute`` gives without extras, and what a command needing the ``envoy``
extra says when it is missing.

The wheel test builds the wheel as ``pip install .`` would (``pip wheel .`` through the in-tree
backend, build_backend/meshroute_build.py: the Envoy module, then maturin; release builds reusing
target/, a few seconds after ``make build``), installs it into a fresh venv (PyYAML and
ruamel.yaml only) and runs the library, the CLI and ``meshroute.envoy_module_path()`` there,
outside the repo. The sdist test checks what a wheel built from the sdist needs is in it."""

from __future__ import annotations

import os
import platform
import struct
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

import meshroute
from meshroute.cli import main

REPO = Path(__file__).resolve().parents[1]
EXTRA_TOP_LEVEL = ("grpc", "grpc_health", "google.protobuf", "envoy", "xds", "udpa", "prometheus_client")
NEEDS_ENVOY = [
    ["serve", "cfg/", "--listen", "unix:/tmp/meshroute-never.sock"],
    ["demo"],
    ["bench", "--envoy"],
]
MESSAGE = "needs the 'envoy' extra: pip install \"meshroute[envoy]\""


def _python(code: str, *args: str, cwd: Path | None = None, python: str = sys.executable) -> str:
    done = subprocess.run(
        [python, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


# Loaded by a child process: the library and the extra-free commands, then the extra's modules
# that got imported (none may be).
LIGHT_COMMANDS = """
    import sys
    import meshroute
    from meshroute.cli import main

    bookinfo = meshroute.bookinfo_path()
    mesh = meshroute.load(bookinfo)
    assert mesh.route("ratings", "/ratings/0").cluster.startswith("outbound|9080|v1|ratings")
    assert main(["validate", bookinfo]) == 0
    assert main(["route", bookinfo, "--host", "reviews", "--json"]) == 0
    assert main(["bench", bookinfo, "--seconds", "0.2", "--json", "-"]) == 0
    heavy = sys.argv[1].split(",")
    print("IMPORTED", sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy)))
"""


def test_library_validate_route_bench_never_import_the_envoy_extra() -> None:
    out = _python(LIGHT_COMMANDS, ",".join(EXTRA_TOP_LEVEL))
    assert out.splitlines()[-1] == "IMPORTED []"


@pytest.mark.parametrize(
    ("argv", "missing"),
    list(zip(NEEDS_ENVOY, ["grpc", "envoy", "prometheus_client"], strict=True)),
    ids=["serve", "demo", "bench-envoy"],
)
def test_missing_extra_is_one_line_and_exit_2(argv: list[str], missing: str) -> None:
    code = (
        "import sys; sys.modules[sys.argv[1]] = None\n"
        "from meshroute.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, missing, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    _assert_needs_envoy(argv, done)


def _assert_needs_envoy(argv: list[str], done: subprocess.CompletedProcess[str]) -> None:
    command = "bench --envoy" if argv[0] == "bench" else argv[0]
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr.startswith(f"meshroute {command} {MESSAGE}") and done.stderr.count("\n") == 1


def test_import_error_of_an_extra_module_at_run_time_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def validate_importing(name: str) -> object:
        def command(_args: object) -> int:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        return command

    monkeypatch.setattr("meshroute.cli._validate", validate_importing("envoy.service.ext_proc"))
    assert main(["validate", "x.yaml"]) == 2
    assert capsys.readouterr().err.startswith(f"meshroute validate {MESSAGE}")
    monkeypatch.setattr("meshroute.cli._validate", validate_importing("yaml"))  # not the extra's
    with pytest.raises(ModuleNotFoundError):
        main(["validate", "x.yaml"])


# Run by the venv's python, outside the repo: the installed package only.
IN_CLEAN_VENV = """
    import importlib.util, json, subprocess, sys, os
    import meshroute

    site = sys.argv[1]
    assert meshroute.__file__.startswith(site), meshroute.__file__
    tasks = os.path.join(os.path.dirname(meshroute.bookinfo_path()), "tasks")
    task = os.path.join(tasks, "virtual-service-reviews-test-v2.yaml")
    mesh = meshroute.load(meshroute.bookinfo_path(), task)
    d = mesh.route("reviews", "/reviews/0", headers={"end-user": "jason"})
    assert (d.outcome, d.cluster) == ("route", "outbound|9080|v2|reviews.default.svc.cluster.local"), d
    for name in ("grpc", "google.protobuf", "envoy", "xds", "prometheus_client"):
        try:
            found = importlib.util.find_spec(name)
        except ImportError:
            found = None
        assert found is None, f"{name} is installed without the envoy extra"
    module = meshroute.envoy_module_path()
    assert str(module).startswith(site) and module.is_file(), module
    print("MODULE", module)
    print("OK", meshroute.__version__)
"""
MODULE = "meshroute/_envoy/libmeshroute_envoy.so"
# What Envoy resolves in a dynamic module first (its other hooks are looked up the same way).
MODULE_INIT = "envoy_dynamic_module_on_program_init"
# Libraries every Linux system has: the module may need nothing else (Envoy dlopens it anywhere).
SYSTEM_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libgcc_s.so.1",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}


def _elf_dynamic(path: Path) -> tuple[int, set[str], list[str]]:
    """(machine, defined dynamic symbols, DT_NEEDED) of a 64-bit ELF shared library: what
    ``nm -D --defined-only`` and ``readelf -d`` show, without binutils."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2, f"{path} is not a 64-bit ELF file"
    order = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(order + "H", data, 18)
    (shoff,) = struct.unpack_from(order + "Q", data, 0x28)
    shentsize, shnum = struct.unpack_from(order + "HH", data, 0x3A)
    # (type, offset, size, link) of every section.
    sections = []
    for i in range(shnum):
        fields = struct.unpack_from(order + "IIQQQQIIQQ", data, shoff + i * shentsize)
        sections.append((fields[1], fields[4], fields[5], fields[6]))

    def string(table: int, at: int) -> str:
        start = sections[table][1] + at
        return data[start : data.index(b"\0", start)].decode()

    symbols: set[str] = set()
    needed: list[str] = []
    for kind, offset, size, link in sections:
        if kind == 11:  # SHT_DYNSYM: st_name, st_info, st_other, st_shndx, st_value, st_size
            for at in range(offset, offset + size, 24):
                name, _info, _other, shndx, _value, _size = struct.unpack_from(order + "IBBHQQ", data, at)
                if shndx != 0 and name:  # defined here (not SHN_UNDEF)
                    symbols.add(string(link, name))
        elif kind == 6:  # SHT_DYNAMIC: d_tag, d_val
            for at in range(offset, offset + size, 16):
                tag, value = struct.unpack_from(order + "qQ", data, at)
                if tag == 0:
                    break
                if tag == 1:  # DT_NEEDED
                    needed.append(string(link, value))
    return machine, symbols, needed


def _assert_envoy_module(path: Path) -> None:
    """An Envoy dynamic module for this machine, needing system libraries only."""
    machine, symbols, needed = _elf_dynamic(path)
    if platform.machine() in ELF_MACHINES:
        assert machine == ELF_MACHINES[platform.machine()], (machine, platform.machine())
    assert MODULE_INIT in symbols, sorted(symbols)[:20]
    assert set(needed) <= SYSTEM_LIBRARIES, needed


def test_wheel_installs_and_runs_without_extras(tmp_path: Path) -> None:
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    # pyproject.toml's backend, as `pip install .` runs it; this venv's maturin (no isolation).
    build = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation"]
    build += ["--disable-pip-version-check", "-q", "-w", str(dist)]
    done = subprocess.run(build, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (wheel,) = dist.glob("meshroute-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(f"meshroute-{meshroute.__version__}.dist-info/METADATA").decode()
    for shipped in (
        "meshroute/py.typed",
        "meshroute/_core.pyi",
        "meshroute/bench/requests.lua",
        "meshroute/data/bookinfo/platform/bookinfo.yaml",
        "meshroute/data/tasks/virtual-service-reviews-test-v2.yaml",
        "meshroute/bookinfo/productpage.py",
        MODULE,
    ):
        assert shipped in names
    assert any(n.startswith("meshroute/_core.") and n.endswith(".so") for n in names)
    assert not [
        n
        for n in names
        if "__pycache__" in n or n.startswith(("tests/", "bench/", "rust/", "build_backend/"))
    ]
    required = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert sorted(required) == ["Requires-Dist: pyyaml>=6", "Requires-Dist: ruamel-yaml>=0.18"]

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    install = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    done = subprocess.run([*install, str(wheel)], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    site = _python("import sysconfig; print(sysconfig.get_paths()['purelib'])", python=python).strip()
    out = _python(IN_CLEAN_VENV, site, cwd=tmp_path, python=python)
    assert out.splitlines()[-1].startswith("OK ")
    module = Path(out.splitlines()[-2].removeprefix("MODULE "))
    assert module == Path(site) / MODULE
    _assert_envoy_module(module)
    out = _python(LIGHT_COMMANDS, ",".join(EXTRA_TOP_LEVEL), cwd=tmp_path, python=python)
    assert out.splitlines()[-1] == "IMPORTED []"

    cli = str(venv / "bin" / "meshroute")
    for argv in NEEDS_ENVOY:
        env = _clean_env()
        _assert_needs_envoy(
            argv, subprocess.run([cli, *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
        )


def test_sdist_carries_what_its_wheel_builds(tmp_path: Path) -> None:
    """A wheel built from the sdist builds both libraries: the sdist holds the module's crate as a
    workspace member, the build backend pyproject.toml names, and no built library (the hook
    pip and ``python -m build`` call; maturin's sdist, about a second)."""
    code = "import sys, meshroute_build; print(meshroute_build.build_sdist(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        env={**_clean_env(), "PYTHONPATH": str(REPO / "build_backend")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    sdist = tmp_path / done.stdout.strip().splitlines()[-1]
    top = f"meshroute-{meshroute.__version__}/"
    with tarfile.open(sdist) as tf:
        names = {n.removeprefix(top) for n in tf.getnames()}
        cargo, pyproject = (_toml(tf, top + name) for name in ("Cargo.toml", "pyproject.toml"))
    for needed in (
        "Cargo.lock",
        "build_backend/meshroute_build.py",
        "rust/meshroute-envoy/Cargo.toml",
        "rust/meshroute-envoy/src/lib.rs",
        "rust/meshroute-extproc/src/lib.rs",
        "rust/meshroute-py/src/lib.rs",
    ):
        assert needed in names
    assert "rust/meshroute-envoy" in cargo["workspace"]["members"]
    assert pyproject["build-system"]["build-backend"] == "meshroute_build"
    assert pyproject["build-system"]["backend-path"] == ["build_backend"]
    assert not [n for n in names if n.endswith(".so") or "__pycache__" in n]


def _toml(tf: tarfile.TarFile, name: str) -> dict[str, Any]:
    member = tf.extractfile(name)
    assert member is not None, name
    return tomllib.load(member)
