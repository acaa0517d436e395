"""DestinationRule traffic policies (semantics §8.3, D2, D6, D7, D13-D16); connection pools are
shared with Sidecar (SC6)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common
from meshroute.config.validate.context import Ctx, items, mapping
from meshroute.config.validate.load_balancer import check_load_balancer

MAX_PORT_LEVEL_SETTINGS = 4096
_POLICY_BLOCKS = ("loadBalancer", "connectionPool", "outlierDetection", "tls")
_NON_NEGATIVE = {
    "tcp": ("maxConnections",),
    "http": (
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "maxConcurrentStreams",
    ),
}


def check_traffic_policy(ctx: Ctx, policy: Any, path: Path) -> None:
    """D2: at least one field; tunnel xor proxyProtocol; each block validated (D6-D16)."""
    if not isinstance(policy, dict):
        return
    if not policy and path not in ctx.bad:
        ctx.error(
            "dr-traffic-policy-empty", path, "trafficPolicy must set at least one field; remove it if empty"
        )
    if "tunnel" in policy and "proxyProtocol" in policy:
        ctx.error(
            "dr-tunnel-proxy-protocol-conflict",
            (*path, "proxyProtocol"),
            "tunnel and proxyProtocol cannot both be set",
        )
    _check_blocks(ctx, policy, path)
    settings = policy.get("portLevelSettings")
    if isinstance(settings, list) and len(settings) > MAX_PORT_LEVEL_SETTINGS:
        ctx.error(
            "dr-port-settings-invalid",
            (*path, "portLevelSettings"),
            f"at most {MAX_PORT_LEVEL_SETTINGS} portLevelSettings are allowed",
        )
    for i, port_policy in items(settings):
        _check_port_policy(ctx, port_policy, (*path, "portLevelSettings", i))
    _check_tunnel(ctx, policy.get("tunnel"), (*path, "tunnel"))
    percent = mapping(policy.get("retryBudget")).get("percent")
    if percent is not None and not 0 <= percent <= 100:
        ctx.error("percent-invalid", (*path, "retryBudget", "percent"), f"percent {percent} must be 0-100")


def _check_blocks(ctx: Ctx, policy: dict[str, Any], path: Path) -> None:
    check_load_balancer(
        ctx, policy.get("loadBalancer"), (*path, "loadBalancer"), has_outlier="outlierDetection" in policy
    )
    if "connectionPool" in policy:
        check_connection_pool(ctx, policy["connectionPool"], (*path, "connectionPool"))
    _check_outlier(ctx, policy.get("outlierDetection"), (*path, "outlierDetection"))
    _check_tls(ctx, policy.get("tls"), (*path, "tls"))


def _check_port_policy(ctx: Ctx, policy: dict[str, Any], path: Path) -> None:
    """D14: a port and at least one of loadBalancer/connectionPool/outlierDetection/tls."""
    if "port" not in policy and (*path, "port") not in ctx.bad:
        ctx.error("dr-port-settings-invalid", (*path, "port"), "portLevelSettings entries need a `port`")
    if not any(k in policy for k in _POLICY_BLOCKS):
        ctx.error(
            "dr-port-settings-invalid",
            path,
            "a portLevelSettings entry must set loadBalancer, connectionPool, outlierDetection or tls",
        )
    _check_blocks(ctx, policy, path)


def check_connection_pool(ctx: Ctx, pool: Any, path: Path) -> None:
    """D7: tcp or http set; limits >= 0; UPGRADE not with useClientProtocol. Durations are checked
    structurally (C1; tcp.idleTimeout may be 0s)."""
    if not isinstance(pool, dict):
        return
    if "tcp" not in pool and "http" not in pool:
        ctx.error("dr-connection-pool-empty", path, "connectionPool must set `tcp` and/or `http`")
    for block, fields in _NON_NEGATIVE.items():
        settings = mapping(pool.get(block))
        for field in fields:
            value = settings.get(field)
            if value is not None and value < 0:
                ctx.error(
                    "dr-connection-pool-negative",
                    (*path, block, field),
                    f"{field} {value} is negative; use 0 (unlimited/default) or more",
                )
    http = mapping(pool.get("http"))
    if http.get("h2UpgradePolicy") == "UPGRADE" and http.get("useClientProtocol") is True:
        ctx.error(
            "dr-h2-upgrade-conflict",
            (*path, "http", "useClientProtocol"),
            "h2UpgradePolicy UPGRADE cannot be combined with useClientProtocol: true",
        )


def _check_outlier(ctx: Ctx, outlier: Any, path: Path) -> None:
    """D6 (durations are structural C1 checks)."""
    if not isinstance(outlier, dict):
        return
    if "consecutiveErrors" in outlier:
        ctx.warning(
            "dr-consecutive-errors-deprecated",
            (*path, "consecutiveErrors"),
            "consecutiveErrors is ignored since Istio 1.7; use consecutive5xxErrors",
        )
    if (
        outlier.get("consecutiveLocalOriginFailures", 0) > 0
        and outlier.get("splitExternalLocalOriginErrors") is not True
    ):
        ctx.error(
            "dr-outlier-local-origin-split",
            (*path, "consecutiveLocalOriginFailures"),
            "consecutiveLocalOriginFailures requires splitExternalLocalOriginErrors: true",
        )
    for field in ("maxEjectionPercent", "minHealthPercent"):
        value = outlier.get(field)
        problem = common.int_percent_problem(value) if value is not None else None
        if problem:
            ctx.error("percent-invalid", (*path, field), f"{field}: {problem}")
    for i, code in enumerate(outlier.get("outlierDetectionHttpErrorCodes") or []):
        if isinstance(code, int) and not 100 <= code <= 599:
            ctx.error(
                "dr-outlier-status-invalid",
                (*path, "outlierDetectionHttpErrorCodes", i),
                f"{code} is not an HTTP status code (100-599)",
            )


def _check_tls(ctx: Ctx, tls: Any, path: Path) -> None:
    """D13: ISTIO_MUTUAL takes no certificates; insecureSkipVerify and credentialName exclusions;
    MUTUAL needs a client certificate and key."""
    if not isinstance(tls, dict):
        return
    mode = tls.get("mode")
    credential = tls.get("credentialName")
    if isinstance(credential, str) and credential.startswith("configmap://"):
        namespace, slash, _ = credential[len("configmap://") :].partition("/")
        if slash and namespace != ctx.namespace:
            ctx.error(
                "dr-tls-invalid",
                (*path, "credentialName"),
                f"a configmap:// credential must be in the DestinationRule's namespace {ctx.namespace!r}",
            )
    forbidden: tuple[str, ...] = ()
    reason = ""
    if mode == "ISTIO_MUTUAL":
        forbidden = ("clientCertificate", "privateKey", "caCertificates", "credentialName", "caCrl")
        reason = "mode ISTIO_MUTUAL uses Istio's certificates"
    elif tls.get("insecureSkipVerify") is True and mode in ("SIMPLE", "MUTUAL"):
        forbidden = ("caCertificates", "subjectAltNames") + (("credentialName",) if mode == "SIMPLE" else ())
        reason = "insecureSkipVerify skips server verification"
    elif credential and mode in ("SIMPLE", "MUTUAL"):
        forbidden = ("clientCertificate", "privateKey", "caCertificates", "caCrl")
        reason = "credentialName supplies the certificates"
    for field in forbidden:
        if tls.get(field):
            ctx.error("dr-tls-invalid", (*path, field), f"`{field}` cannot be set: {reason}")
    if mode == "MUTUAL" and not credential:
        for field in ("clientCertificate", "privateKey"):
            if not tls.get(field):
                ctx.error(
                    "dr-tls-invalid", (*path, field), f"mode MUTUAL needs `{field}` (or a credentialName)"
                )


def _check_tunnel(ctx: Ctx, tunnel: Any, path: Path) -> None:
    """D15: protocol CONNECT/POST; targetHost an FQDN or IP; targetPort C2."""
    if not isinstance(tunnel, dict):
        return
    protocol = tunnel.get("protocol", "")
    if protocol not in ("", "CONNECT", "POST"):
        ctx.error(
            "dr-tunnel-invalid", (*path, "protocol"), f"tunnel protocol {protocol!r} must be CONNECT or POST"
        )
    host = tunnel.get("targetHost")
    if isinstance(host, str) and not common.is_ip(host):
        problem = common.fqdn_problem(host)
        if problem:
            ctx.error("dr-tunnel-invalid", (*path, "targetHost"), problem)
    port = tunnel.get("targetPort")
    problem = common.port_problem(port) if port is not None else None
    if problem:
        ctx.error("port-invalid", (*path, "targetPort"), problem)
