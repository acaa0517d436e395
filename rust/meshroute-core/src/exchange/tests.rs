//! `exchange()` end to end on a small table: each outcome, control headers, gateway selection,
//! the per-request parts, CORS, and the RNG order.

use std::sync::{Arc, OnceLock};

use serde_json::json;

use super::*;
use crate::rng::SplitMix64;

const V2: &str = "outbound|80|v2|echo.test";

fn table() -> Arc<RouteTable> {
    static TABLE: OnceLock<Arc<RouteTable>> = OnceLock::new();
    Arc::clone(TABLE.get_or_init(|| {
        let gw = |m: serde_json::Value| {
            let mut m = m;
            m["gateways"] = json!([0, 1]);
            m
        };
        let dest = |t: u32| json!({"route": {"destinations": [{"target": t, "weight": 0}]}});
        let ir = json!({
            "version": 1,
            "virtual_services": [{"namespace": "default", "name": "echo"}],
            "gateways": ["mesh", "default/edge"],
            "targets": [
                {"host": "echo.test", "subset": "v1", "port": 80},
                {"host": "echo.test", "subset": "v2", "port": 80},
                {"host": "echo.test", "subset": null, "port": null},
                {"host": "echo.test", "subset": "v9", "port": 80},
            ],
            "policies": ["{}", r#"{"loadBalancer":{"consistentHash":{"httpHeaderName":"X-User"}}}"#],
            "scopes": [{"clusters": [[0, 80, 1], [1, 80, 0], [2, 80, 0]]}],
            "routes": [
                {"vs": 0, "index": 0, "name": "headers", "matches": [gw(json!({"uri": {"prefix": "/headers"}}))],
                 "action": {"route": {"destinations": [{"target": 0, "weight": 0,
                    "request_headers": {"set": [["x-set", "1"], ["X-Envoy-Max-Retries", "99"]],
                                        "add": [["x-add", "2"]],
                                        "remove": ["x-rm", "x-meshroute-cluster", "x-rm"]},
                    "response_headers": {"set": [["x-resp", "1"]], "add": [], "remove": ["x-drop"]}}]}},
                 "rewrite": {"uri": "/new/", "authority": "rewritten.test"},
                 "extra": {"timeout_ms": 300, "retries": {"attempts": 3, "retry_on": "5xx,unavailable,503",
                                                         "per_try_timeout_ms": 100}, "mirrors": [], "cors": null}},
                {"vs": 0, "index": 1, "matches": [gw(json!({"uri": {"prefix": "/mirror"}}))], "action": dest(1),
                 "extra": {"mirrors": [
                    {"cluster": V2, "destination": {"host": "echo.test", "subset": "v2", "port": 80}, "percent": 100},
                    {"cluster": null, "destination": {"host": "multi.test", "subset": null, "port": null}, "percent": 50}]}},
                {"vs": 0, "index": 2, "matches": [gw(json!({"uri": {"exact": "/redirect"}}))],
                 "action": {"redirect": {"uri": "/elsewhere", "authority": "other.test", "code": 302}},
                 "response_headers": {"set": [["x-r", "1"]], "add": [["x-a", "2"]], "remove": ["x-gone"]}},
                {"vs": 0, "index": 3, "matches": [gw(json!({"uri": {"exact": "/direct"}}))],
                 "action": {"direct_response": {"status": 418, "body": "teapot"}}},
                {"vs": 0, "index": 4, "matches": [gw(json!({"uri": {"prefix": "/abort"}}))], "action": dest(1),
                 "fault": {"delay": {"fixed_delay_ms": 1500, "per_million": 1_000_000},
                           "abort": {"grpc_status": "UNAVAILABLE", "per_million": 1_000_000}},
                 "response_headers": {"set": [["x-r", "1"]], "add": [], "remove": []},
                 "extra": {"cors": {"allow_origins": [{"prefix": ""}]}}},
                {"vs": 0, "index": 5, "matches": [gw(json!({"uri": {"prefix": "/cors"}}))], "action": dest(1),
                 "extra": {"cors": {"allow_origins": [{"exact": "https://a.example"}], "allow_methods": ["GET"],
                                    "allow_headers": [], "expose_headers": ["x-b"], "max_age_s": 60,
                                    "allow_credentials": true, "unmatched_preflights": "FORWARD"}}},
                {"vs": 0, "index": 6, "matches": [gw(json!({"uri": {"prefix": "/nosubset"}}))], "action": dest(3)},
                {"vs": 0, "index": 7, "matches": [gw(json!({"uri": {"prefix": "/split"}}))],
                 "action": {"route": {"destinations": [{"target": 0, "weight": 1}, {"target": 1, "weight": 1}]}},
                 "extra": {"mirrors": [{"cluster": V2, "destination": {"host": "echo.test"}, "percent": 50}]}},
                {"vs": 0, "index": 8, "matches": [gw(json!({"uri": {"prefix": "/authority"},
                                                            "authority": {"exact": "echo.test:8080"}}))],
                 "action": dest(1)},
                {"vs": 0, "index": 9, "matches": [gw(json!({"uri": {"prefix": "/keepport"}}))],
                 "action": {"redirect": {"uri": "/moved", "code": 301}}},
            ],
            "views": [
                {"gateway": 0, "namespace": "default", "scope": 0, "unknown_host": "passthrough",
                 "vhosts": [{"domains": ["echo.test"], "routes": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "default_target": 2,
                             "default_port": 80},
                            {"domains": ["plain.test"], "routes": [], "default_target": 2, "default_port": 80}]},
                {"gateway": 1, "namespace": "default", "scope": 0, "ports": [8081],
                 "vhosts": [{"domains": ["app.gw.test"], "routes": [0, 1], "default_target": null}]},
            ],
            "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
            "gateway_views": {"default/edge": {"8081": 1}},
            "gateway_servers": [[8081, ["*.gw.test"], "default/edge"], [8081, ["*"], "default/other"]],
            "default_extra": {"timeout_ms": null,
                              "retries": {"attempts": 2, "retry_on": "connect-failure,retriable-status-codes"},
                              "mirrors": [], "cors": null},
        });
        Arc::new(RouteTable::from_json(&ir.to_string()).unwrap())
    }))
}

const MESH: ListenerContext = ListenerContext {
    gateway_port: None,
    source_namespace: None,
    source_labels: Vec::new(),
};

fn run(ctx: &ListenerContext, headers: &[(&str, &str)], seed: u64) -> Exchange {
    let raw: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    table().exchange(ctx, &raw, &mut SplitMix64::new(seed))
}

fn get(authority: &str, path: &str, extra: &[(&str, &str)]) -> Exchange {
    let mut headers = vec![
        (":authority", authority),
        (":path", path),
        (":method", "GET"),
    ];
    headers.extend_from_slice(extra);
    run(&MESH, &headers, 1)
}

fn forward(x: Exchange) -> Forward {
    match x {
        Exchange::Forward(f) => f,
        Exchange::Reply(r) => panic!("expected a forward, got {r:?}"),
    }
}

fn local(x: Exchange) -> LocalReply {
    match x {
        Exchange::Reply(r) => r,
        Exchange::Forward(f) => panic!("expected a reply, got {f:?}"),
    }
}

fn set<'f>(f: &'f Forward, name: &str) -> Option<&'f str> {
    f.set
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Every control header is set or removed, exactly once.
fn assert_all_control(f: &Forward) {
    for name in CONTROL_HEADERS {
        let sets = f.set.iter().filter(|(k, _)| k == name).count();
        let removes = f.remove.iter().filter(|k| *k == name).count();
        assert_eq!(sets + removes, 1, "{name} in {f:?}");
    }
}

