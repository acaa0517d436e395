//! `route()` does not allocate on the common path (a separate test binary, so the counting
//! global allocator sees only this test's work).

mod common;

use std::alloc::System;

use common::*;
use meshroute_core::SplitMix64;
use serde_json::json;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn common_path_does_not_allocate() {
    // Bookinfo plus an indexed vhost with every key kind.
    let mut ir = bookinfo();
    let a = ir.target("a", None, Some(80), 80);
    let mut routes = Vec::new();
    for i in 0..64 {
        let block = match i % 4 {
            0 => m(json!({"uri": {"prefix": format!("/api/{i}/")}})),
            1 => m(json!({"uri": {"exact": format!("/exact/{i}")}, "ignore_uri_case": true})),
            2 => m(
                json!({"uri": {"prefix": "/t/"}, "headers": [{"name": "x-tenant", "match": {"exact": format!("t{i}")}}]}),
            ),
            _ => m(json!({"uri": {"regex": format!("/re/{i}/[0-9]+")}})),
        };
        routes.push(ir.route(fwd(i, vec![block], &[(a, 1)])));
    }
    ir.vhost(&["big"], &routes, None, None);
    let t = ir.build();
    let requests = [
        req("reviews", "/r", &[("end-user", "jason")]),
        req(
            "reviews.default.svc.cluster.local:9080",
            "/r",
            &[("End-User", "mike")],
        ),
        req("big", "/api/8/x?y", &[]),
        req("big", "/EXACT/9", &[]),
        req("big", "/t/x", &[("x-tenant", "t62")]),
        req("big", "/re/63/123", &[]),
        req("big", "/nothing", &[]),
    ];
    let mut rng = SplitMix64::new(1);
    // Warm up: regex caches are created on first use per thread.
    for r in &requests {
        drop(t.route(r, &mut rng));
    }
    for r in &requests {
        let region = Region::new(GLOBAL);
        let d = t.route(r, &mut rng);
        let stats = region.change();
        drop(d);
        assert_eq!(
            stats.allocations, 0,
            "{} {}: {stats:?}",
            r.authority, r.path
        );
    }
}
