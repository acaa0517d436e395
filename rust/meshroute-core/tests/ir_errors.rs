//! IR problems are `CompileError`s with a path, never panics or runtime failures.

mod common;

use common::*;
use meshroute_core::{ErrorKind, RouteTable};
use serde_json::json;

fn err(ir: &Ir) -> (ErrorKind, String) {
    let e = RouteTable::from_json(&ir.json())
        .err()
        .expect("IR must be rejected");
    (e.kind(), e.path().to_owned())
}

#[test]
fn bad_header_regex_has_full_path() {
    let mut ir = bookinfo();
    ir.doc["routes"][0]["matches"][0]["headers"] = json!([{"name": "a", "match": {"exact": "x"}}, {"name": "b", "match": {"regex": "(unclosed"}}]);
    assert_eq!(
        err(&ir),
        (
            ErrorKind::Regex,
            "routes[0].matches[0].headers[1].match.regex".into()
        )
    );
}

#[test]
fn bad_uri_and_rewrite_regex() {
    let mut ir = bookinfo();
    ir.doc["routes"][1]["matches"] = json!([{"gateways": [0], "uri": {"regex": "a)"}}]);
    assert_eq!(
        err(&ir),
        (ErrorKind::Regex, "routes[1].matches[0].uri.regex".into())
    );
    let mut ir = bookinfo();
    ir.doc["routes"][1]["rewrite"] = json!({"regex": {"match": "[", "rewrite": "/"}});
    assert_eq!(
        err(&ir),
        (ErrorKind::Regex, "routes[1].rewrite.regex.match".into())
    );
}

#[test]
fn zero_total_weight_with_several_destinations() {
    let mut ir = bookinfo();
    ir.doc["routes"][1]["action"]["route"]["destinations"] =
        json!([{"target": 0, "weight": 0}, {"target": 1, "weight": 0}]);
    assert_eq!(
        err(&ir),
        (
            ErrorKind::Weight,
            "routes[1].action.route.destinations".into()
        )
    );
    // One destination with weight 0 collapses to a direct pick.
    ir.doc["routes"][1]["action"]["route"]["destinations"] = json!([{"target": 0, "weight": 0}]);
    assert!(RouteTable::from_json(&ir.json()).is_ok());
}

#[test]
fn dangling_indices() {
    // (expected error path, JSON pointer to edit, new value)
    let cases = [
        (
            "routes[1].action.route.destinations[0].target",
            "/routes/1/action/route/destinations/0/target",
            json!(99),
        ),
        (
            "views[0].vhosts[0].routes[1]",
            "/views/0/vhosts/0/routes/1",
            json!(7),
        ),
        (
            "views[0].vhosts[0].default_target",
            "/views/0/vhosts/0/default_target",
            json!(50),
        ),
        ("routes[0].vs", "/routes/0/vs", json!(3)),
        (
            "routes[0].matches[0].gateways[0]",
            "/routes/0/matches/0/gateways",
            json!([4]),
        ),
        (
            "scopes[0].clusters[0][2]",
            "/scopes/0/clusters/0/2",
            json!(9),
        ),
        ("mesh.other_view", "/mesh/other_view", json!(2)),
        ("views[0].scope", "/views/0/scope", json!(1)),
    ];
    for (path, pointer, value) in cases {
        let mut ir = bookinfo();
        *ir.doc.pointer_mut(pointer).expect(pointer) = value;
        assert_eq!(err(&ir), (ErrorKind::Reference, path.to_owned()));
    }
}

#[test]
fn schema_errors_carry_serde_paths() {
    let mut ir = bookinfo();
    ir.doc["routes"][0]["matches"][0]["surprise"] = json!(1);
    let (kind, path) = err(&ir);
    assert_eq!(
        (kind, path.as_str()),
        (ErrorKind::Schema, "routes[0].matches[0].surprise")
    );
    let mut ir = bookinfo();
    ir.doc["routes"][0]["matches"][0]["headers"][0]["match"] = json!({"suffix": "x"});
    assert_eq!(err(&ir).0, ErrorKind::Schema);
    assert!(
        err(&ir)
            .1
            .starts_with("routes[0].matches[0].headers[0].match"),
        "{}",
        err(&ir).1
    );
    assert_eq!(
        RouteTable::from_json("{").err().unwrap().kind(),
        ErrorKind::Schema
    );
}

#[test]
fn value_errors() {
    let mut ir = bookinfo();
    ir.doc["version"] = json!(2);
    assert_eq!(err(&ir), (ErrorKind::Version, "version".into()));
    let mut ir = bookinfo();
    ir.doc["routes"][0]["extra"] = json!({"cluster": 1});
    assert_eq!(
        err(&ir),
        (ErrorKind::Value, "routes[0].extra.cluster".into())
    );
    let mut ir = bookinfo();
    ir.doc["policies"] = json!(["{not json"]);
    assert_eq!(err(&ir), (ErrorKind::Value, "policies[0]".into()));
    let mut ir = bookinfo();
    ir.doc["routes"][0]["fault"] = json!({"abort": {"http_status": 500, "per_million": 2_000_000}});
    assert_eq!(
        err(&ir),
        (ErrorKind::Value, "routes[0].fault.abort.per_million".into())
    );
    let mut ir = bookinfo();
    ir.doc["gateway_views"] = json!({"ns/gw": {"http": 0}});
    assert_eq!(
        err(&ir),
        (ErrorKind::Value, "gateway_views.ns/gw.http".into())
    );
}

#[test]
fn error_display_is_path_then_message() {
    let mut ir = bookinfo();
    ir.doc["routes"][0]["vs"] = json!(3);
    let e = RouteTable::from_json(&ir.json()).err().unwrap();
    assert_eq!(e.to_string(), format!("routes[0].vs: {}", e.message()));
}
