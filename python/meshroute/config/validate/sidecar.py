"""Sidecar rules (semantics §8.6, SC1-SC9)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, routes
from meshroute.config.validate.context import Ctx, items, mapping, strings
from meshroute.config.validate.destination_rule import check_selector
from meshroute.config.validate.gateway import namespaced_host_problems
from meshroute.config.validate.server_tls import check_server_tls
from meshroute.config.validate.traffic_policy import check_connection_pool

_LOOPBACK_HOSTS = frozenset({"", "127.0.0.1", "0.0.0.0", "::1", "::"})
_INGRESS_TLS_FORBIDDEN = (
    "subjectAltNames",
    "httpsRedirect",
    "credentialName",
    "credentialNames",
    "tlsCertificates",
)


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """SC1-SC9 for one Sidecar."""
    if "workloadSelector" in spec:
        labels = mapping(spec["workloadSelector"]).get("labels")
        check_selector(ctx, labels, ("spec", "workloadSelector", "labels"))
        if not labels:
            ctx.warning(
                "selector-empty",
                ("spec", "workloadSelector"),
                "workloadSelector has no labels; omit it to make this the namespace default",
            )
    if not any(k in spec for k in ("egress", "ingress", "outboundTrafficPolicy", "inboundConnectionPool")):
        ctx.error(
            "sc-empty",
            ("spec",),
            "a Sidecar needs at least one of egress, ingress, outboundTrafficPolicy or inboundConnectionPool",
        )
    seen: dict[int, int] = {}
    for i, listener in items(spec.get("ingress")):
        _check_ingress(ctx, listener, ("spec", "ingress", i), seen)
    _check_egress_list(ctx, spec.get("egress"))
    if "inboundConnectionPool" in spec:
        check_connection_pool(ctx, spec["inboundConnectionPool"], ("spec", "inboundConnectionPool"))
    _check_outbound_policy(ctx, spec.get("outboundTrafficPolicy"), ("spec", "outboundTrafficPolicy"))


def _check_port(ctx: Ctx, port: dict[str, Any], path: Path, *, allow_zero: bool) -> None:
    """SC3/SC7 port fields: no targetPort, DNS-label name, supported protocol, C2 number."""
    if "targetPort" in port:
        ctx.error(
            "sc-target-port-unsupported",
            (*path, "targetPort"),
            "targetPort is not supported on Sidecar ports",
        )
    name = port.get("name")
    if name and not common.is_dns_label(name):
        ctx.error("port-name-invalid", (*path, "name"), f"port name {name!r} must be a DNS-1123 label")
    protocol = port.get("protocol")
    if protocol and (problem := common.protocol_problem(protocol)):
        ctx.error("protocol-invalid", (*path, "protocol"), problem)
    problem = common.port_problem(port.get("number", 0), allow_zero=allow_zero)
    if problem:
        ctx.error("port-invalid", (*path, "number"), problem)


def _check_bind_ip(ctx: Ctx, listener: dict[str, Any], path: Path) -> None:
    bind = listener.get("bind")
    if bind and not common.is_ip(bind):
        ctx.error("sc-bind-invalid", (*path, "bind"), f"bind {bind!r} must be an IP address")


def _check_ingress(ctx: Ctx, listener: dict[str, Any], path: Path, seen: dict[int, int]) -> None:
    """SC3-SC6."""
    port = mapping(listener.get("port"))
    if "port" in listener:
        _check_port(ctx, port, (*path, "port"), allow_zero=False)
        number = port.get("number")
        if isinstance(number, int) and number in seen:
            ctx.error(
                "sc-ingress-port-duplicate",
                (*path, "port", "number"),
                f"port {number} is already used by ingress[{seen[number]}]",
            )
        if isinstance(number, int):
            seen.setdefault(number, path[-1] if isinstance(path[-1], int) else 0)
    _check_bind_ip(ctx, listener, path)
    endpoint = listener.get("defaultEndpoint")
    if endpoint:
        problem = _default_endpoint_problem(endpoint)
        if problem:
            ctx.error("sc-default-endpoint-invalid", (*path, "defaultEndpoint"), problem)
    protocol = str(port.get("protocol", "")).upper()
    if "tls" in listener:
        _check_ingress_tls(ctx, mapping(listener["tls"]), (*path, "tls"), protocol)
    if "connectionPool" in listener:
        pool = listener["connectionPool"]
        check_connection_pool(ctx, pool, (*path, "connectionPool"))
        if "http" in mapping(pool) and protocol and protocol not in common.HTTP_PROTOCOLS:
            ctx.warning(
                "sc-connection-pool-http-ignored",
                (*path, "connectionPool", "http"),
                f"HTTP connection pool settings have no effect on a {protocol} port",
            )


def _default_endpoint_problem(endpoint: str) -> str | None:
    """SC4: ``unix:///path`` or ``host:port`` with a loopback/any host."""
    if endpoint.startswith(common.UDS_PREFIX):
        return common.uds_problem(endpoint)
    host, colon, port = endpoint.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or host not in _LOOPBACK_HOSTS:
        return (
            f"defaultEndpoint {endpoint!r} must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, "
            "[::]:<port> or unix:///path"
        )
    if not (port.isascii() and port.isdigit()) or common.port_problem(int(port)):
        return f"defaultEndpoint {endpoint!r} has an invalid port"
    return None


