//! `exchange()` never panics, whatever the header bytes and listener context, and every answer
//! that lets a request through sets or removes each control header exactly once.

use std::sync::{Arc, OnceLock};

use meshroute_core::{
    Exchange, ListenerContext, RouteTable, SplitMix64, CONTROL_HEADERS, MAX_MIRRORS,
};
use proptest::prelude::*;
use serde_json::json;

/// Every feature `exchange` has: gateway servers, header ops touching control headers, rewrites,
/// redirects, direct responses, faults at partial percentages, weighted picks, mirrors (more than
/// `MAX_MIRRORS`, portless ones), consistent hash by header / cookie / query, CORS, passthrough.
fn table() -> Arc<RouteTable> {
    static TABLE: OnceLock<Arc<RouteTable>> = OnceLock::new();
    Arc::clone(TABLE.get_or_init(|| {
        let block = |m: serde_json::Value| {
            let mut m = m;
            m["gateways"] = json!([0, 1]);
            m
        };
        let mirror = |cluster: Option<&str>, pct: f64| {
            json!({"cluster": cluster, "destination": {"host": "multi.test", "subset": null, "port": null},
                   "percent": pct})
        };
        let ir = json!({
            "version": 1,
            "virtual_services": [{"namespace": "default", "name": "echo"}],
            "gateways": ["mesh", "default/edge"],
            "targets": [
                {"host": "echo.test", "subset": "v1", "port": 80},
                {"host": "echo.test", "subset": "v2", "port": 80},
                {"host": "echo.test", "subset": null, "port": null},
            ],
            "policies": ["{}",
                r#"{"loadBalancer":{"consistentHash":{"httpHeaderName":"x-user"}}}"#,
                r#"{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"s"}}}}"#,
                r#"{"loadBalancer":{"consistentHash":{"httpQueryParameterName":"u"}}}"#],
            "scopes": [{"clusters": [[0, 80, 1], [1, 80, 2], [2, 80, 3]]}],
            "routes": [
                {"vs": 0, "index": 0, "matches": [block(json!({"uri": {"prefix": "/h"}}))],
                 "action": {"route": {"destinations": [
                    {"target": 0, "weight": 3, "request_headers": {"set": [["x-a", "é"], ["X-Envoy-Retry-On", "x"]],
                       "add": [["x-b", "2"]], "remove": ["x-c", "x-meshroute-mirror-0"]},
                     "response_headers": {"set": [["x-r", "1"]], "add": [["x-s", "2"]], "remove": ["x-t"]}},
                    {"target": 1, "weight": 1}]}},
                 "rewrite": {"regex": {"match": "/(.)", "rewrite": "\\1/"}, "authority": "new.test"},
                 "fault": {"delay": {"fixed_delay_ms": 7, "per_million": 500_000},
                           "abort": {"http_status": 500, "per_million": 300_000}},
                 "extra": {"timeout_ms": 2.5, "retries": {"attempts": 3, "retry_on": "5xx,unavailable,503"},
                           "mirrors": [mirror(None, 50.0), mirror(Some("c1"), 100.0), mirror(None, 0.0001),
                                       mirror(Some("c3"), 99.9999), mirror(Some("c4"), 100.0)],
                           "cors": {"allow_origins": [{"regex": "https://[a-z]+\\.example"}, {"prefix": "http"}],
                                    "allow_methods": ["*"], "allow_headers": ["*"], "expose_headers": ["x"],
                                    "max_age_s": 5, "allow_credentials": true, "unmatched_preflights": "IGNORE"}}},
                {"vs": 0, "index": 1, "matches": [block(json!({"uri": {"prefix": "/r"}}))],
                 "action": {"redirect": {"derive_port": "FROM_REQUEST_PORT", "scheme": "https", "code": 308}},
                 "response_headers": {"set": [["x-r", "1"]], "add": [], "remove": []}},
                {"vs": 0, "index": 2, "matches": [block(json!({"uri": {"prefix": "/d"}}))],
                 "action": {"direct_response": {"status": 503, "body": "é"}}},
                {"vs": 0, "index": 3, "matches": [block(json!({"method": {"exact": "OPTIONS"}}))],
                 "action": {"route": {"destinations": [{"target": 2, "weight": 0}]}},
                 "extra": {"cors": {"allow_origins": [{"exact": "*"}], "allow_methods": ["GET"]}}},
            ],
            "views": [
                {"gateway": 0, "namespace": "default", "scope": 0, "unknown_host": "passthrough",
                 "vhosts": [{"domains": ["echo.test", "*.wild"], "routes": [0, 1, 2, 3], "default_target": 2,
                             "default_port": 80}]},
                {"gateway": 1, "namespace": "default", "scope": 0, "ports": [8081],
                 "https_redirect_hosts": ["secure.gw.test"],
                 "vhosts": [{"domains": ["app.gw.test", "secure.gw.test"], "routes": [0, 1, 2, 3],
                             "default_target": null}]},
            ],
            "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
            "gateway_views": {"default/edge": {"8081": 1}},
            "gateway_servers": [[8081, ["*.gw.test"], "default/edge"], [8081, ["*"], "default/none"]],
            "default_extra": {"timeout_ms": null, "retries": {"attempts": 2}, "mirrors": [], "cors": null},
        });
        Arc::new(RouteTable::from_json(&ir.to_string()).expect("valid IR"))
    }))
}

/// Header names worth hitting, plus arbitrary bytes.
fn name() -> impl Strategy<Value = Vec<u8>> {
    let known: Vec<&'static str> = vec![
        ":authority",
        ":path",
        ":method",
        ":scheme",
        ":protocol",
        "origin",
        "cookie",
        "x-user",
        "access-control-request-method",
        "access-control-request-headers",
        "X-Meshroute-Cluster",
        "x-envoy-original-dst-host",
    ];
    prop_oneof![
        3 => proptest::sample::select(known).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => "(echo\\.test|app\\.gw\\.test|secure\\.gw\\.test|x\\.wild|127\\.0\\.0\\.1|\\[::1\\]|[A-Za-z.]{0,8})(:[0-9]{0,6})?"
            .prop_map(String::into_bytes),
        2 => "(/h|/r|/d|/)[a-zA-Z0-9/?&=;%é]{0,16}".prop_map(String::into_bytes),
        1 => "(GET|OPTIONS|https|http|s=1; u=2|https://a\\.example|\\*)".prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..24),
    ]
}

