"""Envoy clusters: one per Istio cluster name ``outbound|PORT|SUBSET|HOST``, carrying the
DestinationRule traffic policy in Envoy's own settings (semantics §3), plus the ext_proc cluster
and the Passthrough/BlackHole clusters the router may name.

One Envoy plays every client here (all Gateways and the mesh listener), while Istio gives each
client proxy its own clusters with the DestinationRule found from *its* namespace. A cluster name
must be unique, so the subset-less cluster takes the policy seen from ``--source-namespace`` (else
from the service's own namespace; with ``--source-labels``, a DestinationRule of that namespace
whose workloadSelector selects them comes first, §3.1), and each subset the policy of the first
client namespace whose lookup defines that subset (that namespace, then Gateway namespaces, then
every other namespace).

An ExternalName service has no cluster (semantics §13): requests to its names are routed to the
clusters of the service it names, or, when it names no service, as any unknown host is (the
Passthrough or BlackHole cluster).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from meshroute.config.diagnostics import Diagnostic
from meshroute.config.hosts import is_ip
from meshroute.config.model import Model
from meshroute.config.policy import Policy, effective_policy, rule_policy
from meshroute.config.registry import Service, ServicePort
from meshroute.config.validate.destination_rule import LOAD_BALANCER_ANNOTATION
from meshroute.envoy.common import UNLIMITED, Json, duration, endpoint_address, pipe_path, typed
from meshroute.envoy.endpoints import Discovery, discover, endpoint_port, selected
from meshroute.envoy.locality import Placed, place
from meshroute.envoy.module import lb_policy_config, load_balancing_policy
from meshroute.envoy.options import LB_RUST, Options
from meshroute.envoy.tls import client_tls
from meshroute.extproc import (
    BLACKHOLE_CLUSTER,
    EXTPROC_CLUSTER,
    HEALTH_INTERVAL_MS,
    HEALTH_TIMEOUT_MS,
    HEALTH_UNHEALTHY_THRESHOLD,
    PASSTHROUGH_CLUSTER,
)

# Istio's mesh-wide connectTimeout default (semantics §3.6).
DEFAULT_CONNECT_TIMEOUT = "10s"
# Ring size Istio uses when consistentHash names no algorithm (semantics §3.4).
DEFAULT_RING_SIZE = 1024
# Concurrent ext_proc streams: one per in-flight HTTP request, so Envoy's default of 1024 would
# turn a burst into 500s from the ext_proc cluster's own circuit breaker (envoy-facts Q6h).
EXTPROC_MAX_REQUESTS = 100000
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_H2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})


@dataclass
class Built:
    clusters: list[Json] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def cluster_name(port: int, subset: str | None, host: str) -> str:
    """Istio's cluster name, exactly what ``Decision.cluster`` reports.

    >>> cluster_name(9080, None, "reviews.default.svc.cluster.local")
    'outbound|9080||reviews.default.svc.cluster.local'
    """
    return f"outbound|{port}|{subset or ''}|{host}"


def service_clusters(model: Model, options: Options, hosts: Container[str] | None = None) -> Built:
    """Every (service, port) cluster and every DestinationRule subset cluster; ``hosts``: those of
    these hosts only (after an edit of their DestinationRule: each host's clusters depend on its
    service, its rules and its endpoints alone)."""
    out = Built()
    seen: set[str] = set()
    gateway_namespaces = sorted({gw.namespace for gw in model.gateways.values()})
    # The mesh client's labels: a DestinationRule of its namespace whose workloadSelector they
    # match is the one in force for it (§3.1), as in the mesh views route() answers from.
    labels = tuple(sorted(options.source_labels.items()))
    for svc in model.registry.services:
        if hosts is not None and svc.host not in hosts:
            continue
        # The first entry of a host wins: a ServiceEntry naming a Kubernetes service only
        # decorates it (registry order puts Kubernetes first).
        if svc.host in seen:
            continue
        seen.add(svc.host)
        if svc.is_alias:  # an alias of another service: no cluster of its own (§13)
            continue
        primary = options.source_namespace or svc.namespace
        clients = list(dict.fromkeys([primary, *gateway_namespaces, *model.namespaces]))
        for port in svc.ports:
            own = model.rules.lookup(svc.host, primary, svc.namespace, labels)
            _add(out, svc, port, None, None, rule_policy(own, None, port.number), options)
            done: set[str] = set()
            for ns in clients:
                rule = own if ns == primary else model.rules.lookup(svc.host, ns, svc.namespace)
                for name, subset in (rule.subsets if rule else {}).items():
                    if name in done:
                        continue
                    done.add(name)
                    sub_policy = effective_policy(
                        rule.traffic_policy if rule else None, subset.traffic_policy, port.number
                    )
                    _add(out, svc, port, name, subset.labels, sub_policy, options)
    return out


def _add(
    out: Built,
    svc: Service,
    port: ServicePort,
    subset: str | None,
    labels: Mapping[str, str] | None,
    policy: Policy,
    options: Options,
) -> None:
    name = cluster_name(port.number, subset, svc.host)
    found = discover(svc, port, labels)
    placed, placement_warnings = _placement(svc, port, labels, found, policy, options)
    cluster, warnings = build_cluster(name, svc.host, port, found, policy, options, placed)
    warnings = [*placement_warnings, *warnings]
    if cluster is not None:
        out.clusters.append(cluster)
    for message in dict.fromkeys([*found.warnings, *warnings]):
        out.diagnostics.append(svc.resource.warning("envoy-cluster", (), f"cluster {name}: {message}"))


def _placing(options: Options) -> bool:
    """Whether the clusters carry a locality placement: the mesh client has a locality
    (``--locality``, or its topology labels); Istio does no locality load balancing for a proxy
    without one."""
    return bool(options.client_locality)


def _placement(
    svc: Service,
    port: ServicePort,
    subset_labels: Mapping[str, str] | None,
    found: Discovery,
    policy: Policy,
    options: Options,
) -> tuple[Placed | None, list[str]]:
    """Istio's locality placement of the cluster's endpoints for the mesh client
    (:mod:`meshroute.envoy.locality`); None without a client locality, or for an ORIGINAL_DST
    cluster."""
    if not _placing(options) or not found.lb_endpoints or found.cluster_type == "ORIGINAL_DST":
        return None, []
    where: dict[tuple[str, int], tuple[str, dict[str, str]]] = {}
    for ep in selected(svc.endpoints, subset_labels):
        where.setdefault((ep.address, endpoint_port(ep, port)), (ep.locality, dict(ep.labels)))
    endpoint_localities: list[str] = []
    endpoint_labels: list[dict[str, str]] = []
    for lb_endpoint in found.lb_endpoints:
        socket = lb_endpoint["endpoint"]["address"].get("socket_address") or {}
        loc, ep_labels = where.get((str(socket.get("address")), int(socket.get("port_value") or 0)), ("", {}))
        endpoint_localities.append(loc)
        endpoint_labels.append(ep_labels)
    try:
        placed = place(
            found.lb_endpoints,
            endpoint_localities,
            endpoint_labels,
            policy,
            options.client_locality,
            options.source_labels,
        )
    except ValueError as exc:
        return None, [f"locality load balancing not applied ({exc})"]
    return placed, []


def build_cluster(
    name: str,
    host: str,
    port: ServicePort,
    found: Discovery,
    policy: Policy,
    options: Options,
    placed: Placed | None = None,
) -> tuple[Json | None, list[str]]:
    """One cluster from its discovery and effective policy (§3.2 merging already applied); None
    when its TLS names certificate files that cannot be read (Envoy would reject the whole
    bootstrap): requests routed to it then get 503, as from an Istio proxy whose cluster never
    gets its certificates. ``placed``: the endpoints' locality groups, priorities and weights for
    the mesh client (:func:`_placement`); None: one group, no locality load balancing."""
    warnings: list[str] = []
    pool = _block(policy, "connectionPool")
    tcp, http = _block(pool, "tcp"), _block(pool, "http")
    lb = _block(policy, "loadBalancer")
    cluster: Json = {
        "name": name,
        "type": found.cluster_type,
        "connect_timeout": duration(tcp.get("connectTimeout")) or DEFAULT_CONNECT_TIMEOUT,
    }
    passthrough = found.cluster_type == "ORIGINAL_DST" or str(lb.get("simple", "")).upper() == "PASSTHROUGH"
    if passthrough:
        cluster["type"] = "ORIGINAL_DST"
        cluster.update(_original_dst())
    elif options.lb == LB_RUST:
        if not options.lb_module:
            raise ValueError("--lb rust needs Options.lb_module, the module's path")
        weighted = placed is not None and placed.locality_weighted
        config = lb_policy_config(name, lb, options.lb_seed, locality_weighted=weighted)
        cluster["load_balancing_policy"] = load_balancing_policy(options.lb_module, config)
    else:
        cluster.update(load_balancer(lb))
        if lb.get(LOAD_BALANCER_ANNOTATION):
            warnings.append(
                f"{LOAD_BALANCER_ANNOTATION}: {lb[LOAD_BALANCER_ANNOTATION]} needs the meshroute balancer "
                f"(--lb rust); Envoy's own balancer uses {cluster['lb_policy']}"
            )
        if placed is not None and placed.locality_weighted and not passthrough:
            cluster.setdefault("common_lb_config", {})["locality_weighted_lb_config"] = {}
    if not passthrough:
        groups = [{"lb_endpoints": found.lb_endpoints}]
        if placed is not None:
            groups = [g.to_json() for g in placed.groups]
        cluster["load_assignment"] = {"cluster_name": name, "endpoints": groups}
        if not groups and cluster["type"] == "LOGICAL_DNS":  # every endpoint left out (distribute)
            cluster["type"] = "STATIC"
        if found.dns:
            # Istio resolves IPv4 only unless the mesh is dual-stack, and honours record TTLs.
            cluster["dns_lookup_family"] = "V4_ONLY"
            cluster["respect_dns_ttl"] = True
    cluster["circuit_breakers"] = circuit_breakers(tcp, http, _block(policy, "retryBudget"))
    keepalive = _keepalive(_block(tcp, "tcpKeepalive"))
    if keepalive:
        cluster["upstream_connection_options"] = {"tcp_keepalive": keepalive}
    tls = client_tls(_block(policy, "tls") or None, host, options.system_ca)
    if tls.missing:
        return None, [*warnings, f"{tls.warning}; the cluster is left out (requests to it get 503)"]
    if tls.warning:
        warnings.append(tls.warning)
    if tls.socket:
        cluster["transport_socket"] = tls.socket
    protocol = http_protocol_options(port, tcp, http, auto_sni=tls.socket is not None and tls.auto_sni)
    if protocol:
        cluster["typed_extension_protocol_options"] = {_HTTP_OPTIONS: protocol}
    outlier = _block(policy, "outlierDetection")
    if "outlierDetection" in policy:
        cluster["outlier_detection"] = outlier_detection(outlier)
        # Istio always sets the panic threshold with outlier detection: minHealthPercent, whose
        # unset value 0 disables panic mode (Envoy's own default would be 50%).
        min_health = float(_int(outlier.get("minHealthPercent")) or 0)
        if options.lb != LB_RUST:
            cluster.setdefault("common_lb_config", {})["healthy_panic_threshold"] = {"value": min_health}
        elif min_health > 0 and not passthrough:
            # The module can only answer a healthy host (Envoy's choose_host contract).
            warnings.append("outlierDetection.minHealthPercent (panic mode) is not applied by --lb rust")
    if "tunnel" in policy or "proxyProtocol" in policy:
        warnings.append("tunnel / proxyProtocol settings are not translated")
    return cluster, warnings


def _original_dst() -> Json:
    # The listener's own address is not the destination here (clients talk to Envoy directly), so
    # the host comes from x-envoy-original-dst-host, which serve sets or removes (docs/envoy.md);
    # without it Envoy answers 503 UH rather than looping back to itself.
    return {"lb_policy": "CLUSTER_PROVIDED", "original_dst_lb_config": {"use_http_header": True}}


def _block(parent: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():  # int64/uint32 wrappers may be strings
        return int(value)
    return None


def load_balancer(lb: Mapping[str, Any]) -> Json:
    """``lb_policy`` and its config: Istio's default is LEAST_REQUEST; consistentHash becomes
    RING_HASH (or MAGLEV); the hash key itself comes from the route's hash_policy (serve sets
    ``x-meshroute-hash``)."""
    ch = lb.get("consistentHash")
    if isinstance(ch, Mapping):
        maglev = ch.get("maglev")
        if isinstance(maglev, Mapping):
            out: Json = {"lb_policy": "MAGLEV"}
            size = _int(maglev.get("tableSize"))
            if size:
                out["maglev_lb_config"] = {"table_size": size}
            return out
        ring = ch.get("ringHash")
        size = _int(ring.get("minimumRingSize")) if isinstance(ring, Mapping) else None
        size = size or _int(ch.get("minimumRingSize")) or DEFAULT_RING_SIZE
        return {"lb_policy": "RING_HASH", "ring_hash_lb_config": {"minimum_ring_size": size}}
    simple = str(lb.get("simple", "UNSPECIFIED")).upper()
    policy = {"ROUND_ROBIN": "ROUND_ROBIN", "RANDOM": "RANDOM"}.get(simple, "LEAST_REQUEST")
    result: Json = {"lb_policy": policy}
    slow = _slow_start(lb)
    if slow and policy == "ROUND_ROBIN":
        result["round_robin_lb_config"] = {"slow_start_config": slow}
    elif slow and policy == "LEAST_REQUEST":
        result["least_request_lb_config"] = {"slow_start_config": slow}
    return result


def _slow_start(lb: Mapping[str, Any]) -> Json | None:
    warmup = lb.get("warmup")
    window = None
    out: Json = {}
    if isinstance(warmup, Mapping):
        window = duration(warmup.get("duration"))
        if warmup.get("minimumPercent") is not None:
            out["min_weight_percent"] = {"value": float(warmup["minimumPercent"])}
        if warmup.get("aggression") is not None:
            out["aggression"] = {
                "default_value": float(warmup["aggression"]),
                "runtime_key": "upstream.slow_start_aggression",
            }
    elif lb.get("warmupDurationSecs") is not None:
        window = duration(lb["warmupDurationSecs"])
    if not window:
        return None
    return {"slow_start_window": window, **out}


def circuit_breakers(tcp: Mapping[str, Any], http: Mapping[str, Any], budget: Mapping[str, Any]) -> Json:
    """connectionPool limits; 0 or unset means Istio's "unlimited" 2^32-1 (Envoy's own defaults,
    e.g. 3 concurrent retries, are overridden as Istio does)."""

    def limit(value: Any) -> int:
        return _int(value) or UNLIMITED

    threshold: Json = {
        "max_connections": limit(tcp.get("maxConnections")),
        "max_pending_requests": limit(http.get("http1MaxPendingRequests")),
        "max_requests": limit(http.get("http2MaxRequests")),
        "max_retries": limit(http.get("maxRetries")),
        "track_remaining": True,
    }
    if budget:
        retry_budget: Json = {"budget_percent": {"value": float(budget.get("percent", 20))}}
        retry_budget["min_retry_concurrency"] = _int(budget.get("minRetryConcurrency")) or 3
        threshold["retry_budget"] = retry_budget
    return {"thresholds": [threshold]}


def _keepalive(ka: Mapping[str, Any]) -> Json:
    out: Json = {}
    if _int(ka.get("probes")):
        out["keepalive_probes"] = _int(ka["probes"])
    for field_name, key in (("time", "keepalive_time"), ("interval", "keepalive_interval")):
        text = duration(ka.get(field_name))
        if text:
            out[key] = max(1, int(float(text[:-1])))  # uint32 seconds
    return out


def http_protocol_options(
    port: ServicePort, tcp: Mapping[str, Any], http: Mapping[str, Any], *, auto_sni: bool = False
) -> Json | None:
    """HttpProtocolOptions when anything differs from Envoy's HTTP/1.1 defaults: requests per
    connection, idle timeout (``http.idleTimeout``, else ``tcp.idleTimeout``), connection
    lifetime, HTTP/2 for HTTP2/GRPC ports or ``h2UpgradePolicy: UPGRADE``, client protocol."""
    common: Json = {}
    per_conn = _int(http.get("maxRequestsPerConnection"))
    if per_conn:
        common["max_requests_per_connection"] = per_conn
    idle = duration(http.get("idleTimeout")) or duration(tcp.get("idleTimeout"))
    if idle:
        common["idle_timeout"] = idle
    lifetime = duration(tcp.get("maxConnectionDuration"))
    if lifetime:
        common["max_connection_duration"] = lifetime
    h2 = port.protocol in _H2_PROTOCOLS or str(http.get("h2UpgradePolicy", "")).upper() == "UPGRADE"
    client_protocol = http.get("useClientProtocol") is True
    if not (common or h2 or client_protocol or auto_sni):
        return None
    h2_options: Json = {}
    streams = _int(http.get("maxConcurrentStreams"))
    if streams:
        h2_options["max_concurrent_streams"] = streams
    out: Json = {}
    if client_protocol:
        out["use_downstream_protocol_config"] = {
            "http_protocol_options": {},
            "http2_protocol_options": h2_options,
        }
    elif h2:
        out["explicit_http_config"] = {"http2_protocol_options": h2_options}
    else:
        out["explicit_http_config"] = {"http_protocol_options": {}}
    if common:
        out["common_http_protocol_options"] = common
    if auto_sni:
        out["upstream_http_protocol_options"] = {"auto_sni": True, "auto_san_validation": True}
    return typed(_HTTP_OPTIONS, **out)


def outlier_detection(od: Mapping[str, Any]) -> Json:
    """Istio's translation (``applyOutlierDetection``): success-rate ejection off; a set
    consecutive-errors threshold is enforced 100% (0 disables it); the rest only when set."""
    out: Json = {"enforcing_success_rate": 0}
    for field_name, count, enforcing in (
        ("consecutive5xxErrors", "consecutive_5xx", "enforcing_consecutive_5xx"),
        ("consecutiveGatewayErrors", "consecutive_gateway_failure", "enforcing_consecutive_gateway_failure"),
    ):
        value = _int(od.get(field_name))
        if value is not None:
            out[count] = value
            out[enforcing] = 100 if value > 0 else 0
    for field_name, key in (("interval", "interval"), ("baseEjectionTime", "base_ejection_time")):
        text = duration(od.get(field_name))
        if text:
            out[key] = text
    max_percent = _int(od.get("maxEjectionPercent"))
    if max_percent:
        out["max_ejection_percent"] = max_percent
    if od.get("splitExternalLocalOriginErrors") is True:
        out["split_external_local_origin_errors"] = True
        local = _int(od.get("consecutiveLocalOriginFailures"))
        if local:
            out["consecutive_local_origin_failure"] = local
            out["enforcing_consecutive_local_origin_failure"] = 100
        out["enforcing_local_origin_success_rate"] = 0
    return out


def extproc_cluster(addresses: list[str] | tuple[str, ...]) -> Json:
    """``meshroute_extproc``: HTTP/2 (gRPC), one endpoint per serve worker (``unix:`` → pipe,
    ``HOST:PORT`` → socket address; a host name makes it a STRICT_DNS cluster)."""
    endpoints: list[Json] = []
    dns = False
    for addr in addresses:
        if pipe_path(addr) is not None:
            endpoints.append({"endpoint": {"address": endpoint_address(addr, 0)}})
            continue
        host, _, port = addr.rpartition(":")
        host = host.strip("[]")
        dns = dns or not is_ip(host)
        endpoints.append({"endpoint": {"address": endpoint_address(host, int(port))}})
    return {
        "name": EXTPROC_CLUSTER,
        "type": "STRICT_DNS" if dns else "STATIC",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {"cluster_name": EXTPROC_CLUSTER, "endpoints": [{"lb_endpoints": endpoints}]},
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: typed(_HTTP_OPTIONS, explicit_http_config={"http2_protocol_options": {}})
        },
        "health_checks": [extproc_health_check()],
        "circuit_breakers": {
            "thresholds": [
                {
                    "max_connections": EXTPROC_MAX_REQUESTS,
                    "max_pending_requests": EXTPROC_MAX_REQUESTS,
                    "max_requests": EXTPROC_MAX_REQUESTS,
                }
            ]
        },
    }


def extproc_health_check() -> Json:
    """gRPC health checks of every serve worker (docs/envoy.md "Health checks")."""
    interval = duration(f"{HEALTH_INTERVAL_MS}ms")
    return {
        "timeout": duration(f"{HEALTH_TIMEOUT_MS}ms"),
        "interval": interval,
        "no_traffic_interval": interval,
        "unhealthy_threshold": HEALTH_UNHEALTHY_THRESHOLD,
        "healthy_threshold": 1,
        "grpc_health_check": {},
    }


def builtin_clusters() -> Iterator[Json]:
    """The two clusters the router names for unknown hosts (sidecar ALLOW_ANY / REGISTRY_ONLY)."""
    yield {
        "name": PASSTHROUGH_CLUSTER,
        "type": "ORIGINAL_DST",
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        **_original_dst(),
        "circuit_breakers": circuit_breakers({}, {}, {}),
    }
    # No endpoints: 503 if ever reached (serve answers blackholed requests itself with 502).
    yield {
        "name": BLACKHOLE_CLUSTER,
        "type": "STATIC",
        "connect_timeout": DEFAULT_CONNECT_TIMEOUT,
        "load_assignment": {"cluster_name": BLACKHOLE_CLUSTER, "endpoints": []},
    }
