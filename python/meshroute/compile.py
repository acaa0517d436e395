"""Validated resources -> the route-table IR of docs/ir.md; the only producer of the IR.

Everything Istio-policy-shaped is resolved here (visibility, Sidecar egress, VS precedence and
merging, delegates, DR lookup and merging, header-op order, retry defaults); the Rust core only
evaluates requests against the result. This module just assembles: the model is built by
:mod:`meshroute.config.index`, routes by :mod:`meshroute.config.httproute`, views by
:mod:`meshroute.config.views`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.config.httproute import CompiledRoute, compile_route
from meshroute.config.index import ConfigIndex, build_index
from meshroute.config.load import Resource
from meshroute.config.meshconfig import MeshSettings
from meshroute.config.policy import MergedRule, rule_policy
from meshroute.config.registry import Service
from meshroute.config.tables import Tables
from meshroute.config.tcproute import tcp_section
from meshroute.config.views import (
    OTHER_NAMESPACE,
    Context,
    Shared,
    gateway_views,
    mesh_view,
    workload_views,
)
from meshroute.config.virtualservice import VirtualServiceInfo
from meshroute.config.workloads import GatewayWorkload, gateway_workloads

IR_VERSION = 1


def default_extra(mesh: MeshSettings | None = None) -> dict[str, Any]:
    """``extra`` of synthetic default routes: no timeout, the mesh default retries (§2.17), as
    the mesh config changes them (§12)."""
    mesh = mesh or MeshSettings()
    return {
        "timeout_ms": mesh.route_timeout_ms,
        "retries": mesh.default_retries(),
        "mirrors": [],
        "cors": None,
    }


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
    _, ir, diags = try_compile(resources, domain)
    return ir, diags


def ir_json(ir: Mapping[str, Any]) -> str:
    """``ir`` as JSON text for ``RouteTable.from_json``, each vhost object that several views
    hold written once: into ``vhost_pool``, the views naming it by index (docs/ir.md). The
    compiler gives a service's vhost to every namespace view that sees it alike (one object), so
    the text and the table grow with the services rather than services × namespaces.
    :func:`expand_vhost_pool` of the parsed text is ``ir`` again.

    >>> shared = {"domains": ["a"], "routes": [], "default_target": None, "default_port": None}
    >>> text = ir_json({"views": [{"vhosts": [shared]}, {"vhosts": [shared]}]})
    >>> text
    '{"views": [{"vhosts": [0]}, {"vhosts": [0]}], "vhost_pool": [{"domains": ["a"], ...}]}'
    >>> expand_vhost_pool(json.loads(text)) == {"views": [{"vhosts": [shared]}, {"vhosts": [shared]}]}
    True
    """
    uses: dict[int, int] = {}
    for view in ir["views"]:
        for vhost in view["vhosts"]:
            uses[id(vhost)] = uses.get(id(vhost), 0) + 1
    if all(n == 1 for n in uses.values()):
        return json.dumps(ir)
    pool: list[Any] = []
    pool_ids: dict[int, int] = {}  # id(vhost) -> VHostId; the objects live in ir meanwhile
    views = []
    for view in ir["views"]:
        refs: list[Any] = []
        for vhost in view["vhosts"]:
            key = id(vhost)
            if uses[key] == 1:
                refs.append(vhost)
                continue
            vid = pool_ids.get(key)
            if vid is None:
                vid = pool_ids[key] = len(pool)
                pool.append(vhost)
            refs.append(vid)
        views.append({**view, "vhosts": refs})
    return json.dumps({**ir, "views": views, "vhost_pool": pool})


def expand_vhost_pool(ir: dict[str, Any]) -> dict[str, Any]:
    """An IR with its ``vhost_pool`` references written out (and no ``vhost_pool``)."""
    pool = ir.get("vhost_pool", [])
    views = [
        {**view, "vhosts": [pool[x] if isinstance(x, int) else x for x in view["vhosts"]]}
        for view in ir["views"]
    ]
    return {**{k: v for k, v in ir.items() if k != "vhost_pool"}, "views": views}


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
    out: dict[str, list[CompiledRoute]] = {}
    for vs in index.roots():
        out.setdefault(f"{vs.namespace}/{vs.name}", []).extend(
            compile_vs_routes(index, tables, vs_ids, vs, diags)
        )
    return out


def compile_vs_routes(
    index: ConfigIndex,
    tables: Tables,
    vs_ids: Mapping[str, int],
    vs: VirtualServiceInfo,
    diags: list[Diagnostic],
) -> list[CompiledRoute]:
    """The compiled HTTP routes of one root VS (delegates merged); a route with nothing to do is
    left out with a ``vs-route-skipped`` warning in ``diags``."""

    def single_port(host: str) -> int | None:
        svc = index.model.registry.lookup(host)
        return svc.single_port if svc else None

    key = f"{vs.namespace}/{vs.name}"
    retries = index.model.mesh.default_retries()
    routes: list[CompiledRoute] = []
    for position, route in index.merged.get(key, []):
        compiled = compile_route(
            vs_ids[key],
            position,
            route,
            vs.gateways,
            tables.target,
            tables.gateway,
            single_port,
            default_retries=retries,
            default_timeout_ms=index.model.mesh.route_timeout_ms,
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
    return routes


def gateway_servers(workloads: Sequence[GatewayWorkload]) -> list[list[Any]]:
    """The HTTP servers each gateway workload keeps (workload order, then port, then merge
    order) as ``[port, [host patterns], "workload:…"]``: what an Envoy filter needs to pick the
    gateway view of a gateway-listener request (docs/ir.md). A host's ``ns/`` part only
    restricts which VirtualServices bind, so it is left out."""
    return [
        [port, [host for _, host in server.hosts], workload.name]
        for workload in workloads
        for port in workload.http_ports
        for server, _ in workload.http_servers(port)
    ]


_Row = tuple[int, int, "MergedRule | None", "str | None"]  # target, port, rule in force, subset
_Target = tuple[int, "str | None", "int | None"]  # TargetId, subset, port


@dataclass
class _ScopeBase:
    """The groups of a client without rules of its own that sees every service, in visible order,
    with each group's service and targets, the position of each host, and the hosts of each
    namespace's services."""

    groups: list[list[_Row]] = field(default_factory=list)
    entries: list[tuple[Service, list[_Target]]] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    own: dict[str, list[str]] = field(default_factory=dict)


