//! Route walk: first match wins, OR across blocks, AND within, config-time filters, default route.

mod common;

use common::*;
use meshroute_core::{Outcome, Request};
use serde_json::json;

#[test]
fn bookinfo_jason_gets_v2_others_v1() {
    let t = bookinfo().build();
    let d = route(&t, &req("reviews", "/reviews/0", &[("end-user", "jason")]));
    assert_eq!(d.outcome(), Outcome::Route);
    assert_eq!(d.status(), None);
    assert_eq!(d.subset(), Some("v2"));
    assert_eq!(
        d.cluster().as_deref(),
        Some("outbound|9080|v2|reviews.default.svc.cluster.local")
    );
    assert_eq!((d.route_index(), d.match_index()), (Some(0), Some(0)));
    assert_eq!(d.virtual_service(), Some(("default", "reviews")));
    let d = route(&t, &req("reviews:9080", "/", &[("end-user", "mike")]));
    assert_eq!(d.subset(), Some("v1"));
    assert_eq!((d.route_index(), d.match_index()), (Some(1), None));
    assert_eq!(d.port(), Some(9080));
}

#[test]
fn first_match_wins_even_if_later_is_more_specific() {
    let mut ir = Ir::new();
    let a = ir.target("a", None, Some(80), 80);
    let b = ir.target("b", None, Some(80), 80);
    let r0 = ir.route(fwd(0, vec![m(json!({"uri": {"prefix": "/"}}))], &[(a, 0)]));
    let r1 = ir.route(fwd(
        1,
        vec![m(json!({"uri": {"exact": "/exact"}}))],
        &[(b, 0)],
    ));
    ir.vhost(&["h"], &[r0, r1], None, None);
    let d = route(&ir.build(), &req("h", "/exact", &[]));
    assert_eq!(d.host(), Some("a"));
}

#[test]
fn blocks_are_or_conditions_are_and() {
    let mut ir = Ir::new();
    let a = ir.target("a", None, Some(80), 80);
    let both = m(json!({"uri": {"prefix": "/x"}, "method": {"exact": "POST"}}));
    let other = m(json!({"headers": [{"name": "x-k", "match": {"present": true}}]}));
    let r = ir.route(fwd(0, vec![both, other], &[(a, 0)]));
    ir.vhost(&["h"], &[r], None, None);
    let t = ir.build();
    let post = Request {
        method: "POST",
        ..req("h", "/x1", &[])
    };
    assert_eq!(route(&t, &post).match_index(), Some(0));
    // AND: the path alone is not enough.
    assert_eq!(route(&t, &req("h", "/x1", &[])).outcome(), Outcome::NoRoute);
    // OR: the second block matches on its own.
    assert_eq!(
        route(&t, &req("h", "/y", &[("X-K", "")])).match_index(),
        Some(1)
    );
}

#[test]
fn routes_after_catch_all_are_unreachable() {
    let mut ir = Ir::new();
    let a = ir.target("a", None, Some(80), 80);
    let r0 = ir.route(fwd(0, vec![], &[(a, 0)]));
    let r1 = ir.route(fwd(1, vec![m(json!({"uri": {"exact": "/"}}))], &[(a, 0)]));
    ir.vhost(&["h"], &[r0, r1], None, None);
    assert_eq!(
        route(&ir.build(), &req("h", "/", &[])).route_index(),
        Some(0)
    );
}

/// One VS route filtered by `filter`; the service has a default route.
fn filtered(filter: serde_json::Value) -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    let v2 = ir.target(REVIEWS, Some("v2"), Some(9080), 9080);
    let all = ir.target(REVIEWS, None, None, 9080);
    let mut block = m(json!({"uri": {"prefix": "/only"}}));
    for (k, v) in filter.as_object().unwrap() {
        block[k] = v.clone();
    }
    let r = ir.route(fwd(0, vec![block], &[(v2, 0)]));
    ir.vhost(&["reviews"], &[r], Some(all), Some(9080));
    ir.build()
}

#[test]
fn no_applicable_block_takes_default_route() {
    for filter in [
        json!({"port": 1234}),
        json!({"source_labels": {"app": "productpage"}}),
        json!({"source_namespace": "other"}),
    ] {
        let d = route(&filtered(filter.clone()), &req("reviews", "/only", &[]));
        assert_eq!(d.outcome(), Outcome::Route, "{filter}");
        assert_eq!(d.subset(), None);
        assert_eq!(d.route_index(), None);
        assert_eq!(
            d.cluster().as_deref(),
            Some("outbound|9080||reviews.default.svc.cluster.local")
        );
    }
}