#[test]
fn route_with_header_ops_rewrite_timeout_retries_and_hash() {
    let f = forward(get(
        "Echo.Test",
        "/headers",
        &[("x-meshroute-cluster", "evil"), ("X-User", "u1")],
    ));
    assert_all_control(&f);
    assert_eq!(f.outcome, "route");
    assert_eq!(
        f.set[..4],
        [
            ("x-set".to_owned(), "1".to_owned()),
            (":path".to_owned(), "/new/".to_owned()),
            (":authority".to_owned(), "rewritten.test".to_owned()),
            (
                "x-meshroute-cluster".to_owned(),
                "outbound|80|v1|echo.test".to_owned()
            ),
        ]
    );
    assert_eq!(f.append, vec![("x-add".to_owned(), "2".to_owned())]);
    assert_eq!(f.remove[0], "x-rm");
    assert_eq!(f.remove.iter().filter(|r| *r == "x-rm").count(), 1);
    assert_eq!(set(&f, "x-envoy-max-retries"), Some("3"));
    assert_eq!(
        set(&f, "x-envoy-retry-on"),
        Some("5xx,retriable-status-codes")
    );
    assert_eq!(set(&f, "x-envoy-retry-grpc-on"), Some("unavailable"));
    assert_eq!(set(&f, "x-envoy-retriable-status-codes"), Some("503"));
    assert_eq!(set(&f, "x-envoy-upstream-rq-timeout-ms"), Some("300"));
    assert_eq!(
        set(&f, "x-envoy-upstream-rq-per-try-timeout-ms"),
        Some("100")
    );
    // The hash key comes last, after the other control headers.
    assert_eq!(
        f.set.last(),
        Some(&("x-meshroute-hash".to_owned(), "u1".to_owned()))
    );
    let resp = f.response.unwrap();
    assert_eq!(resp.set, vec![("x-resp".to_owned(), "1".to_owned())]);
    assert_eq!(resp.remove, vec!["x-drop".to_owned()]);
    assert!(!f.fault_delay && !f.fault_abort);
    // Without the hash header, it is removed (last).
    let f = forward(get("echo.test", "/headers", &[]));
    assert_eq!(
        f.remove.last().map(String::as_str),
        Some("x-meshroute-hash")
    );
}

