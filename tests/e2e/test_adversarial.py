"""Adversarial requests through a real Envoy, for each engine: whatever a client sends, it gets an
HTTP answer, the decision never fails (no ext_proc stream error, no module panic), Envoy (and
serve) stay up, and well-formed requests are routed as before afterwards.

The requests are seeded (:data:`SEED`) and bounded (:data:`REQUESTS`, :data:`BUDGET` seconds) and
go out over raw sockets, so malformed bytes really reach Envoy: random methods (unusual and invalid
tokens), paths (long, percent-encoded, ``..``, ``//``, query-heavy, absolute-form, raw bytes
0x80-0xff), hosts (out-of-range and malformed ports such as ``echo.test:99999``, ``host:``,
``:80``, ``[::1]:80``, ``[::1``, IPv6 literals, trailing dots, very long names, upper case, none,
two), control headers (``x-meshroute-*``, ``x-envoy-*``) in any case with long and binary values
(bytes 0x80-0xff), unusual framing (chunked bodies, ``expect: 100-continue``, HTTP/1.0).
Envoy's codec answers some of them itself (400, 413, 426, 431…) before any filter runs: that is an
HTTP answer too. The config is tests/e2e/features.yaml (tests/e2e/feature_stack.py).
"""

from __future__ import annotations

import collections
import contextlib
import random
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from meshroute.envoy.options import EMBEDDED
from meshroute.extproc import CONTROL_HEADERS
from meshroute.procs import LOOPBACK, ProcessGroup, wait_until
from tests.e2e.feature_stack import MODULE_PANICS, FeatureStack

SEED = 20_250_611
REQUESTS = 400
BUDGET = 30.0  # seconds for all of them; each connection also has its own timeout
SOCKET_TIMEOUT = 5.0
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})(?: |\r?$)")
# Envoy's ext_proc counters that must stay 0: a stream that failed or timed out, an answer Envoy
# could not use (docs/envoy.md: fail closed turns each of these into a 503).
EXT_PROC_ERRORS = (
    "streams_failed",
    "message_timeouts",
    "spurious_msgs_received",
    "rejected_header_mutations",
    "failure_mode_allowed",
    "http_not_ok_resp_received",
)

# Request headers that carry meaning to the mesh or to Envoy, beyond the control headers.
MORE_HEADERS = (
    "x-meshroute-listener", "x-meshroute-port", "x-meshroute-source-namespace",
    "x-meshroute-source-labels", "x-meshroute-mirror-9", "x-meshroute-test-panic", "x-envoy-internal",
    "x-envoy-expected-rq-timeout-ms", "x-envoy-force-trace", "x-envoy-downstream-service-cluster",
    "x-envoy-ip-tags", "x-forwarded-proto", "x-forwarded-for", "x-request-id", "x-user", "end-user",
    "origin", "access-control-request-method", "access-control-request-headers", "cookie",
    "content-type", "te", "grpc-timeout", ":authority", "x-remove-me",
)  # fmt: skip
METHODS = (
    "GET", "GET", "GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", "CONNECT",
    "get", "Options", "PROPFIND", "M-SEARCH", "BREW", "X", "A" * 200, "!#$%&'*+-.^_`|~", "G@T", "GET\x7f",
)  # fmt: skip
# What a request can be adversarial in (Generator.request picks one to three).
DIMENSIONS = ("method", "path", "host", "control", "many", "framing", "version")
PLAIN_HOSTS = (b"echo.test", b"echo.test", b"echo.test:80", b"app.gw.test", b"k8s-echo", b"dns.test")
CORS = b"https://app.example"
# Headers of a "many headers" request stay below this: Envoy's ext_proc refuses an answer that
# takes the request over the listener's 100 headers (test_a_request_near_the_header_limits).
MANY_HEADERS = 70
# Paths of features.yaml's routes (and a few it does not route); sleeps stay short.
ROUTES = (
    "/v1", "/v2", "/", "/rewrite/a/b", "/redirect", "/direct", "/headers", "/flaky/adv", "/status/503",
    "/status/200", "/nosubset", "/sleep/5", "/mirror/adv", "/hash", "/cors/api", "/cors-ignore/x",
    "/app/x", "/not-routed", "/x",
)  # fmt: skip


@dataclass
class Sent:
    """One adversarial request: what went out, and the status Envoy answered (None: no answer)."""

    port: str
    data: bytes
    status: int | None = None
    error: str = ""


def _case(rng: random.Random, name: str) -> str:
    """``name`` in a random mix of upper and lower case."""
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def _binary(rng: random.Random, n: int) -> bytes:
    return bytes(rng.randrange(0x80, 0x100) for _ in range(n))


