"""Envoy deciding with either engine + two echo upstreams, for tests/e2e/test_envoy_features.py.

``extproc``: ``meshroute serve`` on a unix socket and the static bootstrap ``envoy-config`` writes;
``embedded``: no serve, the bootstrap and live files of ``envoy-config --engine embedded
--live-dir``, rewritten by ``apply`` as ``meshroute run`` does (``meshroute.stack.LiveUpdates``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshroute.envoy.options import EMBEDDED, ENGINES, EXTPROC
from meshroute.envoy.process import envoy_config_args, start_envoy, write_bootstrap
from meshroute.extproc import status_paths
from meshroute.procs import LOOPBACK, Proc, ProcessGroup, free_port, wait_until
from meshroute.stack import LiveUpdates, read_status, start_serve
from tests.e2e.echo import Echo
from tests.envoy.tls_helpers import self_signed

CONFIG_TEMPLATE = Path(__file__).with_name("features.yaml")
GATEWAY_PORT, HTTPS_PORT = 8081, 8443  # Gateway server ports in features.yaml, bound elsewhere
TLS_HOST = "secure.gw.test"


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    host: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    tls: Path | None = None,
    method: str = "GET",
) -> Response:
    """A request (GET unless ``method``) through Envoy; with ``tls`` (a CA file), HTTPS with SNI ``host``."""
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=15)
    else:
        context = ssl.create_default_context(cafile=str(tls))
        context.check_hostname = False  # we connect to 127.0.0.1; the SNI and chain are still checked
        conn = _SniConnection(host, LOOPBACK, port, timeout=15, context=context)
    start = time.monotonic()
    try:
        conn.request(method, path, headers={"host": host, **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
        return Response(resp.status, resp.getheaders(), body, time.monotonic() - start)
    finally:
        conn.close()


class _SniConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with a chosen SNI name (Envoy picks the filter chain by SNI)."""

    def __init__(self, sni: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sni = sni
        self._ssl_context: ssl.SSLContext = kwargs["context"]

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self._sni)


CORS_ORIGIN = "https://app.example"
PREFLIGHT = {"origin": CORS_ORIGIN, "access-control-request-method": "POST"}
# One request mix per decision outcome of features.yaml: outcome -> (request, expected status, how many)
OUTCOME_REQUESTS: dict[str, tuple[Callable[[FeatureStack], Response], int, int]] = {
    "route": (lambda s: s.mesh("echo.test", "/v1"), 200, 5),
    "no_route": (lambda s: s.mesh("echo.test", "/not-routed"), 404, 4),
    "redirect": (lambda s: s.mesh("echo.test", "/redirect"), 302, 3),
    "direct_response": (lambda s: s.mesh("echo.test", "/direct"), 418, 2),
    "no_cluster": (lambda s: s.mesh("echo.test", "/nosubset"), 503, 2),
    "cors_preflight": (lambda s: s.mesh("echo.test", "/cors/api", PREFLIGHT, method="OPTIONS"), 200, 1),
}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# The module's counters on Envoy's Prometheus page (namespace dynamicmodulescustom), as
# prometheus_client's parser names their samples (it appends _total to a counter's name).
MODULE_DECISIONS = "envoy_dynamicmodulescustom_meshroute_decisions_total"
MODULE_PANICS = "envoy_dynamicmodulescustom_meshroute_panics_total"