#[test]
fn default_route_gets_default_retries_and_no_response_phase() {
    let f = forward(get("plain.test:80", "/other", &[]));
    assert_all_control(&f);
    assert_eq!(
        set(&f, "x-meshroute-cluster"),
        Some("outbound|80||echo.test")
    );
    assert_eq!(set(&f, "x-envoy-max-retries"), Some("2"));
    assert_eq!(
        set(&f, "x-envoy-retry-on"),
        Some("connect-failure,retriable-status-codes")
    );
    assert!(f.response.is_none() && f.append.is_empty());
}

#[test]
fn local_replies() {
    let r = local(get("echo.test", "/redirect?q=1", &[]));
    assert_eq!(
        (r.outcome, r.status, r.details),
        ("redirect", 302, "redirect")
    );
    assert_eq!(
        r.headers,
        vec![
            (
                "location".to_owned(),
                "http://other.test/elsewhere?q=1".to_owned()
            ),
            ("x-r".to_owned(), "1".to_owned())
        ]
    );
    assert_eq!(r.append, vec![("x-a".to_owned(), "2".to_owned())]);
    let r = local(get("echo.test", "/direct", &[]));
    assert_eq!(
        (r.outcome, r.status, r.body.as_slice()),
        ("direct_response", 418, &b"teapot"[..])
    );
    let r = local(get("echo.test", "/nosubset", &[]));
    assert_eq!(
        (r.outcome, r.status, r.details),
        ("no_cluster", 503, "cluster_not_found")
    );
}

#[test]
fn routed_with_the_full_authority() {
    // An `authority` match sees the port as sent (the host lower-cased).
    let f = forward(get("Echo.Test:8080", "/authority", &[]));
    assert_eq!(set(&f, "x-meshroute-cluster"), Some(V2));
    for other in ["echo.test", "echo.test:80", "echo.test:8081"] {
        let r = local(get(other, "/authority", &[]));
        assert_eq!((r.outcome, r.status), ("no_route", 404), "{other}");
    }
    // A redirect without a new authority keeps the request's port.
    let r = local(get("Echo.Test:8080", "/keepport", &[]));
    assert_eq!((r.outcome, r.status), ("redirect", 301));
    assert_eq!(
        r.headers[0],
        (
            "location".to_owned(),
            "http://echo.test:8080/moved".to_owned()
        )
    );
    let r = local(get("echo.test", "/keepport", &[]));
    assert_eq!(
        r.headers[0],
        ("location".to_owned(), "http://echo.test/moved".to_owned())
    );
}

#[test]
fn registry_only_blackhole_answers_the_cores_502() {
    let ir = serde_json::json!({
        "version": 1, "gateways": ["mesh"], "targets": [], "policies": ["{}"],
        "scopes": [{"clusters": []}], "routes": [],
        "views": [{"gateway": 0, "namespace": "default", "scope": 0, "unknown_host": "blackhole",
                   "vhosts": []}],
        "mesh": {"namespaces": {}, "other_view": 0},
    });
    let t = Arc::new(RouteTable::from_json(&ir.to_string()).unwrap());
    let raw: [(&[u8], &[u8]); 1] = [(b":authority", b"unknown.example")];
    let r = local(t.exchange(&MESH, &raw, &mut SplitMix64::new(1)));
    assert_eq!(
        (r.outcome, r.status, r.details),
        ("no_cluster", 502, "cluster_not_found")
    );
}

