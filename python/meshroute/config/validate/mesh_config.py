"""Validation of a mesh config document (semantics §12; codes in docs/diagnostics.md "Mesh
config"), and reading its fields: :mod:`meshroute.config.meshconfig` turns them into settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from meshroute.config.diagnostics import Diagnostic, Path
from meshroute.config.load import Resource
from meshroute.config.validate import common
from meshroute.config.validate.context import Ctx
from meshroute.config.validate.fields import Walker, describe, to_camel
from meshroute.config.validate.vs_actions import check_retries

API_VERSION = "meshroute.io/v1alpha1"
KIND = "MeshConfig"
CONFIGMAP = ("istio-system", "istio")  # namespace, name: where istiod reads its mesh config
OUTBOUND_MODES = ("REGISTRY_ONLY", "ALLOW_ANY", "ALLOW_ANY_DYNAMIC_DNS")
# The fields meshroute adds to Istio's MeshConfig (Istio ignores unknown fields of its mesh config).
MESHROUTE_FIELDS = frozenset({"clusterDomain", "defaultHttpRouteTimeout"})
# Every top-level field of Istio's MeshConfig (istio/api mesh/v1alpha1/config.proto), camelCase.
ISTIO_FIELDS = frozenset(
    {
        "proxyListenPort",
        "proxyInboundListenPort",
        "proxyHttpPort",
        "connectTimeout",
        "protocolDetectionTimeout",
        "tcpKeepalive",
        "ingressClass",
        "ingressService",
        "ingressControllerMode",
        "ingressSelector",
        "enableTracing",
        "accessLogFile",
        "accessLogFormat",
        "accessLogEncoding",
        "enableEnvoyAccessLogService",
        "disableEnvoyListenerLog",
        "defaultConfig",
        "outboundTrafficPolicy",
        "inboundTrafficPolicy",
        "configSources",
        "enableAutoMtls",
        "trustDomain",
        "trustDomainAliases",
        "caCertificates",
        "defaultServiceExportTo",
        "defaultVirtualServiceExportTo",
        "defaultDestinationRuleExportTo",
        "rootNamespace",
        "localityLbSetting",
        "dnsRefreshRate",
        "h2UpgradePolicy",
        "inboundClusterStatName",
        "outboundClusterStatName",
        "certificates",
        "serviceSettings",
        "enablePrometheusMerge",
        "verifyCertificateAtClient",
        "ca",
        "extensionProviders",
        "defaultProviders",
        "discoverySelectors",
        "pathNormalization",
        "defaultHttpRetryPolicy",
        "meshMTLS",
        "tlsDefaults",
        "compliancePolicy",
    }
)
_EXPORT_FIELDS = ("defaultServiceExportTo", "defaultVirtualServiceExportTo", "defaultDestinationRuleExportTo")


def is_mesh_config(res: Resource) -> bool:
    """A ``meshroute.io`` MeshConfig, or the ``istio`` ConfigMap of ``istio-system``."""
    if res.kind == KIND and res.api_version == API_VERSION:
        return True
    return res.kind == "ConfigMap" and res.api_version == "v1" and (res.namespace, res.name) == CONFIGMAP


def mesh_fields(res: Resource) -> tuple[Any, Path]:
    """The document's mesh config fields as written (or None when there are none) and their
    path; raises ValueError with the reason when they cannot be read."""
    if res.kind == KIND:
        if res.spec is None:
            raise ValueError("a MeshConfig needs a `spec` with the mesh config fields")
        if not isinstance(res.spec, dict):
            raise ValueError(f"`spec` must be a mapping of mesh config fields, got {describe(res.spec)}")
        return res.spec, ("spec",)
    data = res.document.get("data") if isinstance(res.document, Mapping) else None
    text = data.get("mesh") if isinstance(data, Mapping) else None
    path: Path = ("data", "mesh")
    if text is None:
        return None, path
    if not isinstance(text, str):
        raise ValueError(f"`data.mesh` must be a string holding YAML, got {describe(text)}")
    try:
        fields = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1} of the value)" if mark is not None else ""
        raise ValueError(f"`data.mesh` is not YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if fields is None:
        return None, path
    if not isinstance(fields, dict):
        raise ValueError(f"`data.mesh` must hold a mapping of mesh config fields, got {describe(fields)}")
    return fields, path


class _MeshCtx(Ctx):
    """Istio ignores unknown fields anywhere in its mesh config: a warning, not an error."""

    def error(self, code: str, path: Path, message: str) -> None:
        if code == "unknown-field":
            self.warning("mesh-config-unknown-field", path, f"{message} (Istio ignores it)")
        else:
            super().error(code, path, message)


def normalized_fields(ctx: Ctx | None, fields: Mapping[Any, Any], root: Path) -> dict[str, Any]:
    """The fields under their camelCase names; unknown and repeated ones reported."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = str(key)
        camel = to_camel(name) if "_" in name else name
        if camel not in ISTIO_FIELDS and camel not in MESHROUTE_FIELDS:
            if ctx is not None:
                ctx.warning(
                    "mesh-config-unknown-field",
                    (*root, name),
                    f"`{name}` is not a MeshConfig field (Istio ignores unknown fields); it has no effect",
                )
            continue
        if camel in out:
            if ctx is not None:
                ctx.error("field-duplicate", (*root, name), f"`{name}` and `{camel}` are the same field")
            continue
        if value is not None:
            out[camel] = value
    return out


