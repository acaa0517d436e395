"""Start the scenarios, check they route correctly, load them in alternating order, measure."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from meshroute.envoy import process as envoy_process
from meshroute.procs import LOOPBACK, Proc, ProcessError, ProcessGroup, free_port

from . import bootstrap, load
from .cpu import CpuMeter, session_pids
from .routes import RouteTable

ALONE = "envoy-alone"
FLOOR = "envoy+floor-extproc"
EMBEDDED = "envoy+meshroute-embedded"
NATIVE = "envoy-native"  # Envoy routing a generated route table itself (--routes N)
ROUTES_REQUESTS = 64  # distinct requests of a --routes workload

# Who decides in a scenario: Envoy's own route table, serve over ext_proc, or the module.
ENVOY, EXTPROC, MODULE = "envoy", "extproc", "embedded"

# The goals against envoy-alone of the same run: throughput ratio at every connection count
# and p50 added at 1 connection (issue 8 for the embedded engine; the ext_proc ones before it).
GOALS: dict[str, dict[str, float]] = {
    EXTPROC: {"throughput_ratio": 0.3, "p50_added_ms": 1.2},
    MODULE: {"throughput_ratio": 0.85, "p50_added_ms": 0.05},
    f"{MODULE}-routes": {"throughput_ratio": 0.8},
}


def meshroute_name(workers: int) -> str:
    return f"envoy+meshroute-w{workers}"


def routes_name(base: str, total: int) -> str:
    """The name of a scenario on the generated table of ``total`` routes.

    >>> routes_name(EMBEDDED, 10_000)
    'envoy+meshroute-embedded-10000routes'
    """
    return f"{base}-{total}routes"


class SetupError(RuntimeError):
    """A scenario could not be started or does not route as expected."""


@dataclass
class Options:
    duration: float = 10.0
    rounds: int = 2
    connections: tuple[int, ...] = (1, 32)
    workers: tuple[int, ...] = (1, 2)  # one envoy+meshroute scenario per entry
    alone: bool = True
    floor: bool = True  # envoy+floor-extproc: a constant-reply Python ext_proc
    embedded: bool = True  # envoy+meshroute-embedded: the dynamic module in the front Envoy
    routes: int = 0  # > 0: the generated table of about this many routes, natively and through meshroute
    routes_only: bool = False  # only envoy-alone and the --routes scenarios
    warmup: float = 2.0
    load_tool: str = "auto"  # auto | wrk | python
    workdir: Path | None = None


@dataclass(frozen=True)
class Workload:
    """A config and the requests that load it, each with the cluster it must reach."""

    istio: Path
    requests: list[load.Request]
    clusters: list[str]
    routes: int  # HTTP routes in the config

    def startup_timeout(self) -> float:
        """Seconds a server or Envoy may take to load it (10 000 routes: a few seconds here)."""
        return 30.0 + self.routes * 0.01


@dataclass
class Scenario:
    name: str
    port: int
    admin_port: int
    procs: dict[str, Proc]  # role -> process: "front", optionally "serve"
    workload: Workload
    engine: str  # ENVOY, EXTPROC or MODULE
    check_clusters: bool = True  # each request reached its cluster (not envoy-alone's one cluster)
    reference: str | None = None  # a second baseline in the ratios (the floor, Envoy's native routing)
    goals: dict[str, float] = field(default_factory=dict)

    @property
    def extproc(self) -> bool:
        return self.engine == EXTPROC

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "routes": self.workload.routes,
            "distinct_requests": len(self.workload.requests),
            "reference": self.reference,
            "goals": self.goals,
        }


@dataclass
class Run:
    round: int
    scenario: str
    load: load.LoadResult
    cpu_s: dict[str, float]
    processes: dict[str, int]  # role -> number of live processes in its session at the end
    extproc_streams: int | None
    upstream_rq: int
    problems: list[str] = field(default_factory=list)

    def cpu_us_per_request(self) -> dict[str, float | None]:
        n = self.load.requests
        return {role: (sec * 1e6 / n if n else None) for role, sec in self.cpu_s.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "scenario": self.scenario,
            **self.load.to_dict(),
            "cpu_s": self.cpu_s,
            "cpu_us_per_request": self.cpu_us_per_request(),
            "processes": self.processes,
            "extproc_streams": self.extproc_streams,
            "upstream_rq": self.upstream_rq,
            "problems": self.problems,
            "ok": not self.problems,
        }


# --- processes -------------------------------------------------------------------------------


def start_envoy(group: ProcessGroup, name: str, config: Path, admin_port: int, timeout: float = 30.0) -> Proc:
    """Every Envoy of the benchmark is started the way meshroute starts it:
    ``--concurrency 1 --disable-hot-restart --log-level warn``, ready on the admin ``/ready``."""
    return envoy_process.start_envoy(group, config, admin_port, concurrency=1, name=name, timeout=timeout)


def _uds_ready(address: str) -> bool:
    path = address.removeprefix("unix:")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(path) == 0


def _meshroute(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshroute", *args]


def _envoy_config(
    workdir: Path, istio: Path, sock: str, workers: int, tag: str, engine: str = EXTPROC
) -> tuple[int, int, Path]:
    """``meshroute envoy-config`` for a scenario: (listener port, admin port, bootstrap path).
    Every front Envoy has its access log off, as envoy-alone: the scenarios compare routing, not
    logging."""
    port, admin = free_port(), free_port()
    try:
        front_yaml = envoy_process.write_bootstrap(
            [istio], workdir / f"front-{tag}.yaml", extproc=sock, workers=workers, mesh_port=port,
            admin_port=admin, access_log="", engine=engine,
        )  # fmt: skip
    except ProcessError as exc:
        raise SetupError(str(exc)) from None
    return port, admin, front_yaml


def start_alone(group: ProcessGroup, workdir: Path, upstream_port: int, workload: Workload) -> Scenario:
    """A front Envoy with one ``prefix: /`` route to the upstream: no filter but the router."""
    port, admin = free_port(), free_port()
    cfg = bootstrap.write_yaml(
        workdir / "front-alone.yaml", bootstrap.plain_front_bootstrap(admin, port, upstream_port)
    )
    front = start_envoy(group, "front-alone", cfg, admin)
    return Scenario(ALONE, port, admin, {"front": front}, workload, ENVOY, check_clusters=False)


def start_native(
    group: ProcessGroup, workdir: Path, upstream_port: int, table: RouteTable, workload: Workload
) -> Scenario:
    """Envoy routing the generated table itself (one virtual host per VirtualService host)."""
    name = routes_name(NATIVE, table.total)
    port, admin = free_port(), free_port()
    cfg = bootstrap.write_yaml(
        workdir / f"front-native-{table.total}.yaml",
        bootstrap.native_routes_bootstrap(admin, port, upstream_port, table),
    )
    front = start_envoy(group, f"front-native-{table.total}", cfg, admin, workload.startup_timeout())
    return Scenario(name, port, admin, {"front": front}, workload, ENVOY)


def start_meshroute(
    group: ProcessGroup, workdir: Path, workload: Workload, workers: int, name: str | None = None
) -> Scenario:
    """``meshroute serve --workers N`` behind the Envoy ``meshroute envoy-config`` writes."""
    from meshroute.extproc import addresses

    name = name or meshroute_name(workers)
    tag = f"w{workers}" if workload.routes <= 3 else f"w{workers}-{workload.routes}"
    sock = f"unix:{workdir}/{tag}.sock"
    port, admin, front_yaml = _envoy_config(workdir, workload.istio, sock, workers, tag)
    serve = group.start(
        f"serve-{tag}", _meshroute("serve", str(workload.istio), "--listen", sock, "--workers", str(workers))
    )
    timeout = workload.startup_timeout()
    for address in addresses(sock, workers):
        serve.wait_until(partial(_uds_ready, address), timeout=timeout, what=f"listening on {address}")
    front = start_envoy(group, f"front-{tag}", front_yaml, admin, timeout)
    procs = {"front": front, "serve": serve}
    reference = routes_name(NATIVE, workload.routes) if workload.routes > 3 else FLOOR
    return Scenario(name, port, admin, procs, workload, EXTPROC, reference=reference, goals=GOALS[EXTPROC])


def start_embedded(group: ProcessGroup, workdir: Path, workload: Workload, name: str = EMBEDDED) -> Scenario:
    """The front Envoy ``meshroute envoy-config --engine embedded`` writes: the module decides."""
    tag = "embedded" if workload.routes <= 3 else f"embedded-{workload.routes}"
    port, admin, front_yaml = _envoy_config(workdir, workload.istio, "unix:/unused", 1, tag, MODULE)
    front = start_envoy(group, f"front-{tag}", front_yaml, admin, workload.startup_timeout())
    large = workload.routes > 3
    return Scenario(
        name, port, admin, {"front": front}, workload, MODULE,
        reference=routes_name(NATIVE, workload.routes) if large else None,
        goals=GOALS[f"{MODULE}-routes" if large else MODULE],
    )  # fmt: skip


def start_floor(group: ProcessGroup, workdir: Path, workload: Workload) -> Scenario:
    """``floor.py`` (constant reply, no routing) behind the same generated Envoy config."""
    sock = f"unix:{workdir}/floor.sock"
    port, admin, front_yaml = _envoy_config(workdir, workload.istio, sock, 1, "floor")
    cluster = workload.clusters[0]
    server = group.start(
        "floor-extproc",
        [sys.executable, "-m", "meshroute.bench.floor", "--listen", sock, "--cluster", cluster],
    )
    server.wait_until(partial(_uds_ready, sock), timeout=30, what=f"listening on {sock}")
    front = start_envoy(group, "front-floor", front_yaml, admin)
    procs = {"front": front, "serve": server}
    # The floor sends every request to one cluster: that is what it must do.
    constant = replace(workload, clusters=[cluster] * len(workload.clusters))
    return Scenario(FLOOR, port, admin, procs, constant, EXTPROC, goals=GOALS[EXTPROC])


# --- checks and stats -------------------------------------------------------------------------


def envoy_stats(admin_port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{admin_port}/stats", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, value = line.rpartition(": ")
        if sep and value.strip().isdigit():
            out[key] = int(value)
    return out


def extproc_streams(stats: dict[str, int]) -> int:
    return sum(v for k, v in stats.items() if ".ext_proc." in k and k.endswith(".streams_started"))


def upstream_requests(stats: dict[str, int]) -> dict[str, int]:
    """``upstream_rq_total`` per cluster, without the ext_proc gRPC cluster."""
    suffix = ".upstream_rq_total"
    return {
        k[len("cluster.") : -len(suffix)]: v
        for k, v in stats.items()
        if k.startswith("cluster.") and k.endswith(suffix) and "extproc" not in k
    }


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{LOOPBACK}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_routing(scenario: Scenario) -> None:
    """Every distinct request of the workload answers the upstream's 200 ``ok``, reaches its own
    cluster (all but envoy-alone, which has one) and goes through ext_proc exactly once (ext_proc
    scenarios) or never (the others)."""
    before = envoy_stats(scenario.admin_port)
    seen: set[str] = set()
    for (path, headers), cluster in zip(scenario.workload.requests, scenario.workload.clusters, strict=True):
        key = repr((path, sorted(headers.items())))
        if key in seen:
            continue
        seen.add(key)
        status, body = _get(scenario.port, path, headers)
        if status != 200 or body != b"ok\n":
            raise SetupError(f"{scenario.name}: {path} {headers} answered {status} {body[:200]!r}")
        after = envoy_stats(scenario.admin_port)
        if scenario.check_clusters:
            got = {
                c: n - upstream_requests(before).get(c, 0)
                for c, n in upstream_requests(after).items()
                if n != upstream_requests(before).get(c, 0)
            }
            if got != {cluster: 1}:
                raise SetupError(
                    f"{scenario.name}: {path} {headers} expected one request to {cluster}, saw {got}"
                )
        streams = extproc_streams(after) - extproc_streams(before)
        if streams != (1 if scenario.extproc else 0):
            raise SetupError(f"{scenario.name}: {path} {headers}: {streams} ext_proc streams")
        before = after


# --- measuring ------------------------------------------------------------------------------


def choose_tool(requested: str) -> tuple[str, str]:
    """(tool, wrk path or ""): ``auto`` is wrk when installed, else the Python generator."""
    wrk = load.wrk_path()
    if requested == "wrk" and not wrk:
        raise SetupError("wrk is not installed (scripts/bench-tools.sh installs it)")
    if requested == "python" or not wrk:
        return "python", ""
    return "wrk", wrk


def generate(
    tool: str, wrk: str, port: int, requests: list[load.Request], connections: int, duration: float
) -> load.LoadResult:
    if tool == "wrk":
        return load.run_wrk(port, requests, connections, duration, wrk)
    return load.run_python(port, requests, connections, duration)


def measure(
    scenario: Scenario,
    upstream: Proc,
    tool: str,
    wrk: str,
    round_no: int,
    connections: int,
    duration: float,
) -> Run:
    roles = {**scenario.procs, "upstream": upstream}
    meter = CpuMeter({role: p.pid for role, p in roles.items()})
    stats0 = envoy_stats(scenario.admin_port)
    meter.start()
    result = generate(tool, wrk, scenario.port, scenario.workload.requests, connections, duration)
    cpu = meter.stop()
    stats1 = envoy_stats(scenario.admin_port)
    streams = extproc_streams(stats1) - extproc_streams(stats0) if scenario.extproc else None
    rq = sum(upstream_requests(stats1).values()) - sum(upstream_requests(stats0).values())
    problems: list[str] = []
    if result.error_count:
        problems.append(f"{result.error_count} errors {_nonzero(result.errors)}")
    if result.requests == 0:
        problems.append("no request completed")
    for role, p in roles.items():
        if not p.alive():
            problems.append(f"{role} exited with {p.popen.returncode}")
    # Requests still in flight when the generator stops are counted by Envoy, not by wrk.
    slack = connections + 2
    if streams is not None and abs(streams - result.requests) > slack:
        problems.append(f"ext_proc streams {streams} != requests {result.requests}")
    if abs(rq - result.requests) > slack:
        problems.append(f"upstream requests {rq} != requests {result.requests}")
    return Run(
        round=round_no,
        scenario=scenario.name,
        load=result,
        cpu_s=cpu,
        processes={role: len(session_pids(p.pid)) for role, p in roles.items()},
        extproc_streams=streams,
        upstream_rq=rq,
        problems=problems,
    )


def _nonzero(errors: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in errors.items() if v}


def schedule(names: Sequence[str], rounds: int, connections: Sequence[int]) -> Iterator[tuple[int, int, str]]:
    """(round, connections, scenario): each round alternates the scenario order, so that a noisy
    moment on the shared machine does not always hit the same scenario.

    >>> list(schedule(["a", "b"], 2, [1]))
    [(1, 1, 'a'), (1, 1, 'b'), (2, 1, 'b'), (2, 1, 'a')]
    """
    for r in range(rounds):
        order = list(names) if r % 2 == 0 else list(reversed(names))
        for conns in connections:
            for name in order:
                yield r + 1, conns, name


def machine_info() -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        # ``taskset -c 1 meshroute bench --envoy`` pins every process of the run (they inherit it).
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def envoy_version() -> str:
    out = subprocess.run(
        [envoy_process.envoy_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout.strip().rsplit("version: ", 1)[-1]


def small_workload(workdir: Path, upstream_port: int) -> Workload:
    """The three-route VirtualService of ``bootstrap.istio_config`` and its two alternating requests."""
    istio = workdir / "istio.yaml"
    istio.write_text(bootstrap.istio_config(upstream_port))
    return Workload(istio, load.alternating(bootstrap.HOST), list(bootstrap.EXPECTED_CLUSTERS), routes=3)


def routes_workload(workdir: Path, upstream_port: int, table: RouteTable) -> Workload:
    """The generated table (``routes.RouteTable``) and ROUTES_REQUESTS requests spread over it."""
    istio = bootstrap.write_routes_istio(workdir / f"istio-{table.total}routes.yaml", table, upstream_port)
    probes = table.requests(ROUTES_REQUESTS)
    requests = [(path, {"Host": host, **headers}) for host, path, headers, _ in probes]
    clusters = [bootstrap.cluster_name(dest, table.port) for *_, dest in probes]
    return Workload(istio, requests, clusters, routes=table.total)


def run(opts: Options, log: Any = print) -> dict[str, Any]:
    """Run the whole benchmark; returns the JSON-able results (``report`` formats them)."""
    import tempfile

    tool, wrk = choose_tool(opts.load_tool)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="mrbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    table = RouteTable.of_size(opts.routes) if opts.routes > 0 else None
    results: dict[str, Any] = {
        "meta": {
            **machine_info(),
            "envoy": envoy_version(),
            "load_tool": tool,
            "load_command": (
                f"wrk -t1 -cN -d{max(1, round(opts.duration))}s --latency -s requests.lua"
                if tool == "wrk"
                else "python fallback (threads + http.client): proves the harness works; not a benchmark"
            ),
            "duration_s": opts.duration,
            "rounds": opts.rounds,
            "connections": list(opts.connections),
            "warmup_s": opts.warmup,
            "front_envoy": "--concurrency 1, no access log, every scenario",
            "route_table": (
                {
                    "routes": table.total,
                    "virtual_services": table.services,
                    "routes_per_virtual_service": table.routes,
                    "distinct_requests": ROUTES_REQUESTS,
                }
                if table
                else None
            ),
            "workdir": str(workdir),
        },
        "scenarios": {},
        "failed": {},
        "runs": [],
    }
    log(f"# load generator: {results['meta']['load_command']}")
    log(f"# logs and configs: {workdir}")
    with ProcessGroup(workdir / "logs") as group:
        up_port, up_admin = free_port(), free_port()
        up_yaml = bootstrap.write_yaml(
            workdir / "upstream.yaml", bootstrap.upstream_bootstrap(up_admin, up_port)
        )
        upstream = start_envoy(group, "upstream", up_yaml, up_admin)
        small = small_workload(workdir, up_port)

        starters: list[tuple[str, Any]] = []
        if opts.alone:
            starters.append((ALONE, partial(start_alone, group, workdir, up_port, small)))
        if not opts.routes_only:
            if opts.floor:
                starters.append((FLOOR, partial(start_floor, group, workdir, small)))
            for workers in opts.workers:
                starters.append(
                    (meshroute_name(workers), partial(start_meshroute, group, workdir, small, workers))
                )
            if opts.embedded:
                starters.append((EMBEDDED, partial(start_embedded, group, workdir, small)))
        if table is not None:
            large = routes_workload(workdir, up_port, table)
            log(
                f"# route table: {table.total} routes ({table.services} VirtualServices × {table.routes}), "
                f"{ROUTES_REQUESTS} requests: {large.istio}"
            )
            native = routes_name(NATIVE, table.total)
            starters.append((native, partial(start_native, group, workdir, up_port, table, large)))
            if opts.embedded:
                name = routes_name(EMBEDDED, table.total)
                starters.append((name, partial(start_embedded, group, workdir, large, name)))
            if opts.workers:
                w = opts.workers[0]
                name = routes_name(meshroute_name(w), table.total)
                starters.append((name, partial(start_meshroute, group, workdir, large, w, name)))

        scenarios: dict[str, Scenario] = {}
        for name, starter in starters:
            try:
                scenarios[name] = starter()
            except (SetupError, ProcessError, subprocess.TimeoutExpired) as exc:
                results["failed"][name] = str(exc)
                log(f"# {name}: FAILED to start: {str(exc).splitlines()[0]}")
        for name, sc in list(scenarios.items()):
            try:
                check_routing(sc)
            except (SetupError, OSError) as exc:
                results["failed"][name] = str(exc)
                log(f"# {name}: FAILED routing check: {exc}")
                del scenarios[name]
        results["scenarios"] = {name: sc.describe() for name, sc in scenarios.items()}
        if opts.warmup > 0:
            for sc in scenarios.values():
                generate(tool, wrk, sc.port, sc.workload.requests, max(opts.connections), opts.warmup)
        for round_no, conns, name in schedule(list(scenarios), opts.rounds, opts.connections):
            r = measure(scenarios[name], upstream, tool, wrk, round_no, conns, opts.duration)
            results["runs"].append(r.to_dict())
            log(
                f"# round {round_no} {name} c={conns}: {r.load.rps:.0f} rps, p50 {r.load.p50_ms:.2f} ms"
                + (f"  PROBLEMS: {'; '.join(r.problems)}" if r.problems else "")
            )
    results["meta"]["loadavg_at_end"] = list(os.getloadavg())
    return results
