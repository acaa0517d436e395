"""Bookinfo behind a real Envoy deciding with either engine: what ``meshroute demo`` and the
end-to-end tests drive.

``Stack(engine=...).start()`` lays out a config directory (a copy of the Bookinfo config,
WorkloadEntries for the apps' ports, and one file of applied task YAML), then starts, in one
:class:`~meshroute.procs.ProcessGroup`: the Bookinfo apps (``python -m meshroute.bookinfo``) and
Envoy with the config ``meshroute envoy-config`` writes (mesh listener on a free port, Bookinfo's
Gateway port 8080 bound on another); with the ``extproc`` engine also ``meshroute serve`` on a unix
socket, while the ``embedded`` engine decides inside Envoy from live files
(``envoy-config --engine embedded --live-dir``). ``apply`` replaces the task YAML and waits until
serve has reloaded it, or, embedded, rewrites the live files as ``meshroute run`` does and waits
until Envoy took them (:class:`LiveUpdates`); ``close`` stops everything.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from meshroute.bookinfo import read_plan, workload_entries
from meshroute.envoy.options import DEFAULT_ENGINE, EMBEDDED, ENGINES
from meshroute.envoy.process import envoy_config_args, start_envoy, write_bootstrap
from meshroute.extproc import status_paths
from meshroute.mesh import bookinfo_path
from meshroute.procs import LOOPBACK, Proc, ProcessError, ProcessGroup, free_port

GATEWAY_PORT = 8080  # the server port of data/bookinfo/networking/bookinfo-gateway.yaml
# Config files are read in sorted order and a later resource replaces an earlier one of the same
# kind/namespace/name (like `kubectl apply`); "tasks" sorts after "bookinfo", so task YAML wins.
TASKS_FILE = Path("tasks") / "applied.yaml"
START_TIMEOUT = 60.0
RELOAD_TIMEOUT = 20.0


def read_status(path: str | Path) -> dict[str, Any]:
    """serve's status file (``meshroute.extproc.reload``), ``{}`` while it is not written yet."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def start_serve(
    group: ProcessGroup,
    paths: Iterable[str | Path],
    listen: str,
    status_file: str | Path,
    *,
    workers: int = 1,
    reload_interval: float = 0.2,
    timeout: float = START_TIMEOUT,
    metrics: str | None = None,
) -> Proc:
    """``meshroute serve`` in ``group``, returned once every worker reports its first config loaded
    (``metrics``: serve's ``--metrics HOST:PORT``)."""
    cmd = [sys.executable, "-m", "meshroute", "serve", *map(str, paths), "--listen", listen,
           "--status-file", str(status_file), "--reload-interval", str(reload_interval),
           "--workers", str(workers)]  # fmt: skip
    if metrics is not None:
        cmd += ["--metrics", metrics]
    files = status_paths(str(status_file), workers)
    for path in files:
        Path(path).unlink(missing_ok=True)  # a file from an earlier run must not count
    proc = group.start("serve", cmd)
    proc.wait_until(
        lambda: all(read_status(f).get("ok") is True for f in files), timeout=timeout, what="serving"
    )
    return proc