class Generator:
    """Seeded adversarial requests for one :class:`FeatureStack` (its echo ports for the IP
    literals a passthrough may reach, its admin port as a forged destination)."""

    def __init__(self, stack: FeatureStack, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stack = stack

    def method(self) -> bytes:
        return self.rng.choice(METHODS).encode("latin-1")

    def path(self) -> bytes:
        rng = self.rng
        base = rng.choice(ROUTES)
        shapes: list[Callable[[], bytes]] = [
            lambda: base.encode(),
            lambda: f"{base}/{'a' * rng.randrange(100, 6000)}".encode(),
            lambda: f"{base}/%2e%2e/%2F%00%zz%ff%C0%AF".encode(),
            lambda: f"/a/../..{base}/./.".encode(),
            lambda: f"//{base}//x//".encode(),
            lambda: f"{base}?{'&'.join(f'k{i}=v{i}%26' for i in range(rng.randrange(1, 400)))}".encode(),
            lambda: f"{base}?a=%zz&&=&b=\\&c".encode(),
            lambda: f"{base}#fragment".encode(),
            lambda: base.upper().encode(),
            lambda: f"http://echo.test{base}".encode(),  # absolute form
            lambda: base.lstrip("/").encode() or b"*",
            lambda: base.encode() + b"/" + _binary(rng, rng.randrange(1, 20)),
            lambda: b"",
        ]
        return rng.choice(shapes)()

    def host(self) -> bytes | None:
        rng = self.rng
        v1 = self.stack.echo_v1.port
        hosts = [
            "echo.test", "ECHO.TEST", "Echo.Test:80", "echo.test.", "echo.test:99999", "echo.test:",
            ":80", ":", "[::1]:80", "[::1", "[::1]", "::1", "[fe80::1%25eth0]:80", "[::ffff:127.0.0.1]:80",
            f"127.0.0.1:{v1}", "127.0.0.1:1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1",
            "echo.test:+80", "echo.test:-1", "echo.test:abc", "echo.test:80:80", "user@echo.test",
            "a" * rng.randrange(64, 600) + ".test", "x." * 200 + "test", "app.gw.test", "APP.GW.TEST.",
            "secure.gw.test", "unknown.example", "", "*", "k8s-echo", "dns.test", "sticky.test", "od.test",
            "k8s-echo.default.svc.cluster.local:9080", "echo .test",
        ]  # fmt: skip
        choice = rng.randrange(len(hosts) + 2)
        if choice == len(hosts):
            return None  # no Host header
        if choice == len(hosts) + 1:
            return b"echo.test" + _binary(rng, 3)  # Latin-1 bytes in the host
        return hosts[choice].encode()

    def header_value(self) -> bytes:
        rng = self.rng
        admin = self.stack.admin_port
        values: list[Callable[[], bytes]] = [
            lambda: b"outbound|80|v2|echo.test",
            lambda: b"outbound|9999||nope.example",
            lambda: rng.choice([b"PassthroughCluster", b"BlackHoleCluster", b"meshroute_extproc"]),
            lambda: rng.choice([b"0", b"1", b"-1", b"99999999999999999999", b"1e9", b"", b" 5 ", b"0x10"]),
            lambda: b"5xx,reset,connect-failure,retriable-status-codes,cancelled",
            lambda: f"127.0.0.1:{admin}".encode(),  # a forged destination: Envoy's own admin
            lambda: b"[::1]:80",
            lambda: b"a" * rng.randrange(1000, 8000),
            lambda: _binary(rng, rng.randrange(1, 300)),
            lambda: b"jason" + _binary(rng, 5) + b"\t tail",
        ]
        return rng.choice(values)()

    def headers(self, adversarial: bool) -> list[tuple[bytes, bytes]]:
        """Control and meaningful headers, names in any case; forged values when ``adversarial``
        (long, binary, numbers, cluster names, addresses), else a plausible few."""
        rng = self.rng
        names = [*CONTROL_HEADERS, *MORE_HEADERS]
        if not adversarial:
            benign = [(b"x-user", b"user-%d" % rng.randrange(8)), (b"end-user", b"jason"), (b"origin", CORS)]
            return rng.sample(benign, rng.randrange(len(benign) + 1))
        out = [
            (_case(rng, rng.choice(names)).encode(), self.header_value()) for _ in range(rng.randrange(1, 12))
        ]
        if rng.random() < 0.05:
            out.append((b"x-bad name", b"1"))  # not a token: the codec refuses it
        return out

    def many_headers(self) -> list[tuple[bytes, bytes]]:
        """Many headers, below what Envoy's ext_proc accepts after serve's own (see
        test_a_request_near_the_header_limits)."""
        rng = self.rng
        return [(b"x-many", b"," * 100)] + [
            (f"x-filler-{i}".encode(), b"v" * rng.randrange(1, 200))
            for i in range(rng.randrange(20, MANY_HEADERS))
        ]

    def framing(self) -> tuple[list[bytes], bytes]:
        """Body framing headers and the body: a body with a length (maybe after 100-continue), a
        chunked body, or both framings at once (the request-smuggling shape)."""
        rng = self.rng
        shape = rng.randrange(3)
        if shape == 0:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000)))
            lines = [b"content-length: " + str(len(body)).encode()]
            return ([*lines, b"expect: 100-continue"] if rng.random() < 0.3 else lines), body
        if shape == 1:
            chunk = b"x" * rng.randrange(1, 2000)
            return [b"transfer-encoding: chunked"], f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n0\r\n\r\n"
        return [b"content-length: 3", b"transfer-encoding: chunked"], b"0\r\n\r\n"

    def request(self) -> Sent:
        """A request that is adversarial in one to three respects (:data:`DIMENSIONS`) and plain
        in the others, so most of them get past Envoy's codec to the decision."""
        rng = self.rng
        odd = set(rng.choices(DIMENSIONS, weights=[2, 3, 4, 4, 1, 2, 1], k=rng.choice([1, 1, 2, 2, 3])))
        port = rng.choices(["mesh", "gateway"], weights=[3, 1])[0]
        method = self.method() if "method" in odd else rng.choice([b"GET", b"GET", b"POST", b"OPTIONS"])
        path = self.path() if "path" in odd else rng.choice(ROUTES).encode()
        version = rng.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.9"]) if "version" in odd else b"HTTP/1.1"
        lines = [method + b" " + path + b" " + version]
        host = self.host() if "host" in odd else rng.choice(PLAIN_HOSTS)
        if host is not None:
            lines.append(_case(rng, "host").encode() + b": " + host)
            if "host" in odd and rng.random() < 0.05:
                lines.append(b"host: echo.test")  # a second Host
        headers = self.headers("control" in odd)
        if "many" in odd:
            headers += self.many_headers()
        lines += [name + b": " + value for name, value in headers]
        body = b""
        if "framing" in odd:
            framing, body = self.framing()
            lines += framing
        if rng.random() < 0.5:
            lines.append(b"connection: close")
        return Sent(port, b"\r\n".join(lines) + b"\r\n\r\n" + body)


