//! `vhost_pool`: views that share a vhost by index decide exactly as views that write it out.

mod common;

use common::*;
use meshroute_core::{ErrorKind, Request, RouteTable};
use serde_json::{json, Value};

/// Bookinfo's reviews seen from two namespaces (`default` with the short name, `prod` without)
/// plus a gateway view; `pooled` moves the vhosts the views share into `vhost_pool`.
fn two_namespaces(pooled: bool) -> Ir {
    let mut ir = bookinfo();
    let reviews = ir.doc["views"][0]["vhosts"][0].clone();
    let mut foreign = reviews.clone();
    foreign["domains"] = json!(["reviews.default", "reviews.default.svc", REVIEWS]);
    let other = json!({"domains": ["other.example.com"], "routes": [1], "default_target": null,
                       "default_port": null});
    ir.doc["gateways"] = json!(["mesh", "default/gw"]);
    ir.doc["views"] = json!([
        {"gateway": 0, "namespace": "default", "scope": 0, "vhosts": [reviews, other]},
        {"gateway": 0, "namespace": "prod", "scope": 0, "vhosts": [foreign, other]},
        {"gateway": 1, "namespace": "default", "scope": 0, "vhosts": [foreign]},
    ]);
    ir.doc["mesh"] = json!({"namespaces": {"default": {"default_view": 0, "sidecars": []},
                                           "prod": {"default_view": 1, "sidecars": []}},
                            "other_view": 1});
    ir.doc["gateway_views"] = json!({"default/gw": {"80": 2}});
    if pooled {
        ir.doc["vhost_pool"] = json!([foreign, other]);
        ir.doc["views"][0]["vhosts"][1] = json!(1);
        ir.doc["views"][1]["vhosts"] = json!([0, 1]);
        ir.doc["views"][2]["vhosts"] = json!([0]);
    }
    ir
}

fn summary(table: &std::sync::Arc<RouteTable>, r: &Request<'_>) -> Value {
    let d = route(table, r);
    json!([
        d.outcome().as_str(),
        d.cluster(),
        d.vhost(),
        d.route_index(),
        d.match_index()
    ])
}

#[test]
fn pooled_vhosts_decide_as_inline_ones() {
    let (inline, pooled) = (two_namespaces(false).build(), two_namespaces(true).build());
    let jason = [("end-user", "jason")];
    let mut compared = 0;
    for ns in ["default", "prod", "elsewhere"] {
        for gateway in ["mesh", "default/gw"] {
            for host in [
                "reviews",
                "reviews.default",
                REVIEWS,
                "other.example.com",
                "nope",
            ] {
                for headers in [&jason[..], &[]] {
                    let mut r = req(host, "/reviews/0", headers);
                    r.source_namespace = Some(ns);
                    r.gateway = gateway;
                    assert_eq!(
                        summary(&inline, &r),
                        summary(&pooled, &r),
                        "{ns} {gateway} {host}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 60);
    // The short name only exists in `default`; the gateway view applies no mesh block.
    let mut r = req("reviews", "/", &jason);
    r.source_namespace = Some("prod");
    assert_eq!(route(&pooled, &r).outcome().as_str(), "no_route");
    r.source_namespace = Some("default");
    assert_eq!(
        route(&pooled, &r).cluster().as_deref(),
        Some("outbound|9080|v2|reviews.default.svc.cluster.local")
    );
    r.gateway = "default/gw";
    r.authority = REVIEWS;
    assert_eq!(route(&pooled, &r).cluster(), route(&inline, &r).cluster());
}

#[test]
fn pool_references_are_checked() {
    let mut ir = two_namespaces(true);
    ir.doc["views"][1]["vhosts"][1] = json!(7);
    let e = RouteTable::from_json(&ir.json()).err().expect("rejected");
    assert_eq!(
        (e.kind(), e.path()),
        (ErrorKind::Reference, "views[1].vhosts[1]")
    );

    let mut ir = two_namespaces(true);
    ir.doc["vhost_pool"][1]["routes"] = json!([0, 9]);
    let e = RouteTable::from_json(&ir.json()).err().expect("rejected");
    assert_eq!(
        (e.kind(), e.path()),
        (ErrorKind::Reference, "vhost_pool[1].routes[1]")
    );

    let mut ir = two_namespaces(true);
    ir.doc["views"][0]["vhosts"][0]["bogus"] = json!(1);
    let e = RouteTable::from_json(&ir.json()).err().expect("rejected");
    assert_eq!(e.kind(), ErrorKind::Schema);
    assert!(e.path().starts_with("views[0].vhosts[0]"), "{}", e.path());

    let mut ir = two_namespaces(true);
    ir.doc["views"][0]["vhosts"][1] = json!(-1);
    let e = RouteTable::from_json(&ir.json()).err().expect("rejected");
    assert_eq!(
        (e.kind(), e.path()),
        (ErrorKind::Schema, "views[0].vhosts[1]")
    );
}
