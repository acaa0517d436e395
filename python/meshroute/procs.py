"""Child processes that must not outlive us: Envoy, ext_proc workers, demo upstreams.

The demo, the end-to-end tests and the Envoy benchmarks all start several servers on 127.0.0.1 and
must stop every one of them whatever happens (test failure, Ctrl-C, SIGTERM). ``ProcessGroup``
owns them; leaving its ``with`` block stops them in reverse start order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

LOOPBACK = "127.0.0.1"


class ProcessError(RuntimeError):
    """A child process died or did not become ready; the message includes its log tail."""


def wait_until(ready: Callable[[], object], timeout: float = 15.0, what: str = "ready") -> None:
    """Poll ``ready`` until it returns something true; ``TimeoutError`` naming ``what`` after
    ``timeout`` seconds. Waiting for the condition itself, never a fixed sleep, is how the demo and
    the tests wait (a status-file generation, an Envoy stat, a port, an answer).

    >>> wait_until(lambda: True)
    >>> wait_until(lambda: False, timeout=0.05, what="never")
    Traceback (most recent call last):
    ...
    TimeoutError: not never after 0.05s
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not {what} after {timeout:g}s")
        time.sleep(0.02)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str) -> bool:
    """GET ``url`` answers 200 (used for Envoy's admin ``/ready``)."""
    try:
        with urllib.request.urlopen(url, timeout=0.5) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


class Proc:
    """One child process with its output in a log file."""

    def __init__(self, name: str, args: Sequence[str], log: Path, env: Mapping[str, str] | None = None):
        self.name = name
        self.args = list(args)
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, **(env or {})}
        # A new session: Ctrl-C in the terminal reaches only us, and we stop children in order.
        self.popen = subprocess.Popen(
            self.args,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], object], timeout: float = 15.0, what: str = "ready") -> None:
        """:func:`wait_until` that fails fast, with the log tail, if the process exits first."""

        def alive_and_ready() -> bool:
            if not self.alive():
                raise ProcessError(
                    f"{self.name} exited with {self.popen.returncode} before {what}:\n{self.log_tail()}"
                )
            return bool(ready())

        try:
            wait_until(alive_and_ready, timeout, what)
        except TimeoutError:
            raise ProcessError(f"{self.name} not {what} after {timeout:.0f}s:\n{self.log_tail()}") from None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; also kills the child's own children."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Workers forked by the child may still hold the group; make sure none survive.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log_file.close()
        return self.popen.returncode


class ProcessGroup:
    """Starts processes and stops all of them on exit, on an exception and on SIGINT/SIGTERM."""

    def __init__(self, log_dir: Path):
        self.log_dir = Path(log_dir)
        self.procs: list[Proc] = []
        self._old_handlers: dict[int, object] = {}

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(name, args, self.log_dir / f"{name}.log", env)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        while self.procs:
            self.procs.pop().stop()

    def __enter__(self) -> ProcessGroup:
        # SIGTERM becomes KeyboardInterrupt so `with` blocks unwind and cleanup runs.
        if _main_thread():
            self._old_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def group(log_dir: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(log_dir) as g:
        yield g
