"""The proxyless client against real upstreams on 127.0.0.1 (tests/e2e/echo.py), no Envoy.

``bookinfo`` starts three echo servers standing for reviews v1, v2 and v3 (WorkloadEntries
selected by Bookinfo's ``reviews`` Service, as ``meshroute.stack`` does for the real apps) plus an
``httpbin``; ``mesh_with(*yaml)`` loads the shipped Bookinfo config with those endpoints and the
given task YAML on top (a later resource of the same kind/namespace/name replaces Bookinfo's).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import meshroute
from meshroute.bookinfo import workload_entries
from meshroute.client import AsyncMeshTransport, MeshRoute, MeshTransport
from tests.e2e.echo import Echo

TASKS = Path(meshroute.bookinfo_path()).parent / "tasks"
T = TypeVar("T")

HTTPBIN = """
apiVersion: v1
kind: Service
metadata: {name: httpbin, namespace: default, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000, targetPort: 8080}]
"""


@dataclass
class Bookinfo:
    servers: dict[str, Echo]  # "reviews-v1" ... "httpbin-v1"
    root: Path

    def mesh_with(self, *docs: str | Path) -> meshroute.Mesh:
        """The Bookinfo config + these endpoints + ``docs`` (YAML text or task files)."""
        work = self.root / f"config-{len(list(self.root.iterdir()))}"
        shutil.copytree(meshroute.bookinfo_path(), work / "bookinfo")
        tasks = work / "tasks"
        tasks.mkdir()
        plan = {name: echo.port for name, echo in self.servers.items()}
        (tasks / "0-endpoints.yaml").write_text(workload_entries(plan) + "---\n" + HTTPBIN)
        for i, doc in enumerate(docs, start=1):
            text = doc.read_text() if isinstance(doc, Path) else doc
            (tasks / f"{i}.yaml").write_text(text)
        return meshroute.load(work)

    def served(self, name: str, prefix: str = "/") -> int:
        return self.servers[name].count(prefix)


@pytest.fixture(scope="module")
def echo_servers() -> Iterator[dict[str, Echo]]:
    """The upstreams, shared by a module's tests (closing one takes up to half a second)."""
    servers: dict[str, Echo] = {}
    try:
        for name in ("reviews-v1", "reviews-v2", "reviews-v3", "httpbin-v1"):
            servers[name] = Echo(name)
        yield servers
    finally:
        for echo in servers.values():
            echo.close()


@pytest.fixture
def bookinfo(echo_servers: dict[str, Echo], tmp_path: Path) -> Bookinfo:
    for echo in echo_servers.values():
        with echo._lock:
            echo.requests.clear()
            echo._flaky.clear()
        echo.status = None
    return Bookinfo(echo_servers, tmp_path)


def route_of(response: httpx.Response) -> MeshRoute:
    info = response.extensions["meshroute"]
    assert isinstance(info, MeshRoute)
    return info


def server_of(response: httpx.Response) -> str:
    """The echo server that answered."""
    return response.headers["x-echo-server"]


class Caller:
    """One interface over a sync or an async client, so a test runs the same requests both ways.
    The async client lives on one event loop for the caller's life (its connections belong to
    it)."""

    def __init__(self, mode: str, mesh: meshroute.Mesh, **kwargs: Any) -> None:
        self.mode = mode
        self.transport: MeshTransport | AsyncMeshTransport
        if mode == "sync":
            self.transport = MeshTransport(mesh, **kwargs)
            self._client = httpx.Client(transport=self.transport)
        else:
            self.transport = AsyncMeshTransport(mesh, **kwargs)
            self._loop = asyncio.new_event_loop()
            self._aclient = httpx.AsyncClient(transport=self.transport)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    def many(self, requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
        """GET each ``(url, headers)`` in order."""
        if self.mode == "sync":
            return [_read(self._client.get(url, headers=headers)) for url, headers in requests]

        async def go() -> list[httpx.Response]:
            out = []
            for url, headers in requests:
                response = await self._aclient.get(url, headers=headers)
                await response.aread()
                out.append(response)
            return out

        return self.run(go())

    def get(self, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.many([(url, headers or {})])[0]

    def post(self, url: str, content: bytes | Iterator[bytes]) -> httpx.Response:
        """POST ``content`` (an iterator: a streamed body, async in async mode)."""
        if self.mode == "sync":
            return _read(self._client.post(url, content=content))

        async def go() -> httpx.Response:
            body = content if isinstance(content, bytes) else _aiter(list(content))
            response = await self._aclient.post(url, content=body)
            await response.aread()
            return response

        return self.run(go())

    def concurrent(self, url: str, n: int) -> list[tuple[httpx.Response, float]]:
        """``n`` GETs started together; each response with its own duration in seconds."""
        if self.mode == "sync":
            barrier = threading.Barrier(n)

            def one(_: int) -> tuple[httpx.Response, float]:
                barrier.wait()
                started = time.monotonic()
                response = _read(self._client.get(url))
                return response, time.monotonic() - started

            with ThreadPoolExecutor(n) as pool:
                return list(pool.map(one, range(n)))

        async def one_async() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await self._aclient.get(url)
            await response.aread()
            return response, time.monotonic() - started

        async def go() -> list[tuple[httpx.Response, float]]:
            return list(await asyncio.gather(*(one_async() for _ in range(n))))

        return self.run(go())

    def close(self) -> None:
        if self.mode == "sync":
            self._client.close()
        else:
            self.run(self._aclient.aclose())
            self._loop.close()


async def _aiter(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _read(response: httpx.Response) -> httpx.Response:
    response.read()
    return response


@pytest.fixture
def caller(mode: str) -> Iterator[Callable[..., Caller]]:
    """``caller(mesh, **transport_kwargs)``: a Caller in this test's mode, closed at the end."""
    made: list[Caller] = []

    def make(mesh: meshroute.Mesh, **kwargs: Any) -> Caller:
        made.append(Caller(mode, mesh, **kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)
