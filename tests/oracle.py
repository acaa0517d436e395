"""A deliberately slow, obviously correct reference of Istio HTTP routing for a small domain.

Written straight from the Istio text (``docs/semantics.md`` §1.1, §2.3–2.6, §2.9–2.10,
§2.16, §2.17, §11) and the IR contract (``docs/ir.md``), never from meshroute's code. Nothing is
indexed or precompiled: every request re-reads the config dicts, so the code can be checked against
the spec sentence by sentence.

Domain (what ``tests/test_properties.py`` generates):
- one namespace, ``default``; the client is a sidecar (gateway ``mesh``) in it, no labels;
- Kubernetes ``Service`` objects (name + ports), ``DestinationRule`` objects (subsets only),
  ``VirtualService`` objects with short-name hosts of known services and ``http`` routes;
- match blocks: uri exact/prefix/regex, ``ignoreUriCase``, method, headers (exact/prefix/regex/
  presence ``{}``), ``withoutHeaders``, ``queryParams`` (exact/regex/presence), ``port``;
- actions: weighted destinations (subset, port), redirect, directResponse; ``rewrite.uri``;
- the mesh default ``ALLOW_ANY`` for unknown hosts.

The oracle answers with the *set* of decisions Istio allows: one for deterministic routes, one per
destination with weight > 0 for weighted routes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NAMESPACE = "default"
DOMAIN = "cluster.local"
PASSTHROUGH = "PassthroughCluster"

Doc = Mapping[str, Any]


@dataclass(frozen=True)
class Request:
    host: str  # Host / :authority as sent, possibly "name:port"
    path: str = "/"  # raw :path, query string included
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()  # repeated names allowed
    port: int | None = None  # explicit listener port (the `port=` argument of Mesh.route)


@dataclass(frozen=True)
class Outcome:
    """One decision Istio allows for a request. Fields that do not apply are None."""

    outcome: str
    status: int | None = None
    virtual_service: str | None = None
    route_index: int | None = None
    match_index: int | None = None
    cluster: str | None = None
    rewrite_path: str | None = None
    location: str | None = None


def fqdn(name: str) -> str:
    """§1.1: a name without a dot becomes ``<name>.<rule namespace>.svc.<domain>``."""
    return name if "." in name else f"{name}.{NAMESPACE}.svc.{DOMAIN}"


def cluster_name(host: str, port: int, subset: str | None) -> str:
    """§2.6: ``outbound|<port>|<subset>|<fqdn>``."""
    return f"outbound|{port}|{subset or ''}|{host}"


class Oracle:
    """Istio's answer for requests against one config (a list of YAML documents as dicts)."""

    def __init__(self, docs: Iterable[Doc]) -> None:
        self.services: dict[str, list[int]] = {}  # fqdn -> ports
        self.subsets: dict[str, set[str]] = {}  # fqdn -> DR subset names
        self.vs_by_host: dict[str, Doc] = {}  # fqdn -> the one VS a sidecar uses for it
        for doc in docs:
            kind, spec = doc["kind"], doc["spec"]
            if kind == "Service":
                self.services[fqdn(doc["metadata"]["name"])] = [p["port"] for p in spec["ports"]]
            elif kind == "DestinationRule":
                names = {s["name"] for s in spec.get("subsets", [])}
                self.subsets.setdefault(fqdn(spec["host"]), set()).update(names)
            elif kind == "VirtualService":
                for host in spec["hosts"]:
                    # §2.16 step 1: sidecars use exactly one VS per host; the generator never
                    # produces two, so a second one is a bug in the test, not a precedence question.
                    assert fqdn(host) not in self.vs_by_host, f"two VSs for {host}"
                    self.vs_by_host[fqdn(host)] = doc

    # -- host and port -------------------------------------------------------------------------

    def _service_for(self, host: str) -> str | None:
        """§1.1: a same-namespace client reaches a service as ``name``, ``name.ns``, ``name.ns.svc``
        or the FQDN, with or without ``:port``; Host matching is case-insensitive."""
        name = host.rsplit(":", 1)[0] if ":" in host else host
        name = name.lower()
        for svc in self.services:
            short = svc.split(".")[0]
            if name in (short, f"{short}.{NAMESPACE}", f"{short}.{NAMESPACE}.svc", svc):
                return svc
        return None

    def listener_port(self, req: Request, svc: str | None) -> int:
        """docs/ir.md "Listener port": explicit port, else the authority's port, else the
        service's only port, else 80 (http)."""
        if req.port is not None:
            return req.port
        if ":" in req.host:
            return int(req.host.rsplit(":", 1)[1])
        if svc is not None and len(self.services[svc]) == 1:
            return self.services[svc][0]
        return 80

    # -- the algorithm of §2.16 -----------------------------------------------------------------

    def route(self, req: Request) -> set[Outcome]:
        svc = self._service_for(req.host)
        if svc is None:
            # §2.16 step 4 / §6: unknown host on a sidecar with the mesh default ALLOW_ANY.
            return {Outcome("route", cluster=PASSTHROUGH)}
        port = self.listener_port(req, svc)
        default = {Outcome("route", cluster=cluster_name(svc, port, None))}
        vs = self.vs_by_host.get(svc)
        if vs is None:
            return default  # §2.17: no VS ⇒ the service's default route
        applicable = False
        for r_index, http in enumerate(vs["spec"]["http"]):
            blocks = http.get("match") or [None]  # §2.2: no match ⇒ catch-all
            for m_index, block in enumerate(blocks):
                if block is not None and block.get("port") not in (None, port):
                    continue  # §2.16 step 2: config-time filter drops the block
                applicable = True
                if block is None or block_matches(block, req):
                    reported = None if http.get("match") is None else m_index
                    ns_name = f"{NAMESPACE}/{vs['metadata']['name']}"
                    return self._action(http, block, req, port, ns_name, r_index, reported)
        # §2.16 refinement: a VS with no route left for this client gives the default route;
        # otherwise no route matched ⇒ 404.
        return {Outcome("no_route", 404)} if applicable else default

    def _action(
        self,
        http: Doc,
        block: Doc | None,
        req: Request,
        port: int,
        vs_name: str,
        r_index: int,
        m_index: int | None,
    ) -> set[Outcome]:
        where = {"virtual_service": vs_name, "route_index": r_index, "match_index": m_index}
        if "redirect" in http:
            red = http["redirect"]
            return {Outcome("redirect", red.get("redirectCode", 301), location=location(red, req), **where)}
        if "directResponse" in http:
            return {Outcome("direct_response", http["directResponse"]["status"], **where)}
        dests = http["route"]
        if len(dests) > 1:  # §2.5: zero weights are dropped only when there are several
            dests = [d for d in dests if d.get("weight", 0) > 0]
        rewritten = rewrite_path(http["rewrite"]["uri"], block, req.path) if "rewrite" in http else None
        out = set()
        for dest in dests:
            d = dest["destination"]
            host = fqdn(d["host"])
            ports = self.services.get(host, [])
            # §2.6: omitted port ⇒ the service's only port, else the port the request came in on.
            d_port = d["port"]["number"] if "port" in d else ports[0] if len(ports) == 1 else port
            subset = d.get("subset")
            exists = d_port in ports and (subset is None or subset in self.subsets.get(host, set()))
            if exists:
                out.add(
                    Outcome(
                        "route",
                        None,
                        cluster=cluster_name(host, d_port, subset),
                        rewrite_path=rewritten,
                        **where,
                    )
                )
            else:  # §2.6 / §7: undefined subset or port ⇒ no cluster ⇒ 503
                out.add(Outcome("no_cluster", 503, **where))
        return out


