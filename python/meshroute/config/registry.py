"""The service registry: which hosts exist, with which ports and endpoints (semantics §1.1, §5).

Sources: Kubernetes ``Service`` (host ``name.ns.svc.<domain>``), ``Endpoints``/``EndpointSlice``
(addresses), workload templates and ``Pod`` labels (only to tell whether a subset selects anything),
``ServiceEntry`` (hosts as written, incl. wildcards) with its ``endpoints`` or ``workloadSelector``
over ``WorkloadEntry`` objects of its namespace; a Kubernetes Service's ``selector`` also selects
WorkloadEntries of its namespace, as in Istio. A Kubernetes ``ExternalName`` Service is an alias of
the host it names (semantics §13): it keeps its place in the registry, and the service it resolves
to lists it in ``aliases``.

Each :class:`Endpoint` is read here once, with everything its consumers need (Envoy clusters, the
proxyless client): ``weight`` and ``locality`` included, so nothing reads the resources again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshroute.config.common import string_map
from meshroute.config.hosts import exported_to, is_wildcard, matches
from meshroute.config.load import Resource
from meshroute.config.validate.fields import normalize_spec as normalize
from meshroute.localities import label_locality

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
# Istio derives a Kubernetes port's protocol from its name prefix when appProtocol is absent.
_NAME_PROTOCOLS = ("http2", "https", "http", "grpc-web", "grpc", "tls", "tcp", "mongo", "redis", "mysql")

Labels = Mapping[str, str]


@dataclass(frozen=True)
class ServicePort:
    number: int
    name: str
    protocol: str  # upper-case; "" = auto-detect
    target_port: int | str | None = None


@dataclass(frozen=True)
class Endpoint:
    address: str
    ports: Mapping[str, int] = field(default_factory=dict)
    labels: Labels = field(default_factory=dict)
    # A WorkloadEntry's (or ServiceEntry endpoint's) ``weight``, Envoy's ``load_balancing_weight``;
    # None when unset or 0 (Envoy's default, 1). Kubernetes addresses carry none.
    weight: int | None = None
    # ``region/zone/subzone`` as Istio reads it (:func:`_entry_locality`, :func:`_k8s_locality`);
    # "" when the config says none.
    locality: str = ""


@dataclass(frozen=True)
class Service:
    """One host of the registry: a Kubernetes service or one ``hosts`` entry of a ServiceEntry."""

    host: str
    namespace: str
    origin: str  # "Kubernetes" | "ServiceEntry"
    ports: tuple[ServicePort, ...]
    resource: Resource
    export_to: tuple[str, ...] = ()
    selector: Labels = field(default_factory=dict)
    location: str | None = None
    resolution: str | None = None
    endpoints: tuple[Endpoint, ...] = ()
    # Cluster IPs (Kubernetes ``clusterIP``/``clusterIPs``) or ServiceEntry ``addresses``, as written.
    addresses: tuple[str, ...] = ()
    headless: bool = False  # a Kubernetes service with ``clusterIP: None`` (Istio: resolution Passthrough)
    # A Kubernetes ExternalName service: the host it names, as written (lower-case); "" otherwise.
    external_name: str = ""
    # The hosts of the ExternalName services that resolve to this one, by (namespace, host) (§13).
    aliases: tuple[str, ...] = ()

    @property
    def is_alias(self) -> bool:
        """An ExternalName service: no cluster and no vhost of its own (§13)."""
        return bool(self.external_name)

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.number == number), None)

    @property
    def single_port(self) -> int | None:
        """The port used when a destination omits one (§2.6): only if there is exactly one."""
        return self.ports[0].number if len(self.ports) == 1 else None

    def visible_from(self, namespace: str) -> bool:
        return exported_to(self.export_to, self.namespace, namespace)


@dataclass(frozen=True)
class Registry:
    """All services by host; Kubernetes services come before ServiceEntries for the same host,
    because a ServiceEntry naming a Kubernetes service only decorates it (§5)."""

    services: tuple[Service, ...] = ()
    workloads: Mapping[str, tuple[Labels, ...]] = field(default_factory=dict)
    # Indexes over ``services`` (config order kept): exact host -> entries, wildcard-host entries.
    _hosts: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)
    _wildcards: tuple[Service, ...] = field(init=False, repr=False, compare=False)
    _visible: dict[str, tuple[Service, ...]] = field(init=False, repr=False, compare=False)
    all_public: bool = field(init=False, repr=False, compare=False)  # every service exported everywhere
    # ExternalName alias host -> the host it resolves to (chains followed, loops left out; §13).
    alias_targets: Mapping[str, str] = field(init=False, repr=False, compare=False)
    has_aliases: bool = field(init=False, repr=False, compare=False)  # some service is ExternalName

    def __post_init__(self) -> None:
        hosts: dict[str, list[Service]] = {}
        for svc in self.services:
            hosts.setdefault(svc.host, []).append(svc)
        object.__setattr__(self, "_hosts", {h: tuple(v) for h, v in hosts.items()})
        object.__setattr__(self, "_wildcards", tuple(s for s in self.services if is_wildcard(s.host)))
        object.__setattr__(self, "_visible", {})
        public = all(not s.export_to or "*" in s.export_to for s in self.services)
        object.__setattr__(self, "all_public", public)
        object.__setattr__(self, "alias_targets", resolve_aliases(self.services))
        object.__setattr__(self, "has_aliases", any(svc.is_alias for svc in self.services))

    @property
    def hosts(self) -> Mapping[str, tuple[Service, ...]]:
        """Every service host (``in`` is a dict lookup)."""
        return self._hosts

    def by_host(self, host: str) -> list[Service]:
        return list(self._hosts.get(host, ()))

    def lookup(self, host: str, client_ns: str | None = None) -> Service | None:
        """The service for an exact host, as seen from ``client_ns`` (None: regardless of exportTo)."""
        for svc in self._hosts.get(host, ()):
            if client_ns is None or svc.visible_from(client_ns):
                return svc
        return None

    def alias_target(self, host: str) -> Service | None:
        """For an ExternalName alias host, the service it resolves to (the first entry of that
        host, whatever its exportTo); None for any other host or an alias of no service (§13)."""
        target = self.alias_targets.get(host)
        return self.lookup(target) if target is not None else None

    def knows(self, host: str) -> bool:
        """The host is a service, or lies within a wildcard ServiceEntry host."""
        return host in self._hosts or any(matches(svc.host, host) for svc in self._wildcards)

    def covers(self, pattern: str) -> bool:
        """Some service host lies within ``pattern`` (``matches(pattern, host)``)."""
        if not is_wildcard(pattern):
            return pattern in self._hosts
        return any(matches(pattern, host) for host in self._hosts)

    def visible(self, client_ns: str) -> list[Service]:
        """Services visible in ``client_ns``, first entry per host."""
        key = "" if self.all_public else client_ns  # then every namespace sees the same
        known = self._visible.get(key)
        if known is None:
            seen: dict[str, Service] = {}
            for svc in self.services:
                if svc.host not in seen and (not svc.export_to or svc.visible_from(client_ns)):
                    seen[svc.host] = svc
            known = self._visible[key] = tuple(seen.values())
        return list(known)

    def selects_workload(self, svc: Service, labels: Labels) -> bool | None:
        """Whether a subset's labels select any known workload of ``svc``; None when unknown
        (no workloads or endpoints were given, so nothing can be said)."""
        wanted = {**svc.selector, **labels}
        pools: list[Labels] = [e.labels for e in svc.endpoints if e.labels]
        if svc.origin == "Kubernetes":
            pools.extend(self.workloads.get(svc.namespace, ()))
        if not pools:
            return None
        return any(_subset(wanted, pool) for pool in pools)


def _subset(wanted: Labels, labels: Labels) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def build_registry(
    resources: Iterable[Resource], domain: str = "cluster.local", export_to: Sequence[str] = ()
) -> Registry:
    """Collect every service-like resource into a :class:`Registry`. ``export_to``: the mesh
    config's ``defaultServiceExportTo``, for services and ServiceEntries that set none (§12).

    >>> from meshroute.config.load import load_text
    >>> res = load_text("apiVersion: v1\\nkind: Service\\nmetadata: {name: r, namespace: a}\\n"
    ...                 "spec: {ports: [{port: 9080, name: http}]}", "x.yaml").resources
    >>> build_registry(res).lookup("r.a.svc.cluster.local").single_port
    9080
    """
    resources = list(resources)
    workloads = _workload_labels(resources)
    addresses = _k8s_endpoints(resources)
    entries = [r for r in resources if r.is_istio and r.kind == "WorkloadEntry"]
    # WorkloadEntry endpoints per namespace, config order: what selectors of that namespace see.
    entry_endpoints: dict[str, list[Endpoint]] = {}
    for we in entries:
        ep = _se_endpoint(_spec(we))
        if ep:
            entry_endpoints.setdefault(we.namespace, []).append(ep)
    k8s: list[Service] = []
    external: list[Service] = []
    for res in resources:
        if res.kind == "Service" and res.api_version == "v1":
            svc = _k8s_service(res, addresses.get((res.namespace, res.name), ()), domain)
            svc = replace(svc, export_to=svc.export_to or tuple(export_to))
            k8s.append(_with_workload_entries(svc, entry_endpoints.get(svc.namespace, ())))
        elif res.is_istio and res.kind == "ServiceEntry":
            entries_of = _service_entry(res, entry_endpoints.get(res.namespace, ()))
            external.extend(replace(e, export_to=e.export_to or tuple(export_to)) for e in entries_of)
    for res in entries:
        labels = string_map(_spec(res).get("labels"))
        workloads.setdefault(res.namespace, []).append(labels)
    return Registry(_with_aliases(k8s + external), {ns: tuple(v) for ns, v in workloads.items()})


def resolve_aliases(services: Iterable[Service]) -> dict[str, str]:
    """ExternalName alias host -> the host it finally names (Istio ``resolveServiceAliases``):
    an alias naming another alias is followed to the first host that is no alias; a loop resolves
    to nothing (Kubernetes DNS answers NXDOMAIN for it). Alias hosts are not namespaced in this
    walk, as an ``externalName`` is not.

    >>> res = lambda h, t: Service(h, "ns", "Kubernetes", (), None, external_name=t)  # type: ignore[arg-type]
    >>> resolve_aliases([res("a.ns.svc.cluster.local", "b.ns.svc.cluster.local"),
    ...                  res("b.ns.svc.cluster.local", "c.example.com"),
    ...                  res("x.ns.svc.cluster.local", "y.ns.svc.cluster.local"),
    ...                  res("y.ns.svc.cluster.local", "x.ns.svc.cluster.local")])
    {'a.ns.svc.cluster.local': 'c.example.com', 'b.ns.svc.cluster.local': 'c.example.com'}
    """
    raw = {svc.host: svc.external_name for svc in services if svc.is_alias}
    out: dict[str, str] = {}
    for alias, target in raw.items():
        seen = {alias}
        while target in raw and target not in seen:
            seen.add(target)
            target = raw[target]
        if target not in raw:
            out[alias] = target
    return out


def _with_aliases(services: list[Service]) -> tuple[Service, ...]:
    """``services`` with each one's ``aliases`` set: the ExternalName services resolving to its
    host, ordered by namespace, then host (Istio sorts them so)."""
    if not any(svc.is_alias for svc in services):
        return tuple(services)
    targets = resolve_aliases(services)
    by_target: dict[str, list[tuple[str, str]]] = {}
    for svc in services:
        if svc.host in targets:
            by_target.setdefault(targets[svc.host], []).append((svc.namespace, svc.host))
    return tuple(
        replace(svc, aliases=tuple(host for _, host in sorted(set(by_target[svc.host]))))
        if svc.host in by_target
        else svc
        for svc in services
    )


def _spec(res: Resource) -> dict[str, Any]:
    spec = normalize(res.kind, res.spec)
    return spec if isinstance(spec, dict) else {}


def _body(res: Resource) -> dict[str, Any]:
    """Endpoints/EndpointSlice keep their data at the document top level (``subsets``,
    ``endpoints``), not under ``spec``. Kubernetes field names are camelCase only, so no
    normalisation applies."""
    body = res.document or res.spec
    return dict(body) if isinstance(body, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    """A port number (1-65535), else None: the IR carries ports as u16."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536
    return value if ok else None


