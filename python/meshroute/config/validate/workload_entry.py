"""WorkloadEntry rules, standalone (semantics §8.5 S14) and as ServiceEntry endpoints (S8, S9)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common, routes
from meshroute.config.validate.context import Ctx, mapping


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """S14: a standalone WorkloadEntry."""
    check_workload_entry(ctx, spec, ("spec",), resolution=None, service_ports=None)


def check_workload_entry(
    ctx: Ctx, entry: dict[str, Any], path: Path, *, resolution: str | None, service_ports: set[str] | None
) -> None:
    """Address, ports and labels of one workload. ``resolution`` is the enclosing ServiceEntry's
    (None when standalone); ``service_ports`` its port names (endpoint ports must name one)."""
    address = entry.get("address")
    if not address:
        _check_missing_address(ctx, entry, path, standalone=resolution is None)
    elif address.startswith(common.UDS_PREFIX):
        problem = common.uds_problem(address)
        if problem:
            ctx.error("we-address-invalid", (*path, "address"), problem)
        if entry.get("ports"):
            ctx.error("we-uds-ports", (*path, "ports"), "a Unix socket endpoint cannot have ports")
    else:
        _check_address(ctx, address, (*path, "address"), resolution)
    for name, number in mapping(entry.get("ports")).items():
        if not common.is_dns_label(name):
            ctx.error(
                "port-name-invalid",
                (*path, "ports", name),
                f"port name {name!r} must be a DNS-1123 label (letters, digits, '-')",
            )
        elif service_ports is not None and name not in service_ports:
            ctx.error(
                "se-endpoint-port-unknown",
                (*path, "ports", name),
                f"endpoint port {name!r} is not the name of a ServiceEntry port ({sorted(service_ports)})",
            )
        problem = common.port_problem(number)
        if problem:
            ctx.error("port-invalid", (*path, "ports", name), problem)
    routes.check_labels(ctx, entry.get("labels"), (*path, "labels"))


def _check_missing_address(ctx: Ctx, entry: dict[str, Any], path: Path, *, standalone: bool) -> None:
    if (*path, "address") in ctx.bad:
        return
    if not entry.get("network"):
        ctx.error("we-address-required", (*path, "address"), "address is required (unless `network` is set)")
    elif standalone:
        ctx.warning(
            "we-address-missing",
            (*path, "address"),
            "no address: the workload is only reachable through its network gateway",
        )


def _check_address(ctx: Ctx, address: str, path: Path, resolution: str | None) -> None:
    """STATIC endpoints need IPs (S8); DNS endpoints and standalone entries accept FQDNs (S9, S14)."""
    if common.is_ip(address):
        return
    if resolution == "STATIC":
        ctx.error(
            "we-address-invalid",
            path,
            f"address {address!r} must be an IP address or unix:// path for STATIC resolution",
        )
        return
    problem = common.fqdn_problem(address)
    if problem:
        ctx.error("we-address-invalid", path, f"address must be an IP address or FQDN: {problem}")


def check_endpoint_uds(ctx: Ctx, entry: dict[str, Any], path: Path, port_count: int) -> None:
    """S8: a ServiceEntry with Unix socket endpoints must have exactly one port."""
    address = entry.get("address")
    if isinstance(address, str) and address.startswith(common.UDS_PREFIX) and port_count != 1:
        ctx.error(
            "se-uds-ports",
            (*path, "address"),
            "a ServiceEntry with Unix socket endpoints must declare exactly one port",
        )
