//! Criterion benches of `RouteTable::route()` by scenario; every scenario checks its decision
//! before timing, so a fast wrong answer cannot pass as a result.
//!
//! Run: `cargo bench -p meshroute-core --bench route`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use meshroute_core::{Exchange, ListenerContext, Outcome, Request, RouteTable, SplitMix64};
use serde_json::{json, Value};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// The IR skeleton: one mesh view (`vhosts`), one scope holding `clusters`.
fn ir(targets: Vec<Value>, routes: Vec<Value>, vhosts: Vec<Value>) -> String {
    let clusters: Vec<Value> = (0..targets.len()).map(|i| json!([i, 9080, 0])).collect();
    json!({
        "version": 1,
        "virtual_services": [{"namespace": "default", "name": "vs"}],
        "gateways": ["mesh"],
        "targets": targets,
        "policies": ["{}"],
        "scopes": [{"clusters": clusters}],
        "routes": routes,
        "views": [{"gateway": 0, "namespace": "default", "scope": 0, "ports": [], "https_redirect_hosts": [],
                   "unknown_host": "passthrough", "vhosts": vhosts}],
        "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
        "gateway_views": {},
        // As compile.py writes it: the mesh default retries (exchange() turns them into headers).
        "default_extra": {"timeout_ms": null, "retries": {"attempts": 2,
            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"},
            "mirrors": [], "cors": null}
    })
    .to_string()
}

fn route_json(index: usize, matches: Value, target: usize) -> Value {
    json!({"vs": 0, "index": index, "name": null, "matches": matches,
           "action": {"route": {"destinations": [{"target": target, "weight": 100}]}},
           "extra": {"timeout_ms": null, "retries": {"attempts": 2, "retry_on": ""}, "mirrors": [], "cors": null}})
}

fn target(host: &str, subset: Option<&str>) -> Value {
    json!({"host": host, "subset": subset, "port": 9080})
}

fn domains(svc: &str) -> Vec<String> {
    let fqdn = format!("{svc}.default.svc.cluster.local");
    vec![
        svc.into(),
        format!("{svc}.default"),
        format!("{svc}.default.svc"),
        fqdn,
    ]
}

/// Bookinfo: productpage, details, ratings without VS; reviews with jason → v2, else v1.
fn bookinfo() -> Arc<RouteTable> {
    let fq = |s: &str| format!("{s}.default.svc.cluster.local");
    let targets = vec![
        target(&fq("productpage"), None),
        target(&fq("details"), None),
        target(&fq("ratings"), None),
        target(&fq("reviews"), None),
        target(&fq("reviews"), Some("v1")),
        target(&fq("reviews"), Some("v2")),
    ];
    let jason =
        json!([{"gateways": [0], "headers": [{"name": "end-user", "match": {"exact": "jason"}}]}]);
    let routes = vec![route_json(0, jason, 5), route_json(1, json!([]), 4)];
    let vhost = |svc: &str, routes: Value, t: usize| json!({"domains": domains(svc), "routes": routes, "default_target": t, "default_port": 9080});
    let vhosts = vec![
        vhost("productpage", json!([]), 0),
        vhost("details", json!([]), 1),
        vhost("ratings", json!([]), 2),
        vhost("reviews", json!([0, 1]), 3),
    ];
    Arc::new(RouteTable::from_json(&ir(targets, routes, vhosts)).unwrap())
}

/// `n` routes in one vhost: i % 4 = prefix `/api/v1/svc{i}/`, exact `/exact/{i}`,
/// header `x-tenant: t{i}` + prefix `/tenant/`, regex `/re/{i}/[0-9]+`. No catch-all.
fn scale_ir(n: usize) -> String {
    let routes: Vec<Value> = (0..n)
        .map(|i| {
            let m = match i % 4 {
                0 => json!({"gateways": [0], "uri": {"prefix": format!("/api/v1/svc{i}/")}}),
                1 => json!({"gateways": [0], "uri": {"exact": format!("/exact/{i}")}}),
                2 => json!({"gateways": [0], "uri": {"prefix": "/tenant/"},
                            "headers": [{"name": "x-tenant", "match": {"exact": format!("t{i}")}}]}),
                _ => json!({"gateways": [0], "uri": {"regex": format!("/re/{i}/[0-9]+")}}),
            };
            route_json(i, json!([m]), 0)
        })
        .collect();
    let vhost = json!({"domains": domains("svc"), "routes": (0..n).collect::<Vec<_>>(),
                       "default_target": 0, "default_port": 9080});
    ir(
        vec![target("svc.default.svc.cluster.local", None)],
        routes,
        vec![vhost],
    )
}

/// A request hitting route `i` of a scale table (by its kind), as (path, x-tenant).
fn scale_request(i: usize) -> (String, String) {
    match i % 4 {
        0 => (format!("/api/v1/svc{i}/items/42?page=2"), String::new()),
        1 => (format!("/exact/{i}"), String::new()),
        2 => ("/tenant/orders".into(), format!("t{i}")),
        _ => (format!("/re/{i}/12345"), String::new()),
    }
}

/// Checks the decision (route index and outcome), then times `route()`.
fn bench_one(
    c: &mut Criterion,
    name: &str,
    table: &Arc<RouteTable>,
    req: &Request<'_>,
    want: (Option<u32>, Outcome),
) {
    let d = table.route(req, &mut SplitMix64::new(1));
    assert_eq!(
        (d.route_index(), d.outcome()),
        want,
        "{name}: wrong decision"
    );
    let mut rng = SplitMix64::new(7);
    c.bench_function(name, |b| {
        b.iter(|| black_box(table.route(black_box(req), &mut rng)))
    });
}

fn bookinfo_benches(c: &mut Criterion) {
    let t = bookinfo();
    let base = Request {
        authority: "reviews:9080",
        path: "/reviews/0",
        ..Request::default()
    };
    let headers = [
        ("user-agent", "curl/8"),
        ("accept", "*/*"),
        ("end-user", "jason"),
        ("x-request-id", "abc"),
    ];
    bench_one(
        c,
        "bookinfo/reviews_jason",
        &t,
        &Request {
            headers: &headers,
            ..base
        },
        (Some(0), Outcome::Route),
    );
    let other = [
        ("user-agent", "curl/8"),
        ("accept", "*/*"),
        ("x-request-id", "abc"),
    ];
    bench_one(
        c,
        "bookinfo/reviews_other",
        &t,
        &Request {
            headers: &other,
            ..base
        },
        (Some(1), Outcome::Route),
    );
    let pp = Request {
        authority: "productpage.default.svc.cluster.local",
        path: "/productpage",
        ..base
    };
    bench_one(
        c,
        "bookinfo/productpage_default",
        &t,
        &pp,
        (None, Outcome::Route),
    );
    let d = t.route(
        &Request {
            headers: &headers,
            ..base
        },
        &mut SplitMix64::new(1),
    );
    c.bench_function("bookinfo/to_json", |b| b.iter(|| black_box(d.to_json())));
    exchange_benches(c, &t);
}

/// `exchange()`: the same Bookinfo request as Envoy hands it over (pseudo-headers, raw bytes),
/// answered in full (control headers, retries, header ops).
fn exchange_benches(c: &mut Criterion, t: &Arc<RouteTable>) {
    let headers: [(&[u8], &[u8]); 8] = [
        (b":authority", b"reviews:9080"),
        (b":path", b"/reviews/0"),
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b"user-agent", b"curl/8"),
        (b"accept", b"*/*"),
        (b"end-user", b"jason"),
        (b"x-request-id", b"abc"),
    ];
    let ctx = ListenerContext::default();
    match t.exchange(&ctx, &headers, &mut SplitMix64::new(1)) {
        Exchange::Forward(f) => assert_eq!(
            f.set.first().map(|(_, v)| v.as_str()),
            Some("outbound|9080|v2|reviews.default.svc.cluster.local"),
            "exchange: wrong decision"
        ),
        Exchange::Reply(r) => panic!("exchange: {r:?}"),
    }
    let mut rng = SplitMix64::new(7);
    c.bench_function("bookinfo/exchange_reviews_jason", |b| {
        b.iter(|| black_box(t.exchange(&ctx, black_box(&headers), &mut rng)))
    });
}