#[test]
fn abort_is_forwarded_with_fault_headers_and_no_cors() {
    let f = forward(get("echo.test", "/abort", &[("origin", "https://x")]));
    assert_all_control(&f);
    assert_eq!(f.outcome, "abort");
    assert!(f.fault_delay && f.fault_abort);
    assert_eq!(set(&f, "x-envoy-fault-delay-request"), Some("1500"));
    assert_eq!(set(&f, "x-envoy-fault-abort-grpc-request"), Some("14"));
    assert!(f.remove.iter().any(|r| r == "x-envoy-fault-abort-request"));
    // The route's response ops, no CORS header.
    assert_eq!(
        f.response.unwrap().set,
        vec![("x-r".to_owned(), "1".to_owned())]
    );
}

#[test]
fn gateway_server_selection() {
    let gw = ListenerContext {
        gateway_port: Some(8081),
        ..ListenerContext::default()
    };
    let f = forward(run(
        &gw,
        &[(":authority", "APP.gw.test"), (":path", "/mirror")],
        1,
    ));
    assert_eq!(set(&f, "x-meshroute-cluster"), Some(V2));
    // The first Gateway with a matching server wins; its view has no such host: 404.
    let r = local(run(&gw, &[(":authority", "x.gw.test"), (":path", "/")], 1));
    assert_eq!((r.outcome, r.status), ("no_route", 404));
    // `default/other` serves every other host but has no view: 404 from the core.
    let r = local(run(&gw, &[(":authority", "elsewhere"), (":path", "/")], 1));
    assert_eq!(
        (r.outcome, r.status, r.details),
        ("no_route", 404, "route_not_found")
    );
    let none = ListenerContext {
        gateway_port: Some(9),
        ..ListenerContext::default()
    };
    let r = local(run(&none, &[(":authority", "app.gw.test")], 1));
    assert_eq!((r.outcome, r.status), ("no_route", 404));
}

/// Two gateway proxies with a server each on port 8080: `app=a` for `a.test`, `app=b` for `*`.
fn two_proxies() -> Arc<RouteTable> {
    let reply = |body: &str| {
        json!({"vs": 0, "index": 0, "matches": [{"gateways": [1, 2]}],
               "action": {"direct_response": {"status": 200, "body": body}}})
    };
    let ir = json!({
        "version": 1,
        "virtual_services": [{"namespace": "default", "name": "vs"}],
        "gateways": ["mesh", "workload:default/app=a", "workload:default/app=b,tier=edge"],
        "targets": [],
        "scopes": [{"clusters": []}],
        "routes": [reply("a"), reply("b")],
        "views": [
            {"gateway": 0, "namespace": "default", "scope": 0, "vhosts": []},
            {"gateway": 1, "namespace": "default", "scope": 0, "ports": [8080],
             "vhosts": [{"domains": ["a.test"], "routes": [0], "default_target": null}]},
            {"gateway": 2, "namespace": "default", "scope": 0, "ports": [8080],
             "vhosts": [{"domains": ["b.test"], "routes": [1], "default_target": null}]},
        ],
        "mesh": {"namespaces": {}, "other_view": 0},
        "gateway_views": {"workload:default/app=a": {"8080": 1},
                          "workload:default/app=b,tier=edge": {"8080": 2}},
        "gateway_servers": [[8080, ["a.test"], "workload:default/app=a"],
                            [8080, ["*"], "workload:default/app=b,tier=edge"]],
    });
    Arc::new(RouteTable::from_json(&ir.to_string()).unwrap())
}

