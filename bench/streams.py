"""What the ext_proc measurement scripts (``stream_cpu.py``, ``reload_latency.py``) share: a request
as Envoy sends it, and one ext_proc stream as Envoy opens it.

The ``ProcessingRequest`` builder is the tests' (``tests/extproc/conftest.py``), so the scripts send
exactly what the ext_proc tests check serve against.
"""

from __future__ import annotations

from typing import Any

import grpc

from tests.extproc.conftest import DATA, PROCESS, TASKS, headers_request

__all__ = ["BOOKINFO_TASK", "HEADERS", "PROCESS", "headers_request", "one_stream"]

# Bookinfo plus Istio's request-routing task (what `meshroute bench` loads by default).
BOOKINFO_TASK = [str(DATA / "bookinfo"), str(TASKS / "virtual-service-reviews-test-v2.yaml")]
# A curl request as it reaches serve through Envoy's mesh listener.
HEADERS = [
    ("user-agent", "curl/8.5.0"),
    ("accept", "*/*"),
    ("x-forwarded-proto", "http"),
    ("x-request-id", "7b1c5b8e-1f2a-4c1d-9a0e-3f1b2c3d4e5f"),
    ("end-user", "jason"),
    ("cookie", "a=1; session=xyz"),
    ("content-length", "0"),
    ("x-envoy-expected-rq-timeout-ms", "1000"),
]
MESH_METADATA = (("x-meshroute-listener", "mesh"),)


async def one_stream(method: Any, request: bytes) -> None:
    """One ext_proc stream as Envoy opens it: request_headers, the answer, half-close, status.

    ``method`` is ``channel.stream_stream(PROCESS)`` of a ``grpc.aio`` channel.
    """
    call = method(metadata=MESH_METADATA)
    await call.write(request)
    assert await call.read() is not grpc.aio.EOF
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK
