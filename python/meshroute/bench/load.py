"""Load generators: ``wrk`` for the real figures, a bounded Python client for the CI smoke test.

Both send a list of requests in turn (``alternating``: the same path with and without the
``x-variant: b`` header; ``requests.lua`` reads the list from a file) over N keep-alive HTTP/1.1
connections for a fixed duration and return a ``LoadResult``. Errors are counted, never dropped:
connect/read/write/timeout errors and responses with status >= 400 (wrk's own definition).
"""

from __future__ import annotations

import http.client
import json
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("requests.lua")
PATH = "/api/v1/items"
VARIANT_HEADER = ("x-variant", "b")
Request = tuple[str, dict[str, str]]  # (path, headers), ``Host`` among the headers


def alternating(host: str) -> list[Request]:
    """The default pair: the catch-all route, then the ``x-variant: b`` header route."""
    return [(PATH, {"Host": host}), (PATH, {"Host": host, VARIANT_HEADER[0]: VARIANT_HEADER[1]})]


def requests_text(requests: list[Request]) -> str:
    """The file ``requests.lua`` reads: one request a line, ``PATH<TAB>Name: value<TAB>...``.

    >>> requests_text(alternating("h")).splitlines()[1].split("\\t")
    ['/api/v1/items', 'Host: h', 'x-variant: b']
    """
    lines = []
    for path, headers in requests:
        fields = [path, *(f"{k}: {v}" for k, v in headers.items())]
        if any(c in f for f in fields for c in "\t\r\n") or not path.startswith("/"):
            raise ValueError(f"cannot write request {path!r} {headers!r} for wrk")
        lines.append("\t".join(fields) + "\n")
    return "".join(lines)


@dataclass
class LoadResult:
    tool: str  # "wrk" or "python"
    connections: int
    duration_s: float  # measured by the generator
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)
    client_cpu_s: float = 0.0  # the load generator's own CPU (it shares the machine)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "error_count": self.error_count}


class LoadError(RuntimeError):
    """The load generator failed or printed nothing we can parse."""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def parse_wrk(stdout: str, connections: int, client_cpu_s: float = 0.0) -> LoadResult:
    """Read the ``MESHROUTE_WRK {json}`` line that ``requests.lua``'s ``done()`` prints."""
    for line in stdout.splitlines():
        if line.startswith("MESHROUTE_WRK "):
            data = json.loads(line.split(" ", 1)[1])
            break
    else:
        raise LoadError(f"no MESHROUTE_WRK line in wrk output:\n{stdout[-2000:]}")
    duration = data["duration_us"] / 1e6
    lat = data["latency_us"]
    return LoadResult(
        tool="wrk",
        connections=connections,
        duration_s=duration,
        requests=data["requests"],
        rps=data["requests"] / duration if duration > 0 else 0.0,
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        max_ms=lat["max"] / 1000,
        errors={k: int(v) for k, v in data["errors"].items()},
        client_cpu_s=client_cpu_s,
    )


def run_wrk(
    port: int, requests: list[Request], connections: int, duration: float, wrk: str = "wrk"
) -> LoadResult:
    """``wrk -t1 -cN -dDs --latency``; killed if it overruns the duration by 30 s."""
    with tempfile.NamedTemporaryFile("w", prefix="mrbench-requests-", suffix=".tsv") as fh:
        fh.write(requests_text(requests))
        fh.flush()
        return _run_wrk(port, fh.name, connections, duration, wrk)


def _run_wrk(port: int, requests_file: str, connections: int, duration: float, wrk: str) -> LoadResult:
    secs = max(1, round(duration))
    args = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{secs}s",
        "--timeout",
        "2s",
        "--latency",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}{PATH}",
        "--",
        requests_file,
    ]
    before = _children_cpu()
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=secs + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wrk did not finish within {secs + 30}s") from exc
    if proc.returncode != 0:
        raise LoadError(f"wrk exited with {proc.returncode}:\n{proc.stdout[-1000:]}\n{proc.stderr[-1000:]}")
    return parse_wrk(proc.stdout, connections, _children_cpu() - before)


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.0
    >>> percentile([1.0, 2.0, 3.0, 4.0], 99)
    4.0
    """
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil without floats drifting
    return sorted_values[int(rank) - 1]


def run_python(port: int, requests: list[Request], connections: int, duration: float) -> LoadResult:
    """A small bounded stand-in for wrk: one thread per connection, keep-alive, fixed duration.

    Much slower than wrk (the GIL and http.client cost more than Envoy does), so its figures only
    show that the harness works, never Envoy or meshroute capacity.
    """
    deadline = time.monotonic() + duration
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [{"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0} for _ in range(connections)]
    cpu0 = time.process_time()

    def worker(i: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                try:
                    conn.connect()
                except OSError:
                    errors[i]["connect"] += 1
                    conn = None
                    time.sleep(0.05)
                    continue
            path, headers = requests[(n + i) % len(requests)]
            n += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
            except TimeoutError:
                errors[i]["timeout"] += 1
                conn.close()
                conn = None
                continue
            except (OSError, http.client.HTTPException):
                errors[i]["read"] += 1
                conn.close()
                conn = None
                continue
            latencies[i].append(time.perf_counter() - t0)
            if resp.status >= 400:
                errors[i]["status"] += 1
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 10)
    elapsed = time.monotonic() - started
    lat = sorted(x for per in latencies for x in per)
    total = {k: sum(e[k] for e in errors) for k in errors[0]}
    return LoadResult(
        tool="python",
        connections=connections,
        duration_s=elapsed,
        requests=len(lat),
        rps=len(lat) / elapsed if elapsed > 0 else 0.0,
        p50_ms=percentile(lat, 50) * 1000,
        p90_ms=percentile(lat, 90) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        max_ms=(lat[-1] if lat else 0.0) * 1000,
        errors=total,
        client_cpu_s=time.process_time() - cpu0,
    )
