"""``meshroute run CONFIG...``: Envoy in front of the config, following every change of its files.

One command instead of ``serve`` + ``envoy-config`` + ``envoy``: the config is loaded, validated and
compiled; the live files (:mod:`meshroute.envoy.live`) are written to a work directory; Envoy
starts on a bootstrap that reads its listeners and clusters from them (and, with the extproc
engine, ``meshroute serve`` starts on the validated copy of the config). Then the CONFIG paths are
polled (every file's path, mtime and size, as serve's reloader does); a change is compiled in a
separate "spawn" process and the live files are rewritten in make-before-break order, waiting at
each step until Envoy (admin ``/stats``: ``update_success`` / ``update_rejected`` of CDS, LDS and
each ECDS resource grew; then no warming clusters or listeners, and each ECDS resource's
``config_reload`` grew: every worker has the new filter config) or serve (its status file) has
taken it. Routes, clusters, endpoints and Gateway listeners (HTTP and TCP) all follow, without
restarting Envoy. A
config that fails validation is reported on stderr and the last good files keep serving.
SIGTERM or Ctrl-C stops every process (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import re
import shutil
import signal
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from meshroute.envoy.cli import add_listener_arguments, options_from_args, with_lb_module
from meshroute.envoy.common import envoy_yaml
from meshroute.envoy.live import Acks, Compiled, LiveConfig, LiveError, LiveFiles, files_options
from meshroute.envoy.live_session import generate_live
from meshroute.envoy.options import EMBEDDED, Options
from meshroute.procs import LOOPBACK, ProcessError, ProcessGroup

POLL_INTERVAL = 0.2  # seconds between looks at the config files (serve's reloader under run too)
# serve watches one file, written by run, and run waits for it: a quick poll costs one stat.
SERVE_POLL = 0.05
ACK_TIMEOUT = 10.0  # seconds Envoy (or serve) gets to take one file
# Before removing clusters: Envoy posts a new filter config to its workers after the main thread
# counted it, so a stream starting in between may still use the previous routes.
DRAIN_GRACE = 0.1
_STATS = r"^(cluster_manager|listener_manager|extension_config_discovery)\."
_DONE = ("update_success", "update_rejected", "update_failure")
_BAD = ("update_rejected", "update_failure")
_WARMING = {"cds": "cluster_manager.warming_clusters", "lds": "listener_manager.total_listeners_warming"}
_PREFIX = {"cds": "cluster_manager.cds.", "lds": "listener_manager.lds."}
_FILE = {"cds": "cds.yaml", "lds": "lds.yaml"}
_LOG_PREFIX = re.compile(r"^(\s*\[[^]]*\])+\s*")  # Envoy's "[time][thread][level][logger] [file:line] "


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run Envoy on the config (with serve, or the embedded module) and follow config changes live",
    )
    p.add_argument("paths", nargs="+", metavar="CONFIG", help="Istio/Kubernetes YAML files or directories")
    add_listener_arguments(p, access_log="")
    p.add_argument("--workers", type=int, default=1, help="extproc engine: serve worker processes")
    p.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads (default 1)")
    p.add_argument(
        "--work-dir",
        metavar="DIR",
        help="live files, bootstrap and logs here, kept on exit (default: a temporary directory, removed)",
    )
    p.add_argument(
        "--poll-interval", type=float, default=POLL_INTERVAL, metavar="SECONDS", help="config polling (0.2)"
    )
    p.set_defaults(func=run, extproc="", files_dir=None, live_dir=None)
    return p


class EnvoyAcks(Acks):
    """Waits until Envoy took each file (admin stats), or serve its config (status files)."""

    def __init__(
        self,
        admin_port: int,
        *,
        status_files: Sequence[str] = (),
        log_tail: Callable[[], str] | None = None,
        timeout: float = ACK_TIMEOUT,
        grace: float = DRAIN_GRACE,
    ) -> None:
        self.url = f"http://{LOOPBACK}:{admin_port}/stats?filter={urllib.parse.quote(_STATS)}"
        self.status_files = list(status_files)
        self.log_tail = log_tail
        self.timeout = timeout
        self.grace = grace

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url, timeout=2) as resp:
            text = resp.read().decode()
        out: dict[str, int] = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    @contextlib.contextmanager
    def step(self, kind: str, names: Sequence[str] = ()) -> Iterator[None]:
        if kind == "serve":
            statuses = [_status(f) for f in self.status_files]
            yield
            self._serve_took(statuses)
            return
        if kind == "ecds":
            prefixes = {f"extension_config_discovery.http_filter.{n}.": f"ecds-{n}.yaml" for n in names}
        else:
            prefixes = {_PREFIX[kind]: _FILE[kind]}
        before = self.stats()
        yield
        now = self._until(lambda s: all(_count(s, p, _DONE) > _count(before, p, _DONE) for p in prefixes))
        if now is None:
            raise LiveError(f"Envoy did not read {', '.join(prefixes.values())} within {self.timeout:.0f} s")
        rejected = [f for p, f in prefixes.items() if _count(now, p, _BAD) > _count(before, p, _BAD)]
        if rejected:
            raise LiveError(f"Envoy rejected {', '.join(rejected)}{self._why()}")
        if kind == "ecds" and self._until(lambda s: _reloaded(s, before, prefixes)) is None:
            raise LiveError(
                f"Envoy's workers did not take {', '.join(prefixes.values())} within {self.timeout:.0f} s"
            )
        if kind in _WARMING and self._until(lambda s: s.get(_WARMING[kind], 0) == 0) is None:
            raise LiveError(f"Envoy still warms {kind} resources after {self.timeout:.0f} s")

    def drain(self) -> None:
        time.sleep(self.grace)

    def _until(self, done: Callable[[dict[str, int]], bool]) -> dict[str, int] | None:
        deadline = time.monotonic() + self.timeout
        while True:
            stats = self.stats()
            if done(stats):
                return stats
            if time.monotonic() > deadline:
                return None
            time.sleep(0.01)

    def _serve_took(self, before: list[dict[str, Any]]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            now = [_status(f) for f in self.status_files]
            if all(_int(n, "attempts") > _int(b, "attempts") for n, b in zip(now, before, strict=True)):
                break
            if time.monotonic() > deadline:
                raise LiveError(f"serve did not reload within {self.timeout:.0f} s")
            time.sleep(0.01)
        errors = [e for n in now if n.get("ok") is not True for e in n.get("errors") or ["rejected"]]
        if errors:
            raise LiveError("serve rejected the config: " + "; ".join(map(str, errors)))

    def _why(self) -> str:
        """The last rejection Envoy logged (its log level is warn: these are the lines there)."""
        lines = (self.log_tail() if self.log_tail else "").splitlines()
        found = [line for line in lines if re.search(r"rejected|update failure", line)]
        # "[time][thread][warning][config] [source/...cc:81] Filesystem config update rejected: ..."
        return ": " + _LOG_PREFIX.sub("", found[-1]) if found else " (see Envoy's log)"


def _reloaded(now: dict[str, int], before: dict[str, int], prefixes: Iterable[str]) -> bool:
    """Every filter config's ``config_reload`` grew: Envoy counts it once each worker has the new
    filter config (``update_success`` is counted when the main thread accepted it, before the
    workers have it), so from then on every new stream decides with it."""
    return all(now.get(p + "config_reload", 0) > before.get(p + "config_reload", 0) for p in prefixes)


def _count(stats: dict[str, int], prefix: str, keys: Sequence[str]) -> int:
    return sum(stats.get(prefix + k, 0) for k in keys)


def _status(path: str) -> dict[str, Any]:
    from meshroute.stack import read_status

    return read_status(path)


def _int(status: dict[str, Any], key: str) -> int:
    value = status.get(key)
    return value if isinstance(value, int) else -1


class _Compiler:
    """:func:`meshroute.envoy.live.generate` in one long-lived "spawn" process, as serve's reloader
    compiles (``extproc/reload.py``): a crash or a runaway parse there cannot take Envoy down with
    this process, and the memory of every compile is the child's."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the process now (it imports meshroute once), so the first change is quick."""
        self._executor().submit(_warm)

    def __call__(
        self, paths: Sequence[str], options: Options, serve_copy: bool, base: tuple[str, int] | None = None
    ) -> Compiled:
        """The config now; ``base``: the route table Envoy has (an edit of it may come back as a
        patch, docs/incremental.md)."""
        try:
            return self._executor().submit(generate_live, paths, options, serve_copy, base).result()
        except BrokenProcessPool:
            self._pool = None  # it died (killed, out of memory): a new one next time
            raise

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_ignore_sigint)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole terminal process group: this process stops when its parent says so.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm() -> None:
    import meshroute.envoy.live_session  # noqa: F401


