"""``build_bootstrap``: Istio config → a static Envoy bootstrap (a plain dict, YAML-dumpable).

HTTP listeners (:mod:`.listeners`) hand every request to serve over ext_proc (or, with the
embedded engine, to the dynamic module configured by ECDS, :mod:`.module`); TCP gateway
listeners (:mod:`.tcp`) are routed by Envoy's tcp_proxy; clusters
(:mod:`.clusters`, :mod:`.endpoints`) carry the DestinationRule policy; docs/envoy.md is the
contract with serve.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from meshroute.config import Analysis
from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.config.load import Resource
from meshroute.config.model import Model, build_model
from meshroute.envoy import module
from meshroute.envoy.clusters import builtin_clusters, extproc_cluster, service_clusters
from meshroute.envoy.common import Json, socket_address
from meshroute.envoy.listeners import MESH_LISTENER, chosen_workload, gateway_listeners, mesh_listener
from meshroute.envoy.meshtcp import mesh_tcp_listeners
from meshroute.envoy.options import EMBEDDED, ENGINES, LB_RUST, LBS, Options
from meshroute.errors import ConfigError

__all__ = ["Generated", "Options", "build", "build_bootstrap"]


@dataclass
class Generated:
    """The bootstrap plus what could not be expressed in it (skipped servers, untranslated TLS…)."""

    config: Json
    warnings: list[Diagnostic] = field(default_factory=list)
    # Private keys from Secrets (credentialName) are inlined: keep the file private.
    inline_keys: bool = False
    # Embedded engine: each module filter's ECDS name -> its listener context (module.py); the
    # files themselves are written by meshroute.envoy.live.
    filters: dict[str, Json] = field(default_factory=dict)


def build(
    source: Analysis | Iterable[Resource], options: Options | None = None, *, model: Model | None = None
) -> Generated:
    """Build the bootstrap; an :class:`Analysis` with errors raises :class:`ConfigError`.

    Resources passed directly are taken as already validated (as ``analyze`` admits them).
    ``model``: the config's model when the caller has it already (a compile session's).
    ``options.gateway_workload`` naming no gateway proxy of the config raises :class:`ConfigError`
    (code ``envoy-gateway-workload``).
    """
    options = options or Options()
    if options.engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {options.engine!r}")
    if options.lb not in LBS:
        raise ValueError(f"lb must be one of {', '.join(LBS)}, not {options.lb!r}")
    if options.lb == LB_RUST and not options.lb_module:
        # ModuleNotBuiltError (a FileNotFoundError) when the package has no module.
        options = replace(options, lb_module=str(module.module_path()))
    if isinstance(source, Analysis):
        if not source.ok:
            raise ConfigError(source.diagnostics)
        resources = list(source.resources)
    else:
        resources = list(source)
    if model is None:
        model = build_model(resources, options.domain)
    workload = None
    if options.gateway_workload:
        try:
            workload = chosen_workload(model, options.gateway_workload)
        except LookupError as exc:
            raise ConfigError(
                [Diagnostic(Severity.ERROR, "envoy-gateway-workload", str(exc.args[0]))]
            ) from None
        # the name as this config spells it: the listener contexts carry its labels
        options = replace(options, gateway_workload=workload.name)
    warnings: list[Diagnostic] = []
    taken = {options.admin_port: "the admin interface"}
    listeners: list[Json] = []
    if options.mesh_port in taken:
        warnings.append(
            Diagnostic(
                Severity.WARNING, "envoy-port-conflict", "mesh port equals the admin port; no mesh listener"
            )
        )
    else:
        taken[options.mesh_port] = MESH_LISTENER
        listeners.append(mesh_listener(options))
    services = service_clusters(model, options)
    embedded = options.engine == EMBEDDED
    # The embedded engine decides inside Envoy: no ext_proc cluster.
    decider = [] if embedded else [extproc_cluster(options.extproc)]
    clusters = [*decider, *builtin_clusters(), *services.clusters]
    gateways = gateway_listeners(model, options, taken, {c["name"] for c in clusters}, workload)
    listeners.extend(gateways.listeners)
    warnings.extend(gateways.diagnostics)
    mesh_tcp, tcp_warnings = mesh_tcp_listeners(model, options, taken, {c["name"] for c in clusters})
    listeners.extend(mesh_tcp)
    warnings.extend(tcp_warnings)
    warnings.extend(services.diagnostics)
    config: Json = {
        "node": {"id": "meshroute", "cluster": "meshroute"},
        "admin": {"address": socket_address(options.bind_address, options.admin_port)},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }
    filters = {name: module.listener_context(name, options) for name in module.filter_names(listeners)}
    return Generated(config, warnings, gateways.inline_keys, filters if embedded else {})


def build_bootstrap(source: Analysis | Iterable[Resource], options: Options | None = None) -> Json:
    """The bootstrap dict alone (see :func:`build` for the warnings)."""
    return build(source, options).config