def scrape(port: int, path: str) -> Samples:
    """A Prometheus text page on 127.0.0.1: (sample name, sorted labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        text = resp.read().decode()
    finally:
        conn.close()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@dataclass
class Traffic:
    """Requests sent in the background while something else happens (bounded in count and time)."""

    sent: int = 0
    failed: list[tuple[int, str | None]] = field(default_factory=list)


class FeatureStack:
    """``engine`` ``extproc`` (``workers`` serve processes, ``metrics``: serve's /metrics) or
    ``embedded`` (the module; its metrics are Envoy's)."""

    def __init__(
        self, work: Path, group: ProcessGroup, workers: int = 1, metrics: bool = False, engine: str = EXTPROC
    ) -> None:
        assert engine in ENGINES, engine
        assert engine == EXTPROC or workers == 1, "serve workers: extproc only"
        self.engine = engine
        self.work = work
        self.group = group
        self.workers = workers
        # serve --metrics 127.0.0.1:<port> (``metrics()`` scrapes it)
        self.metrics_port: int | None = free_port() if metrics and engine == EXTPROC else None
        self.echo_v1 = Echo("v1")
        self.echo_v2 = Echo("v2")
        self.config_dir = work / "config"
        self.config_dir.mkdir()
        self.cert, key = self_signed(work, TLS_HOST)
        self.config_text = (
            CONFIG_TEMPLATE.read_text()
            .replace("${V1_PORT}", str(self.echo_v1.port))
            .replace("${V2_PORT}", str(self.echo_v2.port))
            .replace("${CERT}", str(self.cert))
            .replace("${KEY}", str(key))
        )
        (self.config_dir / "config.yaml").write_text(self.config_text)
        self.socket = f"unix:{work}/extproc.sock"
        self.status_file = work / "status.json"
        self.serve: Proc | None = None
        self.updates: LiveUpdates | None = None
        if engine == EXTPROC:
            self.start_serve()
        self.mesh_port, self.gateway_port, self.admin_port = free_port(), free_port(), free_port()
        self.https_port = free_port()
        settings: dict[str, Any] = {
            "extproc": self.socket, "workers": workers, "mesh_port": self.mesh_port,
            "admin_port": self.admin_port, "engine": engine,
            "bind_ports": {GATEWAY_PORT: self.gateway_port, HTTPS_PORT: self.https_port},
        }  # fmt: skip
        if engine == EMBEDDED:
            settings["live_dir"] = work / "live"
        envoy_yaml = write_bootstrap([self.config_dir], work / "envoy.yaml", **settings)
        self.envoy = start_envoy(group, envoy_yaml, self.admin_port)
        if engine == EMBEDDED:
            argv = envoy_config_args([self.config_dir], **settings)
            log_tail = lambda: self.envoy.log_tail(50)  # noqa: E731 - Envoy's reason for a rejection
            self.updates = LiveUpdates([self.config_dir], argv, self.admin_port, log_tail)

    def statuses(self) -> list[dict[str, Any]]:
        """Each serve worker's status file (``{}`` while one is not written yet)."""
        return [read_status(p) for p in status_paths(str(self.status_file), self.workers)]

    def status(self, key: str) -> int:
        """A counter, the lowest over the workers (``generation``: configs loaded; ``attempts``: tried)."""
        return min(int(s.get(key, -1)) for s in self.statuses())

    def start_serve(self) -> None:
        metrics = f"{LOOPBACK}:{self.metrics_port}" if self.metrics_port else None
        self.serve = start_serve(
            self.group, [self.config_dir], self.socket, self.status_file, workers=self.workers, timeout=30,
            metrics=metrics,
        )  # fmt: skip

    def stop_serve(self) -> None:
        assert self.serve is not None
        self.group.procs.remove(self.serve)
        self.serve.stop()
        self.serve = None

    def write_config(self, text: str) -> None:
        path = self.config_dir / "config.yaml"
        tmp = self.work / "config.yaml.tmp"  # outside the watched directory: one change per apply
        tmp.write_text(text)
        tmp.replace(path)

    def apply(self, text: str, ok: bool = True) -> dict[str, Any]:
        """Replace the config file and wait until serve has tried to load it (embedded: until the
        live files are rewritten and Envoy took them). Returns (the first worker's) status."""
        if self.updates is not None:
            self.write_config(text)
            status = self.updates.update()
            assert status["ok"] is ok, status
            return status
        assert self.serve is not None
        before = self.status("attempts")
        self.write_config(text)
        self.serve.wait_until(lambda: self.status("attempts") > before, 20, "reloaded")
        statuses = self.statuses()
        assert all(bool(s["ok"]) is ok for s in statuses), statuses
        return statuses[0]

    def mesh(
        self, host: str, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> Response:
        return request(self.mesh_port, host, path, headers, method=method)

    def gateway(self, host: str, path: str, headers: Mapping[str, str] | None = None) -> Response:
        return request(self.gateway_port, host, path, headers)

    def https(self, path: str, headers: Mapping[str, str] | None = None) -> Response:
        return request(self.https_port, TLS_HOST, path, headers, tls=self.cert)

    @contextlib.contextmanager
    def traffic(
        self, host: str, path: str, min_requests: int = 20, max_requests: int = 5000, max_seconds: float = 30
    ) -> Iterator[Traffic]:
        """Requests in a background thread for the duration of the ``with`` block, and at least
        ``min_requests`` of them (a slow, busy machine must not make the check vacuous)."""
        result = Traffic()
        stop = threading.Event()

        def run() -> None:
            deadline = time.monotonic() + max_seconds
            while not stop.is_set() and result.sent < max_requests and time.monotonic() < deadline:
                r = self.mesh(host, path)
                result.sent += 1
                if r.status != 200:
                    result.failed.append((r.status, r.header("x-echo-server")))

        def answered(n: int) -> Callable[[], bool]:
            return lambda: result.sent >= n or not thread.is_alive()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            wait_until(answered(10), 10, "traffic flowing")  # before the block's action...
            yield result
            wait_until(answered(result.sent + 10), 10, "traffic flowing after")  # ...and after it
            wait_until(answered(min_requests), 10, f"{min_requests} requests answered")
        finally:
            stop.set()
            thread.join(20)

    def envoy_stats(self) -> dict[str, int]:
        conn = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=5)
        try:
            conn.request("GET", "/stats?format=json")
            data = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        # numbers only: live files add text stats (each subscription's version_text)
        return {s["name"]: int(s["value"]) for s in data["stats"] if isinstance(s.get("value"), int)}

    def upstream_idle(self, cluster: str) -> bool:
        """Envoy has no request to ``cluster`` pending or in flight (admin /stats gauges). A mirror
        is dispatched before the primary's answer reaches the client, so once the answer is in and
        this holds, every copy Envoy made of that request has reached the upstream."""
        stats = self.envoy_stats()
        return all(
            stats[f"cluster.{cluster}.{g}"] == 0  # KeyError, not a vacuous pass, if renamed
            for g in ("upstream_rq_active", "upstream_rq_pending_active")
        )

    def metrics(self) -> Samples:
        """serve's /metrics: (sample name, sorted labels) -> value."""
        assert self.metrics_port is not None, "FeatureStack(..., metrics=True)"
        return scrape(self.metrics_port, "/metrics")

    def prometheus(self) -> Samples:
        """Envoy's admin /stats/prometheus, where the module's stats are (docs/envoy.md)."""
        return scrape(self.admin_port, "/stats/prometheus")

    def decisions(self) -> dict[str, float]:
        """Requests decided so far, by outcome: serve's ``meshroute_decisions_total`` (extproc,
        ``metrics=True``) or the module's ``meshroute_decisions`` counter on Envoy's page."""
        if self.engine == EMBEDDED:
            samples, name = self.prometheus(), MODULE_DECISIONS
        else:
            samples, name = self.metrics(), "meshroute_decisions_total"
        return {dict(labels)["outcome"]: v for (n, labels), v in samples.items() if n == name}

    def extproc_health(self) -> list[str]:
        """Envoy's health flags of each ext_proc endpoint (admin /clusters), in endpoint order."""
        conn = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=5)
        try:
            conn.request("GET", "/clusters")
            lines = conn.getresponse().read().decode().splitlines()
        finally:
            conn.close()
        return [line.rsplit("::", 1)[1] for line in lines
                if line.startswith("meshroute_extproc::") and "::health_flags::" in line]  # fmt: skip

    def close(self) -> None:
        self.echo_v1.close()
        self.echo_v2.close()
