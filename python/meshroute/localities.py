"""Endpoint localities (``region/zone/subzone``) as Istio reads them, from the resources of a config.

The registry (:mod:`meshroute.config.registry`) keeps each endpoint's address, ports and labels,
not its locality, so :class:`Localities` reads it back from the resources: a WorkloadEntry's (or a
ServiceEntry endpoint's) ``locality``, else its ``istio-locality`` label, else its topology labels
(``topology.kubernetes.io/region``, ``…/zone``, ``topology.istio.io/subzone``); for a Kubernetes
address, the topology labels of the ``Node`` it runs on (``nodeName``), else its EndpointSlice
``zone``. Envoy-free: the proxyless client reports it per endpoint (:mod:`meshroute.client`).

>>> from meshroute.config.load import load_text
>>> from meshroute.config.registry import build_registry
>>> res = load_text('''
... apiVersion: networking.istio.io/v1
... kind: ServiceEntry
... metadata: {name: e, namespace: a}
... spec:
...   hosts: [e.test]
...   resolution: STATIC
...   ports: [{number: 80, name: http}]
...   endpoints: [{address: 10.0.0.1, locality: eu-west/z1}, {address: 10.0.0.2}]
... ''', "x.yaml").resources
>>> svc = build_registry(res).lookup("e.test")
>>> [Localities(res).of(svc, ep) for ep in svc.endpoints]
['eu-west/z1', '']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from meshroute.config.load import Resource
from meshroute.config.registry import Endpoint, Service
from meshroute.config.validate.fields import normalize_spec

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
LOCALITY_LABEL = "istio-locality"  # "region.zone.subzone" (Istio's older label)

_Key = tuple[str, str, frozenset[tuple[str, str]]]


def label_locality(labels: Mapping[str, str]) -> str:
    """``region/zone/subzone`` from a workload's or a node's labels; "" when none is set.

    >>> label_locality({"topology.kubernetes.io/region": "eu", "topology.kubernetes.io/zone": "z1"})
    'eu/z1'
    >>> label_locality({"istio-locality": "us.a.b"}), label_locality({})
    ('us/a/b', '')
    """
    if labels.get(LOCALITY_LABEL):
        return labels[LOCALITY_LABEL].replace(".", "/")
    parts = [labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, ""), labels.get(SUBZONE_LABEL, "")]
    while parts and not parts[-1]:
        parts.pop()
    return "/".join(parts)


class Localities:
    """The locality of every endpoint a config describes (see the module docstring)."""

    def __init__(self, resources: Iterable[Resource] = ()) -> None:
        resources = list(resources)
        # (namespace, address, labels) of a WorkloadEntry; ("ns/name" of a ServiceEntry, address,
        # labels) of one of its own endpoints. A namespace never holds "/", so the two can't clash.
        self._entries: dict[_Key, str] = {}
        # (namespace, Kubernetes service name, address).
        self._k8s: dict[tuple[str, str, str], str] = {}
        nodes = {
            res.name: _labels(res.metadata.get("labels"))
            for res in resources
            if res.kind == "Node" and res.api_version == "v1"
        }
        for res in resources:
            if res.is_istio and res.kind == "WorkloadEntry":
                self._entry(res.namespace, normalize_spec(res.kind, res.spec))
            elif res.is_istio and res.kind == "ServiceEntry":
                spec = normalize_spec(res.kind, res.spec)
                raw = spec.get("endpoints") if isinstance(spec, dict) else None
                for item in raw if isinstance(raw, list) else []:
                    self._entry(f"{res.namespace}/{res.name}", item)
            elif res.kind in ("Endpoints", "EndpointSlice"):
                self._kubernetes(res, nodes)

    def of(self, svc: Service, ep: Endpoint) -> str:
        """The locality of ``ep``, one of ``svc``'s endpoints; "" when the config says none."""
        labels = frozenset(ep.labels.items())
        res = svc.resource
        if svc.origin == "ServiceEntry" and not svc.selector:
            return self._entries.get((f"{res.namespace}/{res.name}", ep.address, labels), "")
        found = self._entries.get((svc.namespace, ep.address, labels))
        if found is None and svc.origin == "Kubernetes":
            found = self._k8s.get((svc.namespace, res.name, ep.address))
        return found or label_locality(ep.labels)

    def _entry(self, scope: str, raw: Any) -> None:
        if not isinstance(raw, dict):
            return
        labels = _labels(raw.get("labels"))
        locality = raw.get("locality")
        locality = locality if isinstance(locality, str) and locality else label_locality(labels)
        if locality:
            self._entries.setdefault(
                (scope, str(raw.get("address", "")), frozenset(labels.items())), locality
            )

    def _kubernetes(self, res: Resource, nodes: Mapping[str, Mapping[str, str]]) -> None:
        body = res.document or res.spec
        if not isinstance(body, Mapping):
            return
        items: list[tuple[Any, Any, Any]] = []
        if res.kind == "Endpoints":
            service = res.name
            for group in _list(body.get("subsets")):
                for addr in _list(group.get("addresses") if isinstance(group, Mapping) else None):
                    if isinstance(addr, Mapping):
                        items.append((addr.get("ip"), addr.get("nodeName"), None))
        else:
            service = _labels(res.metadata.get("labels")).get("kubernetes.io/service-name", "")
            for ep in _list(body.get("endpoints")):
                if isinstance(ep, Mapping):
                    items.extend(
                        (addr, ep.get("nodeName"), ep.get("zone")) for addr in _list(ep.get("addresses"))
                    )
        for address, node, zone in items:
            locality = label_locality(nodes.get(str(node), {})) if node else ""
            if not locality and isinstance(zone, str) and zone:
                locality = f"/{zone}"  # the zone alone: region unknown
            if locality and isinstance(address, str):
                self._k8s.setdefault((res.namespace, service, address), locality)


def _labels(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
