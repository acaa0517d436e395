"""Serve's answer bytes (``Routing.respond`` → ``RouteTable.extproc_answer``, the core's exchange
serialized by ``meshroute_extproc``) against the core's tuple answer (``RouteTable.exchange``), on
every generated request: decoded with the real protobuf classes they equal the tuple field by field,
and they are byte for byte what protobuf's own serializer writes for the same message.

For each config (the e2e feature config, Bookinfo alone and with each Istio task file, the extproc
test configs, and ``EXTRA`` below for weighted picks, partial faults and mirrors, several Gateways
and Sidecars), requests are generated from the config itself (its domains, Gateway server hosts,
URI matches, header matches, CORS origins) plus unknown hosts, IP literals, ports, mixed-case
forged control headers, cookies, query parameters, OPTIONS preflights and non-UTF-8 values, on mesh
and gateway listener contexts. Each goes through serve's own path: an ``HttpHeaders`` message, the
servicer's ``header_pairs``, ``Routing.respond`` (seeded: request i draws from ``seed + i``), and
is compared with ``exchange`` for the same seed (tuple: kind, outcome, status, set, append, remove,
response set/append/remove, body, details, fault flags).

This file compared serve's Python answer builders with the core until serve switched to the core;
the hand-written expectations of those builders live on in test_answer.py, test_cors.py and
test_mirror_passthrough.py, now asserted on serve's bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from meshroute._core import ListenerContext
from meshroute.config.gateway import parse_gateway
from meshroute.config.workloads import is_http_server
from meshroute.extproc import CONTROL_HEADERS
from meshroute.extproc.context import Answer, Routing
from meshroute.extproc.servicer import header_pairs
from meshroute.mesh import Mesh, load

from .conftest import DATA, TASKS
from .test_answer import CONFIG as ANSWER_CONFIG
from .test_cors import CONFIG as CORS_CONFIG
from .test_mirror_passthrough import CONFIG as MIRROR_CONFIG

FEATURES = Path(__file__).parents[1] / "e2e" / "features.yaml"
SEED = 1000
REQUESTS = 4000  # per config

EXTRA = r"""
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
  - {address: 127.0.0.2, labels: {version: v2}}
  - {address: 127.0.0.3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi, namespace: default}
