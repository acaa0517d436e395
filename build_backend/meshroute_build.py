"""meshroute's PEP 517 build backend: maturin's, plus the Envoy dynamic module.

maturin builds one Rust extension per wheel (``meshroute._core``, from ``rust/meshroute-py``).
The wheel also carries ``meshroute/_envoy/libmeshroute_envoy.so``, the cdylib of
``rust/meshroute-envoy`` that Envoy ``dlopen``s. Before maturin builds a wheel (``pip install .``,
``pip wheel .``, a wheel from the sdist) or an editable install (``pip install -e .``, which
``scripts/setup.sh`` runs), this backend runs ``cargo build --release -p meshroute-envoy`` and
copies the library into ``python/meshroute/_envoy/``; ``[tool.maturin] include`` packs it. Every
other hook is maturin's, unchanged. CONTRIBUTING.md, "Two libraries, one wheel", says why.

``python build_backend/meshroute_build.py`` does the build-and-copy alone (``make build``).
Standard library and maturin only: it runs in pip's build environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import maturin

CRATE = "meshroute-envoy"
LIBRARY = "libmeshroute_envoy.so"  # meshroute_envoy::LIBRARY_FILE_NAME; meshroute.envoy.module.MODULE_FILE
# Relative to the project root; pyproject.toml's [tool.maturin] include names the same file.
DESTINATION = Path("python", "meshroute", "_envoy", LIBRARY)

ConfigSettings = Mapping[str, Any] | None

# maturin's hooks that need nothing more.
get_requires_for_build_wheel = maturin.get_requires_for_build_wheel
get_requires_for_build_editable = maturin.get_requires_for_build_editable
get_requires_for_build_sdist = maturin.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = maturin.prepare_metadata_for_build_wheel
prepare_metadata_for_build_editable = maturin.prepare_metadata_for_build_editable
build_sdist = maturin.build_sdist


def build_wheel(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    """The module first (maturin packs the file it finds), then maturin's wheel, which must hold
    it: a maturin that stopped packing it fails the build rather than ship a wheel without it."""
    build_envoy_module(config_settings)
    name = str(maturin.build_wheel(wheel_directory, config_settings, metadata_directory))
    wheel = Path(wheel_directory, name)
    with zipfile.ZipFile(wheel) as archive:
        packed = DESTINATION.relative_to("python").as_posix() in archive.namelist()
    if not packed:
        wheel.unlink()
        raise SystemExit(f"meshroute_build: maturin left {LIBRARY} out of {name}")
    return name


def build_editable(
    wheel_directory: str, config_settings: ConfigSettings = None, metadata_directory: str | None = None
) -> str:
    """maturin's editable wheel, then the module: an editable install imports ``meshroute`` from
    ``python/``, so the module is used where it is copied. maturin's build runs first because it
    may update a Cargo.lock the module's ``--locked`` build would refuse."""
    name = str(maturin.build_editable(wheel_directory, config_settings, metadata_directory))
    build_envoy_module(config_settings)
    return name


def build_envoy_module(config_settings: ConfigSettings = None, root: Path | None = None) -> Path:
    """``cargo build --release -p meshroute-envoy`` in the project at ``root`` (the current
    directory, as PEP 517 hooks run) and copy the library to ``python/meshroute/_envoy/``.

    cargo finds the target directory as it always does (CARGO_TARGET_DIR, ``build.target-dir``,
    the workspace's ``target/``) and reports the file it wrote; ``--locked`` when Cargo.lock
    exists; a ``--target`` among maturin's build arguments (``MATURIN_PEP517_ARGS``, config
    setting ``maturin.build-args``) is passed on, so the module matches the extension."""
    root = Path.cwd() if root is None else root
    command = [_cargo(), "build", "--release", "-p", CRATE, "--message-format=json-render-diagnostics"]
    command += ["--manifest-path", str(root / "Cargo.toml")]
    if (root / "Cargo.lock").is_file():
        command.append("--locked")
    command += _target_args(maturin.get_maturin_pep517_args(config_settings))
    print(f"meshroute_build: running `{' '.join(command)}`", file=sys.stderr, flush=True)
    # Diagnostics go to stderr as cargo renders them; stdout carries the JSON messages.
    done = subprocess.run(command, cwd=root, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"meshroute_build: building the Envoy module failed (cargo exit {done.returncode})")
    built = _artifact(done.stdout)
    destination = root / DESTINATION
    _install(built, destination)
    print(f"meshroute_build: {built} -> {destination}", file=sys.stderr, flush=True)
    return destination


def _cargo() -> str:
    cargo = os.environ.get("CARGO") or shutil.which("cargo")
    if cargo is None:
        raise SystemExit(
            "meshroute_build: cargo is not on PATH; building meshroute needs a Rust toolchain "
            "(https://rustup.rs)"
        )
    return cargo


def _target_args(maturin_args: list[str]) -> list[str]:
    """``--target TRIPLE`` from maturin's arguments, if any.

    >>> _target_args(["--target", "aarch64-unknown-linux-gnu", "--strip"])
    ['--target', 'aarch64-unknown-linux-gnu']
    >>> _target_args(["--target=x86_64-unknown-linux-musl"]), _target_args([])
    (['--target', 'x86_64-unknown-linux-musl'], [])
    """
    for i, arg in enumerate(maturin_args):
        if arg == "--target" and i + 1 < len(maturin_args):
            return ["--target", maturin_args[i + 1]]
        if arg.startswith("--target="):
            return ["--target", arg.split("=", 1)[1]]
    return []


def _artifact(messages: str) -> Path:
    """The cdylib cargo reports for the crate (its path under whatever target directory)."""
    for line in messages.splitlines():
        if not line.startswith("{"):
            continue
        message = json.loads(line)
        if message.get("reason") != "compiler-artifact" or message["target"]["name"] != "meshroute_envoy":
            continue
        for filename in message["filenames"]:
            if Path(filename).name == LIBRARY:
                return Path(filename)
    raise SystemExit(f"meshroute_build: cargo reported no {LIBRARY}")


def _install(built: Path, destination: Path) -> None:
    """Copy unless identical, through a temporary file and a rename: an Envoy that has the old
    file mapped keeps it (writing over a mapped library in place can crash that process)."""
    data = built.read_bytes()
    if destination.is_file() and destination.read_bytes() == data:
        return
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{LIBRARY}.", dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o755)
        os.replace(temporary, destination)
    except BaseException:
        os.unlink(temporary)
        raise


if __name__ == "__main__":
    build_envoy_module(root=Path(__file__).resolve().parent.parent)