# -- matching (§2.3, §2.4) -----------------------------------------------------------------------


def split_path(path: str) -> tuple[str, str | None]:
    """(path without query, query or None)."""
    if "?" in path:
        head, query = path.split("?", 1)
        return head, query
    return path, None


def string_match(spec: Doc, value: str, *, ignore_case: bool = False) -> bool:
    """§2.4 StringMatch; ``{}`` (no member) is the presence check, always true for a present value."""
    if ignore_case:
        value = value.lower()
    if "exact" in spec:
        return value == (spec["exact"].lower() if ignore_case else spec["exact"])
    if "prefix" in spec:
        return value.startswith(spec["prefix"].lower() if ignore_case else spec["prefix"])
    if "regex" in spec:
        # RE2 full match with ASCII classes; the generator only emits patterns both engines share.
        return re.fullmatch(spec["regex"], value, flags=re.ASCII) is not None
    return True


def header_value(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """Names compare case-insensitively; repeated headers are joined with "," [Envoy]."""
    values = [v for k, v in headers if k.lower() == name.lower()]
    return ",".join(values) if values else None


def query_params(query: str | None) -> dict[str, str]:
    """``a=1&b`` → {"a": "1", "b": ""}; raw values (no percent-decoding); the first occurrence wins."""
    out: dict[str, str] = {}
    for part in (query or "").split("&"):
        if part:
            key, _, value = part.partition("=")
            out.setdefault(key, value)
    return out


def block_matches(block: Doc, req: Request) -> bool:
    """§2.3: every condition of one HTTPMatchRequest must hold."""
    path, query = split_path(req.path)
    uri = block.get("uri")
    if uri is not None:
        ignore = bool(block.get("ignoreUriCase")) and "regex" not in uri  # no effect on regex
        # exact/regex see the path without the query; prefix sees the raw :path.
        subject = req.path if "prefix" in uri else path
        if not string_match(uri, subject, ignore_case=ignore):
            return False
    if "method" in block and not string_match(block["method"], req.method):
        return False
    for name, spec in (block.get("headers") or {}).items():
        value = header_value(req.headers, name)
        if value is None or not string_match(spec, value):  # missing never matches
            return False
    for name, spec in (block.get("withoutHeaders") or {}).items():
        value = header_value(req.headers, name)
        if not spec:  # {} ⇒ the header must be absent
            if value is not None:
                return False
        elif string_match(spec, "" if value is None else value):  # missing counts as ""
            return False
    params = query_params(query)
    for name, spec in (block.get("queryParams") or {}).items():
        if name not in params or not string_match(spec, params[name]):
            return False
    return True


# -- actions (§2.9, §2.10) -----------------------------------------------------------------------


def rewrite_path(new: str, block: Doc | None, raw: str) -> str:
    """§2.10 ``rewrite.uri``: replace the matched prefix (the implicit "/" when the block has no
    uri), the whole path for exact/regex; the query string is kept."""
    uri = (block or {}).get("uri") or {"prefix": "/"}
    if "prefix" in uri:
        return new + raw[len(uri["prefix"]) :]
    _, query = split_path(raw)
    return new + (f"?{query}" if query is not None else "")


def location(red: Doc, req: Request) -> str:
    """§2.9 / docs/ir.md: scheme://authority[:port]path[?query]; whole path replaced, query kept
    unless the new uri has its own. No port field is ever generated here, so the port part is the
    original authority's port, kept only while the authority itself is kept [Envoy: a
    host_redirect replaces host *and* port]."""
    path, query = split_path(req.path)
    new_path = red.get("uri", path)
    host, _, port = req.host.partition(":")
    if "authority" in red:
        authority = red["authority"]
    else:
        authority = host + (f":{port}" if port and port != "80" else "")
    tail = f"?{query}" if query is not None and "?" not in new_path else ""
    return f"http://{authority}{new_path}{tail}"
