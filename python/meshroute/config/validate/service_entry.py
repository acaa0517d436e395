"""ServiceEntry rules (semantics §8.5, S1-S13 and the §8.7 CRD limits)."""

from __future__ import annotations

from typing import Any

from meshroute.config.diagnostics import Path
from meshroute.config.validate import common
from meshroute.config.validate.context import Ctx, items, mapping, strings
from meshroute.config.validate.destination_rule import check_selector
from meshroute.config.validate.workload_entry import check_endpoint_uds, check_workload_entry

MAX_HOSTS = MAX_ADDRESSES = MAX_PORTS = 256
MAX_ENDPOINTS = 4096
MAX_ADDRESS_LEN = 64
_TCP_LIKE = frozenset({"", "TCP", "MONGO", "REDIS", "MYSQL"})
_DYNAMIC_DNS_PROTOCOLS = frozenset({"HTTP", "HTTPS", "TLS", "GRPC", "HTTP2"})


def validate(ctx: Ctx, spec: dict[str, Any]) -> None:
    """S1-S13 for one ServiceEntry."""
    resolution = spec.get("resolution", "NONE")
    _check_selector(ctx, spec, resolution)
    _check_hosts(ctx, spec, resolution)
    _check_addresses(ctx, spec, resolution)
    protocols = _check_ports(ctx, spec.get("ports"), ("spec", "ports"))
    _check_endpoints(ctx, spec, resolution)
    _check_resolution(ctx, spec, resolution, protocols)
    for i, message in common.export_to_problems(
        [e for _, e in strings(spec.get("exportTo"))], ctx.namespace, allow_tilde=True
    ):
        ctx.error("export-to-invalid", ("spec", "exportTo", i), message)


def _too_many(ctx: Ctx, spec: dict[str, Any], field: str, limit: int) -> None:
    value = spec.get(field)
    if isinstance(value, list) and len(value) > limit:
        ctx.error("se-too-many", ("spec", field), f"at most {limit} {field} are allowed, got {len(value)}")


def _check_selector(ctx: Ctx, spec: dict[str, Any], resolution: str) -> None:
    """S1, S2, S7 (selector half)."""
    if "workloadSelector" not in spec:
        return
    path: Path = ("spec", "workloadSelector")
    labels = mapping(spec["workloadSelector"]).get("labels")
    check_selector(ctx, labels, (*path, "labels"))
    if not labels:
        ctx.warning("selector-empty", path, "workloadSelector has no labels and selects every workload")
    if spec.get("endpoints"):
        ctx.error(
            "se-selector-endpoints-conflict",
            ("spec", "endpoints"),
            "only one of workloadSelector or endpoints can be set",
        )
    if resolution == "NONE":
        ctx.warning("se-none-selector", path, "workloadSelector has no effect with resolution NONE")


def _check_hosts(ctx: Ctx, spec: dict[str, Any], resolution: str) -> None:
    """S3: at least one host, not ``*``, each C3; partial wildcards warn (except DYNAMIC_DNS)."""
    hosts = spec.get("hosts")
    if isinstance(hosts, list) and not hosts:
        ctx.error("se-hosts-missing", ("spec", "hosts"), "a ServiceEntry needs at least one host")
    _too_many(ctx, spec, "hosts", MAX_HOSTS)
    for i, host in strings(hosts):
        path = ("spec", "hosts", i)
        if host == "*":
            ctx.error(
                "se-host-wildcard", path, "hostname cannot be `*`; use a domain such as `*.example.com`"
            )
            continue
        problem = common.wildcard_domain_problem(host)
        if problem:
            ctx.error("host-invalid", path, problem)
        elif common.is_partial_wildcard(host) and resolution != "DYNAMIC_DNS":
            ctx.warning(
                "se-host-partial-wildcard", path, f"partial wildcard {host!r} is discouraged; use `*.suffix`"
            )


def _check_addresses(ctx: Ctx, spec: dict[str, Any], resolution: str) -> None:
    """S4: IPs or CIDRs (<= 64 chars); CIDRs only with NONE or STATIC resolution."""
    _too_many(ctx, spec, "addresses", MAX_ADDRESSES)
    for i, address in strings(spec.get("addresses")):
        path = ("spec", "addresses", i)
        problem = common.ip_or_cidr_problem(address)
        if len(address) > MAX_ADDRESS_LEN:
            problem = f"address is longer than {MAX_ADDRESS_LEN} characters"
        if problem:
            ctx.error("se-address-invalid", path, problem)
        elif common.is_cidr(address) and resolution not in ("NONE", "STATIC"):
            ctx.error(
                "se-address-cidr-resolution",
                path,
                "CIDR addresses are allowed only for NONE/STATIC resolution types",
            )


