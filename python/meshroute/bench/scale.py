"""``meshroute bench --scale N[,N...]``: how loading grows with the size of the mesh.

The mesh of the issue "a 10 000-service mesh loads in seconds": N Kubernetes Services spread over
20 namespaces (``svc{i}`` in ``ns{i % 20}``), each with a DestinationRule (subsets v1/v2, a
connection pool and outlier detection) and a VirtualService (a header match → v2, a ``/api/``
prefix with a rewrite and retries → v1, a 90/10 v1/v2 split with a 5 s timeout): 3 resources per
service. ``variant="edge"`` adds a few Gateways in ``istio-system`` binding one VirtualService in
ten, Sidecars with egress hosts in one namespace in five (one with REGISTRY_ONLY, one selecting a
single workload), resources exported to their own namespace only (one service in seven), a
client-side DestinationRule, a wildcard ServiceEntry with its own VirtualService and a
root-namespace DestinationRule, and two mistakes that only warn (a route to an undefined subset, a
DestinationRule for an unknown host).

Each N is measured in a fresh subprocess (peak RSS is ``ru_maxrss``, a high-water mark), and the
PyYAML C loader's parse of the same files in another one: the floor any YAML-based loader has.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

NAMESPACES = 20
EDGE_GATEWAYS = 3


def service_docs(i: int, namespaces: int = NAMESPACES, *, edge: bool = False) -> list[str]:
    """The Service, DestinationRule and VirtualService of service ``i`` (YAML documents, each
    ending with a newline). ``edge``: one service in seven is exported to its own namespace only."""
    ns, name = f"ns{i % namespaces}", f"svc{i}"
    export = "  exportTo: ['.']\n" if edge and i % 7 == 3 else ""
    return [
        f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {ns}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, name: http}}]
""",
        f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {ns}}}
spec:
  host: {name}
{export}  trafficPolicy:
    connectionPool: {{tcp: {{maxConnections: 100}}, http: {{http1MaxPendingRequests: 10}}}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
""",
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {ns}}}
spec:
  hosts: [{name}]
{export}  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - match: [{{uri: {{prefix: /api/}}}}]
    rewrite: {{uri: /}}
    retries: {{attempts: 3, perTryTimeout: 2s}}
    route: [{{destination: {{host: {name}, subset: v1}}}}]
  - timeout: 5s
    route:
    - {{destination: {{host: {name}, subset: v1}}, weight: 90}}
    - {{destination: {{host: {name}, subset: v2}}, weight: 10}}
""",
    ]


def edge_docs(n: int, namespaces: int = NAMESPACES) -> list[str]:
    """The ``edge`` variant's additions for a mesh of ``n`` services (see the module docstring)."""
    docs = []
    for g in range(EDGE_GATEWAYS):
        extra = "  - port: {number: 8080, name: http-ns0, protocol: HTTP}\n    hosts: ['ns0/*']\n"
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge{g}, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*.edge{g}.example.com']
{extra if g == 0 else ""}"""
        )
    for i in range(0, n, 10):
        ns, name, g = f"ns{i % namespaces}", f"svc{i}", (i // 10) % EDGE_GATEWAYS
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}-edge, namespace: {ns}}}
spec:
  hosts: [{name}.edge{g}.example.com{", " + name if g == 0 else ""}]
  gateways: [istio-system/edge{g}]
  http:
  - match: [{{headers: {{x-canary: {{exact: '1'}}}}}}]
    route: [{{destination: {{host: {name}, subset: v2}}}}]
  - match: [{{uri: {{prefix: /}}}}]
    route: [{{destination: {{host: {name}, subset: v1}}}}]
"""
        )
    if n > 1:
        docs.append(
            """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge1-default, namespace: istio-system}
spec:
  hosts: ['*.edge1.example.com']
  gateways: [istio-system/edge1]
  http:
  - route: [{destination: {host: svc1.ns1.svc.cluster.local}}]
"""
        )
    for k in range(0, namespaces, 5):
        policy = "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n" if k == 10 else ""
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: ns{k}}}
spec:
  egress:
  - hosts: ['./*', 'istio-system/*', 'ns{(k + 1) % namespaces}/*']
{policy}"""
        )
    docs.append(
        """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: svc0-only, namespace: ns0}