class _Scopes:
    """Scopes of client contexts (§2.6, §3.2): the clusters that exist for a context — service
    visible and imported, port on the service, subset defined by the DR in force — with their
    effective DR policy.

    A service's rows depend only on the service and on the merged DR the context gets for it, so
    they are built once per (service, rule) and shared by every context; a context made of the
    same rows as an earlier one has its scope. Policy ids are given in the order the clusters of
    each new scope list them (target order), each effective policy interned once per (rule,
    subset, port)."""

    def __init__(self, index: ConfigIndex, tables: Tables) -> None:
        self.index = index
        self.tables = tables
        self.targets: dict[str, list[_Target]] = {}
        for tid, (host, subset, port) in enumerate(tables.targets):
            self.targets.setdefault(host, []).append((tid, subset, port))
        self._rows: dict[tuple[int, int], list[_Row]] = {}
        self._policies: dict[tuple[int, str | None, int], int] = {}
        self._ids: dict[tuple[int, ...], int] = {}
        self._base: _ScopeBase | None = None  # for _plain_groups

    def scope(self, ctx: Context) -> int:
        groups = None if ctx.dr_labels else self._plain_groups(ctx)
        if groups is None:
            groups = []
            for svc in self.index.visible_services(ctx.namespace, ctx.sidecar):  # one per host
                targets = self.targets.get(svc.host)
                if targets:
                    groups.append(self._group(svc, targets, ctx.namespace, ctx.dr_labels))
        return self._intern(groups)

    def _group(
        self, svc: Service, targets: list[_Target], client_ns: str, labels: tuple[tuple[str, str], ...] = ()
    ) -> list[_Row]:
        rule = self.index.model.rules.lookup(svc.host, client_ns, svc.namespace, labels)
        key = (id(svc), id(rule))  # both live as long as the index
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = self._service_rows(svc, rule, targets)
        return rows

    def _plain_groups(self, ctx: Context) -> list[list[_Row]] | None:
        """The groups of a client that sees every service (all exported everywhere; no Sidecar,
        or one importing everything), from those of a client without rules of its own: only
        the services whose rule it may see otherwise are looked up again — its own, those its
        namespace has rules for, those with rules not exported everywhere. None when that does
        not hold or its namespace has wildcard rules or is the root one (every host may differ)."""
        sidecar, ns, rules = ctx.sidecar, ctx.namespace, self.index.model.rules
        if (sidecar is not None and sidecar.egress is not None) or not self.index.model.registry.all_public:
            return None
        varying = rules.varying_hosts()
        if varying is None or ns == rules.root or rules.has_wildcards(ns):
            return None
        base = self._base
        if base is None:
            base = self._base = _ScopeBase()
            for svc in self.index.visible_services(OTHER_NAMESPACE, None):
                targets = self.targets.get(svc.host)
                if targets:
                    base.positions[svc.host] = len(base.groups)
                    base.own.setdefault(svc.namespace, []).append(svc.host)
                    base.groups.append(self._group(svc, targets, OTHER_NAMESPACE))
                    base.entries.append((svc, targets))
        groups = list(base.groups)
        for host in {*base.own.get(ns, ()), *rules.namespace_hosts(ns), *varying}:
            i = base.positions.get(host)
            if i is not None:
                svc, targets = base.entries[i]
                groups[i] = self._group(svc, targets, ns)
        return groups

    def _intern(self, groups: list[list[_Row]]) -> int:
        # Contexts made of the same row groups have the same scope: built and interned once.
        signature = tuple(map(id, groups))  # the groups live in self._rows
        sid = self._ids.get(signature)
        if sid is None:
            rows = [row for group in groups for row in group]
            rows.sort(key=itemgetter(0))  # target order (stable: a target's ports stay in order)
            clusters = [
                [tid, number, self._policy(rule, subset, number)] for tid, number, rule, subset in rows
            ]
            sid = self._ids[signature] = self.tables.scope(clusters)
        return sid

    def _policy(self, rule: MergedRule | None, subset: str | None, number: int) -> int:
        key = (id(rule), subset, number)  # rules live as long as the index
        pid = self._policies.get(key)
        if pid is None:
            pid = self._policies[key] = self.tables.policy(rule_policy(rule, subset, number))
        return pid

    def _service_rows(self, svc: Service, rule: MergedRule | None, targets: list[_Target]) -> list[_Row]:
        rows: list[_Row] = []
        for tid, subset, port in targets:
            if subset and (rule is None or subset not in rule.subsets):
                continue
            for number in [port] if port is not None else [p.number for p in svc.ports]:
                if number is not None and svc.port(number) is not None:
                    rows.append((tid, number, rule, subset))
        return rows


