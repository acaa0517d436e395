"""Compiling one edited resource into an IR patch (docs/incremental.md).

:class:`Incremental` holds the :class:`~meshroute.compile.Compilation` of the running IR and
applies an edit of one VirtualService or DestinationRule that keeps the resource's *shape*:

- a VirtualService: same hosts, exportTo, gateways (its own and its match blocks'), order, and
  no delegation on either side. Who sees it and which hosts it names are unchanged, so only its
  routes change: the vhosts that carried its old route list get the new one, and the gateway
  views it binds are built again;
- a DestinationRule: same host (not a wildcard), exportTo and selector. Only that host's
  clusters change: each scope's rows for it are recomputed (subsets, policies).

New targets (a route to a subset or port not routed to before) get their clusters in every scope
that sees their host. The IR held by the compilation is updated in place and the same change is
returned as an IR patch (docs/ir.md "Patch") for the Rust table. Diagnostics: the edited
resource's own cross-resource diagnostics are computed again, with those of every VirtualService
that routes to an edited DestinationRule's host; all the others are kept (moved with their lines).

Anything else raises :class:`NotIncremental` (the caller compiles everything): nothing is
changed before that is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from meshroute.config.crosscheck import check_destination_rule, check_virtual_service, destination_refs
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import MESH, is_wildcard
from meshroute.config.httpmodel import HTTPRoute
from meshroute.config.index import alias_destinations, routes_gateways
from meshroute.config.load import Resource
from meshroute.config.model import swap
from meshroute.config.policy import DestinationRuleInfo, parse_destination_rule
from meshroute.config.virtualservice import VirtualServiceInfo, parse_virtual_service

if TYPE_CHECKING:
    from meshroute.compile import Compilation
    from meshroute.config.documents import Parsed
    from meshroute.config.session import _File

# Cross-resource diagnostics a VirtualService's or DestinationRule's own content decides.
VS_CODES = frozenset({"vs-gateway-unknown", "vs-host-unknown", "vs-subset-undefined", "vs-port-required"})
VS_COMPILE_CODES = frozenset({"vs-route-skipped"})
# Decided by the shape or by other resources: kept, at the line their field is on now. (A
# duplicate-resource warning is on the later definition and names the earlier one, which comes
# before it in the load order: the edit does not move it.)
SHAPE_CODES = frozenset({"vs-duplicate-mesh-host", "duplicate-resource"})
DR_CODES = frozenset({"dr-host-unknown", "dr-subset-no-workload"})


class NotIncremental(Exception):
    """The edit needs a full compile; the message says why."""


@dataclasses.dataclass
class _Edit:
    file: str
    position: int  # the document's index in the file
    old: Resource
    new: Resource
    old_lines: tuple[int, int]  # [first, end) of the old document
    delta: int  # lines the documents after it moved


class Incremental:
    def __init__(self, state: Compilation) -> None:
        self.state = state
        # What the last apply() changed: the resource before and after, and for a DestinationRule
        # its host (whose Envoy clusters change with it).
        self.edited: tuple[Resource, Resource] | None = None
        self.host: str | None = None
        self._dest_hosts: dict[str, list[VirtualServiceInfo]] | None = None  # host -> VSs routing there
        self._visible: dict[tuple[str, int], frozenset[str]] = {}  # hosts a context sees
        self._infos: dict[tuple[str, str, str], list[Any]] | None = None  # key -> VS/DR models
        self._uses: dict[int, list[tuple[int, int]]] | None = None  # id(route list) -> (view, pos)
        # Indexed now, with the full compile, so that the first edit is as quick as the next.
        self._models(("", "", ""))
        self._index_uses()

    # --- Entry point ---------------------------------------------------------------------------

    def apply(
        self, old_files: Mapping[str, _File], new_files: Mapping[str, _File], changed: set[str]
    ) -> tuple[dict[str, Any], list[Diagnostic]]:
        """The IR patch for the edit and the new cross-resource diagnostics (unsorted)."""
        edit = _find_edit(old_files, new_files, changed)
        state = self.state
        key = edit.new.key
        if edit.new.kind == "VirtualService":
            old = _one(self._models(key))
            new, bound = self._vs_shape(old, edit.new)
            recheck: list[Any] = []
        else:
            old_dr = _one(self._models(key))
            new_dr = self._dr_shape(old_dr, edit.new)
            recheck = self._routing_to(old_dr.host)
        kept = [d for d in state.diagnostics if not _owned(d, edit.old)]
        mine = [d for d in state.diagnostics if _owned(d, edit.old)]
        own = VS_CODES | VS_COMPILE_CODES if edit.new.kind == "VirtualService" else DR_CODES
        if any(d.code not in own | SHAPE_CODES for d in mine):
            raise NotIncremental(f"{_name(edit.new)} has diagnostics an edit alone cannot renew")
        # Decided: from here on the compilation changes.
        patch = _Patch(state)
        self.edited, self.host = (
            (edit.old, edit.new),
            None if edit.new.kind == "VirtualService" else old_dr.host,
        )
        kept = _shift(kept, edit)
        self._renew_resources(new_files[edit.file].docs[edit.position + 1 :])
        if edit.new.kind == "VirtualService":
            cross = self._apply_vs(old, new, bound, patch)
        else:
            cross = self._apply_dr(old_dr, new_dr, patch)
            kept = [
                d for d in kept if not (d.code in VS_CODES and any(_owned(d, vs.resource) for vs in recheck))
            ]
            for vs in recheck:
                cross += check_virtual_service(vs, state.index)
        cross += [
            dataclasses.replace(d, line=edit.new.line_of(d.path)) for d in mine if d.code in SHAPE_CODES
        ]
        state.diagnostics = kept + cross
        return patch.finish(), list(state.diagnostics)

    # --- VirtualService ------------------------------------------------------------------------

    def _vs_shape(self, old: VirtualServiceInfo, res: Resource) -> tuple[VirtualServiceInfo, set[str]]:
        index = self.state.index
        new = parse_virtual_service(
            res, old.order[1], index.model.domain, index.model.mesh.virtual_service_export_to
        )
        if (new.hosts, new.export_to, new.gateways, new.order) != (
            old.hosts,
            old.export_to,
            old.gateways,
            old.order,
        ):
            raise NotIncremental(f"{_name(res)}: hosts, exportTo, gateways or order changed")
        if old.is_delegate or _delegates(old) or _delegates(new):
            raise NotIncremental(f"{_name(res)}: delegation")
        if new.tcp != old.tcp:  # the IR's tcp section is never patched
            raise NotIncremental(f"{_name(res)}: tcp routes changed")
        if index.model.registry.has_aliases:  # alias vhosts are built per view (config/views.py)
            raise NotIncremental("ExternalName services are present")
        bound = routes_gateways(new.http, new.gateways)  # (no delegation: its routes are merged)
        if bound != index.bound_gateways(old):
            raise NotIncremental(f"{_name(res)}: the gateways its routes bind changed")
        return new, bound

    def _apply_vs(
        self, old: VirtualServiceInfo, new: VirtualServiceInfo, bound: set[str], patch: _Patch
    ) -> list[Diagnostic]:
        from meshroute.compile import compile_vs_routes, workload_views_of
        from meshroute.config.views import _mesh_routes, gateway_views

        state, index = self.state, self.state.index
        key = f"{new.namespace}/{new.name}"
        index.model.replace_virtual_service(old, new)
        self._replaced(old, new)
        merged: list[tuple[int, HTTPRoute]] = list(enumerate(new.http))
        if index.model.registry.has_aliases:  # as build_index merges: alias destinations rewritten
            merged = [(i, alias_destinations(route, index.model.registry)) for i, route in merged]
        index.merged[key] = merged
        index._by_name = index._mesh_public = None
        index._bound.pop(id(old), None)
        self._dest_hosts = None
        cross = check_virtual_service(new, index)
        compiled = state.compiled[key] = compile_vs_routes(index, state.tables, state.vs_ids, new, cross)
        if MESH in bound:
            before = state.shared.route_ids.get(key)
            after = _mesh_routes(state.tables, compiled)
            if before is None or before != after:  # (the vhosts keep the list they hold if equal)
                state.shared.route_ids[key] = after
                if before is not None:
                    self._reroute(before, after, patch)
        for ref in sorted(bound - {MESH}):
            gw = index.model.gateways.get(ref)
            if gw is not None:
                self._gateway(ref, gateway_views(index, state.tables, state.compiled, gw), patch)
        # the gateway proxies merging those Gateways (semantics §4) have views of their own
        for name, ports in workload_views_of(state, bound - {MESH}).items():
            self._gateway(name, ports, patch)
        self._rescope({host for host, _, _ in state.tables.targets[patch.base["targets"] :]}, patch)
        return cross

    def _reroute(self, before: list[int], after: list[int], patch: _Patch) -> None:
        """Every mesh vhost carrying the route list ``before`` (one list object per VS, see
        :class:`~meshroute.config.views.Shared`) carries ``after`` instead."""
        uses = self._index_uses()
        views = self.state.ir["views"]
        renewed: dict[int, dict[str, Any]] = {}
        places = uses.pop(id(before), [])
        for vid, pos in places:
            vhost = views[vid]["vhosts"][pos]
            new = renewed.get(id(vhost))
            if new is None:
                new = renewed[id(vhost)] = {**vhost, "routes": after}
            views[vid]["vhosts"][pos] = new
            patch.place(vid, pos, new)
        uses.setdefault(id(after), []).extend(places)

    def _index_uses(self) -> dict[int, list[tuple[int, int]]]:
        """Where each route list is used: mesh vhosts only (gateway views are built again)."""
        if self._uses is None:
            self._uses = {}
            for vid, view in enumerate(self.state.ir["views"]):
                if view["gateway"] == 0:
                    for pos, vhost in enumerate(view["vhosts"]):
                        self._uses.setdefault(id(vhost["routes"]), []).append((vid, pos))
        return self._uses

    def _gateway(self, ref: str, ports: dict[int, dict[str, Any]], patch: _Patch) -> None:
        views = self.state.ir["views"]
        for port, built in ports.items():
            vid = self.state.ir["gateway_views"][ref][str(port)]
            old = views[vid]["vhosts"]
            new = built["vhosts"]
            if [v["domains"] for v in old] != [v["domains"] for v in new]:
                # found after the compilation started changing: the caller compiles everything anew
                raise NotIncremental(f"gateway {ref} port {port}: its hosts changed")
            for pos, (a, b) in enumerate(zip(old, new, strict=True)):
                if a != b:
                    old[pos] = b
                    patch.place(vid, pos, b)

    # --- DestinationRule -----------------------------------------------------------------------

    def _dr_shape(self, old: DestinationRuleInfo, res: Resource) -> DestinationRuleInfo:
        index = self.state.index
        new = parse_destination_rule(res, index.model.domain, index.model.mesh.destination_rule_export_to)
        if new is None or (new.host, new.export_to, new.has_selector) != (
            old.host,
            old.export_to,
            old.has_selector,
        ):
            raise NotIncremental(f"{_name(res)}: host, exportTo or selector changed")
        if is_wildcard(new.host):
            raise NotIncremental(f"{_name(res)}: a wildcard host")
        return new

    def _apply_dr(
        self, old: DestinationRuleInfo, new: DestinationRuleInfo, patch: _Patch
    ) -> list[Diagnostic]:
        index = self.state.index
        index.model.replace_destination_rule(old, new)
        self._replaced(old, new)
        self._rescope({new.host}, patch)
        return check_destination_rule(new, index)

    def _routing_to(self, host: str) -> list[VirtualServiceInfo]:
        """The VSs with a destination or mirror on ``host`` (their subset checks read its DR)."""
        if self._dest_hosts is None:
            found: dict[str, list[VirtualServiceInfo]] = {}
            for vs in self.state.index.model.virtual_services:
                hosts = (d.host for i, r in enumerate(vs.http) for _, d in destination_refs(r, i))
                for h in dict.fromkeys(hosts):
                    found.setdefault(h, []).append(vs)
            self._dest_hosts = found
        return list(self._dest_hosts.get(host, ()))

    # --- Scopes --------------------------------------------------------------------------------

    def _rescope(self, hosts: set[str], patch: _Patch) -> None:
        """Each view's scope with the clusters of ``hosts`` computed again."""
        if not hosts:
            return
        state = self.state
        scopes, tables, index = state.scopes, state.tables, state.index
        for tid in range(patch.base["targets"], len(tables.targets)):
            host, subset, port = tables.targets[tid]
            known = scopes.targets.setdefault(host, [])
            if all(t[0] != tid for t in known):
                known.append((tid, subset, port))
        services = [svc for svc in (index.model.registry.lookup(h) for h in sorted(hosts)) if svc is not None]
        services = [svc for svc in services if svc.host in hosts]
        tids = {t[0] for h in hosts for t in scopes.targets.get(h, ())}
        memo: dict[tuple[int, tuple[tuple[int, ...], ...]], int] = {}
        for vid, (view, ctx) in enumerate(zip(state.ir["views"], state.contexts, strict=True)):
            rows: list[list[int]] = []
            visible = self._visible_hosts(ctx)
            for svc in services:
                targets = scopes.targets.get(svc.host)
                if svc.host in visible and targets:
                    rule = index.model.rules.lookup(svc.host, ctx.namespace, svc.namespace, ctx.dr_labels)
                    for tid, number, rule_in_force, subset in scopes._service_rows(svc, rule, targets):
                        rows.append([tid, number, scopes._policy(rule_in_force, subset, number)])
            old_sid = view["scope"]
            key = (old_sid, tuple(map(tuple, rows)))
            sid = memo.get(key)
            if sid is None:
                clusters = [c for c in tables.scopes[old_sid]["clusters"] if c[0] not in tids] + rows
                clusters.sort(key=lambda c: c[0])  # stable: a target's ports stay in order
                sid = memo[key] = tables.scope(clusters)
            if sid != old_sid:
                view["scope"] = sid
                patch.view_scopes.append([vid, sid])

    def _visible_hosts(self, ctx: Any) -> frozenset[str]:
        key = (ctx.namespace, id(ctx.sidecar))  # edits never change who sees which service
        found = self._visible.get(key)
        if found is None:
            services = self.state.index.visible_services(ctx.namespace, ctx.sidecar)
            found = self._visible[key] = frozenset(svc.host for svc in services)
        return found

    # --- Resources that moved ------------------------------------------------------------------

    def _renew_resources(self, docs: Sequence[Parsed]) -> None:
        """The model's VSs and DRs defined in ``docs`` (documents that moved) point at their
        moved resources, so diagnostics made from them later carry the new lines."""
        for res in (r for d in docs for r in d.resources):
            for info in self._models(res.key):
                if info.resource.file == res.file:
                    object.__setattr__(info, "resource", res)  # same document, new lines

    def _models(self, key: tuple[str, str, str]) -> list[Any]:
        """The VS and DR models of a resource key (kept up to date as edits replace them)."""
        if self._infos is None:
            self._infos = {}
            models: list[Any] = [
                *self.state.index.model.virtual_services,
                *self.state.index.model.destination_rules,
            ]
            for info in models:
                self._infos.setdefault(info.resource.key, []).append(info)
        return self._infos.get(key, [])

    def _replaced(self, old: Any, new: Any) -> None:
        swap(self._models(old.resource.key), old, new)