def _workload_labels(resources: Sequence[Resource]) -> dict[str, list[Labels]]:
    out: dict[str, list[Labels]] = {}
    for res in resources:
        if res.kind == "Pod":
            labels = string_map(res.metadata.get("labels"))
        elif res.kind in WORKLOAD_KINDS:
            template = _spec(res).get("template")
            if res.kind == "CronJob":
                template = ((_spec(res).get("jobTemplate") or {}).get("spec") or {}).get("template")
            meta = template.get("metadata") if isinstance(template, dict) else None
            labels = string_map(meta.get("labels") if isinstance(meta, dict) else None)
        else:
            continue
        out.setdefault(res.namespace, []).append(labels)
    return out


def _k8s_endpoints(resources: Sequence[Resource]) -> dict[tuple[str, str], tuple[Endpoint, ...]]:
    """Addresses per (namespace, service name) from ``Endpoints`` and ``EndpointSlice``, each with
    its locality (:func:`_k8s_locality`)."""
    nodes = {
        res.name: string_map(res.metadata.get("labels"))
        for res in resources
        if res.kind == "Node" and res.api_version == "v1"
    }
    out: dict[tuple[str, str], list[Endpoint]] = {}
    for res in resources:
        doc = _body(res)
        if res.kind == "Endpoints":
            groups = _list(doc.get("subsets"))
            key = (res.namespace, res.name)
            for group in groups:
                ports = _port_map(group.get("ports"))
                for addr in _list(group.get("addresses")):
                    if isinstance(addr, dict) and isinstance(addr.get("ip"), str):
                        where = _k8s_locality(nodes, addr.get("nodeName"), None)
                        out.setdefault(key, []).append(Endpoint(addr["ip"], ports, locality=where))
        elif res.kind == "EndpointSlice":
            svc = string_map(res.metadata.get("labels")).get("kubernetes.io/service-name")
            if not svc:
                continue
            ports = _port_map(doc.get("ports"))
            for ep in _list(doc.get("endpoints")):
                raw = ep if isinstance(ep, dict) else {}
                where = _k8s_locality(nodes, raw.get("nodeName"), raw.get("zone"))
                for addr in _list(raw.get("addresses")):
                    endpoint = Endpoint(str(addr), ports, locality=where)
                    out.setdefault((res.namespace, svc), []).append(endpoint)
    return {k: _shared_localities(v) for k, v in out.items()}