fn listener() -> impl Strategy<Value = ListenerContext> {
    prop_oneof![
        Just(ListenerContext::default()),
        prop_oneof![Just(8081u16), Just(0u16), any::<u16>()].prop_map(|p| ListenerContext {
            gateway_port: Some(p),
            ..ListenerContext::default()
        }),
        ("[a-z]{0,6}", "[a-z]{0,4}", "[a-z]{0,4}").prop_map(|(ns, k, v)| ListenerContext {
            gateway_port: None,
            source_namespace: Some(ns),
            source_labels: vec![(k, v)],
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn exchange_never_panics(
        headers in proptest::collection::vec((name(), value()), 0..10),
        ctx in listener(),
        seed in any::<u64>(),
    ) {
        let raw: Vec<(&[u8], &[u8])> = headers.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        match table().exchange(&ctx, &raw, &mut SplitMix64::new(seed)) {
            Exchange::Forward(f) => {
                for name in CONTROL_HEADERS {
                    let n = f.set.iter().filter(|(k, _)| k == name).count()
                        + f.remove.iter().filter(|k| *k == name).count();
                    prop_assert_eq!(n, 1, "{} in {:?}", name, f);
                }
                prop_assert!(f.outcome == "route" || f.outcome == "abort");
                prop_assert!(CONTROL_HEADERS.len() == 18 + MAX_MIRRORS);
            }
            Exchange::Reply(r) => prop_assert!((200..600).contains(&r.status), "{:?}", r),
        }
    }
}
