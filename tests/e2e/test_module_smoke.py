"""The Envoy dynamic module (``rust/meshroute-envoy``) inside a real Envoy 1.40, on 127.0.0.1.

The module is built with cargo (release, and a debug build with the ``panic-test`` feature in a
target directory of its own), copied next to a hand-written bootstrap — one listener with the
module and the router (``cluster_header: x-meshroute-cluster``), two static clusters pointing at
echo upstreams — and loaded by Envoy. Every callback the module declares runs here: a callback
whose C signature changed would still load, and only these requests would show it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import meshroute
from meshroute.envoy.process import envoy_binary, start_envoy
from meshroute.procs import LOOPBACK, Proc, ProcessGroup, free_port
from tests.e2e.echo import Echo
from tests.e2e.feature_stack import Response, request

REPO = Path(__file__).resolve().parents[2]
LIBRARY = "libmeshroute_envoy.so"  # meshroute_envoy::LIBRARY_FILE_NAME
PANIC_TARGET_DIR = REPO / "target" / "meshroute-envoy-panic-test"  # the feature build's own dir
BUILD_TIMEOUT = 600
REVIEWS = "outbound|9080||reviews.default.svc.cluster.local"
RATINGS = "outbound|9080||ratings.default.svc.cluster.local"
TYPE = "type.googleapis.com/envoy.extensions"
DYNAMIC_MODULE_FILTER = f"{TYPE}.filters.http.dynamic_modules.v3.DynamicModuleFilter"

pytestmark = pytest.mark.timeout(BUILD_TIMEOUT + 120)  # the first test pays for the cargo build

MESH = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /ratings}}]
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /headers}}]
    headers:
      request: {set: {x-set: one}, add: {x-added: two}, remove: [x-drop]}
      response: {set: {x-resp-set: three}, add: {x-resp-added: four}, remove: [x-upstream-drop]}
    route: [{destination: {host: ratings}}]
"""
# The same mesh, with every reviews request sent to ratings (a table that routes differently).
REVIEWS_TO_RATINGS = """
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: ratings}}]
"""


