"""PEAK_EWMA against LEAST_REQUEST with one slow endpoint among several, through the proxyless
client (issue 10 part 5; bench/README.md, "PEAK_EWMA against LEAST_REQUEST").

Run from the repository root::

    .venv/bin/python -m bench.peak_ewma [--endpoints 5] [--slow-ms 50] [--rate 250]
                                         [--requests 1500] [--rounds 3] [--seed 1] [--json FILE]

ENDPOINTS echo servers (tests/e2e/echo.py) run in a process of their own on 127.0.0.1 (in this one
they would compete with the client for the GIL); every request asks for ``/sleep-on/e0/SLOW_MS``,
so endpoint ``e0`` answers SLOW_MS late and the others at once. Two ServiceEntries name the same
endpoints, one with a DestinationRule ``simple: LEAST_REQUEST`` and one with the annotation
``meshroute.io/load-balancer: PEAK_EWMA``; one ``AsyncMeshTransport`` per policy (seeded; its
connections to the endpoints all kept, up to 1000), warmed up with 100 requests, then ROUNDS
interleaved rounds of REQUESTS requests each. Requests arrive open loop, as independent callers
would: at exponentially distributed intervals (RATE per second on average, the same seeded arrival
times for both policies), each sent when its time comes whatever is still in flight. (A closed
loop — N callers back to back — saturates this 2-core machine's CPU instead, and the latency it
measures is then mostly the client's own queueing.) Reported per policy, over every round: the
latency of each request from its send to its whole answer (p50, p90, p99, p99.9, max), the slow
endpoint's share, and the most requests in flight. Bounded: 2 × ROUNDS × REQUESTS requests, about
2 × ROUNDS × REQUESTS / RATE seconds, plus the warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import meshroute
from meshroute.client import AsyncMeshTransport

REPO = Path(__file__).resolve().parents[1]
# The upstreams: one echo server per name, ports printed on one line; they stop when stdin closes.
ECHOES = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tests.e2e.echo import Echo; "
    "servers = [Echo(name) for name in sys.argv[2:]]; "
    "print(' '.join(str(s.port) for s in servers), flush=True); sys.stdin.read()"
)
POLICIES = {
    "LEAST_REQUEST": ("lr.bench.test", "trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}", ""),
    "PEAK_EWMA": ("ewma.bench.test", "{}", "annotations: {meshroute.io/load-balancer: PEAK_EWMA}"),
}
WARM_UP = 100


def config(ports: list[int]) -> str:
    endpoints = ", ".join(f"{{address: 127.0.0.1, ports: {{http: {p}}}}}" for p in ports)
    docs = []
    for name, (host, spec, extra) in POLICIES.items():
        meta = f"{{name: {name.lower()}, namespace: default{', ' + extra if extra else ''}}}"
        docs.append(f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name.lower()}, namespace: default}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{endpoints}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {meta}
spec: {{host: {host}{", " + spec if spec != "{}" else ""}}}
""")
    return "---\n".join(docs)


@dataclass
class Result:
    policy: str
    latencies: list[float] = field(default_factory=list)  # seconds, every timed request
    servers: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # wall clock of the timed rounds
    peak_in_flight: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    def summary(self) -> dict[str, float | int | str]:
        n = len(self.latencies)
        return {
            "policy": self.policy,
            "requests": n,
            "slow_share": round(self.servers["e0"] / n, 4),
            "p50_ms": round(self.percentile(0.50) * 1e3, 2),
            "p90_ms": round(self.percentile(0.90) * 1e3, 2),
            "p99_ms": round(self.percentile(0.99) * 1e3, 2),
            "p999_ms": round(self.percentile(0.999) * 1e3, 2),
            "max_ms": round(max(self.latencies) * 1e3, 2),
            "rps": round(n / self.seconds, 1),
            "peak_in_flight": self.peak_in_flight,
        }


async def _round(
    client: httpx.AsyncClient, url: str, requests: int, rate: float, rng: random.Random, result: Result | None
) -> None:
    """``requests`` GETs of ``url`` arriving open loop at ``rate`` per second on average; timed into
    ``result`` (None: warm-up)."""
    in_flight = [0]

    async def one() -> None:
        in_flight[0] += 1
        if result is not None:
            result.peak_in_flight = max(result.peak_in_flight, in_flight[0])
        started = time.perf_counter()
        response = await client.get(url)
        took = time.perf_counter() - started
        in_flight[0] -= 1
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
        if result is not None:
            result.latencies.append(took)
            result.servers[response.headers["x-echo-server"]] += 1

    tasks = []
    begin = due = time.perf_counter()
    for _ in range(requests):
        due += rng.expovariate(rate)
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    if result is not None:
        result.seconds += time.perf_counter() - begin


async def _run(mesh: meshroute.Mesh, args: argparse.Namespace) -> list[Result]:
    # Connections to the endpoints are kept (httpx keeps 20 by default, for all hosts together):
    # beyond that every request would open one, and a burst would slow itself down.
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    clients = {
        name: httpx.AsyncClient(
            transport=AsyncMeshTransport(
                mesh, seed=args.seed, transport=httpx.AsyncHTTPTransport(limits=limits)
            )
        )
        for name in POLICIES
    }
    path = f"/sleep-on/e0/{args.slow_ms}"
    results = {name: Result(name) for name in POLICIES}
    arrivals = {name: random.Random(args.seed) for name in POLICIES}  # the same arrival times
    try:
        for name, client in clients.items():
            url = f"http://{POLICIES[name][0]}{path}"
            await _round(client, url, WARM_UP, args.rate, arrivals[name], None)
        for _ in range(args.rounds):
            for name, client in clients.items():  # interleaved: both see the same machine state
                url = f"http://{POLICIES[name][0]}{path}"
                await _round(client, url, args.requests, args.rate, arrivals[name], results[name])
    finally:
        for client in clients.values():
            await client.aclose()
    return list(results.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peak_ewma", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--slow-ms", type=int, default=50)
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second (mean)")
    parser.add_argument("--requests", type=int, default=1500, help="per policy per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    names = [f"e{i}" for i in range(args.endpoints)]
    cmd = [sys.executable, "-c", ECHOES, str(REPO), *names]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            ports = [int(p) for p in proc.stdout.readline().split()]
            with tempfile.TemporaryDirectory(prefix="mr-peak-ewma-") as tmp:
                (Path(tmp) / "config.yaml").write_text(config(ports))
                mesh = meshroute.load(tmp)  # raises ConfigError on any error
                results = asyncio.run(_run(mesh, args))
        finally:
            proc.stdin.close()  # the servers' stdin.read() returns: they exit
    rows = [r.summary() for r in results]
    print(
        f"{args.endpoints} endpoints on 127.0.0.1, e0 {args.slow_ms} ms slower; open loop at "
        f"{args.rate:g}/s, {args.rounds} rounds x {args.requests} requests per policy (interleaved), "
        f"seed {args.seed}"
    )
    keys = ["policy", "requests", "slow_share", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"]
    keys += ["rps", "peak_in_flight"]
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(str(row[k]) for k in keys))
    lr, ewma = rows
    print(f"p99: PEAK_EWMA {ewma['p99_ms']} ms vs LEAST_REQUEST {lr['p99_ms']} ms")
    if args.json is not None:
        settings = vars(args) | {"json": str(args.json)}
        args.json.write_text(json.dumps({"args": settings, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