def send(port: int, data: bytes) -> tuple[int | None, str]:
    """Send ``data`` on a fresh connection; the final status Envoy answered (1xx skipped)."""
    buffer = b""
    with socket.create_connection((LOOPBACK, port), timeout=SOCKET_TIMEOUT) as conn:
        # Envoy may answer and close before reading everything: read its answer anyway
        with contextlib.suppress(OSError):
            conn.sendall(data)
        while True:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if sep:
                match = STATUS_LINE.match(head)
                if match is None:
                    return None, f"not an HTTP answer: {head[:200]!r}"
                status = int(match.group(1))
                if status >= 200:
                    return status, ""
                buffer = rest  # 100 Continue: the final answer follows
                continue
            try:
                chunk = conn.recv(65536)
            except OSError as exc:
                return None, f"{type(exc).__name__} after {buffer[:200]!r}"
            if not chunk:
                return None, f"closed after {buffer[:200]!r}"
            buffer += chunk


@pytest.fixture(scope="module")
def adversarial(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureStack]:
    work = tmp_path_factory.mktemp(f"adversarial-{engine}")
    with ProcessGroup(work / "logs") as group:
        stack = FeatureStack(work, group, engine=engine, metrics=True)
        try:
            yield stack
        finally:
            stack.close()


def ext_proc_errors(stack: FeatureStack) -> dict[str, int]:
    """Envoy's ext_proc error counters (every listener's), by name; all must stay 0."""
    return {
        name: value
        for name, value in stack.envoy_stats().items()
        if ".ext_proc." in name and name.rsplit(".", 1)[-1] in EXT_PROC_ERRORS
    }


# Each engine's answers to the seeded requests, for the other engine's run to compare with (the
# config routes nothing at random: both must answer every request alike).
ANSWERS: dict[str, tuple[list[int | None], dict[str, float]]] = {}


