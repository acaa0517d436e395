"""Mesh-side TCP listeners: one ``tcp_proxy`` listener per TCP service port (semantics §2.15).

Istio gives a sidecar an outbound listener per TCP service port whose ``tcp_proxy`` follows the
``tcp`` routes of the VirtualServices for the service (:mod:`meshroute.config.tcproute`); ext_proc
and the module only see HTTP, so the route is chosen here, when the bootstrap is written, for the
mesh client of ``--source-namespace`` / ``--source-label`` (as the mesh listener decides HTTP for
that client). Each listener binds the service port on the bind address (``--bind-port`` remaps it,
as for Gateway ports). Connections cannot carry a service VIP on 127.0.0.1, so one port serves one
service: the first TCP service with that port (registry order); the others are reported.
"""

from __future__ import annotations

from collections.abc import Collection

from meshroute.config.diagnostics import Diagnostic, Severity
from meshroute.config.model import Model
from meshroute.config.tcproute import mesh_choice, tcp_ports
from meshroute.envoy.clusters import cluster_name
from meshroute.envoy.common import Json, socket_address
from meshroute.envoy.options import Options
from meshroute.envoy.tcp import tcp_proxy

LISTENER_PREFIX = "mesh_tcp_"


def mesh_tcp_listeners(
    model: Model, options: Options, taken: dict[int, str], clusters: Collection[str]
) -> tuple[list[Json], list[Diagnostic]]:
    """The listeners, and what could not be honoured (port conflicts, missing clusters)."""
    ns = options.source_namespace or "default"
    listeners: list[Json] = []
    diagnostics: list[Diagnostic] = []
    owner: dict[int, str] = {}
    for svc in model.visible_services(ns, model.default_sidecar(ns)):
        if svc.is_alias:
            continue
        for port in tcp_ports(svc):
            number = port.number
            if number in owner:
                diagnostics.append(
                    _warning(f"TCP port {number} of {svc.host} is served by {owner[number]}'s listener")
                )
                continue
            bind = options.bind_port(number)
            name = f"{LISTENER_PREFIX}{number}"
            if bind in taken:
                diagnostics.append(
                    _warning(
                        f"mesh TCP port {number} ({svc.host}) would bind {bind}, already used by "
                        f"{taken[bind]}; it gets no listener (use --bind-port)",
                        "envoy-port-conflict",
                    )
                )
                continue
            owner[number] = svc.host
            taken[bind] = name
            chosen = mesh_choice(model, svc, number, ns, options.source_labels)
            if chosen is None:
                targets = [(cluster_name(number, None, svc.host), 0)]
            else:
                vs, i, dests = chosen
                targets = [(cluster_name(p, subset, host), w) for host, subset, p, w in dests]
                diagnostics.extend(
                    vs.resource.warning(
                        "envoy-tcp-cluster",
                        ("spec", "tcp", i, "route"),
                        f"cluster {c} does not exist (unknown service, port or subset); "
                        f"connections to mesh TCP port {number} sent there are closed",
                    )
                    for c, _ in targets
                    if c not in clusters
                )
            listeners.append(
                {
                    "name": name,
                    "address": socket_address(options.bind_address, bind),
                    "filter_chains": [{"filters": [tcp_proxy(name, targets, options)]}],
                }
            )
    return listeners, diagnostics


def _warning(message: str, code: str = "envoy-tcp-port-shared") -> Diagnostic:
    return Diagnostic(severity=Severity.WARNING, code=code, message=message)
