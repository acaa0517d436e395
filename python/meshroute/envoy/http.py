"""The HTTP connection manager every listener shares (docs/envoy.md "Envoy side"):
ext_proc → fault → router, and one catch-all route whose cluster comes from serve's header.
With the embedded engine the first filter is the dynamic module (:mod:`.module`) instead, the
rest of the chain unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from meshroute.envoy import module
from meshroute.envoy.common import Json, typed
from meshroute.envoy.options import EMBEDDED, Options
from meshroute.extproc import (
    CLUSTER_HEADER,
    EXTPROC_CLUSTER,
    HASH_HEADER,
    MIRROR_HEADERS,
    ORIGINAL_DST_HEADER,
)

EXT_PROC_FILTER = "envoy.filters.http.ext_proc"
FAULT_FILTER = "envoy.filters.http.fault"
ROUTER_FILTER = "envoy.filters.http.router"
# gRPC initial-metadata keys carrying the client context to serve (docs/envoy.md).
LISTENER_KEY = "x-meshroute-listener"
PORT_KEY = "x-meshroute-port"
SOURCE_NAMESPACE_KEY = "x-meshroute-source-namespace"
SOURCE_LABELS_KEY = "x-meshroute-source-labels"
# What a fail-closed ext_proc answers when serve is unreachable or errors (docs/envoy.md).
STATUS_ON_ERROR = 503
ACCESS_LOG_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %UPSTREAM_CLUSTER% %UPSTREAM_HOST% "
    '"%REQ(:AUTHORITY)%" %DURATION%ms listener=%DOWNSTREAM_LOCAL_PORT%\n'
)


def mirror_policies() -> list[Json]:
    """One ``request_mirror_policies`` entry per possible mirror, policy i reading its cluster from
    ``x-meshroute-mirror-<i>``: serve sets the header only when that mirror fires (serve draws the
    percentage, so no ``runtime_fraction``), and Envoy skips a policy whose header is absent.

    The shadow keeps the original Host, as Istio >= 1.28 does (``disable_shadow_host_suffix_append``:
    no ``-shadow`` suffix). The mirror headers are removed from the shadow by the policy's own
    ``request_headers_mutations``. They cannot be removed from the primary request: Envoy 1.40 reads
    the mirror cluster header from the request after the route's removals *and* after the router's
    upstream filters ran on it (both tried: no shadow was sent), so the primary upstream sees the
    ``x-meshroute-mirror-<i>`` that serve set when mirror i fired (never a client's: serve
    overwrites or removes every one on every request). See docs/envoy.md.
    """
    strip = [{"remove": h} for h in MIRROR_HEADERS]
    return [
        {"cluster_header": h, "disable_shadow_host_suffix_append": True, "request_headers_mutations": strip}
        for h in MIRROR_HEADERS
    ]


def catch_all_route() -> Json:
    """The only route: serve names the cluster; the control headers never reach the upstream
    (except a fired mirror's own header, see :func:`mirror_policies`)."""
    return {
        "name": "meshroute",
        "match": {"prefix": "/"},
        "route": {
            "cluster_header": CLUSTER_HEADER,
            "timeout": "0s",  # Istio: no route timeout unless the VirtualService sets one
            # serve's key when the destination's DR hashes on a header, cookie or query parameter
            # (terminal: nothing else is mixed in); otherwise the client address, which is what
            # useSourceIp asks for and what a non-hashing cluster ignores.
            "hash_policy": [
                {"header": {"header_name": HASH_HEADER}, "terminal": True},
                {"connection_properties": {"source_ip": True}},
            ],
            "request_mirror_policies": mirror_policies(),
            # Istio's retry host predicate and selection attempts. Which conditions and how many
            # retries come per request from serve's x-envoy-retry-* headers (OR'ed with this
            # policy's empty retry_on, so without them nothing is retried).
            "retry_policy": {
                "retry_host_predicate": [
                    {
                        "name": "envoy.retry_host_predicates.previous_hosts",
                        "typed_config": typed(
                            "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                        ),
                    }
                ],
                "host_selection_retry_max_attempts": 5,
            },
        },
        "request_headers_to_remove": [CLUSTER_HEADER],
    }


def router_filter() -> Json:
    """The router, with x-meshroute-hash and x-envoy-original-dst-host removed by an upstream
    filter: the route's request_headers_to_remove runs before the load balancer hashes (verified on
    Envoy 1.40: ring hash then spread one key over every host), so the key must survive until the
    host is chosen; ORIGINAL_DST clusters read their header at the same point. Shadows (mirrors)
    pass the same upstream filters."""
    strip = typed(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        mutations={"request_mutations": [{"remove": HASH_HEADER}, {"remove": ORIGINAL_DST_HEADER}]},
    )
    upstream = [
        {"name": "meshroute.strip_lb_headers", "typed_config": strip},
        {
            "name": "envoy.filters.http.upstream_codec",
            "typed_config": typed("envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec"),
        },
    ]
    router = typed("envoy.extensions.filters.http.router.v3.Router", upstream_http_filters=upstream)
    return {"name": ROUTER_FILTER, "typed_config": router}


def catch_all_vhost(domains: Sequence[str] = ("*",)) -> Json:
    return {
        "name": "meshroute",
        "domains": list(domains),
        "routes": [catch_all_route()],
        "include_request_attempt_count": True,
    }


def redirect_vhost(domains: Sequence[str]) -> Json:
    """Gateway ``tls.httpsRedirect``: 301 to https:// for these hosts (the redirect servers'
    host patterns).

    Istio sets ``require_tls: ALL`` per virtual host: on each vhost a redirect server built
    (its hosts, with or without VirtualService routes), not on every host its patterns cover.
    Envoy gives a request to the vhost with the most specific domain, so a more specific host
    of a plain server must be a domain of the catch-all (``listeners._plain_vhosts``), whose
    decision then follows the same per-vhost rule (semantics §4). A request that gets through
    here (already https) is decided too: routed by a VirtualService vhost, or 404 where only
    the redirect server's own vhost (which has no routes) covers its host.

    ``require_tls`` itself makes Envoy answer from a synthetic route that carries no per-filter
    config, so ext_proc would still run first and, with serve down, turn every redirect into 503.
    The same rule is written out as two routes instead: requests already marked
    ``x-forwarded-proto: https`` (what ``require_tls`` lets through) get the normal catch-all
    route, and everything else a redirect route with ext_proc off: nothing is left for serve to
    decide, and a redirect must not depend on serve being up. Not covered: a VirtualService
    host of a plain server that is wider than these patterns (``*``) but names a host inside one
    (``a.example.com`` under ``*.example.com``); Envoy only sees server hosts, so such a host is
    redirected here while the decision itself would route it.
    """
    forwarded_https = {
        **catch_all_route(),
        "name": "forwarded_https",
        "match": {
            "prefix": "/",
            "headers": [{"name": "x-forwarded-proto", "string_match": {"exact": "https"}}],
        },
    }
    redirect = {
        "name": "https_redirect",
        "match": {"prefix": "/"},
        "redirect": {"https_redirect": True},  # response_code defaults to 301
        "typed_per_filter_config": {
            EXT_PROC_FILTER: typed("envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute", disabled=True)
        },
    }
    return {"name": "https_redirect", "domains": list(domains), "routes": [forwarded_https, redirect]}


def ext_proc_filter(stat_prefix: str, metadata: Sequence[tuple[str, str]], options: Options) -> Json:
    """One ext_proc filter per listener, so its initial metadata (the client context) comes from
    the listener and never from the client."""
    grpc: Json = {"envoy_grpc": {"cluster_name": EXTPROC_CLUSTER}}
    if metadata:
        grpc["initial_metadata"] = [{"key": k, "value": v} for k, v in metadata]
    config = typed(
        "envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
        grpc_service=grpc,
        stat_prefix=stat_prefix,
        failure_mode_allow=False,
        status_on_error={"code": STATUS_ON_ERROR},
        message_timeout=options.message_timeout,
        route_cache_action="CLEAR",
        mutation_rules={"allow_all_routing": True, "allow_envoy": True},
        allow_mode_override=True,
        processing_mode={
            "request_header_mode": "SEND",
            "response_header_mode": "SKIP",
            "request_body_mode": "NONE",
            "response_body_mode": "NONE",
            "request_trailer_mode": "SKIP",
            "response_trailer_mode": "SKIP",
        },
    )
    return {"name": EXT_PROC_FILTER, "typed_config": config}


def decision_filter(stat_prefix: str, metadata: Sequence[tuple[str, str]], options: Options) -> Json:
    """The filter that decides each request: ext_proc, or with the embedded engine the dynamic
    module, configured by ECDS under the listener context's name (``meshroute-gateway-<port>``)."""
    if options.engine != EMBEDDED:
        return ext_proc_filter(stat_prefix, metadata, options)
    return module.discovery_filter(module_filter_name(metadata), options)


def module_filter_name(metadata: Sequence[tuple[str, str]]) -> str:
    """The module filter's name for a listener context given as ext_proc metadata."""
    context = dict(metadata)
    port = context.get(PORT_KEY) if context.get(LISTENER_KEY) == "gateway" else None
    return module.filter_name(int(port) if port is not None else None)


def _without_ext_proc(vhost: Json, name: str) -> Json:
    """``vhost`` with per-route "ext_proc disabled" (the httpsRedirect route) aimed at the
    module filter ``name`` instead."""
    routes = []
    for route in vhost["routes"]:
        per_filter = route.get("typed_per_filter_config")
        if per_filter and EXT_PROC_FILTER in per_filter:
            per_filter = {k: v for k, v in per_filter.items() if k != EXT_PROC_FILTER}
            route = {**route, "typed_per_filter_config": {**per_filter, name: module.disabled_on_route()}}
        routes.append(route)
    return {**vhost, "routes": routes}


def fault_filter() -> Json:
    """Header-driven faults: serve decides Istio's percentage and sets the header only when the
    fault fires, so the filter applies every header it sees."""
    return {
        "name": FAULT_FILTER,
        "typed_config": typed(
            "envoy.extensions.filters.http.fault.v3.HTTPFault",
            delay={"header_delay": {}, "percentage": {"numerator": 100}},
            abort={"header_abort": {}, "percentage": {"numerator": 100}},
        ),
    }


def access_log(path: str, log_format: str = ACCESS_LOG_FORMAT) -> Json:
    return {
        "name": "envoy.access_loggers.file",
        "typed_config": typed(
            "envoy.extensions.access_loggers.file.v3.FileAccessLog",
            path=path,
            log_format={"text_format_source": {"inline_string": log_format}},
        ),
    }


def connection_manager(
    stat_prefix: str, vhosts: Sequence[Json], metadata: Sequence[tuple[str, str]], options: Options
) -> Json:
    """The ``envoy.filters.network.http_connection_manager`` network filter."""
    if options.engine == EMBEDDED:
        vhosts = [_without_ext_proc(vh, module_filter_name(metadata)) for vh in vhosts]
    route_config: Json = {"name": stat_prefix, "virtual_hosts": list(vhosts)}
    if any(d != "*" for vh in vhosts for d in vh["domains"]):
        # Match "host:8080" against "host" without stripping the port that serve reads.
        route_config["ignore_port_in_host_matching"] = True
    hcm = typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix=stat_prefix,
        codec_type="AUTO",
        route_config=route_config,
        http_filters=[
            decision_filter(stat_prefix, metadata, options),
            fault_filter(),
            router_filter(),
        ],
        # Istio's default path normalisation (meshConfig pathNormalization BASE).
        normalize_path=True,
        server_name="istio-envoy",  # what Istio's proxies answer in `server` (tasks §9)
        upgrade_configs=[{"upgrade_type": "websocket"}],
        access_log=[access_log(options.access_log)] if options.access_log else [],
    )
    if ("x-meshroute-listener", "gateway") in metadata:
        # An edge proxy, as Istio's gateways: x-forwarded-for/-proto come from the connection, so a
        # client cannot claim https to skip an httpsRedirect.
        hcm["use_remote_address"] = True
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
