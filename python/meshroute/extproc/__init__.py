"""The Envoy ext_proc server (``meshroute serve``); ``docs/envoy.md`` is its contract with Envoy."""

from __future__ import annotations

# The names Envoy's config, serve and the Envoy module share, defined once in the Rust core
# (docs/envoy.md): the headers the catch-all route reads the cluster, the hash key and mirror i's
# cluster from (MAX_MIRRORS request_mirror_policies), where ORIGINAL_DST clusters take their address,
# every control header an answer sets or removes, and Istio's clusters for an unknown host
# (PassthroughCluster for ALLOW_ANY, BlackHoleCluster for REGISTRY_ONLY).
from meshroute._core import (
    BLACKHOLE_CLUSTER,
    CLUSTER_HEADER,
    CONTROL_HEADERS,
    HASH_HEADER,
    MAX_MIRRORS,
    MIRROR_HEADERS,
    ORIGINAL_DST_HEADER,
    PASSTHROUGH_CLUSTER,
)

__all__ = [
    "BLACKHOLE_CLUSTER",
    "CLUSTER_HEADER",
    "CONTROL_HEADERS",
    "EXTPROC_CLUSTER",
    "HASH_HEADER",
    "HEALTH_INTERVAL_MS",
    "HEALTH_TIMEOUT_MS",
    "HEALTH_UNHEALTHY_THRESHOLD",
    "MAX_MIRRORS",
    "MIRROR_HEADERS",
    "ORIGINAL_DST_HEADER",
    "PASSTHROUGH_CLUSTER",
    "addresses",
    "status_paths",
]

EXTPROC_CLUSTER = "meshroute_extproc"
# Envoy's gRPC health checks of the serve workers (envoy-config writes them; a draining worker
# keeps taking new streams until Envoy has seen it NOT_SERVING HEALTH_UNHEALTHY_THRESHOLD times).
HEALTH_INTERVAL_MS = 500
HEALTH_TIMEOUT_MS = 1000
HEALTH_UNHEALTHY_THRESHOLD = 2


def addresses(listen: str, workers: int = 1) -> list[str]:
    """The listen address of each serve worker; envoy-config lists the same ones as endpoints.

    >>> addresses("unix:/tmp/m.sock")
    ['unix:/tmp/m.sock']
    >>> addresses("unix:/tmp/m.sock", 2)
    ['unix:/tmp/m.sock.0', 'unix:/tmp/m.sock.1']
    >>> addresses("127.0.0.1:9000", 2)
    ['127.0.0.1:9000', '127.0.0.1:9001']
    """
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if listen.startswith("unix:"):
        return [listen] if workers == 1 else [f"{listen}.{i}" for i in range(workers)]
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"listen address must be unix:/path or HOST:PORT, got {listen!r}")
    base = int(port)
    if not 0 < base <= 65536 - workers:
        raise ValueError(f"port out of range in {listen!r}")
    return [f"{host}:{base + i}" for i in range(workers)]


def status_paths(status_file: str, workers: int = 1) -> list[str]:
    """Where each serve worker writes ``--status-file``: the path itself for one worker, else
    ``PATH.i`` per worker (as :func:`addresses` numbers sockets).

    >>> status_paths("/tmp/s.json"), status_paths("/tmp/s.json", 2)
    (['/tmp/s.json'], ['/tmp/s.json.0', '/tmp/s.json.1'])
    """
    return [status_file] if workers == 1 else [f"{status_file}.{i}" for i in range(workers)]