def _check_ports(ctx: Ctx, ports: Any, path: Path) -> dict[int, str]:
    """S5: unique names (DNS labels) and numbers, supported protocols, C2 numbers and targetPorts.
    Returns the upper-cased protocol of each port by index ("" when unset)."""
    names: dict[str, int] = {}
    numbers: dict[int, int] = {}
    protocols: dict[int, str] = {}
    if isinstance(ports, list) and len(ports) > MAX_PORTS:
        ctx.error("se-too-many", path, f"at most {MAX_PORTS} ports are allowed")
    for i, port in items(ports):
        name, number, protocol = port.get("name"), port.get("number"), port.get("protocol", "")
        protocols[i] = protocol.upper()
        if isinstance(name, str):
            if not common.is_dns_label(name):
                ctx.error(
                    "port-name-invalid", (*path, i, "name"), f"port name {name!r} must be a DNS-1123 label"
                )
            if name in names:
                ctx.error(
                    "se-port-name-duplicate",
                    (*path, i, "name"),
                    f"port name {name!r} is already used by ports[{names[name]}]",
                )
            names.setdefault(name, i)
        if isinstance(number, int):
            if number in numbers:
                ctx.error(
                    "se-port-number-duplicate",
                    (*path, i, "number"),
                    f"port number {number} cannot be duplicated (ports[{numbers[number]}])",
                )
            numbers.setdefault(number, i)
        for field in ("number", "targetPort"):
            problem = common.port_problem(port[field]) if field in port else None
            if problem:
                ctx.error("port-invalid", (*path, i, field), problem)
        if protocol and (problem := common.protocol_problem(protocol)):
            ctx.error("protocol-invalid", (*path, i, "protocol"), problem)
    return protocols


def _check_endpoints(ctx: Ctx, spec: dict[str, Any], resolution: str) -> None:
    """S8, S9 (per endpoint)."""
    _too_many(ctx, spec, "endpoints", MAX_ENDPOINTS)
    port_list = [p for _, p in items(spec.get("ports"))]
    names = {p["name"] for p in port_list if isinstance(p.get("name"), str)}
    for i, endpoint in items(spec.get("endpoints")):
        path = ("spec", "endpoints", i)
        check_workload_entry(ctx, endpoint, path, resolution=resolution, service_ports=names)
        check_endpoint_uds(ctx, endpoint, path, len(port_list))


def _check_resolution(ctx: Ctx, spec: dict[str, Any], resolution: str, protocols: dict[int, str]) -> None:
    """S6, S7, S9, S10, S12: what each resolution mode allows."""
    endpoints = spec.get("endpoints") or []
    hosts = [h for _, h in strings(spec.get("hosts"))]
    if resolution == "NONE" and endpoints:
        ctx.error("se-none-endpoints", ("spec", "endpoints"), "NONE mode cannot set endpoints")
    if resolution in ("DNS", "DNS_ROUND_ROBIN") and not endpoints:
        for i, host in enumerate(hosts):
            if "*" in host:
                ctx.error(
                    "se-dns-wildcard-host",
                    ("spec", "hosts", i),
                    f"with {resolution} resolution and no endpoints, host {host!r} is resolved and "
                    "cannot be a wildcard",
                )
    if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
        ctx.error(
            "se-dns-round-robin-endpoints",
            ("spec", "endpoints"),
            "DNS_ROUND_ROBIN mode cannot have multiple endpoints",
        )
    if resolution == "DYNAMIC_DNS":
        _check_dynamic_dns(ctx, spec, hosts, protocols)
    if (
        resolution != "NONE"
        and len(hosts) > 1
        and any(p not in common.HTTP_PROTOCOLS and p not in common.TLS_PROTOCOLS for p in protocols.values())
    ):
        ctx.error(
            "se-multiple-hosts-tcp",
            ("spec", "hosts"),
            "multiple hosts provided with non-HTTP, non-TLS ports; use one host per ServiceEntry",
        )
    if not spec.get("addresses") and any(p in _TCP_LIKE for p in protocols.values()):
        ctx.warning(
            "se-addresses-required",
            ("spec", "addresses"),
            "addresses are required for ports serving TCP (or unset) protocol unless DNS auto-allocation "
            "is enabled; traffic is matched on the port alone",
        )


def _check_dynamic_dns(ctx: Ctx, spec: dict[str, Any], hosts: list[str], protocols: dict[int, str]) -> None:
    """S10: wildcard hosts only, no addresses or endpoints, HTTP/TLS-like ports."""

    def bad(path: Path, message: str) -> None:
        ctx.error("se-dynamic-dns-invalid", path, message)

    for i, host in enumerate(hosts):
        if not host.startswith("*"):
            bad(("spec", "hosts", i), "DYNAMIC_DNS requires wildcard hosts")
    for field in ("addresses", "endpoints"):
        if spec.get(field):
            bad(("spec", field), f"DYNAMIC_DNS cannot have {field}")
    for i, protocol in protocols.items():
        if protocol not in _DYNAMIC_DNS_PROTOCOLS:
            bad(("spec", "ports", i), "DYNAMIC_DNS ports must be HTTP, HTTPS, TLS, GRPC or HTTP2")
    waypoint = mapping(ctx.res.metadata.get("labels")).get("istio.io/use-waypoint")
    if spec.get("location") == "MESH_INTERNAL" and waypoint:
        bad(("spec", "location"), "DYNAMIC_DNS with MESH_INTERNAL cannot use a waypoint")