def _say(message: str, *, error: bool = False) -> None:
    print(f"meshroute run: {message}", file=sys.stderr if error else sys.stdout, flush=True)


def listening(config: LiveConfig, options: Options) -> list[str]:
    """One line per listener (where it binds, what it is) and the admin interface."""
    lines = []
    for listener in config.listeners:
        address = listener["address"]["socket_address"]
        where = f"{address['address']}:{address['port_value']}"
        tcp = all(
            f.get("name") == "envoy.filters.network.tcp_proxy"
            for chain in listener["filter_chains"]
            for f in chain["filters"]
        )
        name = listener["name"]
        if name.startswith("gateway_"):
            lines.append(f"  gateway port {name[len('gateway_') :]:<6} {where} ({'tcp' if tcp else 'http'})")
        else:
            lines.append(f"  mesh listener     {where} (routes by Host, as a sidecar)")
    lines.append(f"  admin             {options.bind_address}:{options.admin_port}")
    return lines


def run(args: argparse.Namespace) -> int:
    from meshroute.envoy.module import ModuleNotBuiltError, module_path

    if args.workers < 1 or args.concurrency < 1:
        _say("--workers and --concurrency must be >= 1", error=True)
        return 2
    if args.work_dir and any(_inside(Path(args.work_dir), Path(p)) for p in args.paths):
        _say("--work-dir must not be inside a CONFIG path (run would read its own files)", error=True)
        return 2
    module_file = None
    if args.engine == EMBEDDED:
        try:
            module_file = module_path()
        except ModuleNotBuiltError as exc:
            _say(str(exc), error=True)
            return 1
    own_work = args.work_dir is None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="meshroute-run-")).resolve()
    args.extproc = f"unix:{work}/extproc.sock"
    try:
        try:
            options = files_options(options_from_args(args), work / "live")
        except ValueError as exc:
            _say(str(exc), error=True)
            return 2
        try:
            options = with_lb_module(options)
        except ModuleNotBuiltError as exc:
            _say(str(exc), error=True)
            return 1
        with ProcessGroup(work / "logs") as group:  # SIGTERM becomes KeyboardInterrupt from here
            return _run(args, options, work, group, module_file)
    except KeyboardInterrupt:
        _say("stopped")
        return 0
    except ProcessError as exc:  # Envoy or serve did not start (a port in use...): already stopped
        _say(str(exc), error=True)
        return 1
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)


