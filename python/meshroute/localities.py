"""Localities (``region/zone/subzone``) from labels, as Istio reads them from a workload's or a
node's topology labels.

The registry (:mod:`meshroute.config.registry`) uses it for each endpoint's ``locality``; the
Envoy options and the proxyless client for the calling workload's own locality. Envoy-free, and
free of the config model, so that both can import it.
"""

from __future__ import annotations

from collections.abc import Mapping

REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
SUBZONE_LABEL = "topology.istio.io/subzone"
LOCALITY_LABEL = "istio-locality"  # "region.zone.subzone" (Istio's older label)


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
