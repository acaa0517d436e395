"""VirtualService messages (semantics §2)."""

from __future__ import annotations

from meshroute.config.validate.schema_types import (
    LABELS,
    SM,
    STR,
    STRS,
    Enum,
    ListOf,
    MapOf,
    Message,
)

_REMOVED_HEADER_OPS = "was removed in Istio 1.x; use `headers: {request|response: {set, add, remove}}`"
_ROUTE_LEGACY = {
    "appendHeaders": _REMOVED_HEADER_OPS,
    "appendRequestHeaders": _REMOVED_HEADER_OPS,
    "removeRequestHeaders": _REMOVED_HEADER_OPS,
    "appendResponseHeaders": _REMOVED_HEADER_OPS,
    "removeResponseHeaders": _REMOVED_HEADER_OPS,
}

VS_MESSAGES: dict[str, Message] = {
    "VirtualService": Message(
        {
            "hosts": STRS,
            "gateways": STRS,
            "http": ListOf("HTTPRoute"),
            "tls": ListOf("TLSRoute"),
            "tcp": ListOf("TCPRoute"),
            "exportTo": STRS,
        }
    ),
    "HTTPRoute": Message(
        {
            "name": STR,
            "match": ListOf("HTTPMatchRequest"),
            "route": ListOf("HTTPRouteDestination"),
            "redirect": "HTTPRedirect",
            "directResponse": "HTTPDirectResponse",
            "delegate": "Delegate",
            "rewrite": "HTTPRewrite",
            "timeout": "duration",
            "retries": "HTTPRetry",
            "fault": "HTTPFaultInjection",
            "mirror": "Destination",
            "mirrorPercent": "uint32",
            "mirrorPercentage": "Percent",
            "mirrors": ListOf("HTTPMirrorPolicy"),
            "corsPolicy": "CorsPolicy",
            "headers": "Headers",
        },
        legacy={"websocketUpgrade": "was removed: WebSocket upgrades are always allowed", **_ROUTE_LEGACY},
    ),
    "HTTPMatchRequest": Message(
        {
            "name": STR,
            "uri": SM,
            "scheme": SM,
            "method": SM,
            "authority": SM,
            "headers": MapOf(SM),
            "port": "uint32",
            "sourceLabels": LABELS,
            "gateways": STRS,
            "queryParams": MapOf(SM),
            "ignoreUriCase": "bool",
            "withoutHeaders": MapOf(SM),
            "sourceNamespace": STR,
            "statPrefix": STR,
        }
    ),
    "StringMatch": Message(
        {"exact": STR, "prefix": STR, "regex": STR}, oneofs=(("exact", "prefix", "regex"),)
    ),
    "HTTPRouteDestination": Message(
        {"destination": "Destination", "weight": "int32", "headers": "Headers"},
        required=("destination",),
        legacy=_ROUTE_LEGACY,
    ),
    "RouteDestination": Message({"destination": "Destination", "weight": "int32"}, required=("destination",)),
    "Destination": Message({"host": STR, "subset": STR, "port": "PortSelector"}, required=("host",)),
    "PortSelector": Message(
        {"number": "uint32"}, legacy={"name": "was removed: select the port with `number`"}
    ),
    "Delegate": Message({"name": STR, "namespace": STR}),
    "Headers": Message({"request": "HeaderOperations", "response": "HeaderOperations"}),
    "HeaderOperations": Message({"set": LABELS, "add": LABELS, "remove": STRS}),
    "TLSRoute": Message(
        {"match": ListOf("TLSMatchAttributes"), "route": ListOf("RouteDestination")}, required=("match",)
    ),
    "TCPRoute": Message({"match": ListOf("L4MatchAttributes"), "route": ListOf("RouteDestination")}),
    "TLSMatchAttributes": Message(
        {
            "sniHosts": STRS,
            "destinationSubnets": STRS,
            "port": "uint32",
            "sourceLabels": LABELS,
            "gateways": STRS,
            "sourceNamespace": STR,
        },
        required=("sniHosts",),
        legacy={"sourceSubnet": "was removed from TLS matches"},
    ),
    "L4MatchAttributes": Message(
        {
            "destinationSubnets": STRS,
            "port": "uint32",
            "sourceSubnet": STR,
            "sourceLabels": LABELS,
            "gateways": STRS,
            "sourceNamespace": STR,
        }
    ),
    "HTTPRedirect": Message(
        {
            "uri": STR,
            "authority": STR,
            "port": "uint32",
            "derivePort": Enum(("FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT")),
            "scheme": STR,
            "redirectCode": "uint32",
            "prefixRewrite": STR,
        },
        oneofs=(("port", "derivePort"),),
    ),
    "HTTPDirectResponse": Message({"status": "uint32", "body": "HTTPBody"}, required=("status",)),
    "HTTPBody": Message({"string": STR, "bytes": STR}, oneofs=(("string", "bytes"),)),
    "HTTPRewrite": Message({"uri": STR, "authority": STR, "uriRegexRewrite": "RegexRewrite"}),
    "RegexRewrite": Message({"match": STR, "rewrite": STR}),
    "HTTPRetry": Message(
        {
            "attempts": "int32",
            "perTryTimeout": "duration",
            "retryOn": STR,
            "retryRemoteLocalities": "bool",
            "retryIgnorePreviousHosts": "bool",
            "backoff": "duration",
        }
    ),
    "CorsPolicy": Message(
        {
            "allowOrigin": STRS,
            "allowOrigins": ListOf(SM),
            "allowMethods": STRS,
            "allowHeaders": STRS,
            "exposeHeaders": STRS,
            "maxAge": "duration",
            "allowCredentials": "bool",
            "unmatchedPreflights": Enum(("UNSPECIFIED", "FORWARD", "IGNORE")),
        }
    ),
    "HTTPFaultInjection": Message({"delay": "Delay", "abort": "Abort"}),
    "Delay": Message(
        {
            "fixedDelay": "duration",
            "exponentialDelay": "duration_any",
            "percentage": "Percent",
            "percent": "int32",
        },
        oneofs=(("fixedDelay", "exponentialDelay"),),
    ),
    "Abort": Message(
        {"httpStatus": "int32", "grpcStatus": STR, "http2Error": STR, "percentage": "Percent"},
        oneofs=(("httpStatus", "grpcStatus", "http2Error"),),
        legacy={"percent": "was removed; use `percentage: {value: <0-100>}`"},
    ),
    "Percent": Message({"value": "double"}),
    "HTTPMirrorPolicy": Message(
        {"destination": "Destination", "percentage": "Percent"}, required=("destination",)
    ),
}
