"""Gateway rules (semantics §8.4, G1-G9)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common
from meshroute.config.validate.context import Ctx, items, mapping, strings
from meshroute.config.validate.server_tls import check_server_tls


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """G1-G9 for one Gateway."""
    if not common.is_dns_label(ctx.res.name):
        ctx.error(
            "gw-name-invalid",
            ("metadata", "name"),
            f"Gateway name {ctx.res.name!r} must be a DNS-1123 label (no dots)",
        )
    servers = spec.get("servers")
    if not servers and ("spec", "servers") not in ctx.bad:
        ctx.error("gw-servers-missing", ("spec", "servers"), "a Gateway needs at least one server")
    port_names: dict[str, int] = {}
    for i, server in items(servers):
        _check_server(ctx, server, ("spec", "servers", i), port_names, i)


def _check_server(
    ctx: Ctx, server: dict[str, Any], path: Path, port_names: dict[str, int], index: int
) -> None:
    hosts = server.get("hosts")
    if isinstance(hosts, list) and not hosts:
        ctx.error("gw-hosts-missing", (*path, "hosts"), "a server needs at least one host")
    for i, host in strings(hosts):
        for message in namespaced_host_problems(host, gateway=True):
            ctx.error("gw-host-invalid", (*path, "hosts", i), message)
    port = mapping(server.get("port"))
    bind = server.get("bind")
    uds = isinstance(bind, str) and bind.startswith(common.UDS_PREFIX)
    _check_port(ctx, port, (*path, "port"), uds=uds)
    if isinstance(bind, str):
        problem = (
            common.uds_problem(bind)
            if uds
            else (None if common.is_ip(bind) else f"bind {bind!r} must be an IP address or unix:// path")
        )
        if problem:
            ctx.error("gw-bind-invalid", (*path, "bind"), problem)
        elif uds and port.get("number", 0) != 0:
            ctx.error(
                "gw-bind-invalid", (*path, "port", "number"), "a server bound to a Unix socket needs port 0"
            )
    name = port.get("name")
    if isinstance(name, str) and name:
        if name in port_names:
            ctx.error(
                "gw-port-name-duplicate",
                (*path, "port", "name"),
                f"port name {name!r} is already used by servers[{port_names[name]}]; names must be unique",
            )
        port_names.setdefault(name, index)
    _check_server_tls(ctx, server, path, str(port.get("protocol", "")).upper())


def _check_port(ctx: Ctx, port: dict[str, Any], path: Path, *, uds: bool) -> None:
    """G4: protocol supported, number C2 (0 only for a Unix socket bind), no targetPort."""
    protocol = port.get("protocol")
    problem = common.protocol_problem(protocol) if isinstance(protocol, str) else None
    if problem:
        ctx.error("protocol-invalid", (*path, "protocol"), problem)
    number = port.get("number")
    problem = common.port_problem(number, allow_zero=uds) if number is not None else None
    if problem:
        ctx.error("port-invalid", (*path, "number"), problem)
    if "targetPort" in port:
        ctx.error(
            "gw-target-port-unsupported",
            (*path, "targetPort"),
            "targetPort is not supported on Gateway ports; remove it",
        )
    if port.get("name") == "":
        ctx.error("required-field", (*path, "name"), "port name must not be empty")


def _check_server_tls(ctx: Ctx, server: dict[str, Any], path: Path, protocol: str) -> None:
    """G6, G8, G9."""
    tls = server.get("tls")
    is_tls = protocol in common.TLS_PROTOCOLS
    if tls is None:
        if is_tls and (*path, "tls") not in ctx.bad:
            ctx.error("gw-tls-required", (*path, "tls"), f"a {protocol} server needs `tls` settings")
        return
    tls = mapping(tls)
    if tls.get("httpsRedirect") and protocol != "HTTP":
        ctx.warning(
            "gw-https-redirect-non-http",
            (*path, "tls", "httpsRedirect"),
            "httpsRedirect only has an effect on HTTP servers",
        )
    if is_tls:
        check_server_tls(ctx, tls, (*path, "tls"))
    elif protocol == "HTTP":
        extra = [k for k in tls if k != "httpsRedirect"]
        if extra:
            ctx.error(
                "gw-tls-forbidden",
                (*path, "tls", extra[0]),
                "an HTTP server may only set tls.httpsRedirect; use protocol HTTPS to terminate TLS",
            )
    elif protocol:
        ctx.error("gw-tls-forbidden", (*path, "tls"), f"a {protocol} server cannot have `tls` settings")


def namespaced_host_problems(host: str, *, gateway: bool) -> list[str]:
    """G3 / SC8: ``[namespace/]dnsName``. Gateways may omit the namespace and use IPs; sidecars may
    use ``~`` namespaces. dnsName: ``*``, ``*.suffix`` or an FQDN (no short names, no partial wildcard).

    >>> namespaced_host_problems("prod/*.example.com", gateway=True)
    []
    >>> namespaced_host_problems("a/b", gateway=False)
    ['short names (non-FQDN) are not allowed: use an FQDN, `*.suffix` or `*`']
    """
    namespace, slash, dns = host.partition("/")
    if not slash:
        if not gateway:
            return [f"host {host!r} must be of the form namespace/dnsName"]
        namespace, dns = "*", host
    out: list[str] = []
    if not namespace or not dns:
        return [f"host {host!r}: namespace and dnsName cannot be empty"]
    allowed = ("*", ".") if gateway else ("*", ".", "~")
    name = namespace[1:] if not gateway and namespace.startswith("~") else namespace
    if namespace not in allowed and not common.is_dns_label(name):
        out.append(f"host {host!r}: namespace {namespace!r} must be `*`, `.` or a namespace name")
    if dns != "*" and "." not in dns:
        out.append("short names (non-FQDN) are not allowed: use an FQDN, `*.suffix` or `*`")
    problem = common.wildcard_domain_problem(dns)
    if problem and not (gateway and common.is_ip(dns)):
        out.append(problem)
    if common.is_partial_wildcard(dns):
        out.append(f"partial wildcard {dns!r} is not allowed; use `*.suffix` or `*`")
    return out