class _Patch:
    """The IR patch being built: what was appended since ``base`` and the vhost placements."""

    def __init__(self, state: Compilation) -> None:
        tables = state.tables
        self.state = state
        self.base = {
            "routes": len(tables.routes),
            "targets": len(tables.targets),
            "policies": len(tables.policies),
            "scopes": len(tables.scopes),
            "views": len(state.ir["views"]),
        }
        self.vhosts: list[dict[str, Any]] = []
        self._vhost_ids: dict[int, int] = {}
        self.placements: list[list[int]] = []
        self.view_scopes: list[list[int]] = []

    def place(self, view: int, position: int, vhost: dict[str, Any]) -> None:
        k = self._vhost_ids.get(id(vhost))
        if k is None:
            k = self._vhost_ids[id(vhost)] = len(self.vhosts)
            self.vhosts.append(vhost)
        self.placements.append([view, position, k])

    def finish(self) -> dict[str, Any]:
        tables, base = self.state.tables, self.base
        new_targets = [{"host": h, "subset": s, "port": p} for h, s, p in tables.targets[base["targets"] :]]
        self.state.ir["targets"].extend(new_targets)
        return {
            "patch": 1,
            "base": base,
            "routes": tables.routes[base["routes"] :],
            "targets": new_targets,
            "policies": tables.policies[base["policies"] :],
            "scopes": [[i, tables.scopes[i]] for i in range(base["scopes"], len(tables.scopes))],
            "vhosts": self.vhosts,
            "placements": self.placements,
            "view_scopes": self.view_scopes,
        }


