"""The transports send upstream requests straight to httpx's connection pool when the inner
transport is a plain ``httpx.HTTPTransport`` / ``AsyncHTTPTransport`` (the default), and through
``handle_request`` otherwise; either way the caller sees httpx's own errors and responses."""

from __future__ import annotations

from collections.abc import Callable

import httpcore
import httpx

from meshroute.client import AsyncMeshTransport, MeshTransport
from meshroute.client.transport import _pool_of, _transport_error
from tests.client.conftest import Bookinfo, Caller, route_of, server_of

REVIEWS = "http://reviews:9080/reviews/0"


def test_the_pool_is_used_only_behind_httpx_own_transports(bookinfo: Bookinfo) -> None:
    mesh = bookinfo.mesh_with()

    class Mine(httpx.HTTPTransport):
        pass

    assert MeshTransport(mesh)._pool is not None
    assert AsyncMeshTransport(mesh)._pool is not None
    assert MeshTransport(mesh, transport=Mine())._pool is None, "a subclass may send otherwise"
    assert _pool_of(httpx.MockTransport(lambda r: httpx.Response(200))) is None


def test_httpcore_errors_become_httpx_errors() -> None:
    for core, expected in [
        (httpcore.ConnectError("refused"), httpx.ConnectError),
        (httpcore.ConnectTimeout("slow"), httpx.ConnectTimeout),
        (httpcore.ReadTimeout("slow"), httpx.ReadTimeout),
        (httpcore.RemoteProtocolError("bad"), httpx.RemoteProtocolError),
        (httpcore.PoolTimeout("full"), httpx.PoolTimeout),
    ]:
        error = _transport_error(core)
        assert type(error) is expected and str(error) == str(core) and error.__cause__ is core
    assert _transport_error(ValueError("not httpcore's")) is None


def test_both_paths_route_alike(bookinfo: Bookinfo, caller: Callable[..., Caller]) -> None:
    """The same requests through the pool (default) and through a transport that is not httpx's
    own: the same endpoints, the same answers."""
    mesh = bookinfo.mesh_with()

    class Mine(httpx.HTTPTransport):
        pass

    class MineAsync(httpx.AsyncHTTPTransport):
        pass

    direct = caller(mesh, seed=3)
    inner = Mine() if direct.mode == "sync" else MineAsync()
    wrapped = caller(mesh, seed=3, transport=inner)
    for c in (direct, wrapped):
        got = c.many([(REVIEWS, {})] * 3)
        assert [r.status_code for r in got] == [200] * 3
        assert {server_of(r) for r in got} == {"reviews-v1"}
        assert route_of(got[0]).attempts == 1
        posted = c.post("http://httpbin:8000/post", content=iter([b"a", b"b"]))
        assert posted.status_code == 200
