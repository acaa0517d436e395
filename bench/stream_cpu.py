"""Server CPU per ext_proc stream: ``meshroute serve`` vs a do-nothing generic handler, no Envoy.

Run from the repository root: ``.venv/bin/python -m bench.stream_cpu [STREAMS] [REPS]``. Both
servers run at once on unix sockets; a grpc.aio client opens one stream per request, as Envoy does
(write request_headers, read the answer, half-close), at concurrency 1 and 32, interleaving the two
servers. CPU is the utime+stime of each server's process session (``meshroute.bench.cpu``) over the
timed streams. ``SERVER_GRPC_EXPERIMENTS`` sets ``GRPC_EXPERIMENTS`` for the two servers only (the
client keeps its own).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.streams import BOOKINFO_TASK, HEADERS, PROCESS, headers_request, one_stream
from meshroute.bench.cpu import session_cpu_seconds
from meshroute.procs import ProcessGroup

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


async def drive(target: str, pid: int, streams: int, concurrency: int) -> tuple[float, float]:
    """(streams per second, server CPU µs per stream) over ``streams`` streams after a warm-up."""
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

        cpu0, t0 = session_cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(limited() for _ in range(streams)))
        elapsed, cpu = time.perf_counter() - t0, session_cpu_seconds(pid) - cpu0
    return streams / elapsed, cpu / streams * 1e6


def main(streams: int = 3000, reps: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mr-bench-"))
    ours, base = tmp / "serve.sock", tmp / "nothing.sock"
    env = {"GRPC_EXPERIMENTS": os.environ.get("SERVER_GRPC_EXPERIMENTS", "")}
    with ProcessGroup(tmp) as group:
        serve_cmd = [sys.executable, "-m", "meshroute", "serve", *BOOKINFO_TASK, "--listen", f"unix:{ours}"]
        serve = group.start("serve", serve_cmd, env)
        nothing = group.start("nothing", [sys.executable, "-c", NOTHING, f"unix:{base}"], env)
        for proc, sock in ((serve, ours), (nothing, base)):
            proc.wait_until(sock.exists, what="listening")
        for concurrency in (1, 32):
            for rep in range(reps):
                for name, proc, sock in (("meshroute", serve, ours), ("do-nothing", nothing, base)):
                    rate, us = asyncio.run(drive(f"unix:{sock}", proc.pid, streams, concurrency))
                    print(f"c={concurrency:<3} rep {rep} {name:<10} {rate:6.0f} streams/s  {us:5.0f} µs CPU")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
