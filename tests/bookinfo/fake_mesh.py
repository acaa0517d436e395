"""A stand-in for Envoy's mesh listener: routes by ``Host`` to one app version, can delay or abort.

Enough to test the Bookinfo apps alone; the real thing (Envoy + serve) is tested in tests/e2e.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from meshroute.bookinfo.base import mesh_get
from meshroute.procs import LOOPBACK


@dataclass
class Fault:
    delay: float = 0.0
    abort: int = 0  # HTTP status answered without calling the app; 0 = none


@dataclass
class Call:
    host: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeMesh:
    """``routes`` maps ``Host`` (``reviews:9080``) to ``app-version``; ``ports`` is the apps' plan."""

    routes: dict[str, str] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer((LOOPBACK, 0), _handler(self))
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def reset(self, **routes: str) -> None:
        """Route each app to v1 unless ``routes`` says otherwise (``reviews="reviews-v2"``)."""
        with self._lock:
            self.routes = {
                f"{app}:9080": f"{app}-v1" for app in ("productpage", "details", "reviews", "ratings")
            }
            self.routes.update({f"{app}:9080": target for app, target in routes.items()})
            self.faults = {}
            self.calls = []

    def calls_to(self, host: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.host == host]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(mesh: FakeMesh) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            host = self.headers.get("host", "")
            headers = {k.lower(): v for k, v in self.headers.items()}
            with mesh._lock:
                mesh.calls.append(Call(host, self.path, headers))
                target, fault = mesh.routes.get(host), mesh.faults.get(host, Fault())
            time.sleep(fault.delay)
            status, body = fault.abort, b"fault filter abort"
            if not status and target is None:
                status, body = 404, b""
            elif not status:
                forwarded = {k: v for k, v in headers.items() if k not in ("host", "connection")}
                reply = mesh_get(mesh.ports[target or ""], host, self.path, forwarded, timeout=10)
                status, body = reply.status or 503, reply.body
            try:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the app's client timeout fired first
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