def cargo_build(*args: str, env: Mapping[str, str] | None = None) -> Path:
    """``cargo build -p meshroute-envoy ARGS``; the path of the built module."""
    cargo = shutil.which("cargo")
    assert cargo, "cargo is required to build the Envoy module"
    done = subprocess.run(
        [cargo, "build", "-p", "meshroute-envoy", "--message-format=json-render-diagnostics", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"cargo build {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    for line in done.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "meshroute_envoy":
            for name in msg["filenames"]:
                if name.endswith(f"/{LIBRARY}"):
                    return Path(name)
    raise AssertionError(f"cargo built no {LIBRARY}")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("module")


@pytest.fixture(scope="module")
def module(work: Path) -> Path:
    """The release module, copied so that a rebuild cannot replace the file under Envoy."""
    built = cargo_build("--release")
    return Path(shutil.copy2(built, work / LIBRARY))


@pytest.fixture(scope="module")
def panic_module(work: Path) -> Path:
    built = cargo_build("--features", "panic-test", env={"CARGO_TARGET_DIR": str(PANIC_TARGET_DIR)})
    (work / "panic").mkdir(exist_ok=True)
    return Path(shutil.copy2(built, work / "panic" / LIBRARY))


def write_ir(path: Path, yaml_text: str) -> Path:
    """The IR JSON of an Istio config, as ``meshroute.load`` compiles it."""
    config = path.with_suffix(".yaml")
    config.write_text(yaml_text)
    path.write_text(json.dumps(meshroute.load(config).analysis.ir))
    return path


@pytest.fixture(scope="module")
def table(work: Path) -> Path:
    return write_ir(work / "ir.json", MESH)


def filter_config(table: Path, **extra: Any) -> dict[str, Any]:
    """The module's ``filter_config``: a StringValue carrying JSON."""
    value = {"table": str(table), "listener": {"gateway_port": None}, **extra}
    return {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": json.dumps(value)}


def module_filter(module: Path, config: dict[str, Any]) -> dict[str, Any]:
    return {
        "@type": DYNAMIC_MODULE_FILTER,
        "dynamic_module_config": {"module": {"local": {"filename": str(module)}}},
        "filter_name": "meshroute",
        "filter_config": config,
    }


def bootstrap(
    admin_port: int, upstreams: Mapping[str, int], entry: dict[str, Any], lb: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One listener on 127.0.0.1 (port chosen by the kernel): ``entry`` (the module's
    ``http_filters`` entry), then the router, whose only route takes the cluster from
    ``x-meshroute-cluster``; one static cluster per upstream, balanced by ``lb`` (a
    ``load_balancing_policy``) when given."""

    def cluster(name: str, port: int) -> dict[str, Any]:
        address = {"socket_address": {"address": LOOPBACK, "port_value": port}}
        out = {
            "name": name,
            "type": "STATIC",
            "connect_timeout": "1s",
            "load_assignment": {
                "cluster_name": name,
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": address}}]}],
            },
        }
        if lb is not None:
            out["load_balancing_policy"] = lb
        return out

    hcm = {
        "@type": f"{TYPE}.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "mesh",
        "route_config": {
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-meshroute-cluster"}}],
            }],
        },
        "http_filters": [
            entry,
            {"name": "envoy.filters.http.router",
             "typed_config": {"@type": f"{TYPE}.filters.http.router.v3.Router"}},
        ],
    }  # fmt: skip
    return {
        "node": {"id": "module-smoke", "cluster": "module-smoke"},  # needed once ECDS is used
        "stats_flush_interval": "1s",  # histograms reach the admin page at each flush
        "admin": {"address": {"socket_address": {"address": LOOPBACK, "port_value": admin_port}}},
        "static_resources": {
            "listeners": [{
                "name": "mesh",
                "address": {"socket_address": {"address": LOOPBACK, "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": [cluster(name, port) for name, port in upstreams.items()],
        },
    }  # fmt: skip


def admin_get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Envoy:
    """Two echo upstreams (named after their clusters) and Envoy with the module."""

    def __init__(
        self,
        group: ProcessGroup,
        work: Path,
        meshroute_filter: dict[str, Any],
        lb: dict[str, Any] | None = None,
    ) -> None:
        self.echoes = {REVIEWS: Echo("reviews"), RATINGS: Echo("ratings")}
        self.admin_port = free_port()
        config = work / "envoy.json"
        upstreams = {name: echo.port for name, echo in self.echoes.items()}
        config.write_text(json.dumps(bootstrap(self.admin_port, upstreams, meshroute_filter, lb), indent=1))
        try:
            self.proc: Proc = start_envoy(group, config, self.admin_port)
        except BaseException:
            self.close()
            raise
        listeners = json.loads(admin_get(self.admin_port, "/listeners?format=json"))
        self.port = int(listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"])

    def get(self, host: str, path: str = "/", headers: Mapping[str, str] | None = None) -> Response:
        return request(self.port, host, path, headers)

    def served_by(self, host: str, path: str = "/", headers: Mapping[str, str] | None = None) -> str | None:
        r = self.get(host, path, headers)
        assert r.status == 200, (r.status, r.body[:200], self.proc.log_tail())
        return r.header("x-echo-server")

    def prometheus(self) -> str:
        return admin_get(self.admin_port, "/stats/prometheus")

    def stat(self, name: str) -> int:
        """A counter from ``/stats`` (0 while Envoy has not created it)."""
        for line in admin_get(self.admin_port, f"/stats?filter=^{re.escape(name)}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def close(self) -> None:
        for echo in self.echoes.values():
            echo.close()


@contextlib.contextmanager
def running(
    work: Path, meshroute_filter: dict[str, Any], lb: dict[str, Any] | None = None
) -> Iterator[Envoy]:
    with ProcessGroup(work / "logs") as group:
        envoy = Envoy(group, work, meshroute_filter, lb)
        try:
            yield envoy
        finally:
            envoy.close()
        assert envoy.proc.alive(), f"Envoy died:\n{envoy.proc.log_tail()}"


def prometheus_value(text: str, sample: str) -> float | None:
    """The value of one sample line (``name{labels}``) of a Prometheus page."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


DECISIONS = "envoy_dynamicmodulescustom_meshroute_decisions"
PANICS = "envoy_dynamicmodulescustom_meshroute_panics{}"
DECISION_US_COUNT = "envoy_dynamicmodulescustom_meshroute_decision_us_count{}"


def test_routes_ignores_a_forged_cluster_and_reports_stats(module: Path, table: Path, work: Path) -> None:
    run = work / "routes"
    run.mkdir()
    entry = {"name": "meshroute", "typed_config": module_filter(module, filter_config(table, seed=7))}
    with running(run, entry) as envoy:
        assert envoy.served_by("reviews:9080") == "reviews"
        assert envoy.served_by("ratings:9080", "/ratings/1") == "ratings"
        # The core sees the request headers: a header match picks another service.
        assert envoy.served_by("ratings:9080", "/ratings/1", {"end-user": "jason"}) == "reviews"
        # A client's x-meshroute-cluster is overwritten by the module's decision.
        forged = envoy.get("reviews:9080", headers={"x-meshroute-cluster": RATINGS})
        assert forged.status == 200 and forged.header("x-echo-server") == "reviews"
        assert forged.json()["headers"]["x-meshroute-cluster"] == REVIEWS
        # No route: the module answers itself (a local reply), no upstream sees the request.
        seen = len(envoy.echoes[RATINGS].requests)
        missing = envoy.get("ratings:9080", "/elsewhere")
        assert missing.status == 404
        assert len(envoy.echoes[RATINGS].requests) == seen

        prom = envoy.prometheus()
        assert prometheus_value(prom, DECISIONS + '{outcome="route"}') == 4, prom
        assert prometheus_value(prom, DECISIONS + '{outcome="no_route"}') == 1, prom
        assert prometheus_value(prom, PANICS) == 0, prom
        assert "# TYPE envoy_dynamicmodulescustom_meshroute_decision_us histogram" in prom
        # Histogram samples reach the admin page at the next stats flush (1 s here).
        wait_for(lambda: prometheus_value(envoy.prometheus(), DECISION_US_COUNT) == 5, "decision_us count 5")


def test_request_and_response_header_operations(module: Path, table: Path, work: Path) -> None:
    """VirtualService ``headers``: set / add / remove on the request (before the upstream) and
    on the response (in the response-headers hook)."""
    run = work / "header-ops"
    run.mkdir()
    entry = {"name": "meshroute", "typed_config": module_filter(module, filter_config(table))}
    with running(run, entry) as envoy:
        r = envoy.get("ratings:9080", "/headers", {"x-set": "client", "x-added": "client", "x-drop": "x"})
        assert r.status == 200 and r.header("x-echo-server") == "ratings", r
        seen = r.json()["headers"]
        assert seen["x-set"] == "one"
        assert seen["x-added"] == "client,two"
        assert "x-drop" not in seen
        assert r.header("x-resp-set") == "three"
        assert r.header("x-resp-added") == "four"
        assert r.header("x-upstream-drop") is None
        # Without the route's operations the echo's header comes through.
        assert envoy.get("ratings:9080", "/ratings/3").header("x-upstream-drop") == "present"


def test_validate_rejects_a_missing_or_invalid_table(module: Path, table: Path, work: Path) -> None:
    """``envoy --mode validate`` loads the module and runs http_filter_config_new: a table that
    cannot be loaded fails validation with the module's reason, and Envoy exits normally."""
    garbage = work / "garbage.json"
    garbage.write_text('{"routes": 3}')
    cases = {
        "good": (table, 0, "OK"),
        "missing": (work / "no-such-ir.json", 1, f"table {work / 'no-such-ir.json'}: No such file"),
        "invalid": (garbage, 1, f"table {garbage}: invalid IR"),
    }
    for name, (path, code, expect) in cases.items():
        config = work / f"validate-{name}.json"
        filt = {"name": "meshroute", "typed_config": module_filter(module, filter_config(path))}
        config.write_text(json.dumps(bootstrap(free_port(), {REVIEWS: 9}, filt)))
        args = [envoy_binary(), "--mode", "validate", "--disable-hot-restart", "-c", str(config)]
        done = subprocess.run(
            [*args, "--log-level", "info"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == code, (name, done.returncode, output[-2000:])  # never a signal
        assert expect in output, (name, output[-2000:])
        if code:
            assert 'meshroute: filter "meshroute": config rejected' in output, output[-2000:]


def test_a_panic_is_a_500_and_envoy_keeps_serving(panic_module: Path, table: Path, work: Path) -> None:
    run = work / "panic-run"
    run.mkdir()
    entry = {"name": "meshroute", "typed_config": module_filter(panic_module, filter_config(table))}
    with running(run, entry) as envoy:
        assert envoy.served_by("reviews:9080") == "reviews"
        boom = envoy.get("reviews:9080", headers={"x-meshroute-test-panic": "1"})
        assert boom.status == 500 and boom.body == b"meshroute: internal error\n", boom
        assert len(envoy.echoes[REVIEWS].requests) == 1
        for _ in range(3):
            assert envoy.served_by("reviews:9080", headers={"x-meshroute-test-panic": "0"}) == "reviews"
        assert envoy.served_by("ratings:9080", "/ratings/2") == "ratings"
        assert prometheus_value(envoy.prometheus(), PANICS) == 1
        logged = "meshroute: panic in request_headers"
        wait_for(lambda: logged in envoy.proc.log.read_text(), "the panic log line")


def test_a_balancer_panic_is_no_host_and_envoy_keeps_serving(
    panic_module: Path, table: Path, work: Path
) -> None:
    """The module as both the HTTP filter and every cluster's load-balancing policy (``--lb rust``):
    a panic inside ``choose_host`` is caught, the request gets no host (Envoy's 503), the panic is
    counted and logged, and the next requests are balanced as before."""
    from meshroute.envoy.module import lb_policy_config, load_balancing_policy

    run = work / "lb-panic"
    run.mkdir()
    entry = {"name": "meshroute", "typed_config": module_filter(panic_module, filter_config(table))}
    lb = load_balancing_policy(panic_module, lb_policy_config("any", {"simple": "ROUND_ROBIN"}))
    with running(run, entry, lb) as envoy:
        assert envoy.served_by("reviews:9080") == "reviews"
        boom = envoy.get("reviews:9080", headers={"x-meshroute-test-panic": "lb"})
        assert boom.status == 503, boom
        assert len(envoy.echoes[REVIEWS].requests) == 1
        assert envoy.served_by("reviews:9080") == "reviews"
        assert envoy.served_by("ratings:9080", "/ratings/2") == "ratings"
        assert envoy.stat("dynamicmodulescustom.meshroute_lb_panics") == 1
        assert envoy.stat("dynamicmodulescustom.meshroute_lb_picks") == 3
        logged = "meshroute: panic in lb_choose_host"
        wait_for(lambda: logged in envoy.proc.log.read_text(), "the balancer's panic log line")


def test_ecds_bad_table_keeps_the_last_good_config(module: Path, table: Path, work: Path) -> None:
    """Filter config from a watched file (ECDS): a config whose table is missing is rejected
    and the running one keeps routing; a new table is picked up without a restart."""
    run = work / "ecds"
    run.mkdir()
    ecds = run / "ecds.json"
    other = write_ir(run / "reviews-to-ratings.json", MESH + REVIEWS_TO_RATINGS)

    def publish(table_path: Path) -> None:
        resource = {
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": "meshroute",
            "typed_config": module_filter(module, filter_config(table_path)),
        }
        tmp = run / "ecds.json.tmp"
        tmp.write_text(json.dumps({"resources": [resource]}))
        tmp.replace(ecds)  # a rename, as Envoy's file watch expects

    publish(table)

    entry = {
        "name": "meshroute",
        "config_discovery": {
            "config_source": {"path_config_source": {"path": str(ecds)}},
            "type_urls": [DYNAMIC_MODULE_FILTER],
        },
    }
    prefix = "extension_config_discovery.http_filter.meshroute."
    with running(run, entry) as envoy:
        assert envoy.served_by("reviews:9080") == "reviews"
        publish(run / "missing.json")
        wait_for(lambda: envoy.stat(prefix + "config_fail") >= 1, "the rejected ECDS update")
        assert envoy.served_by("reviews:9080", headers={"x-meshroute-cluster": RATINGS}) == "reviews"
        reloads = envoy.stat(prefix + "config_reload")
        publish(other)
        wait_for(lambda: envoy.stat(prefix + "config_reload") > reloads, "the new table")
        assert envoy.served_by("reviews:9080") == "ratings"