spec:
  workloadSelector: {labels: {app: svc0}}
  egress:
  - hosts: ['ns1/svc1.ns1.svc.cluster.local', './*']
"""
    )
    if n > 2:
        docs.append(
            """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc2-client, namespace: ns1}
spec:
  host: svc2.ns2.svc.cluster.local
  exportTo: ['.']
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets:
  - {name: v1, labels: {version: v1}}
"""
        )
    docs += [
        """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: ns0}
spec:
  hosts: ['*.ext.example.com']
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: NONE
""",
        """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ext, namespace: ns0}
spec:
  hosts: [api.ext.example.com]
  http:
  - match: [{headers: {x-version: {exact: v9}}}]
    route: [{destination: {host: api.ext.example.com, subset: v9}}]
  - timeout: 3s
    route: [{destination: {host: api.ext.example.com}}]
""",
        """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: ns3}
spec:
  host: ghost
""",
        """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ext, namespace: istio-system}
spec:
  host: '*.ext.example.com'
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 10}}}
""",
    ]
    return docs


def write_mesh(
    n: int, out: str | os.PathLike[str], *, variant: str = "plain", single_file: bool = False
) -> list[Path]:
    """Write the mesh of ``n`` services under ``out``; returns the files written.

    One file per namespace (``ns00.yaml``…, services in index order) plus ``edge.yaml`` for the
    ``edge`` variant; ``single_file``: everything in ``mesh.yaml``, service by service, which for
    the plain variant is byte for byte what the issue's generator wrote.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     [p.name for p in write_mesh(3, tmp, variant="edge")]
    ['ns00.yaml', 'ns01.yaml', 'ns02.yaml', 'edge.yaml']
    """
    if variant not in ("plain", "edge"):
        raise ValueError(f"unknown variant {variant!r}: plain or edge")
    edge = variant == "edge"
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[str]] = {}
    for i in range(n):
        name = "mesh.yaml" if single_file else f"ns{i % NAMESPACES:02d}.yaml"
        groups.setdefault(name, []).append("---\n".join(service_docs(i, edge=edge)))
    if edge:
        groups.setdefault("mesh.yaml" if single_file else "edge.yaml", []).append("---\n".join(edge_docs(n)))
    written = []
    for name, docs in groups.items():
        path = root / name
        path.write_text("---\n".join(docs))
        written.append(path)
    return written


# --- Measuring -------------------------------------------------------------------------------

DEFAULT_SIZES = (100, 1000, 3000, 10000)
SPREAD_MIX = 1000  # requests in the spread route() mix, each to another service where possible
HOT_SERVICES = 10  # services of the hot mix
CALLS_PER_SAMPLE = 20
ROUTE_SECONDS = 1.0  # per mix
RUNS = 2  # loads per size, each in a fresh process; the fastest is reported
# The goals.
GOAL_SIZE = 10000
GOAL_SECONDS = 10.0  # load + validate + compile at GOAL_SIZE services
GOAL_FLOOR_RATIO = 5.0  # × the PyYAML C loader's parse of the same files
GOAL_RSS_MB = 1024.0
GOAL_ROUTE_US = 0.5
GOAL_GROWTH = 1.1  # time ratio ≤ 1.1 × size ratio (10× the services in ≤ 11× the time)
GOAL_EDIT_MS = 200.0  # one edited VirtualService or DestinationRule serving, at GOAL_SIZE

Request = tuple[str, str, dict[str, str], str]  # host, path, headers, source namespace
Json = dict[str, Any]


def request_mix(services: int, size: int) -> list[Request]:
    """``size`` requests spread evenly over services ``0..services-1``: each by its ``name.ns``
    host, from a client namespace cycling through all of them, on one of the three routes of its
    VirtualService in turn (the header match, the ``/api/`` prefix, the weighted split).

    >>> for request in request_mix(40, 3):
    ...     print(request)
    ('svc0.ns0', '/', {'end-user': 'jason'}, 'ns0')
    ('svc13.ns13', '/api/items', {}, 'ns1')
    ('svc26.ns6', '/', {}, 'ns2')
    """
    out: list[Request] = []
    for k in range(size):
        i = k * services // size
        path, headers = [("/", {"end-user": "jason"}), ("/api/items", {}), ("/", {})][k % 3]
        out.append((f"svc{i}.ns{i % NAMESPACES}", path, dict(headers), f"ns{k % NAMESPACES}"))
    return out


def _rss_mb() -> float:
    """Current resident set size (Linux /proc), MB; 0 where unknown."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _trim() -> None:
    """Hand freed heap memory back to the OS (glibc), so RSS shows what is still in use."""
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _time_route(mesh: Any, mix: list[Request], seconds: float) -> Json:
    """``mesh.route()`` timeit-style: samples of CALLS_PER_SAMPLE consecutive calls with the GC
    off, per-call time = sample time / calls; at least one pass over the mix."""
    import gc
    import statistics
    import time
    from collections import Counter

    route, clock = mesh.route, time.perf_counter
    outcomes = Counter(route(h, p, "GET", hd, source_namespace=ns).outcome for h, p, hd, ns in mix)
    batches = [mix[i : i + CALLS_PER_SAMPLE] for i in range(0, len(mix), CALLS_PER_SAMPLE)]
    samples: list[float] = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = clock() + seconds
        while clock() < deadline or len(samples) < len(batches):
            batch = batches[len(samples) % len(batches)]
            start = clock()
            for host, path, headers, ns in batch:
                route(host, path, "GET", headers, source_namespace=ns)
            samples.append((clock() - start) / len(batch))
    finally:
        if enabled:
            gc.enable()
    samples.sort()
    return {
        "median": statistics.median(samples) * 1e6,
        "p99": samples[min(len(samples) - 1, len(samples) * 99 // 100)] * 1e6,
        "samples": len(samples),
        "requests": len(mix),
        "outcomes": dict(outcomes),
    }


def measure_load(directory: str, route_seconds: float = ROUTE_SECONDS, ir_out: str | None = None) -> Json:
    """In this (fresh) process: load + validate + compile ``directory`` step by step exactly as
    ``meshroute.load`` does (``analyze``, then the IR text, then the Rust table), then time
    ``mesh.route()`` over a spread and a hot request mix."""
    import time

    from meshroute.compile import ir_json
    from meshroute.config import analyze
    from meshroute.mesh import Mesh, table_from_ir_json

    clock = time.perf_counter
    steps: dict[str, float] = {}
    cpu0 = time.process_time()
    t0 = clock()
    analysis = analyze([directory], timings=steps)
    t1 = clock()
    text = ir_json(analysis.ir or {})
    t2 = clock()
    table = table_from_ir_json(text, analysis.diagnostics)
    t3 = clock()
    cpu = time.process_time() - cpu0
    peak = _peak_rss_mb()
    if not analysis.ok:
        raise RuntimeError(f"{directory}: the generated mesh has errors")
    if ir_out:
        with open(ir_out, "w") as handle:
            handle.write(text)
    ir = analysis.ir or {}
    counts = {
        "resources": len(analysis.resources),
        "warnings": len(analysis.diagnostics),
        "views": len(ir["views"]),
        "view_vhosts": sum(len(v["vhosts"]) for v in ir["views"]),
        "distinct_vhosts": len({id(vh) for v in ir["views"] for vh in v["vhosts"]}),
        "routes": len(ir["routes"]),
        "scopes": len(ir["scopes"]),
        "ir_mb": len(text) / 2**20,
    }
    del text, ir
    mesh = Mesh(table, analysis)
    services = sum(1 for r in analysis.resources if r.kind == "Service" and not r.is_istio)
    return {
        "seconds": {**steps, "ir_json": t2 - t1, "rust_table": t3 - t2, "total": t3 - t0, "cpu": cpu},
        "peak_rss_mb": peak,
        **counts,
        "route_us": {
            "spread": _time_route(mesh, request_mix(services, SPREAD_MIX), route_seconds),
            "hot": _time_route(mesh, request_mix(min(services, HOT_SERVICES), 30), route_seconds),
        },
    }


def measure_floor(directory: str) -> Json:
    """In this (fresh) process: read and parse every file of ``directory`` with PyYAML's C loader
    (``yaml.load_all(..., Loader=yaml.CSafeLoader)``), the floor of any PyYAML-based loader."""
    import time

    import yaml

    from meshroute.config.load import iter_files

    files = [path for path, problem in iter_files([directory]) if problem is None]
    start = time.perf_counter()
    documents = 0
    for path in files:
        with open(path, "rb") as handle:
            documents += sum(1 for _ in yaml.load_all(handle.read(), Loader=yaml.CSafeLoader))
    return {"seconds": time.perf_counter() - start, "documents": documents}


def measure_table(ir_path: str) -> Json:
    """In this (fresh) process: the resident memory a route table built from the IR at
    ``ir_path`` keeps (RSS after ``RouteTable.from_json`` minus before, freed heap handed back
    first: an estimate of the table's size)."""
    import time

    from meshroute._core import RouteTable

    with open(ir_path) as handle:
        text = handle.read()
    _trim()
    before = _rss_mb()
    start = time.perf_counter()
    table = RouteTable.from_json(text)
    seconds = time.perf_counter() - start
    _trim()
    after = _rss_mb()
    del table
    return {"table_mb": after - before, "from_json_s": seconds}


# --- Orchestrating ---------------------------------------------------------------------------


def _child(*args: str) -> Json:
    """Run ``python -m meshroute.bench.scale ARGS`` (a fresh interpreter) and read its JSON."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "meshroute.bench.scale", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"meshroute.bench.scale {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    result: Json = json.loads(proc.stdout)
    return result


def run(
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    *,
    variant: str = "plain",
    workdir: str | os.PathLike[str] | None = None,
    route_seconds: float = ROUTE_SECONDS,
    runs: int = RUNS,
    log: Callable[[str], None] | None = None,
) -> Json:
    """Generate and measure each size in fresh processes: ``runs`` loads (the fastest is
    reported), the C-YAML floor, the table size; the JSON-able results :func:`table` prints.
    ``workdir`` keeps the meshes."""
    import shutil
    import tempfile
    import time

    from .harness import machine_info

    root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="mrscale-"))
    started = time.perf_counter()
    rows = []
    try:
        for n in sizes:
            directory = root / f"{variant}-{n}"
            shutil.rmtree(directory, ignore_errors=True)
            files = write_mesh(n, directory, variant=variant)
            if log:
                log(f"scale: {n} services ({variant}): {len(files)} files written, measuring")
            ir_path = root / f"{variant}-{n}.ir.json"
            loads = [
                _child("load", str(directory), "--route-seconds", str(route_seconds), "--ir", str(ir_path))
                for _ in range(runs)
            ]
            # The fastest load (a shared machine only ever adds time); memory and route() of it.
            load = min(loads, key=lambda r: r["seconds"]["total"])
            load["runs"] = [r["seconds"]["total"] for r in loads]
            floor = _child("floor", str(directory))
            size = _child("table", str(ir_path))
            edit = _child("edit", str(directory)) if variant == "plain" else None
            ir_path.unlink()
            rows.append(
                {
                    "services": n,
                    "files": len(files),
                    "bytes": sum(f.stat().st_size for f in files),
                    **load,
                    "floor": floor,
                    "floor_ratio": load["seconds"]["total"] / floor["seconds"],
                    "table": size,
                    "edit": edit,
                }
            )
            if log:
                log(f"scale: {n} services: {load['seconds']['total']:.2f} s, C-YAML {floor['seconds']:.2f} s")
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "variant": variant,
        "sizes": list(sizes),
        "rows": rows,
        "goals": goals(rows),
        "seconds": time.perf_counter() - started,
        "machine": machine_info(),
    }


def goals(rows: list[Json]) -> Json:
    """The issue's goals judged on ``rows`` (None: the size was not measured). Growth compares
    every pair of sizes from 1 000 services up (below, fixed costs dominate)."""
    at = next((r for r in rows if r["services"] == GOAL_SIZE), None)
    big = [r for r in rows if r["services"] >= 1000]
    growth = []
    for i, a in enumerate(big):
        for b in big[i + 1 :]:
            size, time_ratio = b["services"] / a["services"], b["seconds"]["total"] / a["seconds"]["total"]
            ok = time_ratio <= GOAL_GROWTH * size
            growth.append({"from": a["services"], "to": b["services"], "time_ratio": time_ratio, "ok": ok})
    return {
        "seconds": None if at is None else at["seconds"]["total"] <= GOAL_SECONDS,
        "floor_ratio": None if at is None else at["floor_ratio"] <= GOAL_FLOOR_RATIO,
        "peak_rss": None if not rows else all(r["peak_rss_mb"] <= GOAL_RSS_MB for r in rows),
        "route_spread": None if at is None else at["route_us"]["spread"]["median"] <= GOAL_ROUTE_US,
        "route_hot": None if at is None else at["route_us"]["hot"]["median"] <= GOAL_ROUTE_US,
        "growth": growth,
        "edit": None
        if at is None or not at.get("edit")
        else max(at["edit"]["vs_ms"]["median"], at["edit"]["dr_ms"]["median"]) <= GOAL_EDIT_MS,
    }


def table(results: Json) -> str:
    """A Markdown report of :func:`run`'s results."""
    head = (
        "| services | files | resources | load + validate + compile | parse / validate / compile / "
        "IR text + Rust table | C-YAML parse | ratio | peak RSS | table (est.) | IR text "
        "| route() spread / hot | one edit: VS / DR |"
    )
    lines = [head, "|---" * 12 + "|"]
    for r in results["rows"]:
        s, route = r["seconds"], r["route_us"]
        table_s = s["ir_json"] + s["rust_table"]
        split = f"{s['parse']:.2f} / {s['validate']:.2f} / {s['compile']:.2f} / {table_s:.2f}"
        lines.append(
            f"| {r['services']:,} | {r['files']} | {r['resources']:,} | {s['total']:.2f} s | {split} "
            f"| {r['floor']['seconds']:.2f} s | {r['floor_ratio']:.1f}× | {r['peak_rss_mb']:.0f} MB "
            f"| {r['table']['table_mb']:.0f} MB | {r['ir_mb']:.1f} MB "
            f"| {route['spread']['median']:.2f} / {route['hot']['median']:.2f} µs "
            f"| {_edit_cell(r.get('edit'))} |"
        )
    g = results["goals"]
    verdict = {None: "not measured", True: "met", False: "missed"}
    growth = ", ".join(
        f"{x['from']:,}→{x['to']:,} services: {x['time_ratio']:.1f}× the time ({verdict[x['ok']]})"
        for x in g["growth"]
    )
    machine = results["machine"]
    runs = len(results["rows"][0]["runs"]) if results["rows"] else RUNS
    lines += [
        "",
        f"Goals at {GOAL_SIZE:,} services: ≤ {GOAL_SECONDS:g} s {verdict[g['seconds']]}; ≤ "
        f"{GOAL_FLOOR_RATIO:g}× the C-YAML parse {verdict[g['floor_ratio']]}; peak RSS ≤ "
        f"{GOAL_RSS_MB:g} MB {verdict[g['peak_rss']]}; route() ≤ {GOAL_ROUTE_US} µs: spread mix "
        f"{verdict[g['route_spread']]}, hot mix {verdict[g['route_hot']]}. Growth (≤ "
        f"{GOAL_GROWTH:g}× the size ratio): {growth or 'n/a'}. One edit serving ≤ {GOAL_EDIT_MS:g} ms "
        f"(median): {verdict[g['edit']]}.",
        "",
        f"Variant {results['variant']}; {results['seconds']:.0f} s on {machine['cpu_model']}, "
        f"{machine['cpu_count']} CPUs, load average {machine['loadavg_at_start'][0]:.2f}, Python "
        f"{machine['python']}. Each size in fresh processes, the fastest of {runs} loads: peak RSS "
        "is its ru_maxrss; the table size is the RSS a table built from the same IR keeps.",
    ]
    return "\n".join(lines)


def _edit_cell(edit: Json | None) -> str:
    if not edit:
        return "n/a"
    vs, dr = edit["vs_ms"], edit["dr_ms"]
    return f"{vs['median']:.0f} / {dr['median']:.0f} ms (max {max(vs['max'], dr['max']):.0f})"


def report(
    sizes: tuple[int, ...],
    *,
    variant: str = "plain",
    route_seconds: float = ROUTE_SECONDS,
    runs: int = RUNS,
    workdir: str | None = None,
    json_out: str | None = None,
) -> int:
    """Run, print the table (unless ``json_out == "-"``), write JSON when asked; progress goes
    to stderr."""
    import json
    import sys

    results = run(
        sizes,
        variant=variant,
        workdir=workdir,
        route_seconds=route_seconds,
        runs=runs,
        log=lambda msg: print(msg, file=sys.stderr, flush=True),
    )
    if json_out:
        text = json.dumps(results, indent=2) + "\n"
        if json_out == "-":
            sys.stdout.write(text)
        else:
            Path(json_out).parent.mkdir(parents=True, exist_ok=True)
            Path(json_out).write_text(text)
    if json_out != "-":
        print(table(results))
    return 0


def bench_command(args: Any) -> int:
    """``meshroute bench --scale N[,N...]`` (the ``bench`` command's arguments): ``--seconds``
    is the time budget of each route() mix, ``--json`` as for the other modes."""
    import argparse
    import sys

    conflicts = [name for name in ("envoy", "paths", "batch") if getattr(args, name, None)]
    if conflicts:
        print(f"meshroute bench: --scale generates its own meshes: no {conflicts[0]}", file=sys.stderr)
        return 2
    try:
        counts = sizes(args.scale) if isinstance(args.scale, str) else tuple(args.scale)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"meshroute bench: --scale: {exc}", file=sys.stderr)
        return 2
    seconds = args.seconds if getattr(args, "seconds", None) is not None else ROUTE_SECONDS
    if not 0 < seconds <= 600:
        print("meshroute bench: --seconds must be in (0, 600]", file=sys.stderr)
        return 2
    return report(counts, route_seconds=seconds, json_out=getattr(args, "json", None))


def sizes(text: str) -> tuple[int, ...]:
    """``N[,N...]`` → sizes (argparse type).

    >>> sizes("100,1000")
    (100, 1000)
    """
    import argparse

    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated service counts expected, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive service counts expected, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    """``python -m meshroute.bench.scale [bench]``: the whole benchmark; ``generate``: write a
    mesh; ``load`` / ``floor`` / ``table``: one measurement (JSON on stdout), run by ``bench``."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m meshroute.bench.scale", description=__doc__)
    sub = parser.add_subparsers(dest="step")
    b = sub.add_parser("bench", help="generate and measure each size (the default)")
    b.add_argument("sizes", nargs="?", type=sizes, default=DEFAULT_SIZES, metavar="N[,N...]")
    b.add_argument("--variant", choices=["plain", "edge"], default="plain")
    b.add_argument("--route-seconds", type=float, default=ROUTE_SECONDS)
    b.add_argument("--runs", type=int, default=RUNS, help="loads per size; the fastest is reported")
    b.add_argument("--workdir", help="generate the meshes here and keep them")
    b.add_argument("--json", nargs="?", const="-", metavar="FILE")
    g = sub.add_parser("generate", help="write a mesh")
    g.add_argument("services", type=int)
    g.add_argument("out")
    g.add_argument("--variant", choices=["plain", "edge"], default="plain")
    g.add_argument("--single-file", action="store_true")
    ld = sub.add_parser("load")
    ld.add_argument("directory")
    ld.add_argument("--route-seconds", type=float, default=ROUTE_SECONDS)
    ld.add_argument("--ir")
    sub.add_parser("floor").add_argument("directory")
    sub.add_parser("table").add_argument("ir")
    sub.add_parser("edit").add_argument("directory")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] or ["bench"])
    if args.step == "generate":
        for path in write_mesh(args.services, args.out, variant=args.variant, single_file=args.single_file):
            print(path)
        return 0
    if args.step == "load":
        print(json.dumps(measure_load(args.directory, args.route_seconds, args.ir)))
        return 0
    if args.step == "floor":
        print(json.dumps(measure_floor(args.directory)))
        return 0
    if args.step == "table":
        print(json.dumps(measure_table(args.ir)))
        return 0
    if args.step == "edit":
        from .edits import measure_edits

        print(json.dumps(measure_edits(args.directory)))
        return 0
    return report(
        args.sizes,
        variant=args.variant,
        route_seconds=args.route_seconds,
        runs=max(1, args.runs),
        workdir=args.workdir,
        json_out=args.json,
    )


if __name__ == "__main__":
    raise SystemExit(main())
