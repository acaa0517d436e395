//! Actions through the table: weighted picks, fault draws, rewrites, redirects, direct responses.

mod common;

use common::*;
use meshroute_core::{Outcome, Rng, SplitMix64};
use serde_json::json;

/// Replays values and records how many were drawn.
struct Script(Vec<u64>, usize);
impl Rng for Script {
    fn next_u64(&mut self) -> u64 {
        self.1 += 1;
        self.0[self.1 - 1]
    }
}

fn split(weights: &[u32], fault: serde_json::Value) -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    let dests: Vec<(u32, u32)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            (
                ir.target(REVIEWS, Some(&format!("v{}", i + 1)), Some(9080), 9080),
                w,
            )
        })
        .collect();
    let r = ir.route(with(fwd(0, vec![], &dests), "fault", fault));
    ir.vhost(&["reviews"], &[r], None, None);
    ir.build()
}

#[test]
fn weighted_exact_picks() {
    let t = split(&[80, 20], json!(null));
    let pick = |v: u64| {
        t.route(&req("reviews", "/", &[]), &mut Script(vec![v], 0))
            .subset()
            .map(str::to_owned)
    };
    assert_eq!(pick(79).as_deref(), Some("v1"));
    assert_eq!(pick(80).as_deref(), Some("v2"));
    assert_eq!(pick(199).as_deref(), Some("v2"));
}

#[test]
fn weighted_split_statistics() {
    // 100k draws, 70/20/10; the largest binomial σ is ~0.15%, tolerance 1% (~7σ).
    let t = split(&[70, 20, 10], json!(null));
    let mut rng = SplitMix64::new(2024);
    let mut counts = [0u32; 3];
    let r = req("reviews", "/", &[]);
    let n = 100_000;
    for _ in 0..n {
        let d = t.route(&r, &mut rng);
        counts[usize::from(d.subset().unwrap().as_bytes()[1] - b'1')] += 1;
    }
    for (c, want) in counts.iter().zip([0.7, 0.2, 0.1]) {
        assert!(
            (f64::from(*c) / f64::from(n) - want).abs() < 0.01,
            "{counts:?}"
        );
    }
}

#[test]
fn draw_order_weight_then_delay_then_abort() {
    let fault = json!({"delay": {"fixed_delay_ms": 7000, "per_million": 500_000},
                       "abort": {"http_status": 500, "grpc_status": null, "per_million": 500_000}});
    let t = split(&[50, 50], fault);
    // weight draw 60 → v2; delay draw 1 → fires; abort draw 999_999 → does not.
    let mut rng = Script(vec![60, 1, 999_999], 0);
    let d = t.route(&req("reviews", "/", &[]), &mut rng);
    assert_eq!(
        (d.subset(), d.delay_ms(), d.outcome()),
        (Some("v2"), Some(7000), Outcome::Route)
    );
    assert_eq!(rng.1, 3);
    let mut rng = Script(vec![0, 500_000, 0], 0);
    let d = t.route(&req("reviews", "/", &[]), &mut rng);
    assert_eq!(
        (d.delay_ms(), d.outcome(), d.status()),
        (None, Outcome::Abort, Some(500))
    );
    assert!(d
        .to_json()
        .contains(r#""fault":{"delay_ms":null,"abort":{"http_status":500}}"#));
}

#[test]
fn certain_faults_take_no_draw_and_grpc_abort_is_200() {
    let fault = json!({"delay": {"fixed_delay_ms": 5, "per_million": 1_000_000},
                       "abort": {"http_status": null, "grpc_status": "UNAVAILABLE", "per_million": 1_000_000}});
    let t = split(&[1], fault);
    let mut rng = Script(vec![], 0);
    let d = t.route(&req("reviews", "/", &[]), &mut rng);
    assert_eq!(
        (d.outcome(), d.status(), d.delay_ms()),
        (Outcome::Abort, Some(200), Some(5))
    );
    assert!(d
        .to_json()
        .contains(r#""abort":{"grpc_status":"UNAVAILABLE"}"#));
}

fn rewriting(
    matches: Vec<serde_json::Value>,
    rewrite: serde_json::Value,
) -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    let a = ir.target("a", None, Some(80), 80);
    let r = ir.route(with(fwd(0, matches, &[(a, 0)]), "rewrite", rewrite));
    ir.vhost(&["h"], &[r], None, None);
    ir.build()
}

#[test]
fn rewrite_gotcha_and_prefix() {
    let t = rewriting(vec![], json!({"uri": "/v1"}));
    assert_eq!(
        route(&t, &req("h", "/foo?x=1", &[])).rewrite_path(),
        Some("/v1foo?x=1")
    );
    let t = rewriting(
        vec![m(json!({"uri": {"prefix": "/old"}}))],
        json!({"uri": "/new", "authority": "n"}),
    );
    let d = route(&t, &req("h", "/old/x", &[]));
    assert_eq!(
        (d.rewrite_path(), d.rewrite_authority()),
        (Some("/new/x"), Some("n"))
    );
    let t = rewriting(
        vec![m(json!({}))],
        json!({"regex": {"match": "^/a/(\\d+)$", "rewrite": "/b/\\1"}}),
    );
    assert_eq!(
        route(&t, &req("h", "/a/7?q", &[])).rewrite_path(),
        Some("/b/7?q")
    );
}

fn redirecting(redirect: serde_json::Value) -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    let mut r = fwd(0, vec![], &[]);
    r["action"] = json!({"redirect": redirect});
    r["response_headers"] = json!({"set": [["x-r", "1"]], "add": [], "remove": []});
    let r = ir.route(r);
    ir.vhost(&["h", "*"], &[r], None, None);
    ir.build()
}

#[test]
fn redirect_keeps_query_and_never_writes_default_ports() {
    let t = redirecting(
        json!({"uri": "/v2", "authority": null, "port": null, "derive_port": null, "scheme": null, "code": 302}),
    );
    let d = route(&t, &req("h:80", "/v1?a=b", &[]));
    assert_eq!((d.outcome(), d.status()), (Outcome::Redirect, Some(302)));
    assert_eq!(d.redirect_location(), Some("http://h/v2?a=b"));
    assert!(d
        .to_json()
        .contains(r#""redirect":{"location":"http://h/v2?a=b","status":302}"#));
    assert!(d
        .to_json()
        .contains(r#""response_headers":{"add":[],"remove":[],"set":[["x-r","1"]]}"#));
    let t = redirecting(json!({"scheme": "https", "port": 443}));
    assert_eq!(
        route(&t, &req("h:8080", "/p", &[])).redirect_location(),
        Some("https://h/p")
    );
    let t = redirecting(json!({"derive_port": "FROM_REQUEST_PORT"}));
    let d = t.route(
        &meshroute_core::Request {
            port: Some(9080),
            ..req("h", "/p", &[])
        },
        &mut SplitMix64::new(0),
    );
    assert_eq!(d.redirect_location(), Some("http://h:9080/p"));
}

#[test]
fn direct_response() {
    let mut ir = Ir::new();
    let mut r = fwd(0, vec![], &[]);
    r["action"] = json!({"direct_response": {"status": 503, "body": "down"}});
    let r = ir.route(r);
    ir.vhost(&["h"], &[r], None, None);
    let d = route(&ir.build(), &req("h", "/", &[]));
    assert_eq!(
        (d.outcome(), d.status(), d.cluster()),
        (Outcome::DirectResponse, Some(503), None)
    );
    assert!(d
        .to_json()
        .contains(r#""direct_response":{"status":503,"body":"down"}"#));
}
