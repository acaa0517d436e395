"""Validated resources -> the route-table IR of docs/ir.md; the only producer of the IR.

Everything Istio-policy-shaped is resolved here (visibility, Sidecar egress, VS precedence and
merging, delegates, DR lookup and merging, header-op order, retry defaults); the Rust core only
evaluates requests against the result. This module just assembles: the model is built by
:mod:`meshroute.config.index`, routes by :mod:`meshroute.config.httproute`, views by
:mod:`meshroute.config.views`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from meshroute.config import extras
from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.config.httproute import CompiledRoute, compile_route
from meshroute.config.index import ConfigIndex, build_index
from meshroute.config.load import Resource
from meshroute.config.tables import Tables
from meshroute.config.views import OTHER_NAMESPACE, Context, gateway_views, mesh_view

IR_VERSION = 1


def default_extra() -> dict[str, Any]:
    """``extra`` of synthetic default routes: no timeout, the mesh default retries (§2.17)."""
    return {"timeout_ms": None, "retries": extras.default_retries(), "mirrors": [], "cors": None}


def compile_config(
    resources: Iterable[Resource], *, domain: str = "cluster.local"
) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Compile resources (already validated) into the IR dict plus cross-resource diagnostics.

    Never raises: anything unusable becomes a diagnostic.

    >>> from meshroute.config.load import load_text
    >>> res = load_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: a}\\n"
    ...                 "spec: {ports: [{port: 80, name: http}]}", "x.yaml").resources
    >>> ir, diags = compile_config(res)
    >>> ir["targets"], ir["scopes"][0]["clusters"], diags
    ([{'host': 'a.default.svc.cluster.local', 'subset': None, 'port': None}], [[0, 80, 0]], [])
    """
    resources = list(resources)
    try:
        return _compile(resources, domain)
    except Exception as exc:  # a compiler bug must surface as a diagnostic, not a traceback
        diag = Diagnostic(Severity.ERROR, "compile-internal", f"internal compiler error: {exc!r}")
        return _empty_ir(), [diag]


def _empty_ir() -> dict[str, Any]:
    view = {
        "gateway": 0,
        "namespace": "default",
        "scope": 0,
        "ports": [],
        "https_redirect_hosts": [],
        "unknown_host": "passthrough",
        "vhosts": [],
    }
    return {
        "version": IR_VERSION,
        "virtual_services": [],
        "gateways": ["mesh"],
        "targets": [],
        "policies": ["{}"],
        "scopes": [{"clusters": []}],
        "routes": [],
        "views": [view],
        "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
        "gateway_views": {},
        "gateway_servers": [],
        "default_extra": default_extra(),
    }


def _compile_routes(
    index: ConfigIndex, tables: Tables, vs_ids: dict[str, int], diags: list[Diagnostic]
) -> dict[str, list[CompiledRoute]]:
    def single_port(host: str) -> int | None:
        svc = index.registry.lookup(host)
        return svc.single_port if svc else None

    out: dict[str, list[CompiledRoute]] = {}
    for vs in index.roots():
        key = f"{vs.namespace}/{vs.name}"
        routes = out.setdefault(key, [])
        for position, route in index.merged.get(key, []):
            compiled = compile_route(
                vs_ids[key], position, route, vs.gateways, tables.target, tables.gateway, single_port
            )
            if compiled is None:
                diags.append(
                    vs.resource.warning(
                        "vs-route-skipped",
                        ("spec", "http", position),
                        "route has no usable destination, redirect or direct response; it is left out",
                    )
                )
            else:
                routes.append(compiled)
    return out


def gateway_servers(index: ConfigIndex) -> list[list[Any]]:
    """Every Gateway server in config order as ``[port, [host patterns], "ns/name"]``: what an
    Envoy filter needs to pick the Gateway of a gateway-listener request (docs/ir.md). A host's
    ``ns/`` part only restricts which VirtualServices bind, so it is left out."""
    return [
        [server.port, [host for _, host in server.hosts], ref]
        for ref, gw in index.gateways.items()
        for server in gw.servers
    ]


def _scope(index: ConfigIndex, tables: Tables, ctx: Context) -> int:
    """Clusters that exist for a client context, with their effective DR policy (§2.6, §3.2):
    service visible and imported, port on the service, subset defined by the DR in force."""
    visible = {svc.host: svc for svc in index.visible_services(ctx.namespace, ctx.sidecar)}
    clusters: list[list[int]] = []
    for tid, (host, subset, port) in enumerate(tables.targets):
        svc = visible.get(host)
        if svc is None:
            continue
        if subset and not index.rules.defines_subset(host, subset, ctx.namespace, svc.namespace):
            continue
        for number in [port] if port is not None else [p.number for p in svc.ports]:
            if number is not None and svc.port(number) is not None:
                policy = index.rules.effective(host, subset, number, ctx.namespace, svc.namespace)
                clusters.append([tid, number, tables.policy(policy)])
    return tables.scope(clusters)


def _compile(resources: list[Resource], domain: str) -> tuple[dict[str, Any], list[Diagnostic]]:
    index = build_index(resources, domain)
    diags = list(index.diagnostics)
    tables = Tables()
    for ref in index.gateways:
        tables.gateway(ref)
    vs_list = [{"namespace": vs.namespace, "name": vs.name} for vs in index.virtual_services]
    vs_ids = {f"{v['namespace']}/{v['name']}": i for i, v in enumerate(vs_list)}
    compiled = _compile_routes(index, tables, vs_ids, diags)

    views: list[dict[str, Any]] = []
    contexts: list[Context] = []

    def add(view: dict[str, Any], ctx: Context) -> int:
        views.append(view)
        contexts.append(ctx)
        return len(views) - 1

    def add_mesh(ctx: Context) -> int:
        return add(mesh_view(index, tables, compiled, ctx), ctx)

    namespaces: dict[str, Any] = {}
    for ns in index.namespaces:
        default = add_mesh(Context(ns, index.default_sidecar(ns)))
        sidecars = [
            {"labels": dict(sc.selector), "view": add_mesh(Context(ns, sc))}
            for sc in index.selector_sidecars(ns)
        ]
        namespaces[ns] = {"default_view": default, "sidecars": sidecars}
    other = add_mesh(Context(OTHER_NAMESPACE, index.default_sidecar(OTHER_NAMESPACE)))
    gateway_index: dict[str, dict[str, int]] = {}
    for ref, gw in index.gateways.items():
        ports = gateway_views(index, tables, compiled, gw)
        ctx = Context(gw.namespace, None, gw)
        gateway_index[ref] = {str(port): add(view, ctx) for port, view in ports.items()}
    for view, ctx in zip(views, contexts, strict=True):
        view["scope"] = _scope(index, tables, ctx)
    ir = {
        "version": IR_VERSION,
        "virtual_services": vs_list,
        "gateways": tables.gateways,
        "targets": tables.target_dicts(),
        "policies": tables.policies,
        "scopes": tables.scopes,
        "routes": tables.routes,
        "views": views,
        "mesh": {"namespaces": namespaces, "other_view": other},
        "gateway_views": gateway_index,
        "gateway_servers": gateway_servers(index),
        "default_extra": default_extra(),
    }
    return ir, diags
