//! `route()` and `explain()` never panic, whatever the request.

mod common;

use common::*;
use meshroute_core::{Protocol, Request, SplitMix64};
use proptest::prelude::*;
use serde_json::json;

/// A table exercising every matcher kind, an index (> 16 blocks), rewrites and redirects.
fn table() -> std::sync::Arc<meshroute_core::RouteTable> {
    static TABLE: std::sync::OnceLock<std::sync::Arc<meshroute_core::RouteTable>> =
        std::sync::OnceLock::new();
    std::sync::Arc::clone(TABLE.get_or_init(build))
}

fn build() -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = bookinfo();
    let a = ir.target("a", None, None, 80);
    let mut routes = Vec::new();
    for i in 0..40 {
        let block = match i % 5 {
            0 => m(json!({"uri": {"prefix": format!("/p{i}/")}, "ignore_uri_case": i % 2 == 0})),
            1 => m(json!({"uri": {"exact": format!("/e/{i}")}})),
            2 => m(
                json!({"uri": {"regex": format!("/r/{i}/\\w+")}, "query_params": [{"name": "q", "match": {"regex": "\\d*"}}]}),
            ),
            3 => m(
                json!({"headers": [{"name": "x-t", "match": {"exact": format!("t{i}")}}], "without_headers": [{"name": "x-n", "match": {"prefix": "n"}}]}),
            ),
            _ => m(
                json!({"authority": {"prefix": "é"}, "method": {"regex": "G.T"}, "scheme": {"exact": "https"}}),
            ),
        };
        let mut r = with(
            fwd(i, vec![block], &[(a, 1), (0, 2)]),
            "rewrite",
            json!({"uri": "/x"}),
        );
        if i % 7 == 0 {
            r["rewrite"] = json!({"regex": {"match": "/(.)", "rewrite": "\\1/"}});
        }
        routes.push(ir.route(r));
    }
    let mut redirect = fwd(40, vec![], &[]);
    redirect["action"] =
        json!({"redirect": {"derive_port": "FROM_REQUEST_PORT", "scheme": "https"}});
    routes.push(ir.route(redirect));
    ir.vhost(&["*.x", "*"], &routes, Some(a), None);
    ir.build()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn route_never_panics(
        authority in ".{0,24}",
        path in "(/|[a-zA-Z0-9/?&=%é.*\\[\\]:]){0,40}",
        method in "[A-Za-z]{0,6}",
        scheme in prop_oneof![Just("http".to_owned()), Just("https".to_owned()), ".{0,5}"],
        headers in proptest::collection::vec(("[xX]-[tTnN]|.{0,6}", ".{0,10}"), 0..5),
        port in proptest::option::of(any::<u16>()),
        gateway in prop_oneof![Just("mesh".to_owned()), ".{0,8}"],
        tcp in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let t = table();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = Request {
            authority: &authority, path: &path, method: &method, scheme: &scheme,
            headers: &headers, port, gateway: &gateway, source_labels: &[], source_namespace: None,
            protocol: if tcp { Protocol::Tcp } else { Protocol::Http },
        };
        let d = t.route(&r, &mut SplitMix64::new(seed));
        let v: serde_json::Value = serde_json::from_str(&d.to_json()).expect("valid JSON");
        prop_assert_eq!(v["outcome"].as_str(), Some(d.outcome().as_str()));
        let e: serde_json::Value = serde_json::from_str(&t.explain(&r)).expect("valid JSON");
        prop_assert!(e["trace"].is_array());
    }
}
