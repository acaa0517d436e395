"""Client-context views: one host index per sidecar context and per gateway port (docs/ir.md
"View"), following semantics §2.16 step 1 (sidecars: one VS per host; gateways: merge per host,
catch-all routes last) and §4 (gateway server host binding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.config.hosts import MESH, intersect, is_wildcard, k8s_aliases, narrower
from meshroute.config.httproute import CompiledRoute
from meshroute.config.index import ConfigIndex, pick_for_host
from meshroute.config.model import GatewayInfo, Server, SidecarInfo, VirtualServiceInfo
from meshroute.config.tables import Tables

Compiled = Mapping[str, Sequence[CompiledRoute]]  # "ns/name" -> routes of that root VS
OTHER_NAMESPACE = "*"  # what the view of "any namespace not in the config" reports


@dataclass(frozen=True)
class Context:
    """Who is asking: the namespace used for visibility and DR lookup, and the Sidecar in force."""

    namespace: str
    sidecar: SidecarInfo | None
    gateway: GatewayInfo | None = None


def _key(vs: VirtualServiceInfo) -> str:
    return f"{vs.namespace}/{vs.name}"


def _mesh_routes(tables: Tables, routes: Sequence[CompiledRoute]) -> list[int]:
    # Whole routes: Rust evaluates each block's gateways/port/source filters, which keeps match
    # indices as written. Routes that never apply to the mesh are left out.
    return [tables.route(r.ir(r.blocks if r.blocks else None)) for r in routes if r.bound_to(MESH)]


def mesh_view(index: ConfigIndex, tables: Tables, compiled: Compiled, ctx: Context) -> dict[str, Any]:
    """The view of sidecars in ``ctx.namespace`` under ``ctx.sidecar``."""
    ns = ctx.namespace
    candidates = index.mesh_virtual_services(ns, ctx.sidecar)
    vhosts: list[dict[str, Any]] = []
    taken: set[str] = set()
    for svc in index.visible_services(ns, ctx.sidecar):
        vs = pick_for_host(svc.host, candidates)
        domains = (
            k8s_aliases(svc.host, svc.namespace, ns, index.domain)
            if svc.origin == "Kubernetes"
            else [svc.host]
        )
        vhosts.append(
            {
                "domains": domains,
                "routes": _mesh_routes(tables, compiled.get(_key(vs), ())) if vs else [],
                "default_target": tables.target(svc.host, None, None),
                "default_port": svc.single_port,
            }
        )
        taken.update(domains)
    # VS hosts that are not services (external names, wildcards): the first VS by precedence.
    for vs in candidates:
        for host in vs.hosts:
            if host in taken or (not is_wildcard(host) and pick_for_host(host, candidates) is not vs):
                continue
            taken.add(host)
            vhosts.append(
                {
                    "domains": [host],
                    "routes": _mesh_routes(tables, compiled.get(_key(vs), ())),
                    "default_target": None,
                    "default_port": None,
                }
            )
    return {
        "gateway": 0,
        "namespace": ns if ns in index.namespaces else OTHER_NAMESPACE,
        "scope": -1,  # filled in once all targets are known
        "ports": [],
        "https_redirect_hosts": [],
        "unknown_host": ctx.sidecar.unknown_host if ctx.sidecar else "passthrough",
        "vhosts": vhosts,
    }


def gateway_pieces(
    routes: Sequence[CompiledRoute], ref: str, port: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ordinary routes, catch-all routes) of one VS on one gateway port.

    Istio stops emitting a VS's routes after its first catch-all match and then moves catch-all
    routes behind every other VS's routes. A route whose catch-all block is not its first block is
    split: its earlier blocks stay in place, and the moved copy keeps them too (they cannot match
    there, having failed already) so the catch-all block keeps its match index.
    """
    normal: list[dict[str, Any]] = []
    for route in routes:
        if not route.blocks:
            if route.bound_to(ref):
                return normal, [route.ir(None)]
            continue
        usable = route.usable_blocks(ref, port)
        if not usable:
            continue
        catch = next((i for i, b in enumerate(route.blocks) if b in usable and b.catch_all), None)
        if catch is None:
            normal.append(route.ir(route.blocks))
            continue
        if any(b in usable for b in route.blocks[:catch]):
            normal.append(route.ir(route.blocks[:catch]))
        return normal, [route.ir(route.blocks[: catch + 1])]
    return normal, []


def _domains(vs: VirtualServiceInfo, servers: Sequence[Server]) -> list[str]:
    """Vhost domains a VS gets on a gateway port: each VS host that intersects a server host whose
    namespace part admits the VS, narrowed to the more specific of the two patterns (§4)."""
    out: list[str] = []
    for host in vs.hosts:
        for server in servers:
            for ns, server_host in server.hosts:
                if ns in ("*", vs.namespace) and intersect(host, server_host):
                    domain = narrower(host, server_host)
                    if domain not in out:
                        out.append(domain)
    return out


def _redirect_hosts(servers: Sequence[Server]) -> list[str]:
    """Host patterns of the servers with ``tls.httpsRedirect``: Istio requires TLS on the virtual
    hosts of that server only, so other servers on the port keep plain http. The ``ns/`` part of a
    server host only filters VirtualServices (§4); it plays no part here."""
    out: list[str] = []
    for server in servers:
        for _, host in server.hosts if server.https_redirect else ():
            if host not in out:
                out.append(host)
    return out


def gateway_views(
    index: ConfigIndex, tables: Tables, compiled: Compiled, gw: GatewayInfo
) -> dict[int, dict[str, Any]]:
    """One view per server port of a Gateway; VSs merged per host, catch-alls last (§2.16, §4)."""
    out: dict[int, dict[str, Any]] = {}
    candidates = index.gateway_virtual_services(gw)
    for port in sorted({s.port for s in gw.servers}):
        servers = [s for s in gw.servers if s.port == port]
        by_domain: dict[str, list[VirtualServiceInfo]] = {}
        for vs in candidates:
            for domain in _domains(vs, servers):
                group = by_domain.setdefault(domain, [])
                if vs not in group:
                    group.append(vs)
        vhosts = []
        for domain, group in by_domain.items():
            normal: list[dict[str, Any]] = []
            last: list[dict[str, Any]] = []
            for vs in group:
                pieces, catch_all = gateway_pieces(compiled.get(_key(vs), ()), gw.ref, port)
                normal += pieces
                last += catch_all
            vhosts.append(
                {
                    "domains": [domain],
                    "routes": [tables.route(r) for r in normal + last],
                    "default_target": None,
                    "default_port": None,
                }
            )
        out[port] = {
            "gateway": tables.gateway(gw.ref),
            "namespace": gw.namespace,
            "scope": -1,
            "ports": [port],
            "https_redirect_hosts": _redirect_hosts(servers),
            "unknown_host": "not_found",
            "vhosts": vhosts,
        }
    return out
