"""The configs the benchmark runs: plain Envoy bootstraps (the upstream, Envoy alone, Envoy's own
routing of a generated route table) and the Istio config for meshroute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from meshroute.envoy.common import envoy_yaml

from .routes import RouteTable

LOOPBACK = "127.0.0.1"
HOST = "bench-a.local"  # the Host every request carries
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def _addr(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _bootstrap(admin_port: int, listener_port: int, name: str, route: dict[str, Any]) -> dict[str, Any]:
    vhost = {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, **route}]}
    return _bootstrap_vhosts(admin_port, listener_port, name, [vhost])


def _bootstrap_vhosts(
    admin_port: int, listener_port: int, name: str, virtual_hosts: list[dict[str, Any]]
) -> dict[str, Any]:
    """One HTTP listener (router only, no access log) with these virtual hosts."""
    return {
        "admin": {"address": _addr(admin_port)},
        "static_resources": {
            "listeners": [
                {
                    "name": name,
                    "address": _addr(listener_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM,
                                        "stat_prefix": name,
                                        "codec_type": "AUTO",
                                        "route_config": {"name": name, "virtual_hosts": virtual_hosts},
                                        "http_filters": [ROUTER],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [],
        },
    }


def upstream_bootstrap(admin_port: int, port: int) -> dict[str, Any]:
    """The shared upstream: answers every request with 200 ``ok`` itself (``direct_response``)."""
    return _bootstrap(
        admin_port, port, "upstream", {"direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
    )


def plain_front_bootstrap(admin_port: int, port: int, upstream_port: int) -> dict[str, Any]:
    """``envoy-alone``: ``prefix: /`` → the upstream cluster; no ext_proc, no other filter."""
    cfg = _bootstrap(admin_port, port, "front", {"route": {"cluster": "upstream"}})
    cfg["static_resources"]["clusters"] = [_static_cluster("upstream", upstream_port)]
    return cfg


def native_routes_bootstrap(
    admin_port: int, port: int, upstream_port: int, table: RouteTable
) -> dict[str, Any]:
    """Envoy routing ``table`` itself: one virtual host per VirtualService host, the same routes in
    the same order, to clusters named as meshroute names them (all on the upstream); no filter
    but the router."""
    vhosts = table.envoy_virtual_hosts(cluster_name)
    cfg = _bootstrap_vhosts(admin_port, port, "front", vhosts)
    clusters = sorted({cluster_name(d) for d in table.destinations})
    cfg["static_resources"]["clusters"] = [_static_cluster(c, upstream_port) for c in clusters]
    return cfg


def cluster_name(host: str, port: int = 80) -> str:
    """meshroute's (Istio's) name for the cluster of a service port.

    >>> cluster_name("bench-a.local")
    'outbound|80||bench-a.local'
    """
    return f"outbound|{port}||{host}"


def _static_cluster(name: str, upstream_port: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _addr(upstream_port)}}]}],
        },
    }


def istio_config(upstream_port: int) -> str:
    """Two ServiceEntries on the upstream and a VirtualService that must really match.

    Requests alternate between the header route (``x-variant: b`` → bench-b, first rule) and the
    catch-all (→ bench-a, after a header and a prefix rule that do not match).
    """
    entries = "".join(
        f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{{address: {LOOPBACK}, ports: {{http: {upstream_port}}}}}]
"""
        for name in ("bench-a", "bench-b")
    )
    return (
        entries
        + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench, namespace: default}
spec:
  hosts: [bench-a.local]
  http:
  - name: variant-b
    match: [{headers: {x-variant: {exact: b}}}]
    route: [{destination: {host: bench-b.local, port: {number: 80}}}]
  - name: api-v2
    match: [{uri: {prefix: /api/v2/}}]
    route: [{destination: {host: bench-b.local}}]
  - name: default
    route: [{destination: {host: bench-a.local}}]
"""
    )


# Which upstream cluster each of the two alternating requests must reach through meshroute.
EXPECTED_CLUSTERS = (cluster_name("bench-a.local"), cluster_name("bench-b.local"))


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(envoy_yaml(data))
    return path


def write_routes_istio(path: Path, table: RouteTable, upstream_port: int) -> Path:
    """``table`` as Istio config, every host a STATIC ServiceEntry on the upstream."""
    path.write_text(yaml.safe_dump_all(table.istio_docs(LOOPBACK, upstream_port), sort_keys=False))
    return path
