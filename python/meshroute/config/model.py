"""The cross-referenced model's resource types: VirtualService, Gateway and Sidecar as the index
uses them (names resolved, hosts expanded and lower-cased), plus duplicate-resource handling.

Istio semantics cited from docs/semantics.md: §1.1 (names), §2.1/§2.7 (VS), §4 (Gateway), §6 (Sidecar).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import MESH, exported_to, fqdn, gateway_ref, intersect
from meshroute.config.load import Resource
from meshroute.config.validate.fields import normalize_spec as normalize

Order = tuple[str, int]  # (creationTimestamp or "", position in the input): oldest first


@dataclass(frozen=True)
class VirtualServiceInfo:
    resource: Resource
    order: Order
    hosts: tuple[str, ...]  # expanded with the VS namespace, lower-case
    gateways: tuple[str, ...]  # resolved refs; omitted/empty = (mesh,)
    export_to: tuple[str, ...]
    http: tuple[Mapping[str, Any], ...]  # resolved routes (see resolve_route)

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def is_delegate(self) -> bool:
        """A VS without hosts can only be used as a delegate (§2.1)."""
        return not self.hosts

    def visible_from(self, namespace: str) -> bool:
        return exported_to(self.export_to, self.namespace, namespace)


@dataclass(frozen=True)
class Server:
    port: int
    protocol: str
    hosts: tuple[tuple[str, str], ...]  # (namespace part: "*" or a name, dnsName)
    https_redirect: bool
    index: int = 0  # position in the Gateway's ``servers`` list
    name: str = ""  # ``port.name``
    bind: str = ""
    tls: bool = False  # the server has a ``tls`` block (``httpsRedirect`` alone counts, as in Istio)
    tls_mode: str = ""  # ``tls.mode`` upper-cased; "" without a tls block, PASSTHROUGH when unset


@dataclass(frozen=True)
class GatewayInfo:
    resource: Resource
    servers: tuple[Server, ...]
    selector: Mapping[str, str] = field(default_factory=dict)  # labels of its proxies

    @property
    def ref(self) -> str:
        return f"{self.resource.namespace}/{self.resource.name}"

    @property
    def namespace(self) -> str:
        return self.resource.namespace


@dataclass(frozen=True)
class SidecarInfo:
    resource: Resource
    selector: Mapping[str, str]
    # (namespace part, host) import entries; None = no egress section = import everything.
    egress: tuple[tuple[str, str], ...] | None
    unknown_host: str  # "passthrough" (ALLOW_ANY) | "blackhole" (REGISTRY_ONLY)
    exclusions: tuple[tuple[str, str], ...] = field(default=())
    # Egress listeners with a port: port -> its import entries (§6); `catch_all`: the entries of
    # the listener without a port (None: there is none, so no other port imports anything).
    by_port: Mapping[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    catch_all: tuple[tuple[str, str], ...] | None = None

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    def imports(self, config_ns: str, hosts: Iterable[str], client_ns: str) -> bool:
        """Whether config of ``config_ns`` for any of ``hosts`` is imported by the egress hosts (§6).

        ``*`` = any namespace; ``.`` = the client's namespace (so a mesh-wide default Sidecar in the
        root namespace means each workload's own namespace); ``~``-prefixed entries exclude
        (``~/*`` trims everything).
        """
        hosts = list(hosts)
        if self.egress is None:
            return True

        def hit(entries: Sequence[tuple[str, str]]) -> bool:
            return any(
                (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns))
                and any(intersect(h, host) for host in hosts)
                for ns, h in entries
            )

        return hit(self.egress) and not hit(self.exclusions)

    def imports_on_port(self, config_ns: str, host: str, client_ns: str, port: int) -> bool:
        """Whether the egress listener of ``port`` (the one declaring that port, else the one
        without a port) imports ``host`` of ``config_ns`` (§6: hosts per port)."""
        if not self.by_port:
            return self.imports(config_ns, [host], client_ns)
        entries = self.by_port.get(port, self.catch_all)
        if entries is None:
            return False
        return any(
            (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns)) and intersect(h, host)
            for ns, h in entries
        ) and not any(
            (ns == "*" or ns == config_ns or (ns == "." and config_ns == client_ns)) and intersect(h, host)
            for ns, h in self.exclusions
        )


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _spec(res: Resource) -> dict[str, Any]:
    spec = normalize(res.kind, res.spec)
    return spec if isinstance(spec, dict) else {}


def order_of(res: Resource, position: int) -> Order:
    ts = res.metadata.get("creationTimestamp")
    return (str(ts) if ts is not None else "", position)


def dedupe(resources: Sequence[Resource]) -> tuple[list[Resource], list[Diagnostic]]:
    """The later of two resources with the same group/kind/namespace/name replaces the earlier one,
    like ``kubectl apply``; it keeps the earlier one's place (its creation time does not change)."""
    kept: dict[tuple[str, str, str, str], int] = {}
    out: list[Resource] = []
    diags: list[Diagnostic] = []
    for res in resources:
        key = (res.api_version.split("/")[0], res.kind, res.namespace, res.name)
        if key in kept:
            earlier = out[kept[key]]
            diags.append(
                res.warning(
                    "duplicate-resource",
                    ("metadata", "name"),
                    f"{res.kind} {res.namespace}/{res.name} is defined again; this definition replaces the "
                    f"one at {earlier.file}:{earlier.line}",
                )
            )
            out[kept[key]] = res
        else:
            kept[key] = len(out)
            out.append(res)
    return out, diags


def _resolve_dest(raw: Any, ns: str, domain: str) -> Any:
    if isinstance(raw, Mapping) and isinstance(raw.get("host"), str):
        return {**raw, "host": fqdn(raw["host"], ns, domain)}
    return raw


def _resolve_item(item: Any, ns: str, domain: str) -> Any:
    """A route destination or mirror entry with its ``destination.host`` expanded."""
    if not isinstance(item, Mapping):
        return item
    return {**item, "destination": _resolve_dest(item.get("destination"), ns, domain)}


def resolve_route(route: Mapping[str, Any], ns: str, domain: str) -> dict[str, Any]:
    """A copy of an HTTPRoute with every name resolved in the namespace of its own VS (§1.1):
    destination and mirror hosts expanded, match ``gateways`` turned into ``ns/name``."""
    out = dict(route)
    out["route"] = [_resolve_item(d, ns, domain) for d in route.get("route") or []]
    if "mirror" in route:
        out["mirror"] = _resolve_dest(route["mirror"], ns, domain)
    if isinstance(route.get("mirrors"), list):
        out["mirrors"] = [_resolve_item(m, ns, domain) for m in route["mirrors"]]
    if isinstance(route.get("match"), list):
        out["match"] = [
            {**m, "gateways": [gateway_ref(g, ns, domain) for g in _strings(m.get("gateways"))]}
            if isinstance(m, Mapping) and m.get("gateways")
            else m
            for m in route["match"]
        ]
    return out


def parse_virtual_service(
    res: Resource, position: int, domain: str, default_export_to: Sequence[str] = ()
) -> VirtualServiceInfo:
    """``default_export_to``: the mesh config's ``defaultVirtualServiceExportTo`` (§12)."""
    spec = _spec(res)
    ns = res.namespace
    gateways = tuple(gateway_ref(g, ns, domain) for g in _strings(spec.get("gateways"))) or (MESH,)
    http = tuple(
        resolve_route(r, ns, domain) if isinstance(r, Mapping) else {} for r in spec.get("http") or []
    )
    return VirtualServiceInfo(
        resource=res,
        order=order_of(res, position),
        hosts=tuple(fqdn(h, ns, domain) for h in _strings(spec.get("hosts"))),
        gateways=gateways,
        export_to=tuple(_strings(spec.get("exportTo"))) or tuple(default_export_to),
        http=http,
    )


def server_hosts(raw: Any, gateway_ns: str) -> tuple[tuple[str, str], ...]:
    """A Gateway server's ``[ns/]host`` entries as (namespace, host); ``.`` is the Gateway's
    namespace, none is any.

    >>> server_hosts(["*", "./a.example.com", "prod/b.example.com"], "gw")
    (('*', '*'), ('gw', 'a.example.com'), ('prod', 'b.example.com'))
    """
    out: list[tuple[str, str]] = []
    for entry in _strings(raw):
        ns, _, host = entry.rpartition("/")
        out.append((gateway_ns if ns == "." else (ns or "*"), host.lower()))
    return tuple(out)


def parse_gateway(res: Resource) -> GatewayInfo:
    selector = _spec(res).get("selector")
    servers = []
    for i, raw in enumerate(_spec(res).get("servers") or []):
        port = raw.get("port") if isinstance(raw, Mapping) else None
        number = port.get("number") if isinstance(port, Mapping) else None
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 65536:
            continue
        hosts = server_hosts(raw.get("hosts"), res.namespace)
        tls = raw.get("tls")
        redirect = isinstance(tls, Mapping) and tls.get("httpsRedirect") is True
        protocol = str(port.get("protocol", "")).upper() if isinstance(port, Mapping) else ""
        has_tls = isinstance(tls, Mapping)
        mode = str(tls.get("mode") or "PASSTHROUGH").upper() if has_tls else ""
        name = port.get("name") if isinstance(port, Mapping) else None
        bind = raw.get("bind")
        servers.append(
            Server(
                number,
                protocol,
                hosts,
                redirect,
                index=i,
                name=name if isinstance(name, str) else "",
                bind=bind if isinstance(bind, str) else "",
                tls=has_tls,
                tls_mode=mode,
            )
        )
    labels = {str(k): str(v) for k, v in selector.items()} if isinstance(selector, Mapping) else {}
    return GatewayInfo(res, tuple(servers), labels)


def parse_sidecar(res: Resource, mesh_default: str = "passthrough") -> SidecarInfo:
    """``mesh_default``: what the mesh config's outbound policy makes of unknown hosts, for a
    Sidecar without ``outboundTrafficPolicy`` (§6, §12)."""
    spec = _spec(res)
    selector = spec.get("workloadSelector")
    labels = selector.get("labels") if isinstance(selector, Mapping) else None
    egress: list[tuple[str, str]] | None = None
    exclusions: list[tuple[str, str]] = []
    by_port: dict[int, tuple[tuple[str, str], ...]] = {}
    catch_all: tuple[tuple[str, str], ...] | None = None
    if isinstance(spec.get("egress"), list):
        egress = []
        for listener in spec["egress"]:
            own: list[tuple[str, str]] = []
            for entry in _strings(listener.get("hosts") if isinstance(listener, Mapping) else None):
                ns, _, host = entry.partition("/")
                target = exclusions if ns.startswith("~") else egress
                ns = ns[1:] if ns.startswith("~") else ns
                target.append((ns or "*", host.lower()))
                if target is egress:
                    own.append((ns or "*", host.lower()))
            port = listener.get("port") if isinstance(listener, Mapping) else None
            number = port.get("number") if isinstance(port, Mapping) else None
            if isinstance(number, int) and number > 0:  # 0: a Unix socket, no route table
                by_port.setdefault(number, tuple(own))  # the first listener of a port wins
            elif port is None and catch_all is None:
                catch_all = tuple(own)
    policy = spec.get("outboundTrafficPolicy")
    # Proto enum 0 is REGISTRY_ONLY, so `outboundTrafficPolicy: {}` blocks; absent = the mesh's.
    if isinstance(policy, Mapping):
        unknown_host = (
            "blackhole" if policy.get("mode", "REGISTRY_ONLY") == "REGISTRY_ONLY" else "passthrough"
        )
    else:
        unknown_host = mesh_default
    return SidecarInfo(
        resource=res,
        selector={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        egress=tuple(egress) if egress is not None else None,
        unknown_host=unknown_host,
        exclusions=tuple(exclusions),
        by_port=by_port,
        catch_all=catch_all,
    )
