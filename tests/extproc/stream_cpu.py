"""Server CPU per ext_proc stream: ``meshroute serve`` vs a do-nothing generic handler (not a test).

Run: ``.venv/bin/python -m tests.extproc.stream_cpu [STREAMS] [REPS]``. Both servers run at once on
unix sockets; a grpc.aio client opens one stream per request, as Envoy does (write request_headers,
read the answer, half-close), at concurrency 1 and 32, interleaving the two servers. CPU is the
server process's utime+stime from /proc over the timed streams.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from meshroute.procs import Proc

from .conftest import DATA, PROCESS, TASKS, headers_request

NOTHING = """
import asyncio, grpc, sys
async def process(_it, ctx):
    await ctx.read()
    await ctx.write(b"\\x0a\\x00")
async def main():
    s = grpc.aio.server()
    h = grpc.stream_stream_rpc_method_handler(process)
    s.add_registered_method_handlers("envoy.service.ext_proc.v3.ExternalProcessor", {"Process": h})
    s.add_insecure_port(sys.argv[1]); await s.start(); await s.wait_for_termination()
asyncio.run(main())
"""
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


MESH_METADATA = (("x-meshroute-listener", "mesh"),)


async def one_stream(method: Any, request: bytes) -> None:
    """One ext_proc stream as Envoy opens it: request_headers, the answer, half-close, status."""
    call = method(metadata=MESH_METADATA)
    await call.write(request)
    assert await call.read() is not grpc.aio.EOF
    await call.done_writing()
    assert await call.code() == grpc.StatusCode.OK


async def drive(target: str, pid: int, streams: int, concurrency: int) -> tuple[float, float]:
    request = headers_request(headers=HEADERS).SerializeToString()
    async with grpc.aio.insecure_channel(target) as channel:
        method = channel.stream_stream(PROCESS)

        async def one() -> None:
            await one_stream(method, request)

        for _ in range(200):  # warm-up
            await one()
        sem = asyncio.Semaphore(concurrency)

        async def limited() -> None:
            async with sem:
                await one()

        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(limited() for _ in range(streams)))
        elapsed, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    return streams / elapsed, cpu / streams * 1e6


def main(streams: int = 3000, reps: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mr-bench-"))
    ours = f"unix:{tmp}/serve.sock"
    base = f"unix:{tmp}/nothing.sock"
    config = [str(DATA / "bookinfo"), str(TASKS / "virtual-service-reviews-test-v2.yaml")]
    command = [sys.executable, "-m", "meshroute", "serve", *config, "--listen", ours]
    # SERVER_GRPC_EXPERIMENTS: grpc experiments for the two servers only (the client keeps its own).
    env = {"GRPC_EXPERIMENTS": os.environ.get("SERVER_GRPC_EXPERIMENTS", "")}
    serve = Proc("serve", command, tmp / "s.log", env)
    nothing = Proc("nothing", [sys.executable, "-c", NOTHING, base], tmp / "n.log", env)
    try:
        for proc, sock in ((serve, tmp / "serve.sock"), (nothing, tmp / "nothing.sock")):
            proc.wait_until(sock.exists, what="listening")
        time.sleep(0.5)
        for concurrency in (1, 32):
            for rep in range(reps):
                for name, proc, target in (("meshroute", serve, ours), ("do-nothing", nothing, base)):
                    rate, us = asyncio.run(drive(target, proc.pid, streams, concurrency))
                    print(f"c={concurrency:<3} rep {rep} {name:<10} {rate:6.0f} streams/s  {us:5.0f} µs CPU")
    finally:
        serve.stop()
        nothing.stop()


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
