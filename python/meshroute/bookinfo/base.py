"""What every Bookinfo app shares: an HTTP/1.1 keep-alive server on 127.0.0.1, and the client that
calls other apps through the mesh (Envoy's mesh listener, addressed by ``Host`` like a sidecar)."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from meshroute.procs import LOOPBACK

SERVED_BY = "x-bookinfo-served-by"
# Headers Bookinfo's apps copy from an incoming request onto the calls it causes; `end-user` is what
# lets a `ratings` VirtualService match on the user logged in at productpage.
PROPAGATED = (
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def propagated(self) -> dict[str, str]:
        return {name: self.headers[name] for name in PROPAGATED if name in self.headers}


@dataclass
class Response:
    status: int
    body: str
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data))


def not_found(name: str) -> Response:
    return json_response({"error": "not found", "served_by": name}, 404)


App = Callable[[Request], Response]


@dataclass(frozen=True)
class MeshReply:
    """A mesh call's outcome; ``status`` 0 means no HTTP answer (timeout, connection failure)."""

    status: int
    body: bytes
    error: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.status == 200 else None


def mesh_get(mesh_port: int, host: str, path: str, headers: Mapping[str, str], timeout: float) -> MeshReply:
    """GET ``path`` from ``host`` through the mesh listener on 127.0.0.1:``mesh_port``.

    ``timeout`` is the app's client timeout (like ``requests``' timeout in Bookinfo's productpage):
    how long to wait for the connection and then for the answer.
    """
    conn = http.client.HTTPConnection(LOOPBACK, mesh_port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host, **headers})
        resp = conn.getresponse()
        return MeshReply(resp.status, resp.read())
    except (OSError, http.client.HTTPException) as exc:
        return MeshReply(0, b"", f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


class AppServer(ThreadingHTTPServer):
    """One app on its own port; each connection is served by a daemon thread."""

    daemon_threads = True

    def __init__(self, name: str, app: App, port: int = 0) -> None:
        self.name = name
        self.app = app
        super().__init__((LOOPBACK, port), _Handler)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name=name, daemon=True)

    def start(self) -> AppServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: Envoy reuses its upstream connections
    # Headers and body are separate writes; with Nagle the body would wait for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: AppServer

    def _dispatch(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            resp = self.server.app(Request(self.command, url.path, query, headers, body))
        except Exception as exc:  # an app bug must still answer, as a 500
            resp = json_response({"error": repr(exc), "served_by": self.server.name}, 500)
        data = resp.body.encode()
        try:
            self.send_response(resp.status)
            self.send_header("content-type", resp.content_type)
            self.send_header("content-length", str(len(data)))
            self.send_header(SERVED_BY, self.server.name)
            for name, value in resp.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the caller gave up (its timeout) and closed the connection
            self.close_connection = True

    do_GET = do_POST = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass
