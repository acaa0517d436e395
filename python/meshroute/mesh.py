"""`Mesh`: a loaded config compiled into an immutable Rust route table, ready to route requests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from meshroute._core import CompileError, Decision, RouteTable
from meshroute.config import Analysis, analyze
from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.errors import ConfigError

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class RouteFn(Protocol):
    def __call__(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: Headers | None = None,
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: Mapping[str, str] | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
        seed: int | None = None,
    ) -> Decision: ...


class RouteManyFn(Protocol):
    def __call__(
        self,
        requests: Iterable[Any],
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: Mapping[str, str] | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
        seed: int | None = None,
    ) -> list[Decision]: ...


class Mesh:
    """A compiled, immutable routing table for one set of Istio config.

    ``route`` and ``route_many`` are the Rust methods themselves (no Python frame in between).

    >>> mesh = load(bookinfo_path())
    >>> d = mesh.route("reviews", "/reviews/0", headers={"end-user": "jason"})
    >>> (d.outcome, d.virtual_service, d.cluster)
    ('route', 'default/reviews', 'outbound|9080|v1|reviews.default.svc.cluster.local')
    """

    __slots__ = ("analysis", "diagnostics", "route", "route_many", "table")

    route: RouteFn
    route_many: RouteManyFn

    def __init__(self, table: RouteTable, analysis: Analysis) -> None:
        self.table = table
        self.analysis = analysis
        self.diagnostics: tuple[Diagnostic, ...] = tuple(analysis.diagnostics)
        self.route = table.route
        self.route_many = table.route_many

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def gateway_for(self, labels: Mapping[str, str], namespace: str | None = None) -> str:
        """The ``gateway`` name of a gateway workload — the proxy with ``labels`` in ``namespace``
        (None: any), which merges every Gateway selecting it (semantics §4) — for :meth:`route`,
        ``route_many`` and :meth:`explain`. LookupError when the config has no such workload.

        >>> mesh = load(bookinfo_path())
        >>> name = mesh.gateway_for({"istio": "ingressgateway"})
        >>> name, mesh.route("bookinfo.example", "/productpage", gateway=name).outcome
        ('workload:default/istio=ingressgateway', 'route')
        """
        from meshroute.config.gateway import parse_gateway
        from meshroute.config.workloads import resolve

        names = self.analysis.ir["gateway_views"] if self.analysis.ir is not None else {}
        gateways = [parse_gateway(r) for r in self.analysis.resources if r.is_istio and r.kind == "Gateway"]
        return resolve(names, gateways, labels, namespace)

    def explain(
        self,
        host: str,
        path: str = "/",
        method: str = "GET",
        headers: Headers | None = None,
        *,
        scheme: str = "http",
        port: int | None = None,
        gateway: str = "mesh",
        source_labels: Mapping[str, str] | None = None,
        source_namespace: str | None = None,
        protocol: str = "http",
    ) -> dict[str, Any]:
        """Every route block tried for this request, in order, with why it did or did not match
        (for a mesh TCP service port: its ``tcp`` routes, each entry marked ``"protocol": "tcp"``)."""
        text = self.table.explain(
            host,
            path,
            method,
            headers,
            scheme=scheme,
            port=port,
            gateway=gateway,
            source_labels=source_labels,
            source_namespace=source_namespace,
            protocol=protocol,
        )
        result: dict[str, Any] = json.loads(text)
        return result


def load(*paths: str | os.PathLike[str], domain: str = "cluster.local") -> Mesh:
    """Load Istio YAML (files or directories), validate it and compile it into a :class:`Mesh`.

    Raises :class:`meshroute.ConfigError` carrying every diagnostic when there is any error.

    >>> mesh = load(bookinfo_path())
    >>> mesh.route("productpage", "/productpage").outcome
    'route'
    """
    analysis = analyze(paths, domain=domain)
    if not analysis.ok or analysis.ir is None:
        raise ConfigError(analysis.diagnostics)
    return Mesh(compile_table(analysis), analysis)


def compile_table(analysis: Analysis) -> RouteTable:
    """Build the Rust table from an analysis' IR; an IR the core rejects becomes a ConfigError."""
    from meshroute.compile import ir_json

    text = ir_json(analysis.ir) if analysis.ir is not None else "null"
    return table_from_ir_json(text, analysis.diagnostics)


def table_from_ir_json(ir_json: str, diagnostics: Iterable[Diagnostic] = ()) -> RouteTable:
    """Build the Rust table from IR JSON text (the Rust compile runs without the GIL); an IR the
    core rejects raises ConfigError with ``diagnostics`` plus the reason."""
    return _built(RouteTable.from_json, ir_json, "route table", diagnostics)


def table_from_patch(
    table: RouteTable, patch_json: str, diagnostics: Iterable[Diagnostic] = ()
) -> RouteTable:
    """``table`` with an IR patch applied (docs/ir.md "Patch"; the core works without the GIL);
    a patch the core rejects raises ConfigError with ``diagnostics`` plus the reason, and
    ``table`` is left as it was."""
    return _built(table.patched, patch_json, "route table patch", diagnostics)


def _built(
    build: Callable[[str], RouteTable], text: str, what: str, diagnostics: Iterable[Diagnostic]
) -> RouteTable:
    try:
        return build(text)
    except CompileError as exc:
        diag = Diagnostic(Severity.ERROR, "compile-failed", f"{what} rejected: {exc}")
        raise ConfigError([*diagnostics, diag]) from None


class MeshSession:
    """Config files kept loaded: :meth:`refresh` gives the :class:`Mesh` of the files as they are
    now, patching the previous table when the edit allows (docs/incremental.md).

    >>> session = MeshSession(bookinfo_path())
    >>> mesh = session.refresh()
    >>> session.refresh() is mesh, session.last.kind
    (True, 'unchanged')
    """

    def __init__(self, *paths: str | os.PathLike[str], domain: str = "cluster.local") -> None:
        from meshroute.config.session import ConfigSession

        self.config = ConfigSession(paths, domain=domain)
        self.mesh: Mesh | None = None
        self.last: Any = None  # the last refresh's meshroute.config.session.Update
        self._tag: tuple[str, int] | None = None  # the session version self.mesh was built from

    def refresh(self) -> Mesh:
        """The mesh of the files now. Raises :class:`meshroute.ConfigError` when they have
        errors; the previous mesh stays :attr:`mesh`."""
        update = self.last = self.config.refresh_for(self._tag)
        analysis = update.analysis
        if update.kind == "unchanged" and self.mesh is not None:
            return self.mesh
        if not analysis.ok or analysis.ir is None:
            raise ConfigError(analysis.diagnostics)
        if update.kind == "patch" and self.mesh is not None:
            table = table_from_patch(self.mesh.table, json.dumps(update.patch), analysis.diagnostics)
        else:
            table = compile_table(analysis)
        self.mesh, self._tag = Mesh(table, analysis), self.config.tag
        return self.mesh


def bookinfo_path() -> str:
    """Path of the Bookinfo config shipped in the package (Kubernetes services, DestinationRules,
    the ingress Gateway and the request-routing VirtualServices)."""
    return os.path.join(os.path.dirname(__file__), "data", "bookinfo")
