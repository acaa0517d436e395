"""A small Bookinfo made of real HTTP services on 127.0.0.1, each app/version on its own port.

The apps call each other through the mesh: HTTP to 127.0.0.1:<mesh port> with ``Host: <app>:9080``,
which is Envoy's sidecar-style listener in front of ``meshroute serve``. ``workload_entries`` turns
the port plan into Istio WorkloadEntries that the Kubernetes Services of
``data/bookinfo/platform/bookinfo.yaml`` select, so the Envoy config has an endpoint per version.

>>> print(workload_entries({"ratings-v1": 41000}).strip())
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ratings-v1
  namespace: default
spec:
  address: 127.0.0.1
  ports:
    http: 41000
  labels:
    app: ratings
    version: v1
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from meshroute.bookinfo.base import SERVED_BY, AppServer
from meshroute.bookinfo.productpage import productpage_app
from meshroute.bookinfo.services import details_app, ratings_app, reviews_app
from meshroute.procs import LOOPBACK

__all__ = ["APPS", "SERVED_BY", "Bookinfo", "Timeouts", "read_plan", "start_bookinfo", "workload_entries"]

APPS = ("productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1")


@dataclass(frozen=True)
class Timeouts:
    """The apps' client timeouts (Bookinfo's values by default; tests shrink them)."""

    productpage: float = 3.0
    reviews_attempts: int = 2
    ratings: float | None = None  # None: per version, v2 10 s and v3 2.5 s


class Bookinfo:
    """Every Bookinfo app running in this process; ``plan`` maps ``app-version`` to its port."""

    def __init__(self, servers: list[AppServer]) -> None:
        self.servers = servers
        self.plan: dict[str, int] = {s.name: s.port for s in servers}

    def close(self) -> None:
        for server in self.servers:
            server.close()


def start_bookinfo(
    mesh_port: int, ports: Mapping[str, int] | None = None, timeouts: Timeouts = Timeouts()
) -> Bookinfo:
    """Start the six apps (port 0 = the kernel picks, unless ``ports`` names one)."""
    apps = {
        "productpage-v1": productpage_app(mesh_port, timeouts.productpage, timeouts.reviews_attempts),
        "details-v1": details_app(),
        "reviews-v1": reviews_app("v1", mesh_port),
        "reviews-v2": reviews_app("v2", mesh_port, timeouts.ratings),
        "reviews-v3": reviews_app("v3", mesh_port, timeouts.ratings),
        "ratings-v1": ratings_app(),
    }
    servers: list[AppServer] = []
    try:
        for name in APPS:
            servers.append(AppServer(name, apps[name], (ports or {}).get(name, 0)).start())
    except BaseException:
        Bookinfo(servers).close()
        raise
    return Bookinfo(servers)


def write_plan(path: str | os.PathLike[str], mesh_port: int, plan: Mapping[str, int]) -> None:
    """Write the port plan as JSON, atomically (a reader never sees half a file)."""
    tmp = Path(f"{os.fspath(path)}.tmp")
    tmp.write_text(json.dumps({"mesh_port": mesh_port, "ports": dict(plan)}))
    tmp.replace(path)


def read_plan(path: str | os.PathLike[str]) -> dict[str, int]:
    """The ``app-version -> port`` plan written by ``python -m meshroute.bookinfo --ports-file``."""
    data = json.loads(Path(path).read_text())
    return {str(k): int(v) for k, v in data["ports"].items()}


def workload_entries(plan: Mapping[str, int]) -> str:
    """One WorkloadEntry per app/version in ``plan``, labelled like Bookinfo's Deployments."""
    docs = []
    for name, port in plan.items():
        app, _, version = name.rpartition("-")
        docs.append(
            "apiVersion: networking.istio.io/v1\n"
            "kind: WorkloadEntry\n"
            "metadata:\n"
            f"  name: {name}\n"
            "  namespace: default\n"
            "spec:\n"
            f"  address: {LOOPBACK}\n"
            "  ports:\n"
            f"    http: {int(port)}\n"
            "  labels:\n"
            f"    app: {app}\n"
            f"    version: {version}\n"
        )
    return "---\n".join(docs)