#[test]
fn gateway_listener_of_one_proxy() {
    let table = two_proxies();
    let ask = |ctx: &ListenerContext, host: &str| {
        let headers: [(&[u8], &[u8]); 2] = [(b":authority", host.as_bytes()), (b":path", b"/")];
        match table.exchange(ctx, &headers, &mut SplitMix64::new(1)) {
            Exchange::Reply(r) => (r.status, String::from_utf8(r.body).unwrap()),
            Exchange::Forward(f) => panic!("forwarded: {f:?}"),
        }
    };
    let every = ListenerContext {
        gateway_port: Some(8080),
        ..ListenerContext::default()
    };
    let a = ListenerContext {
        gateway_port: Some(8080),
        source_namespace: Some("default".to_owned()),
        source_labels: vec![("app".to_owned(), "a".to_owned())],
    };
    // Labels in any order; no namespace means `default`.
    let b = ListenerContext {
        gateway_port: Some(8080),
        source_namespace: None,
        source_labels: vec![
            ("tier".to_owned(), "edge".to_owned()),
            ("app".to_owned(), "b".to_owned()),
        ],
    };
    assert_eq!(every.gateway_proxy(), None);
    assert_eq!(b.gateway_proxy().map(|(ns, _)| ns), Some("default"));
    // Every proxy: the host picks the proxy.
    assert_eq!(ask(&every, "a.test"), (200, "a".to_owned()));
    assert_eq!(ask(&every, "b.test"), (200, "b".to_owned()));
    // One proxy: another proxy's host is not its own, even under its `*` server.
    assert_eq!(ask(&a, "a.test"), (200, "a".to_owned()));
    assert_eq!(ask(&a, "b.test").0, 404);
    assert_eq!(ask(&b, "b.test"), (200, "b".to_owned()));
    assert_eq!(ask(&b, "a.test").0, 404); // b's `*` claims it, b's view has no such host
    for other in [
        ListenerContext {
            source_namespace: Some("other".to_owned()),
            ..a.clone()
        },
        ListenerContext {
            source_labels: vec![("app".to_owned(), "b".to_owned())],
            ..a.clone()
        },
        ListenerContext {
            gateway_port: Some(9),
            ..a.clone()
        },
    ] {
        assert_eq!(ask(&other, "a.test").0, 404, "{other:?}");
    }
    // Labels compare as sets: a repeated pair is not a missing label.
    let repeated = ListenerContext {
        source_labels: vec![
            ("app".to_owned(), "b".to_owned()),
            ("app".to_owned(), "b".to_owned()),
        ],
        ..b.clone()
    };
    assert_eq!(ask(&repeated, "b.test").0, 404);
}

#[test]
fn mirrors_fired_and_portless() {
    let fired = |authority: &str, seed: u64| {
        let f = forward(run(
            &MESH,
            &[(":authority", authority), (":path", "/mirror")],
            seed,
        ));
        assert_all_control(&f);
        assert_eq!(set(&f, "x-meshroute-mirror-0"), Some(V2));
        assert!(f.remove.iter().any(|r| r == "x-meshroute-mirror-2"));
        set(&f, "x-meshroute-mirror-1").map(str::to_owned)
    };
    let results: Vec<Option<String>> = (0..64).map(|s| fired("echo.test:8080", s)).collect();
    let n = results.iter().filter(|r| r.is_some()).count();
    assert!((16..48).contains(&n), "{n} of 64 at 50 %");
    assert!(results
        .iter()
        .flatten()
        .all(|c| c == "outbound|8080||multi.test"));
    // No authority port: the destination's port.
    let any = (0..64).find_map(|s| fired("echo.test", s)).unwrap();
    assert_eq!(any, "outbound|80||multi.test");
}

#[test]
fn mirror_draws_follow_the_route_draws() {
    // `/split`: one weighted pick, then the mirror draw, from the same stream.
    for seed in 0..32 {
        let f = forward(run(
            &MESH,
            &[(":authority", "echo.test"), (":path", "/split")],
            seed,
        ));
        let mut rng = SplitMix64::new(seed);
        let pick = rng.next_u64() % 2;
        let cluster = if pick == 0 {
            "outbound|80|v1|echo.test"
        } else {
            V2
        };
        assert_eq!(set(&f, "x-meshroute-cluster"), Some(cluster));
        let fires = rng.next_u64() % 1_000_000 < 500_000;
        assert_eq!(
            set(&f, "x-meshroute-mirror-0").is_some(),
            fires,
            "seed {seed}"
        );
    }
}