def _check_ingress_tls(ctx: Ctx, tls: dict[str, Any], path: Path, protocol: str) -> None:
    """SC5: sidecar TLS termination is SIMPLE/MUTUAL-style with file certificates only."""
    for field in _INGRESS_TLS_FORBIDDEN:
        if field in tls:
            ctx.error(
                "sc-ingress-tls-invalid", (*path, field), f"`{field}` is not supported on Sidecar ingress TLS"
            )
    if tls.get("mode") in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
        ctx.error(
            "sc-ingress-tls-invalid", (*path, "mode"), f"mode {tls['mode']} is not allowed on Sidecar ingress"
        )
    if protocol not in common.TLS_PROTOCOLS:
        ctx.error("sc-ingress-tls-invalid", path, "ingress TLS requires the port protocol to be HTTPS or TLS")
    check_server_tls(ctx, tls, path)


def _check_egress_list(ctx: Ctx, egress: Any) -> None:
    """SC7: one port-less (catch-all) listener at most, last; unique ports and socket paths."""
    entries = list(items(egress))
    ports: dict[int, int] = {}
    sockets: dict[str, int] = {}
    for n, (i, listener) in enumerate(entries):
        path = ("spec", "egress", i)
        if "port" not in listener and n != len(entries) - 1:
            ctx.error(
                "sc-egress-catch-all-invalid",
                path,
                "only the last egress listener may omit `port` (it is the catch-all)",
            )
        if "port" in listener:
            _check_egress_port(ctx, listener, path, ports, sockets)
        _check_egress_hosts(ctx, listener.get("hosts"), (*path, "hosts"))


def _check_egress_port(
    ctx: Ctx, listener: dict[str, Any], path: Path, ports: dict[int, int], sockets: dict[str, int]
) -> None:
    port = mapping(listener.get("port"))
    number = port.get("number", 0)
    _check_port(ctx, port, (*path, "port"), allow_zero=True)
    if number != 0:
        _check_bind_ip(ctx, listener, path)
        if number in ports:
            ctx.error(
                "sc-egress-port-duplicate",
                (*path, "port", "number"),
                f"port {number} is already used by egress[{ports[number]}]; IP-bound ports must be unique",
            )
        ports.setdefault(number, int(path[-1]))
        return
    bind = listener.get("bind", "")
    problem = (
        common.uds_problem(bind)
        if bind.startswith(common.UDS_PREFIX)
        else "port 0 requires a Unix socket bind (unix:///path)"
    )
    if problem:
        ctx.error("sc-bind-invalid", (*path, "bind"), problem)
    if listener.get("captureMode", "DEFAULT") not in ("DEFAULT", "NONE"):
        ctx.error(
            "sc-bind-invalid",
            (*path, "captureMode"),
            "Unix socket listeners need captureMode DEFAULT or NONE",
        )
    if bind in sockets:
        ctx.error(
            "sc-egress-uds-duplicate",
            (*path, "bind"),
            f"socket {bind!r} is already used by egress[{sockets[bind]}]",
        )
    sockets.setdefault(bind, int(path[-1]))


def _check_egress_hosts(ctx: Ctx, hosts: Any, path: Path) -> None:
    """SC8: ``namespace/dnsName`` entries; duplicates and ``*/*`` with others warn."""
    if isinstance(hosts, list) and not hosts:
        ctx.error("sc-egress-hosts-missing", path, "an egress listener needs at least one host")
    seen: set[str] = set()
    entries = [h for _, h in strings(hosts)]
    for i, host in strings(hosts):
        for message in namespaced_host_problems(host, gateway=False):
            ctx.error("sc-egress-host-invalid", (*path, i), message)
        if host in seen:
            ctx.warning("sc-egress-host-duplicate", (*path, i), f"duplicate egress host {host!r}")
        seen.add(host)
    if "*/*" in entries and len(set(entries)) > 1:
        ctx.warning(
            "sc-egress-host-duplicate",
            path,
            "`*/*` already imports everything; the other hosts are redundant",
        )


def _check_outbound_policy(ctx: Ctx, policy: Any, path: Path) -> None:
    """SC9: no ALLOW_ANY_DYNAMIC_DNS; egressProxy only with ALLOW_ANY, a valid destination with a port."""
    if not isinstance(policy, dict):
        return
    mode = policy.get("mode", "REGISTRY_ONLY")
    if mode == "ALLOW_ANY_DYNAMIC_DNS":
        ctx.error(
            "sc-outbound-policy-invalid",
            (*path, "mode"),
            "ALLOW_ANY_DYNAMIC_DNS is only valid in mesh config",
        )
    proxy = policy.get("egressProxy")
    if isinstance(proxy, dict):
        if mode != "ALLOW_ANY":
            ctx.error(
                "sc-outbound-policy-invalid", (*path, "egressProxy"), "egressProxy requires mode ALLOW_ANY"
            )
        host = proxy.get("host")
        if isinstance(host, str) and "*" in host:
            ctx.error("host-invalid", (*path, "egressProxy", "host"), "egressProxy host must be an FQDN")
        routes.check_destination(ctx, proxy, (*path, "egressProxy"))
