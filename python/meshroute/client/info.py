"""What a response says about where its request went: ``response.extensions["meshroute"]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeshRoute:
    """Where a request went, set on every response of :class:`~meshroute.client.MeshTransport`
    as ``response.extensions["meshroute"]``.

    - ``outcome``: the decision's outcome — ``route``, ``abort`` (fault), ``redirect``,
      ``direct_response``, ``no_route`` (404), ``no_cluster`` (503, or 502 for an unknown host
      under REGISTRY_ONLY), ``cors_preflight``.
    - ``cluster``: the Istio cluster (``outbound|9080|v2|reviews.default.svc.cluster.local``,
      ``PassthroughCluster``); None for an answer decided without one.
    - ``endpoint``: ``address:port`` of the last attempt; None when no attempt was made.
    - ``locality``: that endpoint's ``region/zone/subzone`` ("" when the config gives none).
    - ``attempts``: requests sent upstream (1 + retries; 0 for a local answer).
    - ``flags``: Envoy's response flags, comma-separated: ``UH`` no healthy upstream, ``UO``
      circuit-breaker overflow, ``UT`` timeout, ``UF`` connect failure, ``UC`` connection reset,
      ``URX`` retries exhausted, ``DI`` fault delay, ``FI`` fault abort, ``NR`` no route, ``NC``
      no cluster; "" for none.
    - ``details``: Envoy's response code details of a local answer (``route_not_found``,
      ``cluster_not_found``, ``direct_response``, ``redirect``, ``upstream_timeout``, …), else None.

    The VirtualService and route names are not part of the decision the client applies (the
    ``exchange`` answer); ``mesh.route()`` gives them for the same request.
    """

    outcome: str
    cluster: str | None = None
    endpoint: str | None = None
    locality: str = ""
    attempts: int = 0
    flags: str = ""
    details: str | None = None