def _inside(path: Path, root: Path) -> bool:
    return root.is_dir() and path.resolve().is_relative_to(root.resolve())


def _run(
    args: argparse.Namespace, options: Options, work: Path, group: ProcessGroup, module_file: Path | None
) -> int:
    from meshroute.envoy.process import start_envoy
    from meshroute.extproc.reload import snapshot  # serve's own file watching

    paths = [str(p) for p in args.paths]
    extproc = options.engine != EMBEDDED
    compiler = _Compiler()
    try:
        seen = snapshot(paths)
        compiler.start()
        first = compiler(paths, options, extproc)
        if first.report:
            print(first.report, file=sys.stderr if first.config is None else sys.stdout, flush=True)
        if first.config is None:
            return 1
        files = LiveFiles(
            work / "live", engine=options.engine, dynamic=True, module_file=module_file, seed=args.seed
        )
        files.apply(first.config)
        bootstrap = work / "envoy.yaml"
        bootstrap.write_text(envoy_yaml(files.bootstrap(first.config)))
        status_files: list[str] = []
        if extproc:
            status_files = _start_serve(args, options, work, group, files)
        envoy = start_envoy(group, bootstrap, options.admin_port, concurrency=args.concurrency)
        _say(f"engine {options.engine}, generation {files.generation}, listening:")
        print("\n".join(listening(first.config, options)), flush=True)
        _say(f"watching {', '.join(paths)}; files in {work}")
        acks = EnvoyAcks(options.admin_port, status_files=status_files, log_tail=lambda: envoy.log_tail(50))
        while True:
            time.sleep(args.poll_interval)
            for proc in group.procs:
                if not proc.alive():
                    _say(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}", error=True)
                    return 1
            current = snapshot(paths)
            if current == seen:
                continue
            seen = current
            _follow(compiler, paths, options, extproc, files, acks)
    finally:
        compiler.close()


def _start_serve(
    args: argparse.Namespace, options: Options, work: Path, group: ProcessGroup, files: LiveFiles
) -> list[str]:
    from meshroute.extproc import status_paths
    from meshroute.stack import start_serve

    status = str(work / "serve-status.json")
    start_serve(
        group, [files.serve_config], args.extproc, status, workers=args.workers,
        reload_interval=min(args.poll_interval, SERVE_POLL),
    )  # fmt: skip
    return status_paths(status, args.workers)


def _follow(
    compiler: _Compiler, paths: list[str], options: Options, serve_copy: bool, files: LiveFiles, acks: Acks
) -> None:
    """One config change: compile, then rewrite the live files; every failure keeps the last good."""
    start = time.monotonic()
    try:
        compiled = compiler(paths, options, serve_copy, files.ir_tag)
    except Exception as exc:  # the compile process died: keep serving, try again on the next change
        _say(f"config change not compiled ({type(exc).__name__}: {exc}); still serving "
             f"generation {files.generation}", error=True)  # fmt: skip
        return
    if compiled.config is None:
        _say(f"config change rejected; still serving generation {files.generation}:", error=True)
        print(compiled.report, file=sys.stderr, flush=True)
        return
    if compiled.report:
        print(compiled.report, flush=True)
    try:
        applied = files.apply(compiled.config, acks)
    except (LiveError, OSError) as exc:
        _say(f"config change not applied: {exc}", error=True)
        return
    if applied.changed:
        seconds = time.monotonic() - start
        _say(f"generation {applied.generation} applied in {seconds:.2f} s: {applied.summary()}")
        if any(applied.listeners):
            print("\n".join(listening(compiled.config, options)), flush=True)
