"""The L4 route model: ``tcp``/``tls`` routes parsed once, names resolved in the VS namespace."""

from __future__ import annotations

from meshroute.config.streamroute import L4Destination, L4Match, L4Route, parse_l4_routes


def test_destinations_resolve_in_the_virtual_service_namespace() -> None:
    routes = parse_l4_routes(
        [
            {
                "route": [
                    {"destination": {"host": "Db", "subset": "v1", "port": {"number": 27017}}, "weight": 80},
                    {"destination": {"host": "db.other.svc.cluster.local", "subset": ""}, "weight": -1},
                    {"weight": 5},  # no destination: nowhere to send a connection
                ]
            }
        ],
        "prod",
        "cluster.local",
    )
    assert routes == (
        L4Route(
            route=(
                L4Destination("db.prod.svc.cluster.local", "v1", 27017, 80),
                L4Destination("db.other.svc.cluster.local", None, None, 0),
            )
        ),
    )


def test_match_gateways_resolve_and_empty_means_the_virtual_services() -> None:
    (route,) = parse_l4_routes(
        [{"match": [{"gateways": ["gw", "infra/edge", "mesh"], "port": 31400}, {"port": 0}]}],
        "prod",
        "cluster.local",
    )
    assert route.matches == (
        L4Match(port=31400, gateways=("prod/gw", "infra/edge", "mesh")),
        L4Match(),  # port 0 is no port; no gateways: the VS's own
    )


def test_conditions_and_sni_hosts_are_carried() -> None:
    (route,) = parse_l4_routes(
        [
            {
                "match": [
                    {
                        "sniHosts": [" A.example.com", "a.example.com", "", "b.example.com"],
                        "destinationSubnets": ["10.0.0.0/8"],
                        "sourceLabels": {"app": "web"},
                        "sourceNamespace": "",
                    }
                ]
            }
        ],
        "prod",
        "cluster.local",
    )
    (match,) = route.matches
    assert match.sni_hosts == ("a.example.com", "b.example.com")
    assert match.destination_subnets == ("10.0.0.0/8",)
    assert match.source_labels == {"app": "web"}
    assert match.source_namespace is None


def test_bad_entries_keep_the_positions_of_the_routes_after_them() -> None:
    routes = parse_l4_routes(
        [None, {"match": [None, {"port": 1}]}, {"route": [{"destination": {"host": "a"}}]}],
        "ns",
        "cluster.local",
    )
    assert len(routes) == 3
    assert routes[0] == L4Route()
    assert routes[1].matches == (L4Match(port=1),)  # non-mapping blocks are no blocks
    assert routes[2].route[0].host == "a.ns.svc.cluster.local"
    assert parse_l4_routes(None, "ns", "cluster.local") == ()
