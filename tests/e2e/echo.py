"""A real HTTP upstream for end-to-end tests: echoes what it received, on demand fails or sleeps.

Paths (anything else echoes with 200):
- ``/status/<code>``: answers that status.
- ``/sleep/<ms>``: waits, then echoes.
- ``/sleep-on/<name>/<ms>``: waits on the echo server called ``name`` only (an uneven upstream).
- ``/flaky/<key>``: 503 on the first request for ``key``, 200 after — a retry recovers it.
- ``/fail-on/<name>``: 503 from the echo server called ``name``, 200 from the others.
Every answer is JSON ``{"server", "method", "path", "headers"}`` with ``x-echo-server`` and
``x-upstream-drop`` response headers (the latter for response-header removal tests). Setting
``Echo.status`` makes the server answer that status to every request (an endpoint going bad).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from meshroute.procs import LOOPBACK


class Echo:
    """One echo server on 127.0.0.1 in a daemon thread; ``requests`` logs (method, path, headers)."""

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.status: int | None = None  # set: every request gets this status
        self._flaky: set[str] = set()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((LOOPBACK, port), _handler(self))
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, prefix: str) -> int:
        with self._lock:
            return sum(1 for _, path, _ in self.requests if path.startswith(prefix))

    def first_attempt(self, key: str) -> bool:
        with self._lock:
            if key in self._flaky:
                return False
            self._flaky.add(key)
            return True

    def record(self, method: str, path: str, headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append((method, path, headers))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _fails(echo: Echo, parts: list[str]) -> bool:
    if len(parts) < 2:
        return False
    return (parts[0] == "flaky" and echo.first_attempt(parts[1])) or (
        parts[0] == "fail-on" and parts[1] == echo.name
    )


def _handler(echo: Echo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes; with Nagle the body would wait for a delayed ACK.
        disable_nagle_algorithm = True

        def handle(self) -> None:
            # Envoy closes the connection when a route timeout fires while we sleep: not an error.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def _read_body(self) -> None:
            # Read the whole body, chunked included: bytes left unread on a kept-alive connection
            # would be parsed as the next request Envoy sends on it (a 502 protocol error there).
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return
                    self.rfile.read(size + 2)  # the chunk and its CRLF
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)

        def _answer(self) -> None:
            self._read_body()
            headers: dict[str, str] = {}
            for k, v in self.headers.items():  # repeated headers are joined, as HTTP allows
                headers[k.lower()] = f"{headers[k.lower()]},{v}" if k.lower() in headers else v
            echo.record(self.command, self.path, headers)
            status = 200
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[0] == "status" and len(parts) > 1 and parts[1].isdigit():
                status = int(parts[1])
            elif parts[0] == "sleep" and len(parts) > 1 and parts[1].isdigit():
                time.sleep(min(int(parts[1]), 10_000) / 1000)
            elif parts[0] == "sleep-on" and len(parts) > 2 and parts[1] == echo.name and parts[2].isdigit():
                time.sleep(min(int(parts[2]), 10_000) / 1000)
            elif _fails(echo, parts):
                status = 503
            if echo.status is not None:
                status = echo.status
            body: dict[str, Any] = {
                "server": echo.name,
                "method": self.command,
                "path": self.path,
                "headers": headers,
            }
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("x-echo-server", echo.name)
            self.send_header("x-upstream-drop", "present")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
