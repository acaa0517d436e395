"""Istio's mesh config beside the resources: the mesh-wide defaults meshroute applies (semantics §12).

Two forms are read. meshroute's own document::

    apiVersion: meshroute.io/v1alpha1
    kind: MeshConfig
    metadata: {name: mesh}
    spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}, clusterDomain: cluster.local}

and the ConfigMap istiod reads, ``istio`` in ``istio-system``, whose ``data.mesh`` holds the same
fields as YAML text. ``spec`` (or ``mesh``) uses Istio's ``MeshConfig`` field names (lowerCamelCase
or the proto's snake_case); meshroute reads ``outboundTrafficPolicy``, ``rootNamespace``,
``defaultHttpRetryPolicy``, ``defaultServiceExportTo``, ``defaultVirtualServiceExportTo`` and
``defaultDestinationRuleExportTo``, plus two fields of its own: ``clusterDomain`` (Istio takes the
cluster domain from each proxy's DNS domain, not from the mesh config) and
``defaultHttpRouteTimeout`` (a timeout for HTTP routes that set none; Istio sets none). Unset
fields keep Istio's defaults, field by field, as istiod applies the mesh ConfigMap over them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshroute.config import extras
from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import ROOT_NAMESPACE
from meshroute.config.load import Resource
from meshroute.config.validate.fields import Walker
from meshroute.config.validate.mesh_config import (
    is_mesh_config,
    mesh_fields,
    normalized_fields,
    outbound_mode,
)

DEFAULT_DOMAIN = "cluster.local"
__all__ = ["DEFAULT_DOMAIN", "MeshSettings", "is_mesh_config", "mesh_settings", "settings_of"]


@dataclass(frozen=True)
class MeshSettings:
    """The mesh-wide defaults in force: Istio's own unless a mesh config sets them (§12)."""

    cluster_domain: str | None = None  # None: not set (the caller's domain, else cluster.local)
    root_namespace: str = ROOT_NAMESPACE
    outbound_mode: str = "ALLOW_ANY"
    retry_policy: Mapping[str, Any] | None = None  # defaultHttpRetryPolicy; None: Istio's default
    service_export_to: tuple[str, ...] = ()  # () = everywhere ("*")
    virtual_service_export_to: tuple[str, ...] = ()
    destination_rule_export_to: tuple[str, ...] = ()
    route_timeout_ms: int | None = None  # defaultHttpRouteTimeout (meshroute); None: no timeout

    @property
    def unknown_host(self) -> str:
        """What a sidecar does with HTTP to a host it does not know (docs/ir.md View)."""
        return "blackhole" if self.outbound_mode == "REGISTRY_ONLY" else "passthrough"

    def default_retries(self) -> dict[str, Any]:
        """The retry policy of a route without ``retries`` (§2.11): Istio converts the mesh's
        ``defaultHttpRetryPolicy`` exactly as a route's own ``retries``."""
        if self.retry_policy is None:
            return extras.default_retries()
        return extras.retries(self.retry_policy)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def settings_of(res: Resource) -> MeshSettings:
    """The settings one (valid) mesh config document gives."""
    try:
        fields, _ = mesh_fields(res)
    except ValueError:
        return MeshSettings()
    spec = normalized_fields(None, fields or {}, ())
    policy = spec.get("outboundTrafficPolicy")
    mode = outbound_mode(policy.get("mode")) if isinstance(policy, dict) else None
    root = spec.get("rootNamespace")
    retry = (
        Walker(None).value("HTTPRetry", spec["defaultHttpRetryPolicy"], ())
        if ("defaultHttpRetryPolicy" in spec)
        else None
    )
    domain = spec.get("clusterDomain")
    timeout = spec.get("defaultHttpRouteTimeout")
    return MeshSettings(
        cluster_domain=domain.strip().rstrip(".").lower()
        if isinstance(domain, str) and domain.strip()
        else None,
        root_namespace=root if isinstance(root, str) and root else ROOT_NAMESPACE,
        outbound_mode=mode or "ALLOW_ANY",
        retry_policy=retry if isinstance(retry, dict) else None,
        service_export_to=_strings(spec.get("defaultServiceExportTo")),
        virtual_service_export_to=_strings(spec.get("defaultVirtualServiceExportTo")),
        destination_rule_export_to=_strings(spec.get("defaultDestinationRuleExportTo")),
        route_timeout_ms=extras.duration_ms(timeout) if isinstance(timeout, str) else None,
    )


def mesh_settings(resources: Iterable[Resource]) -> tuple[MeshSettings, list[Diagnostic]]:
    """The settings of the mesh config among ``resources`` (the last one when there are
    several, with a ``mesh-config-duplicate`` warning on each earlier one), else Istio's defaults.

    >>> from meshroute.config.load import load_text
    >>> docs = load_text("apiVersion: meshroute.io/v1alpha1\\nkind: MeshConfig\\nmetadata: {name: m}\\n"
    ...                  "spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}", "m.yaml").resources
    >>> settings, _ = mesh_settings(docs)
    >>> settings.unknown_host, settings.root_namespace, settings.cluster_domain
    ('blackhole', 'istio-system', None)
    """
    found: Sequence[Resource] = [r for r in resources if is_mesh_config(r)]
    if not found:
        return MeshSettings(), []
    last = found[-1]
    diags = [
        res.warning(
            "mesh-config-duplicate",
            ("metadata", "name"),
            f"another mesh config follows ({last.kind} {last.namespace}/{last.name} at "
            f"{last.file}:{last.line}); only the last one is used",
        )
        for res in found[:-1]
    ]
    return settings_of(last), diags
