//! Crate-internal property tests: the route index must agree with the linear walk.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::matchers::ClientCtx;
use crate::request::{Prepared, Request};
use crate::table::RouteTable;

fn uri() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        prop::sample::select(vec!["/a", "/a/b", "/A", "/b", "/a/1"])
            .prop_map(|v| json!({"exact": v})),
        prop::sample::select(vec!["/", "/a", "/a/", "/A", "", "/b?", "/bb"])
            .prop_map(|v| json!({"prefix": v})),
        prop::sample::select(vec![
            "/a/[0-9]+",
            "/b.*",
            "(?i)/a",
            "/a|/b",
            "^/a/.*",
            "/a?",
            "/a/1"
        ])
        .prop_map(|v| json!({"regex": v})),
    ]
}

fn block() -> impl Strategy<Value = Value> {
    let header = prop_oneof![
        Just(json!([])),
        prop::sample::select(vec!["t1", "t2", "t1,t2", ""])
            .prop_map(|v| json!([{"name": "x-t", "match": {"exact": v}}])),
        Just(json!([{"name": "x-t", "match": {"present": true}}])),
        Just(
            json!([{"name": "x-t", "match": {"exact": "t1"}}, {"name": "x-u", "match": {"exact": "u"}}])
        ),
    ];
    let port = prop_oneof![Just(Value::Null), Just(json!(80)), Just(json!(9080))];
    let gateways = prop_oneof![4 => Just(json!([0])), 1 => Just(json!([1]))];
    (uri(), any::<bool>(), header, port, gateways).prop_map(|(uri, ic, headers, port, gateways)| {
        json!({"uri": uri, "ignore_uri_case": ic, "headers": headers, "port": port, "gateways": gateways})
    })
}

fn table_json() -> impl Strategy<Value = String> {
    let route = prop::collection::vec(block(), 0..3);
    prop::collection::vec(route, 1..60).prop_map(|routes| {
        let n = routes.len();
        let routes: Vec<Value> = routes
            .into_iter()
            .enumerate()
            .map(|(i, matches)| {
                json!({"vs": 0, "index": i, "matches": matches,
                       "action": {"route": {"destinations": [{"target": 0, "weight": 1}]}}})
            })
            .collect();
        json!({
            "version": 1, "virtual_services": [{"namespace": "default", "name": "vs"}],
            "gateways": ["mesh", "ns/gw"], "targets": [{"host": "a", "subset": null, "port": 80}],
            "policies": ["{}"], "scopes": [{"clusters": [[0, 80, 0]]}], "routes": routes,
            "views": [{"gateway": 0, "namespace": "default", "scope": 0,
                       "vhosts": [{"domains": ["*"], "routes": (0..n).collect::<Vec<_>>()}]}],
            "mesh": {"namespaces": {}, "other_view": 0}
        })
        .to_string()
    })
}

fn request() -> impl Strategy<Value = (String, Vec<(String, String)>, u16)> {
    let path = prop::sample::select(vec![
        "/a", "/a/b", "/A/B", "/a/1", "/a/12", "/b", "/bb?x", "/a?x", "", "x", "/", "/A", "/b?",
        "/a/",
    ]);
    let headers = prop::collection::vec(
        (
            prop::sample::select(vec!["x-t", "X-T", "x-u"]),
            prop::sample::select(vec!["t1", "t2", "", "u"]),
        ),
        0..3,
    );
    let port = prop::sample::select(vec![80u16, 9080]);
    (
        path.prop_map(str::to_owned),
        headers.prop_map(|h| {
            h.into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        }),
        port,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_linear_walk(ir in table_json(), reqs in prop::collection::vec(request(), 1..8)) {
        let mut table = RouteTable::from_json(&ir).unwrap();
        let RouteTable { routes, views, .. } = &mut table;
        let vhosts = std::sync::Arc::get_mut(&mut views[0].vhosts).unwrap();
        let vhost = std::sync::Arc::get_mut(&mut vhosts[0]).unwrap();
        vhost.reindex(routes, 0);
        for (path, headers, port) in &reqs {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let req = Request { path, headers: &headers, ..Request::default() };
            let prep = Prepared::new(&req);
            let ctx = ClientCtx { gateway: 0, port: *port, labels: &[], namespace: "default" };
            prop_assert_eq!(vhost.select(routes, &ctx, &prep), vhost.select_linear(routes, &ctx, &prep), "{} {:?}", path, headers);
        }
    }
}