def test_adversarial_requests_get_answers_and_break_nothing(adversarial: FeatureStack) -> None:
    stack = adversarial
    ports = {"mesh": stack.mesh_port, "gateway": stack.gateway_port}
    generator = Generator(stack, SEED)
    decided_before = stack.decisions()
    started = time.monotonic()
    sent: list[Sent] = []
    for _ in range(REQUESTS):
        request = generator.request()
        request.status, request.error = send(ports[request.port], request.data)
        sent.append(request)
        assert time.monotonic() - started < BUDGET, f"{len(sent)} requests took over {BUDGET:.0f} s"
    seconds = time.monotonic() - started
    decided = {
        k: v - decided_before.get(k, 0) for k, v in stack.decisions().items() if v > decided_before.get(k, 0)
    }
    statuses = dict(sorted(collections.Counter(r.status or 0 for r in sent).items()))
    print(f"{stack.engine}: {REQUESTS} requests in {seconds:.1f} s; answers {statuses}; decisions {decided}")

    unanswered = [(r.data[:300], r.error) for r in sent if r.status is None]
    assert unanswered == [], unanswered
    # Envoy's codec answers the malformed ones itself (400, 426...); most reach the decision
    assert REQUESTS / 2 <= sum(decided.values()) <= REQUESTS, decided
    assert stack.envoy.alive(), stack.envoy.log_tail()
    log = stack.envoy.log.read_text(errors="replace")
    if stack.engine == EMBEDDED:
        assert stack.prometheus()[(MODULE_PANICS, ())] == 0
        assert "meshroute: panic" not in log
        assert "Envoy refused header operations" not in log, log[-3000:]
    else:
        assert stack.serve is not None and stack.serve.alive(), stack.serve and stack.serve.log_tail()
        errors = ext_proc_errors(stack)
        assert len(errors) == 3 * len(EXT_PROC_ERRORS)  # three listeners: named as expected
        assert errors == dict.fromkeys(errors, 0)
        metrics = stack.metrics()
        assert metrics[("meshroute_stream_failures_total", ())] == 0
        streams = metrics[("meshroute_streams_total", ())]
        # the status file is rewritten at most once a second: wait until it has these streams
        counters = lambda: stack.statuses()[0].get("counters", {})  # noqa: E731
        wait_until(lambda: counters().get("streams_started", 0) >= streams, 5, "serve's status counters")
        assert counters()["streams_failed"] == 0

    ANSWERS[stack.engine] = ([r.status for r in sent], decided)
    other = next((e for e in ANSWERS if e != stack.engine), None)
    if other is not None:  # the other engine ran in this session: the same answers, request by request
        mine, theirs = ANSWERS[stack.engine][0], ANSWERS[other][0]
        differ = [
            (i, a, b, sent[i].data[:200]) for i, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b
        ]
        assert differ == [], differ
        assert decided == ANSWERS[other][1]


def test_well_formed_requests_are_still_routed_right(adversarial: FeatureStack) -> None:
    stack = adversarial
    for _ in range(3):
        r = stack.mesh("echo.test", "/v1")
        assert (r.status, r.header("x-echo-server")) == (200, "v1")
    assert stack.mesh("echo.test", "/redirect").header("location") == "http://other.test/elsewhere"
    direct = stack.mesh("echo.test", "/direct")
    assert (direct.status, direct.body) == (418, b"short and stout")
    assert stack.mesh("echo.test", "/not-routed").status == 404
    assert stack.mesh("echo.test", "/nosubset").status == 503
    rewritten = stack.mesh("echo.test", "/rewrite/a?q=1").json()
    assert (rewritten["path"], rewritten["headers"]["host"]) == ("/rewritten/a?q=1", "rewritten.test")
    r = stack.gateway("app.gw.test", "/app/x")
    assert (r.status, r.header("x-echo-server")) == (200, "v2")
    forged = stack.mesh("echo.test", "/v1", {"x-meshroute-cluster": "outbound|80|v2|echo.test"})
    assert forged.header("x-echo-server") == "v1"
    passthrough = stack.mesh(f"127.0.0.1:{stack.echo_v2.port}", "/anything")
    assert (passthrough.status, passthrough.header("x-echo-server")) == (200, "v2")


def test_a_request_near_the_header_limits(adversarial: FeatureStack) -> None:
    """The one difference between the engines the adversarial requests found (docs/envoy.md,
    "Engines"): Envoy checks the request's headers *after* ext_proc's header mutation against the
    listener's limits (100 headers, 60 KiB), and refuses an answer that goes over them, so with
    the extproc engine a request that arrives a little under a limit fails closed (503, counted in
    ``rejected_header_mutations``); the module sets its headers as Envoy's router sets its own,
    unchecked, and the request is routed."""
    stack = adversarial
    many = {f"x-filler-{i}": "v" for i in range(93)}  # + host and the headers Envoy adds: < 100
    big = {"x-big": "v" * 61_200}  # with the rest of the request: < 60 KiB
    for near in (many, big):
        before = sum(ext_proc_errors(stack).values())
        r = stack.mesh("echo.test", "/v1", near)
        if stack.engine == EMBEDDED:
            assert (r.status, r.header("x-echo-server")) == (200, "v1")
        else:
            assert r.status == 503
            assert sum(ext_proc_errors(stack).values()) == before + 1  # rejected_header_mutations
    few = {f"x-filler-{i}": "v" for i in range(MANY_HEADERS)}
    assert stack.mesh("echo.test", "/v1", few).header("x-echo-server") == "v1"  # both engines
