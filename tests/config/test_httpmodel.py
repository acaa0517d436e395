"""The HTTP route model: ``http`` routes parsed once, names resolved in the VS namespace, positions
kept for diagnostics, "not written" told from "written empty" for delegate inheritance."""

from __future__ import annotations

from meshroute.config.delegate import merge_route
from meshroute.config.httpmodel import (
    Abort,
    CorsPolicy,
    Delay,
    Delegate,
    Destination,
    DirectResponse,
    Fault,
    HeaderOperations,
    Headers,
    HTTPMatch,
    HTTPMirror,
    HTTPRoute,
    HTTPRouteDestination,
    Redirect,
    RegexRewrite,
    Rewrite,
    StringMatch,
)
from meshroute.config.httpparse import parse_http_route, parse_http_routes


def _route(raw: object) -> HTTPRoute:
    return parse_http_route(raw, "prod", "cluster.local")


def test_non_mapping_entries_keep_their_slot() -> None:
    routes = parse_http_routes(
        [None, {"match": [None, {"name": "m"}], "route": ["x"]}], "prod", "cluster.local"
    )
    assert routes[0] == HTTPRoute()
    assert routes[1].match == (None, HTTPMatch(name="m"))
    assert routes[1].blocks == (HTTPMatch(name="m"),)
    assert routes[1].route == (None,)
    assert routes[1].destinations == ()
    assert parse_http_routes({"not": "a list"}, "prod", "cluster.local") == ()


def test_destinations_and_mirrors_resolve_in_the_virtual_service_namespace() -> None:
    route = _route(
        {
            "route": [
                {"destination": {"host": "Reviews", "subset": "v1", "port": {"number": 9080}}, "weight": 80},
                {"destination": {"host": "r.other.svc.cluster.local", "subset": "", "port": {}}},
                {"weight": 5},  # no destination: still an entry (the route stays a weighted one)
            ],
            "mirror": {"host": "shadow"},
            "mirrorPercentage": {"value": 25.5},
            "mirrorPercent": 10,
            "mirrors": [{"destination": {"host": "copy"}, "percentage": {"value": 5}}, None, {}],
        }
    )
    assert route.route == (
        HTTPRouteDestination(Destination("reviews.prod.svc.cluster.local", "v1", 9080), 80),
        HTTPRouteDestination(Destination("r.other.svc.cluster.local", None, 0)),  # port 0: written, no number
        HTTPRouteDestination(None, 5),
    )
    assert route.mirror == Destination("shadow.prod.svc.cluster.local")
    assert (route.mirror_percentage, route.mirror_percent) == (25.5, 10)
    assert route.mirrors == (
        HTTPMirror(Destination("copy.prod.svc.cluster.local"), 5.0),
        None,
        HTTPMirror(None),
    )


def test_match_conditions_are_typed_and_gateways_resolved() -> None:
    route = _route(
        {
            "match": [
                {
                    "name": "m",
                    "uri": {"prefix": "/a"},
                    "method": {},  # the empty StringMatch: no condition
                    "ignoreUriCase": True,
                    "headers": {"X-A": {"exact": "1"}, "x-b": {}, "x-c": None, "x-d": "bad"},
                    "withoutHeaders": {"x-e": {"regex": "*"}},
                    "queryParams": {"q": {"prefix": "v"}},
                    "port": 8080,
                    "gateways": ["gw", "infra/edge", "mesh"],
                    "sourceLabels": {"app": "web"},
                    "sourceNamespace": "",
                }
            ]
        }
    )
    assert route.match == (
        HTTPMatch(
            name="m",
            uri=StringMatch("prefix", "/a"),
            ignore_uri_case=True,
            headers={"X-A": StringMatch("exact", "1"), "x-b": StringMatch(None), "x-c": StringMatch(None)},
            without_headers={"x-e": StringMatch("regex", "*")},
            query_params={"q": StringMatch("prefix", "v")},
            port=8080,
            gateways=("prod/gw", "infra/edge", "mesh"),
            source_labels={"app": "web"},
        ),
    )


def test_actions_are_typed_field_by_field() -> None:
    route = _route(
        {
            "redirect": {"uri": "/b", "port": 8443, "redirectCode": 302, "derivePort": "FROM_REQUEST_PORT"},
            "directResponse": {"status": 418, "body": {"bytes": "aGk="}},
            "rewrite": {"uriRegexRewrite": {"match": "^/a", "rewrite": "/b"}},
            "fault": {"delay": {"fixedDelay": "1s", "percent": 5}, "abort": {"grpcStatus": "UNAVAILABLE"}},
            "corsPolicy": {"allowOrigins": [{"exact": "https://a"}], "allowMethods": ["GET"], "maxAge": "1m"},
            "headers": {"request": {"set": {"x": "1"}, "remove": ["y"]}},
            "delegate": {"name": "leaf"},
            "timeout": "0",
        }
    )
    assert route.redirect == Redirect(uri="/b", port=8443, derive_port="FROM_REQUEST_PORT", redirect_code=302)
    assert route.direct_response == DirectResponse(status=418, body_bytes="aGk=")
    assert route.rewrite == Rewrite(uri_regex_rewrite=RegexRewrite("^/a", "/b"))
    assert route.fault == Fault(Delay(fixed_delay="1s", percent=5), Abort(grpc_status="UNAVAILABLE"))
    assert route.cors_policy == CorsPolicy(
        allow_origins=(StringMatch("exact", "https://a"),), allow_methods=("GET",), max_age="1m"
    )
    assert route.headers == Headers(request=HeaderOperations(set={"x": "1"}, remove=("y",)))
    assert route.delegate == Delegate("leaf", None)
    assert route.timeout == "0"  # as written: the translation reads the duration


def test_written_but_empty_is_not_absent() -> None:
    """A delegate route keeps a field it writes, even empty; it inherits one it does not write."""
    root = _route({"name": "r", "fault": {"abort": {"httpStatus": 500}}, "headers": {}, "mirrors": []})
    empty = _route({"name": "d", "fault": {}, "headers": {}, "mirrors": [], "route": []})
    silent = _route({"name": "d", "route": []})
    assert empty.fault == Fault() and empty.headers == Headers() and empty.mirrors == ()
    merged = merge_route(root, empty)
    assert merged is not None and merged.fault == Fault() and merged.mirrors == ()
    inherited = merge_route(root, silent)
    assert inherited is not None and inherited.fault == root.fault and inherited.headers == Headers()
