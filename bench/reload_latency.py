"""Stream latency of ``meshroute serve`` while it reloads a large config, no Envoy.

Run from the repository root: ``.venv/bin/python -m bench.reload_latency [ROUTES]``. Serve loads a
generated VirtualService with ROUTES routes (``scenarios.generated``, mix ``mixed``), a client opens
one stream after another (as Envoy does at one connection), then the config file is touched and the
client keeps going until serve reports the reload in its status file: p50/p99/max before and during.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.scenarios import generated
from bench.streams import HEADERS, PROCESS, headers_request, one_stream
from meshroute.procs import ProcessGroup
from meshroute.stack import read_status, start_serve


def _ms(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1e3


async def _drive(sock: Path, status: Path, config: Path) -> None:
    request = headers_request(authority="svc:8080", path="/p1/x", headers=HEADERS).SerializeToString()
    async with grpc.aio.insecure_channel(f"unix:{sock}") as channel:
        method = channel.stream_stream(PROCESS)

        async def one() -> float:
            start = time.perf_counter()
            await one_stream(method, request)
            return time.perf_counter() - start

        for _ in range(200):
            await one()
        steady = [await one() for _ in range(1000)]
        attempts = read_status(status)["attempts"]
        config.write_text(config.read_text() + "\n# touched\n")
        during: list[float] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and read_status(status).get("attempts", attempts) == attempts:
            during.append(await one())
        print(f"steady: p50 {statistics.median(steady) * 1e3:.2f} ms, p99 {_ms(steady, 0.99):.1f} ms, "
              f"max {max(steady) * 1e3:.1f} ms")  # fmt: skip
        print(f"during a {time.monotonic() - t0:.2f} s reload ({len(during)} streams): "
              f"p50 {statistics.median(during) * 1e3:.2f} ms, p99 {_ms(during, 0.99):.1f} ms, "
              f"max {max(during) * 1e3:.1f} ms")  # fmt: skip


def main(routes: int = 5000) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mr-reload-"))
    config = generated(routes, "mixed").write(tmp)
    sock, status = tmp / "serve.sock", tmp / "status.json"
    with ProcessGroup(tmp) as group:
        start_serve(group, [config], f"unix:{sock}", status, timeout=120)
        asyncio.run(_drive(sock, status, config))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
