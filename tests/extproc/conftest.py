"""Helpers for the ext_proc tests: request messages, configs on disk, a real server on loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute.extproc.reload import Holder, compile_routing
from meshroute.mesh import bookinfo_path

DATA = Path(bookinfo_path()).parent
TASKS = DATA / "tasks"
PROCESS = "/envoy.service.ext_proc.v3.ExternalProcessor/Process"


def headers_request(
    authority: str = "reviews:9080",
    path: str = "/reviews/0",
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    scheme: str = "http",
) -> pb.ProcessingRequest:
    """A ProcessingRequest with request_headers as Envoy sends it (values in raw_value)."""
    msg = pb.ProcessingRequest()
    hm = msg.request_headers.headers
    for key, value in [(":authority", authority), (":path", path), (":method", method), (":scheme", scheme)]:
        hm.headers.add(key=key, raw_value=value.encode())
    for key, value in headers:
        hm.headers.add(key=key, raw_value=value.encode())
    msg.request_headers.end_of_stream = True
    return msg


def mutation(resp: pb.ProcessingResponse) -> tuple[dict[str, list[tuple[str, bool]]], list[str]]:
    """(set headers: name -> [(value, append)], removed names) of a request_headers answer."""
    mut = resp.request_headers.response.header_mutation
    sets: dict[str, list[tuple[str, bool]]] = {}
    for opt in mut.set_headers:
        assert not opt.header.value, "Envoy reads raw_value; value must stay empty"
        sets.setdefault(opt.header.key, []).append((opt.header.raw_value.decode(), opt.append.value))
    return sets, list(mut.remove_headers)


def write_config(directory: Path, *task_files: str) -> Path:
    """Copy Bookinfo plus the named task files into ``directory`` (a config the tests may edit)."""
    directory.mkdir(parents=True, exist_ok=True)
    for src in (DATA / "bookinfo").rglob("*.yaml"):
        (directory / f"bookinfo-{src.parent.name}-{src.name}").write_text(src.read_text())
    for name in task_files:
        (directory / name).write_text((TASKS / name).read_text())
    return directory


class ThreadServer:
    """The real grpc.aio server (start_server) on its own event loop in a thread."""

    def __init__(self, holder: Holder, address: str = "127.0.0.1:0") -> None:
        from meshroute.extproc.server import start_server

        self.holder = holder
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(start_server(address, holder), self.loop)
        self.server, self.health, port = fut.result(10)
        self.target = f"127.0.0.1:{port}" if address.endswith(":0") else address

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self) -> None:
        self.call(self.server.stop(0))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def server_for() -> Iterator[Any]:
    """``server_for(*task_files)`` -> a running ThreadServer on Bookinfo plus those task files."""
    servers: list[ThreadServer] = []

    def start(*task_files: str, seed: int | None = 7) -> ThreadServer:
        paths = [str(DATA / "bookinfo"), *(str(TASKS / t) for t in task_files)]
        srv = ThreadServer(Holder(compile_routing(paths, seed)))
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.close()
