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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from meshroute.envoy import process as envoy_process
from meshroute.procs import LOOPBACK, Proc, ProcessError, ProcessGroup, free_port

from . import bootstrap, load
from .cpu import CpuMeter, session_pids

ALONE = "envoy-alone"
FLOOR = "envoy+floor-extproc"


def meshroute_name(workers: int) -> str:
    return f"envoy+meshroute-w{workers}"


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
    warmup: float = 2.0
    load_tool: str = "auto"  # auto | wrk | python
    workdir: Path | None = None


@dataclass
class Scenario:
    name: str
    port: int
    admin_port: int
    procs: dict[str, Proc]  # role -> process: "front", optionally "serve"
    extproc: bool
    # The cluster each of the two alternating requests must reach (checked through ext_proc only).
    expected_clusters: tuple[str, str] = bootstrap.EXPECTED_CLUSTERS


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


def start_envoy(group: ProcessGroup, name: str, config: Path, admin_port: int) -> Proc:
    """Every Envoy of the benchmark is started the way meshroute starts it:
    ``--concurrency 1 --disable-hot-restart --log-level warn``, ready on the admin ``/ready``."""
    return envoy_process.start_envoy(group, config, admin_port, concurrency=1, name=name)


def _uds_ready(address: str) -> bool:
    path = address.removeprefix("unix:")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(path) == 0


def _meshroute(*args: str) -> list[str]:
    return [sys.executable, "-m", "meshroute", *args]


def _envoy_config(workdir: Path, istio: Path, sock: str, workers: int, tag: str) -> tuple[int, int, Path]:
    """``meshroute envoy-config`` for a scenario: (listener port, admin port, bootstrap path)."""
    port, admin = free_port(), free_port()
    try:
        front_yaml = envoy_process.write_bootstrap(
            [istio], workdir / f"front-{tag}.yaml", extproc=sock, workers=workers, mesh_port=port,
            admin_port=admin, access_log="",  # as envoy-alone: compare routing, not logging
        )  # fmt: skip
    except ProcessError as exc:
        raise SetupError(str(exc)) from None
    return port, admin, front_yaml


def start_meshroute(group: ProcessGroup, workdir: Path, istio: Path, workers: int) -> Scenario:
    """``meshroute serve --workers N`` behind the Envoy ``meshroute envoy-config`` writes."""
    from meshroute.extproc import addresses

    sock = f"unix:{workdir}/w{workers}.sock"
    port, admin, front_yaml = _envoy_config(workdir, istio, sock, workers, f"w{workers}")
    serve = group.start(
        f"serve-w{workers}", _meshroute("serve", str(istio), "--listen", sock, "--workers", str(workers))
    )
    for address in addresses(sock, workers):
        serve.wait_until(partial(_uds_ready, address), timeout=30, what=f"listening on {address}")
    front = start_envoy(group, f"front-w{workers}", front_yaml, admin)
    procs = {"front": front, "serve": serve}
    return Scenario(meshroute_name(workers), port, admin, procs, extproc=True)


def start_floor(group: ProcessGroup, workdir: Path, istio: Path) -> Scenario:
    """``floor.py`` (constant reply, no routing) behind the same generated Envoy config."""
    sock = f"unix:{workdir}/floor.sock"
    port, admin, front_yaml = _envoy_config(workdir, istio, sock, 1, "floor")
    cluster = bootstrap.EXPECTED_CLUSTERS[0]
    server = group.start(
        "floor-extproc",
        [sys.executable, "-m", "meshroute.bench.floor", "--listen", sock, "--cluster", cluster],
    )
    server.wait_until(partial(_uds_ready, sock), timeout=30, what=f"listening on {sock}")
    front = start_envoy(group, "front-floor", front_yaml, admin)
    procs = {"front": front, "serve": server}
    return Scenario(FLOOR, port, admin, procs, extproc=True, expected_clusters=(cluster, cluster))


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


def _get(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{LOOPBACK}:{port}{load.PATH}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_routing(scenario: Scenario) -> None:
    """Both request variants answer the upstream's 200 ``ok``; through meshroute each reaches its
    own cluster and goes through ext_proc exactly once."""
    before = envoy_stats(scenario.admin_port)
    variants = [
        {"Host": bootstrap.HOST},
        {"Host": bootstrap.HOST, load.VARIANT_HEADER[0]: load.VARIANT_HEADER[1]},
    ]
    for headers, cluster in zip(variants, scenario.expected_clusters, strict=True):
        status, body = _get(scenario.port, headers)
        if status != 200 or body != b"ok\n":
            raise SetupError(f"{scenario.name}: {headers} answered {status} {body[:200]!r}")
        if not scenario.extproc:
            continue
        after = envoy_stats(scenario.admin_port)
        got = {
            c: n - upstream_requests(before).get(c, 0)
            for c, n in upstream_requests(after).items()
            if n != upstream_requests(before).get(c, 0)
        }
        if got != {cluster: 1}:
            raise SetupError(f"{scenario.name}: {headers} expected one request to {cluster}, saw {got}")
        streams = extproc_streams(after) - extproc_streams(before)
        if streams != 1:
            raise SetupError(f"{scenario.name}: expected 1 ext_proc stream per request, saw {streams}")
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


def generate(tool: str, wrk: str, port: int, connections: int, duration: float) -> load.LoadResult:
    if tool == "wrk":
        return load.run_wrk(port, bootstrap.HOST, connections, duration, wrk)
    return load.run_python(port, bootstrap.HOST, connections, duration)


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
    result = generate(tool, wrk, scenario.port, connections, duration)
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
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def envoy_version() -> str:
    out = subprocess.run(
        [envoy_process.envoy_binary(), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout.strip().rsplit("version: ", 1)[-1]


def run(opts: Options, log: Any = print) -> dict[str, Any]:
    """Run the whole benchmark; returns the JSON-able results (``report`` formats them)."""
    import tempfile

    tool, wrk = choose_tool(opts.load_tool)
    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="mrbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
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
            "workdir": str(workdir),
        },
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
        istio = workdir / "istio.yaml"
        istio.write_text(bootstrap.istio_config(up_port))

        scenarios: dict[str, Scenario] = {}
        if opts.alone:
            port, admin = free_port(), free_port()
            cfg = bootstrap.write_yaml(
                workdir / "front-alone.yaml", bootstrap.plain_front_bootstrap(admin, port, up_port)
            )
            front = start_envoy(group, "front-alone", cfg, admin)
            scenarios[ALONE] = Scenario(ALONE, port, admin, {"front": front}, extproc=False)
        starters = [(FLOOR, partial(start_floor, group, workdir, istio))] if opts.floor else []
        for workers in opts.workers:
            starters.append(
                (meshroute_name(workers), partial(start_meshroute, group, workdir, istio, workers))
            )
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
        if opts.warmup > 0:
            for sc in scenarios.values():
                generate(tool, wrk, sc.port, max(opts.connections), opts.warmup)
        for round_no, conns, name in schedule(list(scenarios), opts.rounds, opts.connections):
            r = measure(scenarios[name], upstream, tool, wrk, round_no, conns, opts.duration)
            results["runs"].append(r.to_dict())
            log(
                f"# round {round_no} {name} c={conns}: {r.load.rps:.0f} rps, p50 {r.load.p50_ms:.2f} ms"
                + (f"  PROBLEMS: {'; '.join(r.problems)}" if r.problems else "")
            )
    results["meta"]["loadavg_at_end"] = list(os.getloadavg())
    return results