fn scale_benches(c: &mut Criterion) {
    for n in SIZES {
        let t = Arc::new(RouteTable::from_json(&scale_ir(n)).unwrap());
        // start: route 0 (prefix); middle: an exact route; end: the last regex and header routes.
        let mid = n / 2 - (n / 2) % 4 + 1;
        let last_regex = (0..n).rev().find(|i| i % 4 == 3).unwrap();
        let last_header = (0..n).rev().find(|i| i % 4 == 2).unwrap();
        for (pos, i) in [
            ("start", 0),
            ("middle", mid),
            ("end_regex", last_regex),
            ("end_header", last_header),
        ] {
            let (path, tenant) = scale_request(i);
            let headers = [("user-agent", "curl/8"), ("x-tenant", tenant.as_str())];
            let req = Request {
                authority: "svc",
                path: &path,
                headers: &headers,
                ..Request::default()
            };
            bench_one(
                c,
                &format!("scale_{n}/{pos}"),
                &t,
                &req,
                (Some(u32::try_from(i).unwrap()), Outcome::Route),
            );
        }
        let headers = [("user-agent", "curl/8"), ("x-tenant", "nobody")];
        let miss = Request {
            authority: "svc",
            path: "/api/v1/svc999999/x",
            headers: &headers,
            ..Request::default()
        };
        bench_one(
            c,
            &format!("scale_{n}/miss"),
            &t,
            &miss,
            (None, Outcome::NoRoute),
        );
    }
}

fn compile_benches(c: &mut Criterion) {
    for n in [1_000, 10_000] {
        let text = scale_ir(n);
        c.bench_function(&format!("compile/scale_{n}"), |b| {
            b.iter(|| RouteTable::from_json(black_box(&text)).unwrap())
        });
    }
}

criterion_group! {
    name = route;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bookinfo_benches, scale_benches
}
criterion_group! {
    name = compile;
    config = Criterion::default().sample_size(10);
    targets = compile_benches
}
criterion_main!(route, compile);