class LiveUpdates:
    """The embedded engine's config changes, made as ``meshroute run`` makes them: the files
    ``meshroute envoy-config ARGV --live-dir DIR`` wrote are read back
    (:class:`~meshroute.envoy.live.LiveFiles`), and each :meth:`update` compiles the CONFIG
    ``paths`` again (:func:`~meshroute.envoy.live.generate`) and rewrites what changed in
    make-before-break order, waiting at each step until Envoy's admin stats say it took the file
    (:class:`~meshroute.runner.EnvoyAcks`: CDS, LDS, each ECDS resource). Returns a status like
    serve's: ``ok``, ``errors``, ``generation``."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        argv: list[str],
        admin_port: int,
        log_tail: Callable[[], str] | None = None,
    ) -> None:
        from meshroute.envoy.cli import options_for
        from meshroute.envoy.live import LiveFiles
        from meshroute.envoy.module import module_path
        from meshroute.runner import EnvoyAcks

        self.paths = [str(p) for p in paths]
        self.options = options_for(argv)
        self.files = LiveFiles(
            self.options.files_dir, engine=self.options.engine, dynamic=True, module_file=module_path()
        )
        self.acks = EnvoyAcks(admin_port, log_tail=log_tail)

    def update(self, ir_json: str | None = None) -> dict[str, Any]:
        """Compile the config and apply it. ``ir_json`` (tests): write this route table instead of
        the compiled one, as if the compiler had produced it, to see Envoy refuse a table."""
        from dataclasses import replace

        from meshroute.envoy.live import LiveError, generate

        compiled = generate(self.paths, self.options)
        if compiled.config is None:
            return {"ok": False, "errors": [compiled.report], "generation": self.files.generation}
        config = compiled.config if ir_json is None else replace(compiled.config, ir_json=ir_json)
        try:
            applied = self.files.apply(config, self.acks)
        except LiveError as exc:
            return {"ok": False, "errors": [str(exc)], "generation": self.files.generation}
        return {"ok": True, "errors": [], "generation": applied.generation}


class Response(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: str
    seconds: float


class Stack:
    """Bookinfo + Envoy (+ serve) on 127.0.0.1; a context manager (``with Stack() as s: ...``).

    ``engine``: ``embedded`` (the module inside Envoy) or ``extproc`` (serve); ``base`` is the
    Bookinfo config to copy (default: the one shipped in the package); ``work`` a directory for
    config, sockets and logs (default: a temporary directory, removed on close).
    """

    def __init__(
        self, base: str | Path | None = None, work: str | Path | None = None, *, engine: str = DEFAULT_ENGINE
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        self.engine = engine
        self.base = Path(base or bookinfo_path())
        self._own_work = work is None
        self.work = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="meshroute-stack-"))
        self.config_dir = self.work / "config"
        self.status_file = self.work / "status.json"
        self.extproc = f"unix:{self.work}/extproc.sock"
        self.group = ProcessGroup(self.work / "logs")
        self.mesh_port = 0
        self.gateway_port = 0
        self.admin_port = 0
        self.plan: dict[str, int] = {}
        self._applies = 0
        self._started = False
        self.updates: LiveUpdates | None = None  # embedded engine

    @property
    def ingress_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # keep config and logs to look at after a failure; an interrupt is not one
        self.close(keep_work=exc is not None and not isinstance(exc, KeyboardInterrupt))

    # === start and stop ===

    def start(self) -> Stack:
        """Start every process and wait until the ingress serves ``/productpage``."""
        self.group.__enter__()
        self._started = True
        try:
            self._start()
        except BaseException:
            self.close(keep_work=True)
            raise
        return self

    def _start(self) -> None:
        self.mesh_port, self.gateway_port, self.admin_port = free_port(), free_port(), free_port()
        ports_file = self.work / "bookinfo-ports.json"
        apps = self.group.start(
            "bookinfo",
            [sys.executable, "-m", "meshroute.bookinfo", "--mesh-port", str(self.mesh_port),
             "--ports-file", str(ports_file)],
        )  # fmt: skip
        apps.wait_until(ports_file.exists, timeout=START_TIMEOUT, what="listening")
        self.plan = read_plan(ports_file)
        shutil.copytree(self.base, self.config_dir / "bookinfo")
        (self.config_dir / "workloads").mkdir()
        (self.config_dir / "workloads" / "bookinfo-workload-entries.yaml").write_text(
            workload_entries(self.plan)
        )
        (self.config_dir / TASKS_FILE).parent.mkdir()
        self._write_tasks(())
        settings: dict[str, Any] = {
            "extproc": self.extproc, "mesh_port": self.mesh_port, "admin_port": self.admin_port,
            "bind_ports": {GATEWAY_PORT: self.gateway_port}, "engine": self.engine,
        }  # fmt: skip
        if self.engine == EMBEDDED:
            settings["live_dir"] = self.work / "live"
        else:
            start_serve(self.group, [self.config_dir], self.extproc, self.status_file)
        envoy_yaml = write_bootstrap([self.config_dir], self.work / "envoy.yaml", **settings)
        envoy = start_envoy(self.group, envoy_yaml, self.admin_port)
        if self.engine == EMBEDDED:
            argv = envoy_config_args([self.config_dir], **settings)
            self.updates = LiveUpdates([self.config_dir], argv, self.admin_port, lambda: envoy.log_tail(50))
        envoy.wait_until(self._serves_productpage, START_TIMEOUT, "routing /productpage")

    def _serves_productpage(self) -> bool:
        try:
            return self.get("/productpage", timeout=5).status == 200
        except (OSError, http.client.HTTPException):
            return False

    def close(self, keep_work: bool = False) -> None:
        """Stop every process (reverse start order); remove the work directory if we made it."""
        if self._started:
            self._started = False
            self.group.__exit__(None, None, None)
        if self._own_work and not keep_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def logs(self, lines: int = 20) -> str:
        """The last lines of every process log (for failure messages)."""
        return "\n".join(f"--- {p.name} ({p.log})\n{p.log_tail(lines)}" for p in self.group.procs)

    # === config ===

    def apply(self, files: Iterable[str | Path]) -> dict[str, Any]:
        """Make ``files`` (task YAML) the applied config on top of Bookinfo, replacing what an earlier
        ``apply`` set, and wait until serve (or, embedded, Envoy) has loaded it. Returns serve's
        status (embedded: :meth:`LiveUpdates.update`'s); a rejected config raises ``RuntimeError``
        with its errors."""
        paths = tuple(Path(f) for f in files)
        if self.updates is not None:
            self._write_tasks(paths)
            status = self.updates.update()
            if status["ok"] is not True:
                raise RuntimeError(f"rejected {[p.name for p in paths]}: {status['errors']}")
            return status
        before = self._status()
        self._write_tasks(paths)
        deadline = time.monotonic() + RELOAD_TIMEOUT
        while time.monotonic() < deadline:
            status = self._status()
            if _counter(status, "attempts") > _counter(before, "attempts") or _counter(
                status, "generation"
            ) > _counter(before, "generation"):
                if status.get("ok") is not True:
                    raise RuntimeError(f"serve rejected {[p.name for p in paths]}: {status.get('errors')}")
                return status
            time.sleep(0.02)
        raise ProcessError(f"serve did not reload within {RELOAD_TIMEOUT:.0f}s:\n{self.logs()}")

    def _write_tasks(self, paths: tuple[Path, ...]) -> None:
        # One file replaced atomically (written outside the watched directory first), so serve sees
        # one change per apply; the counter makes it a change even when the same files come again.
        self._applies += 1
        parts = [
            f"# meshroute stack apply #{self._applies}: {', '.join(p.name for p in paths) or 'nothing'}\n"
        ]
        parts += [f"---\n# from {p.name}\n{p.read_text()}\n" for p in paths]
        target = self.config_dir / TASKS_FILE
        tmp = self.work / f".{target.name}.tmp"
        tmp.write_text("".join(parts))
        tmp.replace(target)

    def _status(self) -> dict[str, Any]:
        return read_status(self.status_file)

    # === requests ===

    def get(
        self,
        path: str,
        user: str | None = None,
        host: str | None = None,
        headers: Mapping[str, str] | None = None,
        mesh: bool = False,
        timeout: float = 30.0,
    ) -> Response:
        """GET ``path`` through the ingress (or the mesh listener with ``mesh=True``), logged in as
        ``user`` (the session cookie productpage's ``POST /login`` sets)."""
        extra = dict(headers or {})
        if user:
            extra["cookie"] = f"user={user}"
        return self.request("GET", path, host=host, headers=extra, mesh=mesh, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        host: str | None = None,
        headers: Mapping[str, str] | None = None,
        mesh: bool = False,
        timeout: float = 30.0,
    ) -> Response:
        """One request on a fresh connection; ``seconds`` is the time until the whole body arrived."""
        port = self.mesh_port if mesh else self.gateway_port
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        sent = dict(headers or {})
        if host:
            sent["host"] = host
        start = time.monotonic()
        try:
            conn.request(method, path, body=body, headers=sent)
            resp = conn.getresponse()
            data = resp.read()
            seconds = time.monotonic() - start
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data.decode(), seconds)
        finally:
            conn.close()


def _counter(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    return int(value) if isinstance(value, int) else -1