#[test]
fn passthrough_destination() {
    let f = forward(get("127.0.0.1:18080", "/", &[]));
    assert_all_control(&f);
    assert_eq!(set(&f, "x-meshroute-cluster"), Some("PassthroughCluster"));
    assert_eq!(
        f.set.last(),
        Some(&(
            "x-envoy-original-dst-host".to_owned(),
            "127.0.0.1:18080".to_owned()
        ))
    );
    let f = forward(get("unknown.example:80", "/", &[]));
    assert_eq!(
        f.remove.last().map(String::as_str),
        Some("x-envoy-original-dst-host")
    );
    // A port that is not a u16 stays in the host: no domain, so passthrough without address.
    let f = forward(get("echo.test:99999", "/headers", &[]));
    assert_eq!(set(&f, "x-meshroute-cluster"), Some("PassthroughCluster"));
    assert_eq!(
        f.remove.last().map(String::as_str),
        Some("x-envoy-original-dst-host")
    );
}

#[test]
fn cors_preflight_and_response() {
    let preflight = |origin: &str| {
        run(
            &MESH,
            &[
                (":authority", "echo.test"),
                (":path", "/cors"),
                (":method", "OPTIONS"),
                ("origin", origin),
                ("access-control-request-method", "GET"),
            ],
            1,
        )
    };
    let r = local(preflight("https://a.example"));
    assert_eq!(
        (r.outcome, r.status, r.details),
        ("cors_preflight", 200, "cors_response")
    );
    assert_eq!(
        r.headers[0],
        (
            "access-control-allow-origin".to_owned(),
            "https://a.example".to_owned()
        )
    );
    // Not allowed, FORWARD: an ordinary request without CORS headers.
    let f = forward(preflight("https://evil.example"));
    assert!(f.response.is_none());
    // Allowed, not a preflight: response headers.
    let f = forward(get(
        "echo.test",
        "/cors",
        &[("Origin", "https://a.example")],
    ));
    assert_eq!(
        f.response.unwrap().set,
        vec![
            (
                "access-control-allow-origin".to_owned(),
                "https://a.example".to_owned()
            ),
            (
                "access-control-allow-credentials".to_owned(),
                "true".to_owned()
            ),
            ("access-control-expose-headers".to_owned(), "x-b".to_owned()),
        ]
    );
    // Empty origin: nothing.
    assert!(forward(get("echo.test", "/cors", &[("origin", "")]))
        .response
        .is_none());
}

#[test]
fn non_utf8_and_garbage_never_panic() {
    let raw: [(&[u8], &[u8]); 5] = [
        (b":authority", b"\xff\xfe:80"),
        (b":path", b"/\xc3"),
        (b"\xff", b"\x00"),
        (b"origin", b"\xe9"),
        (b"x-user", b"\xff"),
    ];
    let _ = table().exchange(&MESH, &raw, &mut SplitMix64::new(0));
    let raw: [(&[u8], &[u8]); 3] = [
        (b":authority", b"echo.test"),
        (b":path", b"/headers"),
        (b"x-user", b"caf\xe9"),
    ];
    let f = forward(table().exchange(&MESH, &raw, &mut SplitMix64::new(0)));
    assert_eq!(set(&f, "x-meshroute-hash"), Some("café"));
}

#[test]
fn cors_headers_replace_the_routes_appends() {
    // Built from a route whose response ops append `access-control-allow-origin`.
    let ir = serde_json::json!({
        "version": 1, "gateways": ["mesh"],
        "targets": [{"host": "c.test", "subset": null, "port": 80}],
        "policies": ["{}"], "scopes": [{"clusters": [[0, 80, 0]]}],
        "routes": [{"vs": null, "index": 0, "matches": [],
                    "action": {"route": {"destinations": [{"target": 0, "weight": 0, "response_headers": {
                        "set": [], "add": [["Access-Control-Allow-Origin", "x"], ["x-keep", "1"]], "remove": []}}]}},
                    "extra": {"cors": {"allow_origins": [{"prefix": ""}]}}}],
        "views": [{"gateway": 0, "namespace": "default", "scope": 0,
                   "vhosts": [{"domains": ["c.test"], "routes": [0]}]}],
        "mesh": {"namespaces": {}, "other_view": 0},
    });
    let t = Arc::new(RouteTable::from_json(&ir.to_string()).unwrap());
    let raw: [(&[u8], &[u8]); 2] = [(b":authority", b"c.test"), (b"origin", b"https://o")];
    let f = forward(t.exchange(&MESH, &raw, &mut SplitMix64::new(1)));
    let resp = f.response.unwrap();
    assert_eq!(resp.append, vec![("x-keep".to_owned(), "1".to_owned())]);
    assert_eq!(
        resp.set,
        vec![(
            "access-control-allow-origin".to_owned(),
            "https://o".to_owned()
        )]
    );
}
