"""The embedded engine: the meshroute decision inside Envoy, as a dynamic module.

``rust/meshroute-envoy`` builds ``libmeshroute_envoy.so``, an HTTP filter Envoy 1.40 ``dlopen``s.
It sits where ext_proc sits in every HTTP listener's chain (docs/envoy.md, "Engines") and sets the
same request headers serve sets. Its config is not in the listener: each listener names a
``TypedExtensionConfig`` (``meshroute-mesh``, ``meshroute-gateway-<port>``) that Envoy reads by
extension config discovery (ECDS) from ``ecds-<name>.yaml`` in the files directory, so a new route
table reaches Envoy without touching the listener. The ``filter_config`` is a ``StringValue``
holding JSON::

    {"table": "/abs/dir/ir-7.json", "patches": ["/abs/dir/patch-7-1.json"],
     "listener": {"gateway_port": 8080 | null, "source_namespace": "ns" | null,
                  "source_labels": {"k": "v"}},
     "seed": null | int}

``table`` is the IR JSON file :mod:`meshroute.envoy.live` writes (a new name per generation);
``patches`` (absent = none) the IR patches of edits compiled alone since, applied in order;
``listener`` is the client context ext_proc gets as gRPC metadata; a gateway listener of one
gateway proxy (``Options.gateway_workload``) has the proxy's ``source_namespace`` and
``source_labels`` (docs/envoy.md, "One gateway workload").

The same library is also a load-balancing policy (``--lb rust``, docs/envoy.md "Load balancing in
Rust"): a service cluster's ``load_balancing_policy`` names ``envoy.load_balancing_policies.
dynamic_modules`` with ``lb_policy_name: meshroute`` and the cluster's effective DestinationRule
``loadBalancer`` as JSON (:func:`lb_policy_config`), and meshroute-lb picks its endpoints inside
Envoy instead of Envoy's own balancers.

Nothing here imports grpc or the ``envoy`` wheel: ``meshroute.envoy_module_path()`` is cheap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from meshroute.config.validate.destination_rule import LOAD_BALANCER_ANNOTATION
from meshroute.envoy.common import TYPE_PREFIX, Json, duration, typed
from meshroute.envoy.options import Options
from meshroute.extproc import HASH_HEADER  # the consistent-hash key the route hashes (Rust core)

MODULE_FILE = "libmeshroute_envoy.so"
FILTER_TYPE = "envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter"
# ``filter_name`` handed to the module's ``http_filter_config_new``.
MODULE_FILTER_NAME = "meshroute"
MESH_FILTER = "meshroute-mesh"
GATEWAY_FILTER_PREFIX = "meshroute-gateway-"
ROUTE_FILTER_CONFIG = "envoy.config.route.v3.FilterConfig"
LB_EXTENSION = "envoy.load_balancing_policies.dynamic_modules"
LB_POLICY_TYPE = (
    "envoy.extensions.load_balancing_policies.dynamic_modules.v3.DynamicModulesLoadBalancerConfig"
)
# ``lb_policy_name`` the module answers to (meshroute_envoy::lb::LB_POLICY_NAME).
LB_POLICY_NAME = "meshroute"


class ModuleNotBuiltError(FileNotFoundError):
    """``libmeshroute_envoy.so`` is not where the package expects it."""


def packaged_module() -> Path:
    """Where the package keeps the module (``meshroute/_envoy/libmeshroute_envoy.so``)."""
    return Path(__file__).resolve().parent.parent / "_envoy" / MODULE_FILE


def module_path() -> Path:
    """The Envoy dynamic module shipped in the package; :class:`ModuleNotBuiltError` when missing.

    A wheel carries it, as does an editable install (the build backend,
    ``build_backend/meshroute_build.py``, builds and copies it); in a checkout ``make build``
    refreshes it.
    """
    path = packaged_module()
    if not path.is_file():
        raise ModuleNotBuiltError(
            f"the meshroute Envoy module is missing: {path} does not exist. Build it with "
            "`make build`, or `python build_backend/meshroute_build.py` (which runs "
            f"`cargo build --release -p meshroute-envoy` and copies {MODULE_FILE} there)"
        )
    return path


def filter_name(gateway_port: int | None) -> str:
    """The ECDS resource (and HTTP filter) name of a listener context.

    >>> filter_name(None), filter_name(8080)
    ('meshroute-mesh', 'meshroute-gateway-8080')
    """
    return MESH_FILTER if gateway_port is None else f"{GATEWAY_FILTER_PREFIX}{gateway_port}"


def listener_context(name: str, options: Options) -> Json:
    """The ``listener`` part of the module's config for the filter ``name``: the same client
    context ext_proc gets as gRPC metadata (the mesh listener's workload; a Gateway's own port,
    and with ``options.gateway_workload`` the gateway proxy's namespace and labels).

    >>> listener_context("meshroute-gateway-8080", Options())
    {'gateway_port': 8080, 'source_namespace': None, 'source_labels': {}}
    >>> listener_context("meshroute-gateway-80", Options(gateway_workload="workload:gw/istio=in"))
    {'gateway_port': 80, 'source_namespace': 'gw', 'source_labels': {'istio': 'in'}}
    """
    if name == MESH_FILTER:
        return {
            "gateway_port": None,
            "source_namespace": options.source_namespace or None,
            "source_labels": dict(options.source_labels),
        }
    port = name[len(GATEWAY_FILTER_PREFIX) :]
    if not name.startswith(GATEWAY_FILTER_PREFIX) or not port.isdigit():
        raise ValueError(f"not a meshroute filter name: {name!r}")
    proxy = options.gateway_proxy
    if proxy is not None:
        namespace, labels = proxy
        return {"gateway_port": int(port), "source_namespace": namespace, "source_labels": labels}
    return {"gateway_port": int(port), "source_namespace": None, "source_labels": {}}


def ecds_file(files_dir: str | os.PathLike[str], name: str) -> str:
    """The file Envoy watches for the filter ``name``: one resource per file (Envoy 1.40 rejects a
    file holding several with "Unexpected number of resources in ExtensionConfigDS response")."""
    return os.path.join(os.fspath(files_dir), f"ecds-{name}.yaml")


def discovery_filter(name: str, options: Options) -> Json:
    """The HTTP filter entry: the module's config comes from ``ecds-<name>.yaml`` (ECDS)."""
    if not options.files_dir or not os.path.isabs(options.files_dir):
        raise ValueError("the embedded engine needs Options.files_dir, an absolute directory")
    return {
        "name": name,
        "config_discovery": {
            "config_source": {
                "path_config_source": {"path": ecds_file(options.files_dir, name)},
                "resource_api_version": "V3",
            },
            "type_urls": [TYPE_PREFIX + FILTER_TYPE],
        },
    }


def disabled_on_route() -> Json:
    """``typed_per_filter_config`` value that turns the filter off on one route (httpsRedirect)."""
    return typed(ROUTE_FILTER_CONFIG, disabled=True)


def filter_config_json(table: str, listener: Json, seed: int | None, patches: Iterable[str] = ()) -> str:
    """The module's ``filter_config`` JSON text (keys sorted: equal configs are equal bytes).
    ``patches``: IR patch files the module applies to ``table``, in order (docs/ir.md "Patch").

    >>> text = filter_config_json("/d/ir-1.json", listener_context("meshroute-gateway-80", Options()), 7)
    >>> json.loads(text) == {"table": "/d/ir-1.json", "seed": 7,
    ...     "listener": {"gateway_port": 80, "source_namespace": None, "source_labels": {}}}
    True
    >>> json.loads(filter_config_json("/d/ir-1.json", {}, None, ["/d/patch-1-1.json"]))["patches"]
    ['/d/patch-1-1.json']
    """
    config: Json = {"table": table, "listener": listener, "seed": seed}
    patches = list(patches)
    if patches:
        config["patches"] = patches
    return json.dumps(config, sort_keys=True)


def extension_config(name: str, module: str | os.PathLike[str], config_json: str) -> Json:
    """The ``TypedExtensionConfig`` resource of ``ecds-<name>.yaml``."""
    return typed(
        "envoy.config.core.v3.TypedExtensionConfig",
        name=name,
        typed_config=typed(
            FILTER_TYPE,
            dynamic_module_config={"module": {"local": {"filename": os.fspath(module)}}},
            filter_name=MODULE_FILTER_NAME,
            filter_config=typed("google.protobuf.StringValue", value=config_json),
        ),
    )


def filter_names(listeners: Iterable[Json]) -> list[str]:
    """The ECDS names the listeners' HTTP filter chains reference, in first-use order."""
    names: dict[str, None] = {}
    for hcm in _connection_managers(listeners):
        for entry in hcm.get("http_filters", []):
            if "config_discovery" in entry:
                names[entry["name"]] = None
    return list(names)


def _connection_managers(listeners: Iterable[Json]) -> Iterator[dict[str, Any]]:
    for listener in listeners:
        for chain in listener.get("filter_chains", []):
            for network_filter in chain.get("filters", []):
                if network_filter.get("name") == "envoy.filters.network.http_connection_manager":
                    yield network_filter["typed_config"]


def lb_policy_config(
    cluster: str, lb: Mapping[str, Any], seed: int | None = None, *, locality_weighted: bool = False
) -> dict[str, Any]:
    """The module's ``lb_policy_config`` for a cluster whose effective DestinationRule
    ``loadBalancer`` is ``lb`` (PASSTHROUGH clusters stay ORIGINAL_DST and never get here):
    Istio's default LEAST_REQUEST, ROUND_ROBIN, RANDOM, or a consistent hash (ring hash, default
    minimum ring size 1024, or Maglev) on what the rule hashes. The hash itself is Envoy's, from
    the route's ``hash_policy`` (the ``x-meshroute-hash`` header); ``hash_header`` names that
    header for a route without one. PEAK_EWMA when the DestinationRule's annotation
    ``meshroute.io/load-balancer`` put it in ``lb`` (:func:`meshroute.config.policy.with_load_balancer`).
    ``warmup`` (or ``warmupDurationSecs``) becomes the module's slow start, ROUND_ROBIN and
    LEAST_REQUEST only, as Envoy's; ``locality_weighted`` (the cluster's endpoints carry Istio's
    locality weights, :mod:`meshroute.envoy.locality`) the module's ``locality_weighted``.

    >>> lb_policy_config("c", {"simple": "ROUND_ROBIN", "warmup": {"duration": "30s", "aggression": 2}},
    ...     locality_weighted=True)  # doctest: +NORMALIZE_WHITESPACE
    {'cluster': 'c', 'policy': 'ROUND_ROBIN', 'warmup': {'duration_ms': 30000, 'aggression': 2.0},
     'locality_weighted': True}
    >>> lb_policy_config("c", {"simple": "ROUND_ROBIN"})
    {'cluster': 'c', 'policy': 'ROUND_ROBIN'}
    >>> lb_policy_config("c", {"simple": "ROUND_ROBIN", "meshroute.io/load-balancer": "PEAK_EWMA"})
    {'cluster': 'c', 'policy': 'PEAK_EWMA'}
    >>> lb_policy_config("c", {"consistentHash": {"httpHeaderName": "end-user", "maglev": {}}}, seed=3)
    ... # doctest: +NORMALIZE_WHITESPACE
    {'cluster': 'c', 'policy': 'MAGLEV', 'hash': {'header': 'end-user'},
     'hash_header': 'x-meshroute-hash', 'seed': 3}
    """
    out: dict[str, Any] = {"cluster": cluster}
    ch = lb.get("consistentHash")
    if isinstance(ch, Mapping):
        maglev, ring = ch.get("maglev"), ch.get("ringHash")
        if isinstance(maglev, Mapping):
            out["policy"] = "MAGLEV"
            size = _positive_int(maglev.get("tableSize"))
            if size:
                out["table_size"] = size
        else:
            out["policy"] = "RING_HASH"
            size = _positive_int(ring.get("minimumRingSize")) if isinstance(ring, Mapping) else None
            out["minimum_ring_size"] = size or _positive_int(ch.get("minimumRingSize")) or 1024
        source = _hash_source(ch)
        if source:
            out["hash"] = source
        out["hash_header"] = HASH_HEADER
    else:
        simple = str(lb.get("simple", "UNSPECIFIED")).upper()
        out["policy"] = {"ROUND_ROBIN": "ROUND_ROBIN", "RANDOM": "RANDOM"}.get(simple, "LEAST_REQUEST")
        if lb.get(LOAD_BALANCER_ANNOTATION) == "PEAK_EWMA":
            out["policy"] = "PEAK_EWMA"
        warmup = _warmup(lb)
        if warmup and out["policy"] in ("ROUND_ROBIN", "LEAST_REQUEST"):
            out["warmup"] = warmup
    if locality_weighted:
        out["locality_weighted"] = True
    if seed is not None:
        out["seed"] = seed
    return out


def _warmup(lb: Mapping[str, Any]) -> dict[str, Any] | None:
    """The module's ``warmup`` from Istio's ``warmup`` (``duration``, ``minimumPercent``,
    ``aggression``) or ``warmupDurationSecs``; None when unset or zero."""
    warmup = lb.get("warmup")
    out: dict[str, Any] = {}
    if isinstance(warmup, Mapping):
        window = duration(warmup.get("duration"))
        if warmup.get("aggression") is not None:
            out["aggression"] = float(warmup["aggression"])
        if warmup.get("minimumPercent") is not None:
            out["min_weight_percent"] = float(warmup["minimumPercent"])
    else:
        window = duration(lb.get("warmupDurationSecs"))
    millis = round(float(window[:-1]) * 1000) if window else 0
    if millis <= 0:
        return None
    return {"duration_ms": millis, **out}


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():  # int64/uint32 wrappers may be strings
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _hash_source(ch: Mapping[str, Any]) -> dict[str, Any] | None:
    cookie = ch.get("httpCookie")
    if isinstance(ch.get("httpHeaderName"), str):
        return {"header": ch["httpHeaderName"]}
    if isinstance(cookie, Mapping) and isinstance(cookie.get("name"), str):
        return {"cookie": cookie["name"]}
    if isinstance(ch.get("httpQueryParameterName"), str):
        return {"query_parameter": ch["httpQueryParameterName"]}
    if ch.get("useSourceIp") is True:
        return {"source_ip": True}
    return None


def load_balancing_policy(module: str | os.PathLike[str], config: Mapping[str, Any]) -> Json:
    """A cluster's ``load_balancing_policy``: the module's balancer with ``config``
    (:func:`lb_policy_config`) as a ``StringValue`` of JSON (keys sorted: equal configs are equal
    bytes)."""
    return {
        "policies": [
            {
                "typed_extension_config": {
                    "name": LB_EXTENSION,
                    "typed_config": typed(
                        LB_POLICY_TYPE,
                        dynamic_module_config={"module": {"local": {"filename": os.fspath(module)}}},
                        lb_policy_name=LB_POLICY_NAME,
                        lb_policy_config=typed(
                            "google.protobuf.StringValue", value=json.dumps(dict(config), sort_keys=True)
                        ),
                    ),
                }
            }
        ]
    }