def validate_mesh_config(res: Resource) -> list[Diagnostic]:
    """Every problem of one mesh config document (codes in docs/diagnostics.md "Mesh config")."""
    ctx = _MeshCtx(res)
    try:
        fields, root = mesh_fields(res)
    except ValueError as exc:
        ctx.error("mesh-config-invalid", ("spec",) if res.kind == KIND else ("data", "mesh"), str(exc))
        return ctx.diagnostics
    if fields is None:
        return ctx.diagnostics
    spec = normalized_fields(ctx, fields, root)
    walker = Walker(ctx)
    policy = spec.get("outboundTrafficPolicy")
    if policy is not None:
        path = (*root, "outboundTrafficPolicy")
        if not isinstance(policy, dict):
            ctx.error("type-mismatch", path, f"expected a mapping, got {describe(policy)}")
        else:
            for key, value in policy.items():
                if key != "mode":
                    ctx.warning(
                        "mesh-config-unknown-field",
                        (*path, str(key)),
                        f"unknown field `{key}` in outboundTrafficPolicy (Istio ignores it)",
                    )
                elif outbound_mode(value) is None:
                    ctx.error(
                        "enum-invalid",
                        (*path, "mode"),
                        f"unknown value {value!r}; allowed: {', '.join(OUTBOUND_MODES)}",
                    )
    namespace = spec.get("rootNamespace")
    if namespace is not None:
        path = (*root, "rootNamespace")
        if not isinstance(namespace, str):
            ctx.error("type-mismatch", path, f"expected a string, got {describe(namespace)}")
        elif not common.is_dns_label(namespace):
            ctx.warning(
                "mesh-config-value-unusable",
                path,
                f"{namespace!r} is not a namespace name: no namespace is the root namespace",
            )
    for name in _EXPORT_FIELDS:
        if name in spec:
            _check_export_to(ctx, spec[name], (*root, name))
    retry = spec.get("defaultHttpRetryPolicy")
    if retry is not None:
        path = (*root, "defaultHttpRetryPolicy")
        checked = walker.value("HTTPRetry", retry, path)
        if isinstance(checked, dict):
            found = Ctx(res)
            check_retries(found, checked, path)
            for d in found.diagnostics:  # V27 holds for VirtualServices; istiod does not check this
                ctx.warning("mesh-config-value-unusable", d.path, d.message)
    domain = spec.get("clusterDomain")
    if domain is not None:
        path = (*root, "clusterDomain")
        if not isinstance(domain, str):
            ctx.error("type-mismatch", path, f"expected a string, got {describe(domain)}")
        else:
            problem = common.fqdn_problem(domain.rstrip(".")) if domain.strip() else "empty domain"
            if problem:
                ctx.error("host-invalid", path, f"clusterDomain {domain!r}: {problem}")
    if "defaultHttpRouteTimeout" in spec:
        walker.value("duration", spec["defaultHttpRouteTimeout"], (*root, "defaultHttpRouteTimeout"))
    return ctx.diagnostics


def outbound_mode(value: Any) -> str | None:
    if isinstance(value, str) and value in OUTBOUND_MODES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1:
        return OUTBOUND_MODES[value]  # protobuf JSON also takes the enum number
    return None


def _check_export_to(ctx: Ctx, value: Any, path: Path) -> None:
    if not isinstance(value, list):
        ctx.error("type-mismatch", path, f"expected a list, got {describe(value)}")
        return
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            ctx.error("type-mismatch", (*path, i), f"expected a string, got {describe(entry)}")
        elif entry not in (".", "*", "~") and not common.is_dns_label(entry):
            ctx.warning(
                "mesh-config-value-unusable",
                (*path, i),
                f"{entry!r} is neither `.`, `*`, `~` nor a namespace name: it exports to no namespace",
            )