def _k8s_locality(nodes: Mapping[str, Labels], node: Any, zone: Any) -> str:
    """A Kubernetes address's locality: the topology labels of the ``Node`` it runs on, else its
    EndpointSlice ``zone`` alone (region unknown); "" when neither says."""
    locality = label_locality(nodes.get(str(node), {})) if node else ""
    if not locality and isinstance(zone, str) and zone:
        locality = f"/{zone}"
    return locality


def _shared_localities(endpoints: list[Endpoint]) -> tuple[Endpoint, ...]:
    """One address listed more than once for a service (by its ``Endpoints`` and its
    ``EndpointSlice``) is one pod: each listing takes the first locality any of them gives."""
    first: dict[str, str] = {}
    for ep in endpoints:
        if ep.locality:
            first.setdefault(ep.address, ep.locality)
    out: list[Endpoint] = []
    for ep in endpoints:
        where = first.get(ep.address, "")
        out.append(ep if where == ep.locality else replace(ep, locality=where))
    return tuple(out)


def _port_map(raw: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for port in _list(raw):
        number = _int(port.get("port")) if isinstance(port, dict) else None
        if number is not None:
            out[str(port.get("name", ""))] = number
    return out


def _export_annotation(res: Resource) -> tuple[str, ...]:
    annotations = res.metadata.get("annotations")
    raw = annotations.get(EXPORT_TO_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(raw, str):
        return ()
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _k8s_protocol(port: Mapping[str, Any]) -> str:
    app = port.get("appProtocol")
    if isinstance(app, str) and app:
        return app.upper()
    name = str(port.get("name", "")).lower()
    for prefix in _NAME_PROTOCOLS:
        if name == prefix or name.startswith(prefix + "-"):
            return prefix.upper()
    return ""


def _k8s_service(res: Resource, endpoints: tuple[Endpoint, ...], domain: str) -> Service:
    spec = _spec(res)
    ports = []
    for raw in _list(spec.get("ports")):
        number = _int(raw.get("port")) if isinstance(raw, dict) else None
        if number is None:
            continue
        target = raw.get("targetPort")
        ports.append(
            ServicePort(
                number,
                str(raw.get("name", "")),
                _k8s_protocol(raw),
                target if isinstance(target, (int, str)) else None,
            )
        )
    ips = [ip for ip in _list(spec.get("clusterIPs")) if isinstance(ip, str) and ip]
    first = spec.get("clusterIP")
    if isinstance(first, str) and first and first not in ips:
        ips.insert(0, first)
    headless = isinstance(first, str) and first.lower() == "none"
    # An ExternalName service is an alias of its target (§13); a headless one stays headless, as
    # Istio lets clusterIP None decide the resolution last.
    external = spec.get("externalName") if spec.get("type") == "ExternalName" and not headless else None
    return Service(
        host=f"{res.name}.{res.namespace}.svc.{domain}".lower(),
        namespace=res.namespace,
        origin="Kubernetes",
        ports=tuple(ports),
        resource=res,
        export_to=_export_annotation(res),
        selector=string_map(spec.get("selector")),
        endpoints=endpoints,
        addresses=tuple(ip for ip in ips if ip.lower() != "none"),
        headless=headless,
        external_name=external.strip().lower() if isinstance(external, str) else "",
    )


def _with_workload_entries(svc: Service, entries: Sequence[Endpoint]) -> Service:
    """Istio also selects WorkloadEntries (same namespace: ``entries``) with a Kubernetes
    Service's selector."""
    if not svc.selector:
        return svc
    selected = tuple(ep for ep in entries if _subset(svc.selector, ep.labels))
    return replace(svc, endpoints=svc.endpoints + selected) if selected else svc


def _se_endpoint(raw: Any) -> Endpoint | None:
    """A WorkloadEntry spec, or one of a ServiceEntry's ``endpoints`` (the same fields)."""
    if not isinstance(raw, dict):
        return None
    ports = (
        {str(k): v for k, v in (raw.get("ports") or {}).items() if _int(v)}
        if isinstance(raw.get("ports"), dict)
        else {}
    )
    labels = string_map(raw.get("labels"))
    return Endpoint(
        str(raw.get("address", "")), ports, labels, _weight(raw.get("weight")), _entry_locality(raw, labels)
    )


def _weight(value: Any) -> int | None:
    """A weight for Envoy (``load_balancing_weight`` is at least 1); 0 or unset: None."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _entry_locality(raw: Mapping[str, Any], labels: Labels) -> str:
    """A WorkloadEntry's (or ServiceEntry endpoint's) ``locality``, else its ``istio-locality`` or
    topology labels, as Istio reads them."""
    locality = raw.get("locality")
    return locality if isinstance(locality, str) and locality else label_locality(labels)


def _service_entry(res: Resource, workload_entries: Sequence[Endpoint]) -> list[Service]:
    """One service per host; ``workload_entries``: the endpoints of the WorkloadEntries in the
    ServiceEntry's namespace, for its ``workloadSelector``."""
    spec = _spec(res)
    ports = tuple(
        ServicePort(
            p["number"],
            str(p.get("name", "")),
            str(p.get("protocol", "")).upper(),
            p.get("targetPort") if _int(p.get("targetPort")) else None,
        )
        for p in _list(spec.get("ports"))
        if isinstance(p, dict) and _int(p.get("number"))
    )
    selector = spec.get("workloadSelector")
    selector_labels = string_map(selector.get("labels")) if isinstance(selector, dict) else {}
    if selector_labels:
        endpoints = tuple(ep for ep in workload_entries if _subset(selector_labels, ep.labels))
    else:
        endpoints = tuple(ep for raw in _list(spec.get("endpoints")) for ep in [_se_endpoint(raw)] if ep)
    export_to = tuple(str(e) for e in _list(spec.get("exportTo")))
    addresses = tuple(str(a) for a in _list(spec.get("addresses")) if isinstance(a, str) and a)
    return [
        Service(
            host=str(host).lower(),
            namespace=res.namespace,
            origin="ServiceEntry",
            ports=ports,
            resource=res,
            export_to=export_to,
            selector=selector_labels,
            location=str(spec.get("location", "MESH_EXTERNAL")),
            resolution=str(spec.get("resolution", "NONE")),
            endpoints=endpoints,
            addresses=addresses,
        )
        for host in _list(spec.get("hosts"))
        if isinstance(host, str) and host
    ]
