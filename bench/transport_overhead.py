"""The proxyless client's cost per request: ``MeshTransport`` against a plain ``httpx.Client``,
both to the same local upstream, in one run (bench/README.md, "Proxyless client").

Run from the repository root:

    .venv/bin/python -m bench.transport_overhead [--rounds 9] [--requests 300] [--against REV]

An echo server (tests/e2e/echo.py) runs in a process of its own as Bookinfo's reviews v1 (in this
process it would compete with the client for the GIL). Each round sends ``--requests`` GETs with
each client in turn — plain ``httpx.Client`` to ``http://127.0.0.1:PORT/reviews/0``, then
``httpx.Client(transport=MeshTransport(mesh))`` to ``http://reviews:9080/reviews/0`` (Bookinfo's
default route: the ``reviews`` v1 subset) — and the figures are medians over the rounds of wall
clock and of this process's CPU per request; the overhead is the median of the per-round ratios.

``--against REV`` adds a third client: ``meshroute.client`` as it was at git revision ``REV``
(``git show``, nothing in the checkout changes), loaded as a package of its own over the same
compiled ``meshroute._core``, so a change to the client is measured against its predecessor in
the same run. ``--json FILE`` writes the figures. As in bench/conftest.py, the GC is frozen once
everything is loaded.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

import meshroute
from meshroute.bookinfo import workload_entries
from meshroute.client import MeshTransport

REPO = Path(__file__).resolve().parents[1]
ECHO = (
    "import sys; sys.path.insert(0, sys.argv[1]); from tests.e2e.echo import Echo; "
    "e = Echo('reviews-v1'); print(e.port, flush=True); sys.stdin.read()"
)
MESH_URL = "http://reviews:9080/reviews/0"


@contextmanager
def echo_upstream() -> Iterator[int]:
    """An echo server in a process of its own; its port."""
    cmd = [sys.executable, "-c", ECHO, str(REPO)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            yield int(proc.stdout.readline())
        finally:
            proc.stdin.close()  # the server's stdin.read() returns: it exits


def reference_transport(rev: str, work: Path) -> Callable[..., httpx.BaseTransport]:
    """``MeshTransport`` of ``meshroute.client`` at git revision ``rev``, as package
    ``meshroute_client_ref`` under ``work``."""
    package = work / "meshroute_client_ref"
    package.mkdir()
    listing = subprocess.run(
        ["git", "-C", str(REPO), "ls-tree", "--name-only", f"{rev}:python/meshroute/client"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in listing:
        if not name.endswith(".py"):
            continue
        text = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{rev}:python/meshroute/client/{name}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (package / name).write_text(text.replace("meshroute.client.", "meshroute_client_ref."))
    sys.path.insert(0, str(work))
    module = importlib.import_module("meshroute_client_ref")
    transport: Callable[..., httpx.BaseTransport] = module.MeshTransport
    return transport


def _getter(client: httpx.Client, url: str) -> Callable[[], httpx.Response]:
    return lambda: client.get(url)


def per_request(get: Callable[[], httpx.Response], n: int) -> tuple[float, float]:
    """Seconds per request: wall clock, and this process's CPU."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        get()
    return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n


def run(rounds: int, requests: int, against: str | None) -> dict[str, Any]:
    with echo_upstream() as port, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copytree(meshroute.bookinfo_path(), work / "bookinfo")
        (work / "endpoints.yaml").write_text(workload_entries({"reviews-v1": port}))
        mesh = meshroute.load(work)
        direct = f"http://127.0.0.1:{port}/reviews/0"
        clients: dict[str, tuple[httpx.Client, str]] = {
            "plain": (httpx.Client(), direct),
            "mesh": (httpx.Client(transport=MeshTransport(mesh, seed=1)), MESH_URL),
        }
        if against:
            ref = reference_transport(against, work)
            clients[f"mesh@{against}"] = (httpx.Client(transport=ref(mesh, seed=1)), MESH_URL)
        try:
            for name, (client, url) in clients.items():
                for _ in range(200):  # warm up: connections, caches
                    response = client.get(url)
                    assert response.status_code == 200, (name, response.status_code, response.text)
            # As bench/conftest.py does: the loaded config out of the collector's way, so a
            # collection the loop triggers does not walk it.
            gc.collect()
            gc.freeze()
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for _ in range(rounds):
                for name, (client, url) in clients.items():
                    samples[name].append(per_request(_getter(client, url), requests))
        finally:
            for client, _ in clients.values():
                client.close()
    out: dict[str, Any] = {"rounds": rounds, "requests": requests, "clients": {}}
    for name, got in samples.items():
        figures: dict[str, float] = {}
        for i, what in ((0, "wall"), (1, "cpu")):
            figures[f"{what}_us"] = round(statistics.median(s[i] for s in got) * 1e6, 1)
            if name != "plain":
                ratios = [s[i] / p[i] for s, p in zip(got, samples["plain"], strict=True)]
                figures[f"{what}_overhead_pct"] = round((statistics.median(ratios) - 1) * 100, 1)
        out["clients"][name] = figures
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--against", metavar="REV", help="also measure meshroute.client at this git revision")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    args = parser.parse_args(argv)
    result = run(args.rounds, args.requests, args.against)
    print(f"{args.rounds} interleaved rounds of {args.requests} GETs per client, medians:")
    print(f"{'client':<24} {'wall/req':>10} {'overhead':>9} {'cpu/req':>10} {'overhead':>9}")
    for name, f in result["clients"].items():
        wall_o = f"{f['wall_overhead_pct']:+.1f} %" if "wall_overhead_pct" in f else "-"
        cpu_o = f"{f['cpu_overhead_pct']:+.1f} %" if "cpu_overhead_pct" in f else "-"
        print(f"{name:<24} {f['wall_us']:>7.1f} µs {wall_o:>9} {f['cpu_us']:>7.1f} µs {cpu_o:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