#[test]
fn applicable_block_that_does_not_match_is_404() {
    let t = filtered(json!({"port": 9080, "source_labels": {"app": "productpage"}}));
    let labels = [("app", "productpage"), ("version", "v1")];
    let ok = Request {
        source_labels: &labels,
        ..req("reviews", "/only/x", &[])
    };
    assert_eq!(route(&t, &ok).subset(), Some("v2"));
    let miss = Request {
        source_labels: &labels,
        ..req("reviews", "/other", &[])
    };
    let d = route(&t, &miss);
    assert_eq!((d.outcome(), d.status()), (Outcome::NoRoute, Some(404)));
}

#[test]
fn gateway_filter_drops_blocks() {
    let mut ir = Ir::new();
    ir.doc["gateways"] = json!(["mesh", "istio-system/gw"]);
    let a = ir.target("a", None, Some(80), 80);
    let r = ir.route(fwd(0, vec![json!({"gateways": [1]})], &[(a, 0)]));
    ir.vhost(&["h"], &[r], Some(a), None);
    let d = route(&ir.build(), &req("h", "/", &[]));
    assert_eq!((d.outcome(), d.route_index()), (Outcome::Route, None));
}

#[test]
fn known_service_without_vs_and_missing_cluster() {
    let mut ir = Ir::new();
    let all = ir.target(REVIEWS, None, None, 9080);
    ir.vhost(&["reviews"], &[], Some(all), Some(9080));
    let t = ir.build();
    assert_eq!(route(&t, &req("reviews", "/", &[])).port(), Some(9080));
    // A port the service does not have: the cluster does not exist.
    let d = route(&t, &req("reviews:1234", "/", &[]));
    assert_eq!((d.outcome(), d.status()), (Outcome::NoCluster, Some(503)));
}

#[test]
fn route_to_undefined_subset_is_503() {
    let mut ir = Ir::new();
    let v9 = ir.doc["targets"].as_array().unwrap().len() as u32;
    ir.doc["targets"]
        .as_array_mut()
        .unwrap()
        .push(json!({"host": REVIEWS, "subset": "v9", "port": 9080}));
    let r = ir.route(fwd(0, vec![], &[(v9, 0)]));
    ir.vhost(&["reviews"], &[r], None, None);
    let d = route(&ir.build(), &req("reviews", "/", &[]));
    assert_eq!((d.outcome(), d.status()), (Outcome::NoCluster, Some(503)));
    assert_eq!(
        d.cluster().as_deref(),
        Some("outbound|9080|v9|reviews.default.svc.cluster.local")
    );
}

#[test]
fn uri_semantics_through_the_table() {
    let mut ir = Ir::new();
    let a = ir.target("a", None, Some(80), 80);
    let blocks = vec![
        m(json!({"uri": {"exact": "/login"}})),
        m(json!({"uri": {"prefix": "/API"}, "ignore_uri_case": true})),
        m(json!({"uri": {"regex": "/u/\\d+"}})),
        m(json!({"query_params": [{"name": "debug", "match": {"exact": ""}}]})),
        m(
            json!({"without_headers": [{"name": "x-block", "match": {"present": true}}], "authority": {"exact": "h:8080"}}),
        ),
    ];
    let r = ir.route(fwd(0, blocks, &[(a, 0)]));
    ir.vhost(&["h"], &[r], None, None);
    let t = ir.build();
    let idx =
        |path: &str, auth: &str, h: &[(&str, &str)]| route(&t, &req(auth, path, h)).match_index();
    assert_eq!(idx("/login?next=/", "h", &[]), Some(0));
    assert_eq!(idx("/api/v1", "h", &[]), Some(1));
    assert_eq!(idx("/u/42?x", "h", &[]), Some(2));
    assert_eq!(idx("/u/٤٢", "h", &[]), None);
    assert_eq!(idx("/p?debug", "h", &[]), Some(3));
    assert_eq!(idx("/p", "h:8080", &[]), Some(4));
    assert_eq!(idx("/p", "h:8080", &[("x-block", "1")]), None);
}