# --- Helpers ---------------------------------------------------------------------------------


def _find_edit(old_files: Mapping[str, _File], new_files: Mapping[str, _File], changed: set[str]) -> _Edit:
    """The one document edited in place, holding one VirtualService or DestinationRule before
    and after, admitted both times; else NotIncremental."""
    if len(changed) != 1:
        raise NotIncremental(f"{len(changed)} files changed")
    (file,) = changed
    old, new = old_files.get(file), new_files.get(file)
    if old is None or new is None or old.data is None or new.data is None:
        raise NotIncremental(f"{file}: added, removed or unreadable")
    if len(old.docs) != len(new.docs):
        raise NotIncremental(f"{file}: documents added or removed")
    edited = [i for i, (a, b) in enumerate(zip(old.docs, new.docs, strict=True)) if not _same_doc(a, b)]
    if len(edited) != 1:
        raise NotIncremental(f"{file}: {len(edited)} documents changed")
    (i,) = edited
    a, b = old.docs[i], new.docs[i]
    if len(a.resources) != 1 or len(b.resources) != 1 or a.diagnostics or b.diagnostics:
        raise NotIncremental(f"{file}: the changed document is not one resource")
    before, after = a.resources[0], b.resources[0]
    if before.key != after.key or before.api_version != after.api_version or not after.is_istio:
        raise NotIncremental(f"{file}: the changed document names another resource")
    if after.kind not in ("VirtualService", "DestinationRule"):
        raise NotIncremental(f"{_name(after)}: only VirtualService and DestinationRule edits are incremental")
    if any(d.is_error for k, ds in (*a.derived.items(), *b.derived.items()) for d in ds):
        raise NotIncremental(f"{_name(after)}: has errors")
    end = new.docs[i + 1].line if i + 1 < len(new.docs) else None
    old_end = old.docs[i + 1].line if i + 1 < len(old.docs) else None
    delta = (end - old_end) if end is not None and old_end is not None else 0
    return _Edit(file, i, before, after, (a.line, old_end or 1 << 62), delta)


def _same_doc(a: Parsed, b: Parsed) -> bool:
    """The same document text (a moved one is a copy with the same resources' data)."""
    if len(a.resources) != len(b.resources):
        return False
    return all(x.document is y.document for x, y in zip(a.resources, b.resources, strict=True))


def _shift(diags: list[Diagnostic], edit: _Edit) -> list[Diagnostic]:
    if edit.delta == 0:
        return diags
    end = edit.old_lines[1]
    return [
        dataclasses.replace(d, line=d.line + edit.delta)
        if d.file == edit.file and d.line is not None and d.line >= end
        else d
        for d in diags
    ]


def _owned(d: Diagnostic, res: Resource) -> bool:
    return (d.kind, d.namespace, d.name, d.file) == (res.kind, res.namespace, res.name, res.file)


def _one(found: Any) -> Any:
    items = list(found)
    if len(items) != 1:
        raise NotIncremental("the edited resource is not defined exactly once")
    return items[0]


def _name(res: Resource) -> str:
    return f"{res.kind} {res.namespace}/{res.name}"


def _delegates(vs: VirtualServiceInfo) -> bool:
    return any(r.delegate is not None for r in vs.http)