@dataclass
class Compilation:
    """A compile's result and what produced it, kept by :mod:`meshroute.config.session` so that
    a later edit can recompile only what depends on the changed resource."""

    index: ConfigIndex
    tables: Tables
    compiled: dict[str, list[CompiledRoute]]  # root VS "ns/name" -> its compiled routes
    shared: Shared
    vs_ids: dict[str, int]
    contexts: list[Context]  # by ViewId
    scopes: _Scopes
    ir: dict[str, Any]
    diagnostics: list[Diagnostic]  # the index's, then the compile's own
    # The gateway workloads, whose views follow the Gateways' (gateway_views[workload.name]).
    workloads: list[GatewayWorkload] = field(default_factory=list)


def workload_views_of(state: Compilation, refs: Iterable[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """The views, built again from ``state``, of every gateway workload merging one of the
    Gateways ``refs`` ("ns/name"), by workload name and port as ``gateway_views``: what an edit
    of a VirtualService bound to those Gateways changes besides the Gateways' own views (an
    incremental compile places their vhosts as it places the Gateways')."""
    wanted = set(refs)
    return {
        w.name: workload_views(state.index, state.tables, state.compiled, w)
        for w in state.workloads
        if any(gw.ref in wanted for gw in w.gateways)
    }


def compile_state(resources: list[Resource], domain: str = "cluster.local") -> Compilation:
    """:func:`compile_config`, keeping the :class:`Compilation` (may raise on a compiler bug)."""
    index = build_index(resources, domain)
    diags = list(index.diagnostics)
    tables = Tables()
    for ref in index.model.gateways:
        tables.gateway(ref)
    vs_list = [{"namespace": vs.namespace, "name": vs.name} for vs in index.model.virtual_services]
    vs_ids = {f"{v['namespace']}/{v['name']}": i for i, v in enumerate(vs_list)}
    compiled = _compile_routes(index, tables, vs_ids, diags)

    views: list[dict[str, Any]] = []
    contexts: list[Context] = []

    def add(view: dict[str, Any], ctx: Context) -> int:
        views.append(view)
        contexts.append(ctx)
        return len(views) - 1

    shared = Shared()

    def add_mesh(ctx: Context) -> int:
        return add(mesh_view(index, tables, compiled, ctx, shared), ctx)

    namespaces: dict[str, Any] = {}
    for ns in index.model.namespaces:
        default = add_mesh(Context(ns, index.default_sidecar(ns)))
        sidecars = []
        dr_selectors = index.model.rules.selectors(ns)  # DR workloadSelectors: a view each (§3.1)
        for sc in [*index.selector_sidecars(ns), None]:
            for dr in dr_selectors:  # first the Sidecar's workloads a DR selects, in DR order
                labels = {**dict(dr), **sc.selector} if sc is not None else dict(dr)
                if sc is None or all(labels.get(k) == v for k, v in dr):  # else no workload has both
                    ctx = Context(ns, sc if sc is not None else index.default_sidecar(ns), dr_labels=dr)
                    sidecars.append({"labels": labels, "view": add_mesh(ctx)})
            if sc is not None:
                sidecars.append({"labels": dict(sc.selector), "view": add_mesh(Context(ns, sc))})
        namespaces[ns] = {"default_view": default, "sidecars": sidecars}
    other = add_mesh(Context(OTHER_NAMESPACE, index.default_sidecar(OTHER_NAMESPACE)))
    gateway_index: dict[str, dict[str, int]] = {}
    for ref, gw in index.model.gateways.items():
        ports = gateway_views(index, tables, compiled, gw)
        ctx = Context(gw.namespace, None, gw)
        gateway_index[ref] = {str(port): add(view, ctx) for port, view in ports.items()}
    workloads = gateway_workloads(index.model)
    for workload in workloads:
        ports = workload_views(index, tables, compiled, workload)
        ctx = Context(workload.namespace, None, None, workload)
        gateway_index[workload.name] = {str(port): add(view, ctx) for port, view in ports.items()}
    tcp = tcp_section(index.model, tables, vs_ids, contexts)  # before the scopes: it adds targets
    scopes = _Scopes(index, tables)
    for view, ctx in zip(views, contexts, strict=True):
        view["scope"] = scopes.scope(ctx)
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
        "gateway_servers": gateway_servers(workloads),
        "default_extra": default_extra(index.model.mesh),
        **({"tcp": tcp} if tcp else {}),  # absent without TCP service ports (docs/ir.md)
    }
    return Compilation(index, tables, compiled, shared, vs_ids, contexts, scopes, ir, diags, workloads)


def try_compile(
    resources: Iterable[Resource], domain: str = "cluster.local"
) -> tuple[Compilation | None, dict[str, Any], list[Diagnostic]]:
    """:func:`compile_state` that never raises: the compilation, its IR and its diagnostics, or,
    on a compiler bug, no compilation, the empty IR and a ``compile-internal`` error."""
    try:
        state = compile_state(list(resources), domain)
    except Exception as exc:  # a compiler bug must surface as a diagnostic, not a traceback
        diag = Diagnostic(Severity.ERROR, "compile-internal", f"internal compiler error: {exc!r}")
        return None, _empty_ir(), [diag]
    return state, state.ir, state.diagnostics
