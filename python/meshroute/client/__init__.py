"""A proxyless Istio client for Python: httpx transports that route every request as the Istio
sidecar of the calling workload would — no Envoy, no sidecar.

>>> import httpx, meshroute
>>> from meshroute.client import MeshTransport
>>> mesh = meshroute.load(meshroute.bookinfo_path())
>>> with httpx.Client(transport=MeshTransport(mesh, source_namespace="default")) as client:
...     response = client.get("http://reviews:9080/reviews/0")   # no reviews endpoint here
>>> response.status_code, response.text, response.extensions["meshroute"].flags
(503, 'no healthy upstream', 'UH')

The decision is the route table's ``exchange`` (the one both Envoy engines apply): the
VirtualService route, rewrites, header operations, timeout, retries, fault delay and abort,
mirrors, the consistent-hash key, local answers. The client then does what Envoy's router does
with it, with the DestinationRule of the chosen cluster decided in Rust (``meshroute-lb``): the
endpoint pick (LEAST_REQUEST, ROUND_ROBIN, RANDOM, ring hash, Maglev) over Envoy's priorities and
localities as Istio places them for the calling workload (``localityLbSetting``), slow start,
circuit breaking and outlier ejection. ``response.extensions["meshroute"]`` (:class:`MeshRoute`)
says where a request went. Needs the ``client`` extra (``pip install "meshroute[client]"``:
httpx); ``docs/client.md``.
"""

from __future__ import annotations

try:
    import httpx as _httpx  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        "meshroute.client needs the 'client' extra: pip install \"meshroute[client]\""
        f" (no module {exc.name!r})"
    ) from exc

from meshroute.client.info import MeshRoute
from meshroute.client.transport import AsyncMeshTransport, MeshTransport

__all__ = ["AsyncMeshTransport", "MeshRoute", "MeshTransport"]