spec:
  hosts: [multi.test]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 8080, name: http-alt, protocol: HTTP}]
  endpoints: [{address: 127.0.0.4}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.test
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: sid, ttl: 0s}}}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {consistentHash: {httpQueryParameterName: uid}}}
  - name: v3
    labels: {version: v3}
    trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: X-Shard}}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*.edge.test", "./exact.test"]
    tls: {httpsRedirect: true}
  - port: {number: 8080, name: http-plain, protocol: HTTP}
    hosts: [plain.test]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: second, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9090, name: http-9090, protocol: HTTP}
    hosts: ["*.test"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ["*.edge.test", exact.test, plain.test]
  gateways: [edge]
  http:
  - match: [{uri: {prefix: /w}}]
    fault:
      delay: {fixedDelay: 0.2s, percentage: {value: 30}}
      abort: {httpStatus: 503, percentage: {value: 10}}
    mirrors:
    - {destination: {host: multi.test}, percentage: {value: 25}}
    - {destination: {host: echo.test, subset: v2}, percentage: {value: 75}}
    route:
    - {destination: {host: echo.test, subset: v1}, weight: 50}
    - {destination: {host: echo.test, subset: v2}, weight: 30}
    - {destination: {host: echo.test, subset: v3}, weight: 20}
  - headers: {request: {set: {x-gw: "1"}}}
    route: [{destination: {host: echo.test, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second, namespace: default}
spec:
  hosts: ["*"]
  gateways: [second]
  http:
  - timeout: 1s
    retries: {attempts: 4, retryOn: "gateway-error,connect-failure,deadline-exceeded,504"}
    route: [{destination: {host: echo.test, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.test]
  http:
  - match: [{uri: {prefix: /w}}]
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 50}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 20}}
    mirror: {host: multi.test}
    mirrorPercentage: {value: 40}
    route:
    - {destination: {host: echo.test, subset: v1}, weight: 1}
    - {destination: {host: echo.test, subset: v2}, weight: 1}
    - {destination: {host: echo.test, subset: v3}, weight: 2}
  - match: [{headers: {end-user: {exact: jason}}}]
    headers:
      request: {add: {x-added: "a"}, remove: [x-gone, X-Envoy-Retry-On]}
      response: {add: {x-resp: "r"}}
    route: [{destination: {host: echo.test, subset: v3}}]
  - match: [{uri: {prefix: /mm}}]
    mirrors:
    - {destination: {host: multi.test}, percentage: {value: 33.3333}}
    - {destination: {host: echo.test, subset: v2}, percentage: {value: 0.5}}
    - {destination: {host: multi.test, port: {number: 8080}}}
    - {destination: {host: echo.test, subset: v3}, percentage: {value: 99.5}}
    - {destination: {host: echo.test, subset: v1}}
    route: [{destination: {host: echo.test, subset: v1}}]
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    rewrite: {uriRegexRewrite: {match: "^/re/(.*)$", rewrite: "/x/\\1"}}
    route: [{destination: {host: echo.test, subset: v2}}]
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: "*"}]
      allowMethods: ["*"]
      allowHeaders: [x-a]
      maxAge: 1s
    mirror: {host: echo.test, subset: v3}
    mirrorPercentage: {value: 50}
    route:
    - {destination: {host: echo.test, subset: v1}, weight: 60}
    - {destination: {host: echo.test, subset: v2}, weight: 40}
  - match: [{uri: {prefix: /redir}}]
    redirect: {uri: /r2, port: 8443, scheme: https}
    headers: {response: {set: {x-red: "1"}, add: {x-red2: "2"}}}
  - route: [{destination: {host: echo.test, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: locked, namespace: prod}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""


# === Normalised answers ===

SEND = processing_mode_pb2.ProcessingMode.SEND
Norm = tuple[Any, ...]


def _split(options: Any) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    sets, appends = [], []
    for opt in options:
        assert not opt.header.value, "raw_value only"
        (appends if opt.append.value else sets).append((opt.header.key, opt.header.raw_value))
    return sets, appends


def decoded(answer: Answer) -> Norm:
    """Serve's answer, decoded with the protobuf classes, as ``exchange``'s tuple."""
    outcome, data, response, delay, abort = answer
    msg = pb.ProcessingResponse.FromString(data)
    if msg.WhichOneof("response") == "immediate_response":
        imm = msg.immediate_response
        sets, appends = _split(imm.headers.set_headers)
        assert not imm.headers.remove_headers
        assert response is None and not msg.HasField("mode_override")
        assert not delay and not abort
        return ("reply", outcome, imm.status.code, sets, appends, [], None, None, None,
                imm.body, imm.details, False, False)  # fmt: skip
    assert msg.WhichOneof("response") == "request_headers"
    assert msg.request_headers.response.HasField("header_mutation")  # even empty (envoy-facts Q1h)
    mut = msg.request_headers.response.header_mutation
    sets, appends = _split(mut.set_headers)
    assert (msg.mode_override.response_header_mode == SEND) == (response is not None)
    rs: Any = None
    ra: Any = None
    rr: Any = None
    if response is not None:
        reply = pb.ProcessingResponse.FromString(response)
        assert reply.WhichOneof("response") == "response_headers"
        rmut = reply.response_headers.response.header_mutation
        rs, ra = _split(rmut.set_headers)
        rr = list(rmut.remove_headers)
    return ("forward", outcome, None, sets, appends, list(mut.remove_headers), rs, ra, rr,
            None, None, delay, abort)  # fmt: skip


def protobuf_answer(t: tuple[Any, ...]) -> Answer:
    """``exchange``'s tuple as protobuf's own serializer writes it: the request_headers answer
    (sets, then appends with ``append: true``; the mutation present even when empty;
    ``mode_override`` with a response phase) and the response_headers answer."""
    kind, outcome, status, sets, appends, removes, rs, ra, rr, body, details, delay, abort = t
    msg = pb.ProcessingResponse()
    if kind == "reply":
        imm = msg.immediate_response
        imm.status.code = status
        imm.details = details
        imm.body = body
        _put(imm.headers.set_headers, sets, appends)
        return outcome, msg.SerializeToString(), None, False, False
    mut = msg.request_headers.response.header_mutation
    mut.SetInParent()
    _put(mut.set_headers, sets, appends)
    mut.remove_headers.extend(removes)
    response = None
    if rs is not None:
        msg.mode_override.response_header_mode = SEND
        reply = pb.ProcessingResponse()
        rmut = reply.response_headers.response.header_mutation
        _put(rmut.set_headers, rs, ra)
        rmut.remove_headers.extend(rr)
        response = reply.SerializeToString()
    return outcome, msg.SerializeToString(), response, delay, abort


def _put(target: Any, sets: list[tuple[str, bytes]], appends: list[tuple[str, bytes]]) -> None:
    for key, value in sets:
        opt = target.add()
        opt.header.key = key
        opt.header.raw_value = value
    for key, value in appends:
        opt = target.add()
        opt.header.key = key
        opt.header.raw_value = value
        opt.append.value = True


# === Request generation, from the config ===


@dataclass(frozen=True)
class Case:
    context: ListenerContext
    headers: tuple[tuple[str, bytes], ...]


def _concrete(pattern: str, rnd: random.Random) -> str:
    if pattern == "*":
        return rnd.choice(["anything.example", "a.test", "x"])
    if pattern.startswith("*"):
        return rnd.choice(["a", "b.c", "x-1"]) + pattern[1:]
    return pattern


def _mixed_case(name: str, rnd: random.Random) -> str:
    return "".join(c.upper() if rnd.random() < 0.5 else c for c in name)


class Generator:
    """Requests drawn from what the config's IR mentions, plus the usual suspects."""

    def __init__(self, ir: dict[str, Any], rnd: random.Random) -> None:
        self.rnd = rnd
        domains = {d for v in ir["views"] for vh in v["vhosts"] for d in vh["domains"]}
        domains |= {h for _, hosts, _ in ir["gateway_servers"] for h in hosts}
        self.patterns = sorted(domains)
        self.ports = sorted({p for p, _, _ in ir["gateway_servers"]} | {80, 443, 8080, 9080})
        uris: set[str] = {"/", "/x", "/re/12", "/productpage", "/reviews/0"}
        headers: set[tuple[str, str]] = {("end-user", "jason"), ("end-user", "mike")}
        origins: set[str] = {"https://a.example", "https://evil.example", "http://x"}
        for r in ir["routes"]:
            for m in r["matches"]:
                uri = m.get("uri") or {}
                for kind in ("exact", "prefix"):
                    if kind in uri:
                        uris.add(uri[kind])
                for h in m.get("headers", []) + m.get("without_headers", []):
                    match = h["match"]
                    headers.add((h["name"], str(match.get("exact", match.get("prefix", "v")))))
            for o in ((r.get("extra") or {}).get("cors") or {}).get("allow_origins", []):
                for kind in ("exact", "prefix"):
                    if kind in o:
                        origins.add(o[kind] + ("" if kind == "exact" else "app.example"))
        self.uris = sorted(uris)
        self.header_matches = sorted(headers)
        self.origins = sorted(origins)
        mesh = ir["mesh"]["namespaces"]
        self.namespaces = [*sorted(mesh), "elsewhere"]
        self.labels = [dict(s["labels"]) for ns in mesh.values() for s in ns["sidecars"]] + [{}]
        # Each view with the listener that reaches it, to aim requests at routes that exist.
        self.views: list[tuple[ListenerContext, dict[str, Any]]] = []
        for ns, nv in mesh.items():
            self.views.append((ListenerContext(None, ns), ir["views"][nv["default_view"]]))
            for sc in nv["sidecars"]:
                ctx = ListenerContext(None, ns, sorted(dict(sc["labels"]).items()))
                self.views.append((ctx, ir["views"][sc["view"]]))
        for ports in ir["gateway_views"].values():
            for port, view in ports.items():
                self.views.append((ListenerContext(int(port)), ir["views"][view]))
        self.routes = ir["routes"]

    def listener(self) -> ListenerContext:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.35:
            return ListenerContext(rnd.choice([*self.ports, 7]))
        if roll < 0.5:
            ns = rnd.choice(self.namespaces)
            return ListenerContext(None, ns, sorted(rnd.choice(self.labels).items()))
        return ListenerContext()

    def authority(self) -> str:
        rnd = self.rnd
        host = rnd.choice(
            [_concrete(rnd.choice(self.patterns), rnd) for _ in range(3)]
            + ["unknown.example", "127.0.0.1", "[::1]", "10.1.2.3", "ÉCHO.test", ""]
        )
        if rnd.random() < 0.3:
            host = host.upper()
        roll = rnd.random()
        if roll < 0.4:
            return host
        if roll < 0.95:
            return f"{host}:{rnd.choice(self.ports)}"
        return f"{host}:{rnd.choice(['', '0080', '+80', 'x'])}"

    def path(self) -> str:
        rnd = self.rnd
        path = rnd.choice(self.uris) + rnd.choice(["", "", "/1", "x", "/a/b"])
        if rnd.random() < 0.3:
            path += "?" + "&".join(rnd.sample(["uid=7", "u=1", "uid", "x=1", "uid=", "a=b=c"], 2))
        return path

    def aimed(self) -> tuple[ListenerContext, str, str, list[tuple[str, bytes]]]:
        """A request aimed at one route of one view: a domain of its vhost, a URI of its matches,
        the headers its match asks for."""
        rnd = self.rnd
        context, view = rnd.choice(self.views)
        vhosts = [vh for vh in view["vhosts"] if vh["routes"]] or view["vhosts"]
        if not vhosts:
            return context, self.authority(), self.path(), []
        vh = rnd.choice(vhosts)
        authority = _concrete(rnd.choice(vh["domains"]), rnd)
        if rnd.random() < 0.3:
            authority += f":{rnd.choice(self.ports)}"
        path, headers = self.path(), []
        if vh["routes"]:
            route = self.routes[rnd.choice(vh["routes"])]
            if route["matches"]:
                m = rnd.choice(route["matches"])
                uri = m.get("uri") or {}
                path = uri.get("exact") or (uri.get("prefix", "") + rnd.choice(["", "x", "/1"])) or path
                for h in m.get("headers", []):
                    value = h["match"].get("exact", h["match"].get("prefix", "v"))
                    headers.append((h["name"], str(value).encode()))
        return context, authority, path, headers

    def case(self) -> Case:
        rnd = self.rnd
        if rnd.random() < 0.5:
            context, authority, path, extra = self.aimed()
        else:
            context = self.listener()
            authority, path, extra = self.authority(), self.path(), []
        method = rnd.choice(["GET", "GET", "POST", "OPTIONS", "OPTIONS", "get"])
        hs: list[tuple[str, bytes]] = [
            *extra,
            (":authority", authority.encode()),
            (":path", path.encode()),
            (":method", method.encode()),
            (":scheme", rnd.choice([b"http", b"http", b"https", b"HTTPS"])),
        ]
        if rnd.random() < 0.05:  # a repeated pseudo-header: the last one counts
            hs.append((":authority", self.authority().encode()))
        for _ in range(rnd.randint(0, 6)):
            hs.append(self.header())
        if rnd.random() < 0.15:  # a CORS preflight (allowed origin or not)
            hs.append((":method", b"OPTIONS"))
            hs.append(("origin", rnd.choice(self.origins).encode()))
            hs.append(("access-control-request-method", rnd.choice([b"GET", b"PUT"])))
        rnd.shuffle(hs)
        return Case(context, tuple(hs))

    def header(self) -> tuple[str, bytes]:
        rnd = self.rnd
        roll = rnd.random()
        if roll < 0.25:
            name, value = rnd.choice(self.header_matches)
            return name, value.encode()
        if roll < 0.4:  # a forged control header
            return _mixed_case(rnd.choice(CONTROL_HEADERS), rnd), b"forged"
        if roll < 0.55:
            return rnd.choice(["origin", "Origin"]), rnd.choice([*self.origins, ""]).encode()
        if roll < 0.65:
            return "access-control-request-method", rnd.choice([b"GET", b"PUT", b""])
        if roll < 0.7:
            return "access-control-request-headers", b"x-a,x-b"
        if roll < 0.8:
            return rnd.choice(["cookie", "Cookie"]), rnd.choice(
                [b"sid=abc", b"a=1; sid=xyz", b"session=s1", b" sid = q ", b"\x1csid=1", b"sid"]
            )
        if roll < 0.9:
            name = rnd.choice(["x-user", "X-Shard", "x-shard", "x-gone", "x-token"])
            return name, rnd.choice([b"u1", b"caf\xe9", b"\xff\xfe", "é".encode()])
        return "end-user", rnd.choice([b"jason", b"\xe9"])


# === The comparison ===


def _configs() -> Iterator[tuple[str, list[str | Path]]]:
    yield "features", ["features.yaml"]
    yield "bookinfo", [DATA / "bookinfo"]
    for task in sorted(TASKS.glob("*.yaml")):
        yield f"bookinfo+{task.stem}", [DATA / "bookinfo", task]
    yield "answer", [DATA / "bookinfo" / "platform", "answer.yaml"]
    yield "cors", [DATA / "bookinfo" / "platform", "cors.yaml"]
    yield "mirror", ["mirror.yaml"]
    yield "extra", ["extra.yaml"]


CONFIGS = dict(_configs())
COMPARED: dict[str, int] = {}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("parity")
    features = FEATURES.read_text()
    fill = {"${V1_PORT}": "18081", "${V2_PORT}": "18082", "${CERT}": "/c.pem", "${KEY}": "/k.pem"}
    for key, value in fill.items():
        features = features.replace(key, value)
    files = {
        "features.yaml": features,
        "answer.yaml": ANSWER_CONFIG,
        "cors.yaml": CORS_CONFIG,
        "mirror.yaml": MIRROR_CONFIG,
        "extra.yaml": EXTRA,
    }
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def _load(written: Path, parts: list[str | Path]) -> Mesh:
    return load(*(p if isinstance(p, Path) else written / p for p in parts))


OUTCOMES = ("route", "abort", "redirect", "direct_response", "no_route", "no_cluster", "cors_preflight")
# Request headers whose presence in an answer shows a feature was exercised.
TRACKED = (
    "x-meshroute-hash",
    "x-envoy-original-dst-host",
    ":path",
    ":authority",
    "x-envoy-fault-delay-request",
    "x-envoy-max-retries",
    "x-envoy-retry-grpc-on",
)


def features(answer: Norm) -> Iterator[str]:
    """What an answer exercised, for the coverage checks."""
    yield f"outcome:{answer[1]}"
    if answer[0] != "forward":
        if answer[1] == "no_cluster":
            yield f"no_cluster {answer[2]}"  # 503: a cluster the client cannot see; 502: REGISTRY_ONLY
        return
    names = {k for k, _ in answer[3]}
    yield from (f"set:{name}" for name in TRACKED if name in names)
    if any(k.startswith("x-meshroute-mirror-") for k in names):
        yield "mirror fired"
    if answer[4]:
        yield "append"
    if answer[6] is not None:
        yield "response phase"
        if any(k == "access-control-allow-origin" for k, _ in answer[6]):
            yield "cors response"


def compare(mesh: Mesh, cases: list[Case]) -> tuple[int, dict[str, int]]:
    """Serve's answer and ``exchange``'s for every case; returns (compared, what they exercised)."""
    routing = Routing(mesh, seed=SEED)  # request i draws from SEED + i
    outcomes: dict[str, int] = {}
    for i, case in enumerate(cases):
        msg = pb.HttpHeaders()
        for key, raw in case.headers:
            msg.headers.headers.add(key=key, raw_value=raw)
        pairs = header_pairs(msg)
        assert pairs == list(case.headers)
        got = routing.respond(pairs, case.context)
        t = tuple(mesh.table.exchange(case.context, pairs, SEED + i))
        assert decoded(got) == t, f"request {i}: {case}\n serve:    {decoded(got)}\n exchange: {t}"
        assert got == protobuf_answer(t), f"request {i}: bytes differ from protobuf's\n{case}"
        for feature in features(t):
            outcomes[feature] = outcomes.get(feature, 0) + 1
    return len(cases), outcomes


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ir_gateway_servers_are_the_workloads(name: str, written: Path) -> None:
    """The IR's ``gateway_servers`` (what the core selects a gateway listener's view with) are the
    HTTP servers each gateway workload keeps, named after the workload (semantics §4), hosts
    without their ``ns/`` part; every Gateway's HTTP servers are there when no merge drops one."""
    mesh = _load(written, CONFIGS[name])
    assert mesh.analysis.ir is not None
    ir_servers = [(port, tuple(hosts), ref) for port, hosts, ref in mesh.analysis.ir["gateway_servers"]]
    assert all(
        ref.startswith("workload:") and ref in mesh.analysis.ir["gateway_views"] for _, _, ref in ir_servers
    )
    configured = {
        (server.port, tuple(host for _, host in server.hosts))
        for res in mesh.analysis.resources
        if res.kind == "Gateway"
        for server in parse_gateway(res).servers
        if is_http_server(server)
    }
    assert {(port, hosts) for port, hosts, _ in ir_servers} == configured
    if name == "extra":  # two Gateways of one proxy (istio: ingressgateway), merged
        workload = "workload:default/istio=ingressgateway"
        assert ir_servers == [
            (8080, ("*.edge.test", "exact.test"), workload),
            (8080, ("plain.test",), workload),
            (8080, ("*",), workload),
            (9090, ("*.test",), workload),
        ]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_serve_answers_exchange(name: str, written: Path) -> None:
    mesh = _load(written, CONFIGS[name])
    gen = Generator(mesh.analysis.ir or {}, random.Random(name))
    cases = [gen.case() for _ in range(REQUESTS)]
    n, seen = compare(mesh, cases)
    COMPARED[name] = n
    # The generator reaches more than the happy path.
    assert seen.get("outcome:route", 0) > n // 10, seen
    assert seen.get("outcome:no_route", 0) > 0, seen


COVERAGE = [
    *(f"outcome:{o}" for o in OUTCOMES),
    *(f"set:{h}" for h in TRACKED),
    "no_cluster 502",
    "no_cluster 503",
    "mirror fired",
    "append",
    "response phase",
    "cors response",
]


def test_the_comparison_covers_every_answer_part(written: Path) -> None:
    """Across the feature, CORS and extra configs, the compared requests reach every outcome and
    every per-request part (hash key, mirrors, passthrough, CORS both ways, faults)."""
    seen: dict[str, int] = {}
    for name in ("features", "cors", "extra"):
        mesh = _load(written, CONFIGS[name])
        gen = Generator(mesh.analysis.ir or {}, random.Random(name))
        for feature, count in compare(mesh, [gen.case() for _ in range(REQUESTS)])[1].items():
            seen[feature] = seen.get(feature, 0) + count
    missing = [f for f in COVERAGE if not seen.get(f)]
    assert not missing, (missing, seen)


# === Authorities whose port does not fit ===


def test_port_beyond_u16_matches_no_domain(written: Path) -> None:
    """``echo.test:99999``: the port stays part of the host, which then matches no domain — the
    same answer as any unknown host (mesh), or no Gateway server (gateway listener)."""
    routing = Routing(_load(written, CONFIGS["features"]), seed=SEED)

    def answer(context: ListenerContext, authority: str) -> Answer:
        return routing.respond([(":authority", authority.encode()), (":path", b"/")], context)

    out_of_range = answer(ListenerContext(), "echo.test:99999")
    assert out_of_range[0] == "route"
    assert out_of_range == answer(ListenerContext(), "unknown.example")
    gateway = decoded(answer(ListenerContext(8081), "app.gw.test:99999"))
    assert gateway[:3] == ("reply", "no_route", 404)
