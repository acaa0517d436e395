//! `Decision::to_json` and `RouteTable::explain` output shapes.

mod common;

use common::*;
use serde_json::{json, Value};

#[test]
fn bookinfo_decision_object() {
    let mut ir = bookinfo();
    ir.doc["policies"] = json!(["{}", "{\"loadBalancer\": {\"simple\": \"ROUND_ROBIN\"}}"]);
    ir.doc["scopes"][0]["clusters"][1][2] = json!(1);
    ir.doc["routes"][0]["name"] = json!("jason-route");
    ir.doc["routes"][0]["extra"] = json!({"timeout_ms": 500, "retries": {"attempts": 3}});
    ir.doc["routes"][0]["action"]["route"]["destinations"][0]["request_headers"] =
        json!({"set": [["x-v", "2"]], "add": [], "remove": ["x-old"]});
    let t = ir.build();
    let d = route(
        &t,
        &req("reviews.default:9080", "/r?x", &[("end-user", "jason")]),
    );
    let got: Value = serde_json::from_str(&d.to_json()).unwrap();
    let want = json!({
        "outcome": "route", "status": null, "gateway": "mesh", "namespace": "default",
        "vhost": "reviews.default", "virtual_service": "default/reviews",
        "route_index": 0, "route_name": "jason-route", "match_index": 0,
        "destination": {"host": REVIEWS, "subset": "v2", "port": 9080},
        "cluster": "outbound|9080|v2|reviews.default.svc.cluster.local",
        "fault": null,
        "request_headers": {"set": [["x-v", "2"]], "add": [], "remove": ["x-old"]},
        "response_headers": {"set": [], "add": [], "remove": []},
        "rewrite": null, "redirect": null, "direct_response": null,
        "traffic_policy": {"loadBalancer": {"simple": "ROUND_ROBIN"}},
        "timeout_ms": 500, "retries": {"attempts": 3}
    });
    assert_eq!(got, want);
}

#[test]
fn default_route_uses_default_extra() {
    let mut ir = Ir::new();
    let all = ir.target(REVIEWS, None, None, 9080);
    ir.vhost(&["reviews"], &[], Some(all), Some(9080));
    ir.doc["default_extra"] = json!({"timeout_ms": null, "retries": {"attempts": 2}});
    let d = route(&ir.build(), &req("reviews", "/", &[]));
    let got: Value = serde_json::from_str(&d.to_json()).unwrap();
    assert_eq!(got["virtual_service"], Value::Null);
    assert_eq!(got["retries"], json!({"attempts": 2}));
    assert_eq!(got["traffic_policy"], json!({}));
    assert_eq!(
        got["destination"],
        json!({"host": REVIEWS, "subset": null, "port": 9080})
    );
}

#[test]
fn no_route_object_is_mostly_null() {
    let t = bookinfo().build();
    let got: Value = serde_json::from_str(&route(&t, &req("nowhere", "/", &[])).to_json()).unwrap();
    assert_eq!(got["outcome"], "no_route");
    assert_eq!(got["status"], 404);
    assert_eq!(got["vhost"], Value::Null);
    assert_eq!(got["cluster"], Value::Null);
    assert!(got.get("timeout_ms").is_none());
}

#[test]
fn explain_traces_blocks_up_to_the_match() {
    let t = bookinfo().build();
    let r = req("reviews", "/", &[("end-user", "mike")]);
    let e: Value = serde_json::from_str(&t.explain(&r)).unwrap();
    assert_eq!(e["vhost"], "reviews");
    assert_eq!(e["default_route"], false);
    assert_eq!(
        e["trace"],
        json!([
            {"route_index": 0, "virtual_service": "default/reviews", "match_index": 0, "match_name": null,
             "result": "no match: header end-user"},
            {"route_index": 1, "virtual_service": "default/reviews", "match_index": null, "match_name": null,
             "result": "matched"}
        ])
    );
    assert_eq!(
        e["decision"]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    let filtered: Value = serde_json::from_str(&t.explain(&meshroute_core::Request {
        gateway: "default/gw",
        ..r
    }))
    .unwrap();
    assert_eq!(filtered["view"], Value::Null);
}
