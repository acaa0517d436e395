"""A large generated route table, written twice: as Istio config and as Envoy's own routes.

``RouteTable(services, routes)`` is ``services`` VirtualServices, one host each
(``svc-<i>.routes.local``), each with ``routes`` HTTP routes that alternate a URI prefix match
(``/r<j>/``) and a header match (``x-route: r<j>``) and send to one of two destination hosts. Every
host is a STATIC ServiceEntry on one endpoint (the benchmark's upstream), so the config is valid
and every route has a cluster. ``envoy_virtual_hosts`` is the same table as an Envoy
``route_config``: one virtual host per VirtualService host, the routes in the same order (Envoy
walks a virtual host's routes linearly; it picks the virtual host by a hash of the domain).
``requests`` are spread over the hosts and land in the second half of each route list, so a
linear walk pays for at least half the routes before it matches.

>>> table = RouteTable(services=2, routes=4)
>>> table.total
8
>>> [(host, path, headers, dest) for host, path, headers, dest in table.requests(2)]
... # doctest: +NORMALIZE_WHITESPACE
[('svc-0.routes.local', '/api/v1/items', {'x-route': 'r3'}, 'bench-b.local'),
 ('svc-0.routes.local', '/r2/items', {}, 'bench-b.local')]
>>> table.envoy_virtual_hosts(lambda host: host)[0]["routes"][3]["match"]
{'prefix': '/', 'headers': [{'name': 'x-route', 'string_match': {'exact': 'r3'}}]}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOST_SUFFIX = "routes.local"
HEADER = "x-route"
PATH = "/api/v1/items"  # header-matched requests: no /r<j>/ prefix, so no prefix route takes them
Probe = tuple[str, str, dict[str, str], str]  # (host, path, headers, destination host)


@dataclass(frozen=True)
class RouteTable:
    services: int = 100
    routes: int = 100  # per VirtualService
    destinations: tuple[str, str] = ("bench-a.local", "bench-b.local")
    port: int = 80

    @classmethod
    def of_size(cls, total: int, **kwargs: Any) -> RouteTable:
        """About ``total`` routes as √total VirtualServices of √total routes (10 000: 100 × 100).

        >>> RouteTable.of_size(10_000).services, RouteTable.of_size(500).routes
        (100, 23)
        """
        services = max(1, math.isqrt(total))
        return cls(services=services, routes=max(1, math.ceil(total / services)), **kwargs)

    @property
    def total(self) -> int:
        return self.services * self.routes

    def host(self, i: int) -> str:
        return f"svc-{i}.{HOST_SUFFIX}"

    def destination(self, j: int) -> str:
        """Route j's destination: both match kinds reach both destinations."""
        return self.destinations[(j // 2) % 2]

    # --- Istio ----------------------------------------------------------------------------------

    def istio_docs(
        self, address: str, endpoint_port: int, namespace: str = "default"
    ) -> list[dict[str, Any]]:
        """ServiceEntries (the destinations, the VirtualService hosts) on ``address:endpoint_port``
        and the VirtualServices."""

        def entry(name: str, hosts: list[str]) -> dict[str, Any]:
            return {
                "apiVersion": "networking.istio.io/v1",
                "kind": "ServiceEntry",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "hosts": hosts,
                    "ports": [{"number": self.port, "name": "http", "protocol": "HTTP"}],
                    "location": "MESH_INTERNAL",
                    "resolution": "STATIC",
                    "endpoints": [{"address": address, "ports": {"http": endpoint_port}}],
                },
            }

        docs = [entry("routes-destinations", list(self.destinations))]
        docs.append(entry("routes-hosts", [self.host(i) for i in range(self.services)]))
        for i in range(self.services):
            http = [
                {
                    "name": f"r{j}",
                    "match": [self._istio_match(j)],
                    "route": [{"destination": {"host": self.destination(j), "port": {"number": self.port}}}],
                }
                for j in range(self.routes)
            ]
            docs.append(
                {
                    "apiVersion": "networking.istio.io/v1",
                    "kind": "VirtualService",
                    "metadata": {"name": f"svc-{i}", "namespace": namespace},
                    "spec": {"hosts": [self.host(i)], "http": http},
                }
            )
        return docs

    @staticmethod
    def _istio_match(j: int) -> dict[str, Any]:
        if j % 2 == 0:
            return {"uri": {"prefix": f"/r{j}/"}}
        return {"headers": {HEADER: {"exact": f"r{j}"}}}

    # --- Envoy ----------------------------------------------------------------------------------

    def envoy_virtual_hosts(self, cluster: Callable[[str], str]) -> list[dict[str, Any]]:
        """The same routes as Envoy ``virtual_hosts``; ``cluster(destination host)`` names the
        cluster of a destination."""
        return [
            {
                "name": self.host(i),
                "domains": [self.host(i)],
                "routes": [
                    {"match": self._envoy_match(j), "route": {"cluster": cluster(self.destination(j))}}
                    for j in range(self.routes)
                ],
            }
            for i in range(self.services)
        ]

    @staticmethod
    def _envoy_match(j: int) -> dict[str, Any]:
        if j % 2 == 0:
            return {"prefix": f"/r{j}/"}
        return {"prefix": "/", "headers": [{"name": HEADER, "string_match": {"exact": f"r{j}"}}]}

    # --- requests -------------------------------------------------------------------------------

    def request(self, i: int, j: int) -> Probe:
        """The request route j of host i takes (and no route before it)."""
        if j % 2 == 0:
            return self.host(i), f"/r{j}/items", {}, self.destination(j)
        return self.host(i), PATH, {HEADER: f"r{j}"}, self.destination(j)

    def requests(self, count: int = 64) -> list[Probe]:
        """``count`` distinct requests (at most hosts × routes/2), evenly spaced over the grid of
        (host, route in the second half of its VirtualService); the first hits the very last route
        of the first host."""
        late = max(1, self.routes // 2)
        cells = self.services * late
        out = []
        for k in range(min(count, cells)):
            g = k * cells // min(count, cells)
            out.append(self.request(g % self.services, self.routes - 1 - g // self.services))
        return out
