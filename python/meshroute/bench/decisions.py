"""``meshroute bench [CONFIG...]``: how fast a config loads and routes, from Python.

Three figures, each bounded in repetitions and in time (a share of ``seconds``):

- load + validate + compile: ``meshroute.load(*paths)``, median of the timed loads;
- ``mesh.route()``, one call, timeit-style: samples of ``CALLS_PER_SAMPLE`` consecutive calls over
  the request mix with the GC off; per-call time = sample time / calls (loop overhead included, as
  in timeit), median and p99 over the samples;
- ``mesh.route_many()``: the mix repeated to ``batch`` requests per call, decisions/s of the median
  call.

The request mix is the Bookinfo one of ``bench/scenarios.py`` for the default config, else
``derived_mix``: every mesh VirtualService host × a few of its paths × the header values its
matches use.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from meshroute.config.load import Resource
from meshroute.mesh import Mesh, bookinfo_path, load

Req = tuple[str, str, str, dict[str, str]]  # (host, path, method, headers), as route_many takes

# Istio's request-routing task on the packaged Bookinfo (tasks §1); bench/scenarios.py
# pairs these requests with the clusters they must reach.
DEFAULT_CONFIG = (
    bookinfo_path(),
    os.path.join(os.path.dirname(bookinfo_path()), "tasks", "virtual-service-reviews-test-v2.yaml"),
)
BOOKINFO_REQUESTS: tuple[Req, ...] = (
    ("reviews", "/reviews/0", "GET", {"end-user": "jason"}),
    ("reviews", "/reviews/0", "GET", {}),
    ("ratings", "/ratings/0", "GET", {}),
    ("details:9080", "/details/0", "GET", {}),
    ("productpage", "/productpage", "GET", {"cookie": "x"}),
)

CALLS_PER_SAMPLE = 20
MAX_SAMPLES = 20_000  # route() samples
MAX_LOADS = 20
MAX_MANY_CALLS = 50
MAX_MIX = 512  # distinct requests in a derived mix
PATHS_PER_HOST = 4
HEADER_SETS_PER_HOST = 4
SHARES = {"load": 0.25, "route": 0.4, "route_many": 0.35}  # of the time budget


def derived_mix(resources: Iterable[Resource]) -> list[Req]:
    """Requests that exercise ``resources``' VirtualServices (bound to the mesh): for every host,
    ``/`` and up to three exact/prefix URIs its matches use, each without headers and with the
    exact/prefix header values of up to three matches. Without such a VirtualService: one ``/``
    request per Service and ServiceEntry host. Regex matches contribute nothing.
    """
    resources = list(resources)
    out: dict[str, Req] = {}
    for res in resources:
        spec = res.spec if isinstance(res.spec, Mapping) else {}
        if (
            res.kind != "VirtualService"
            or not res.is_istio
            or "mesh" not in (spec.get("gateways") or ["mesh"])
        ):
            continue
        paths, header_sets = ["/"], [dict[str, str]()]
        for match in (m for route in _maps(spec.get("http")) for m in _maps(route.get("match"))):
            uri = _plain(match.get("uri"))
            if uri and uri not in paths:
                paths.append(uri)
            headers = {str(k).lower(): v for k, m in _items(match.get("headers")) if (v := _plain(m))}
            if headers and headers not in header_sets:
                header_sets.append(headers)
        for host in filter(None, (_request_host(h, res.namespace) for h in _strs(spec.get("hosts")))):
            for path in paths[:PATHS_PER_HOST]:
                for headers in header_sets[:HEADER_SETS_PER_HOST]:
                    out.setdefault(repr((host, path, headers)), (host, path, "GET", headers))
    if not out:
        for res in resources:
            spec = res.spec if isinstance(res.spec, Mapping) else {}
            names = [res.name] if res.kind == "Service" and not res.is_istio else []
            names += _strs(spec.get("hosts")) if res.kind == "ServiceEntry" and res.is_istio else []
            for host in filter(None, (_request_host(n, res.namespace) for n in names)):
                out.setdefault(host, (host, "/", "GET", {}))
    return list(out.values())[:MAX_MIX]


def _maps(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _items(value: Any) -> list[tuple[Any, Any]]:
    return list(value.items()) if isinstance(value, Mapping) else []


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _plain(match: Any) -> str | None:
    """The value of an exact or prefix StringMatch (a request carrying it matches)."""
    if isinstance(match, Mapping):
        for kind in ("exact", "prefix"):
            if isinstance(match.get(kind), str):
                return str(match[kind])
    return None


def _request_host(host: str, namespace: str) -> str | None:
    """A Host header for a VirtualService host: ``*.x`` → ``any.x``; a short name outside the
    default namespace gets its namespace; ``*`` alone gives none.

    >>> [_request_host(h, "shop") for h in ("*.example.com", "cart", "cart.default", "*")]
    ['any.example.com', 'cart.shop', 'cart.default', None]
    """
    if host == "*":
        return None
    if host.startswith("*."):
        return "any" + host[1:]
    if "." not in host and namespace and namespace != "default":
        return f"{host}.{namespace}"
    return host


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> bool:
        return time.perf_counter() < self.deadline


def _time_loads(paths: tuple[str, ...], seconds: float, first: float) -> list[float]:
    budget, times = _Budget(seconds), list[float]()
    while budget.left() and len(times) < MAX_LOADS:
        t0 = time.perf_counter()
        load(*paths)
        times.append(time.perf_counter() - t0)
    return times or [first]


def _time_route(mesh: Mesh, mix: list[Req], seconds: float) -> list[float]:
    """Per-call seconds, one value per sample of CALLS_PER_SAMPLE calls."""
    n_batches = -(-len(mix) // CALLS_PER_SAMPLE)
    cycle = (mix * (n_batches * CALLS_PER_SAMPLE // len(mix) + 1))[: n_batches * CALLS_PER_SAMPLE]
    batches = [cycle[i * CALLS_PER_SAMPLE : (i + 1) * CALLS_PER_SAMPLE] for i in range(n_batches)]
    route, clock = mesh.route, time.perf_counter
    for host, path, method, headers in cycle:  # warm-up
        route(host, path, method, headers)
    budget, samples = _Budget(seconds), list[float]()
    while budget.left() and len(samples) < MAX_SAMPLES:
        batch = batches[len(samples) % n_batches]
        t0 = clock()
        for host, path, method, headers in batch:
            route(host, path, method, headers)
        samples.append((clock() - t0) / CALLS_PER_SAMPLE)
    return samples


def _time_many(mesh: Mesh, requests: list[Req], seconds: float) -> list[float]:
    mesh.route_many(requests[:100], seed=1)  # warm-up
    budget, times = _Budget(seconds), list[float]()
    while not times or (budget.left() and len(times) < MAX_MANY_CALLS):
        t0 = time.perf_counter()
        mesh.route_many(requests, seed=1)
        times.append(time.perf_counter() - t0)
    return times


def _gc_off(fn: Callable[[], list[float]]) -> list[float]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn()
    finally:
        if enabled:
            gc.enable()


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, -(-len(ordered) * 99 // 100) - 1)]


def run(paths: tuple[str, ...], seconds: float = 3.0, batch: int = 10_000) -> dict[str, Any]:
    """Measure ``paths`` (ConfigError if they do not load); the JSON-able results ``table`` prints."""
    started = time.perf_counter()
    t0 = time.perf_counter()
    mesh = load(*paths)  # also the warm-up load
    first = time.perf_counter() - t0
    bookinfo = paths == DEFAULT_CONFIG
    mix = list(BOOKINFO_REQUESTS) if bookinfo else derived_mix(mesh.analysis.resources)
    if not mix:
        raise ValueError("no host to route: the config has no VirtualService, Service or ServiceEntry")
    loads = _time_loads(paths, seconds * SHARES["load"], first)
    per_call = _gc_off(lambda: _time_route(mesh, mix, seconds * SHARES["route"]))
    many = (mix * (batch // len(mix) + 1))[:batch]
    calls = _gc_off(lambda: _time_many(mesh, many, seconds * SHARES["route_many"]))
    many_median = statistics.median(calls)
    from .harness import machine_info

    return {
        "config": list(paths),
        "routes": mesh.table.route_count,
        "warnings": len(mesh.warnings),
        "mix": {
            "kind": "bookinfo" if bookinfo else "derived",
            "requests": len(mix),
            "outcomes": dict(Counter(d.outcome for d in mesh.route_many(mix, seed=1))),
        },
        "load_ms": {"median": statistics.median(loads) * 1e3, "min": min(loads) * 1e3, "runs": len(loads)},
        "route_us": {
            "median": statistics.median(per_call) * 1e6,
            "p99": _p99(per_call) * 1e6,
            "samples": len(per_call),
            "calls_per_sample": CALLS_PER_SAMPLE,
        },
        "route_many": {
            "batch": batch,
            "calls": len(calls),
            "decisions_per_s": batch / many_median,
            "ns_per_decision": many_median / batch * 1e9,
        },
        "seconds": time.perf_counter() - started,
        "machine": machine_info(),
    }


def table(results: dict[str, Any]) -> str:
    """A short Markdown report of ``run``'s results."""
    mix, ld, one, many, machine = (
        results[k] for k in ("mix", "load_ms", "route_us", "route_many", "machine")
    )
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(mix["outcomes"].items()))
    names = " + ".join(os.path.basename(p.rstrip("/")) or p for p in results["config"])
    rows = [
        f"Config: {names} ({results['routes']} routes, {results['warnings']} warnings). Request mix: "
        f"{mix['kind']}, {mix['requests']} distinct requests (outcomes: {outcomes}).",
        "",
        "| measure | figure | repetitions |",
        "|---|---|---|",
        f"| load + validate + compile | {ld['median']:.2f} ms median (min {ld['min']:.2f}) "
        f"| {ld['runs']} loads |",
        f"| `mesh.route()`, one call | {one['median']:.2f} µs median, {one['p99']:.2f} µs p99 "
        f"| {one['samples']:,} samples × {one['calls_per_sample']} calls |",
        f"| `mesh.route_many()`, {many['batch']:,} requests | {many['decisions_per_s'] / 1e6:.2f} M "
        f"decisions/s ({many['ns_per_decision']:.0f} ns each) | {many['calls']} calls |",
        "",
        f"{results['seconds']:.1f} s on {machine['cpu_model']}, {machine['cpu_count']} CPUs, load average "
        f"{machine['loadavg_at_start'][0]:.2f}, Python {machine['python']}: a shared machine is noisy, "
        "compare figures within one run.",
    ]
    return "\n".join(rows)
