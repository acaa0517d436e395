//! View selection (mesh namespaces, Sidecars, gateways, ports) and virtual-host choice.

mod common;

use common::*;
use meshroute_core::{Outcome, Request};
use serde_json::json;

fn hosts_table() -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    let names = ["exact", "wild", "longer", "star"];
    let ids: Vec<u32> = names
        .iter()
        .map(|n| ir.target(n, None, Some(80), 80))
        .collect();
    let routes: Vec<u32> = ids
        .iter()
        .map(|&t| ir.route(fwd(0, vec![], &[(t, 0)])))
        .collect();
    ir.vhost(&["api.example.com"], &[routes[0]], None, None);
    ir.vhost(&["*.example.com"], &[routes[1]], None, None);
    ir.vhost(&["*.eu.example.com"], &[routes[2]], None, None);
    ir.vhost(&["*"], &[routes[3]], None, None);
    ir.vhost(&["[::1]"], &[routes[0]], None, None);
    ir.build()
}

#[test]
fn exact_then_longest_wildcard_then_star() {
    let t = hosts_table();
    let host = |a: &str| route(&t, &req(a, "/", &[])).host().map(str::to_owned);
    assert_eq!(host("api.example.com").as_deref(), Some("exact"));
    assert_eq!(host("API.Example.COM:8080").as_deref(), Some("exact"));
    assert_eq!(host("www.example.com").as_deref(), Some("wild"));
    assert_eq!(host("a.b.eu.example.com").as_deref(), Some("longer"));
    assert_eq!(host("example.com").as_deref(), Some("star"));
    assert_eq!(host("[::1]:80").as_deref(), Some("exact"));
    assert_eq!(
        route(&t, &req("x.example.com", "/", &[])).vhost(),
        Some("*.example.com")
    );
}

fn unknown(policy: &str) -> meshroute_core::Decision {
    let mut ir = Ir::new();
    ir.doc["views"][0]["unknown_host"] = json!(policy);
    route(&ir.build(), &req("nowhere.com", "/", &[]))
}

#[test]
fn unknown_host_policies() {
    let d = unknown("not_found");
    assert_eq!(
        (d.outcome(), d.status(), d.cluster()),
        (Outcome::NoRoute, Some(404), None)
    );
    let d = unknown("passthrough");
    assert_eq!((d.outcome(), d.status()), (Outcome::Route, None));
    assert_eq!(d.cluster().as_deref(), Some("PassthroughCluster"));
    let d = unknown("blackhole");
    assert_eq!((d.outcome(), d.status()), (Outcome::NoCluster, Some(502)));
    assert_eq!(d.cluster().as_deref(), Some("BlackHoleCluster"));
}

/// Three mesh views (default, sidecar-selected, other namespaces) and a gateway on two ports.
fn multi_view() -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    ir.doc["gateways"] = json!(["mesh", "istio-system/gw"]);
    let view = |ns: &str, gw: u32, ports: serde_json::Value, https_redirect: bool| {
        json!({"gateway": gw, "namespace": ns, "scope": 0, "ports": ports, "https_redirect": https_redirect,
               "unknown_host": "not_found", "vhosts": []})
    };
    ir.doc["views"] = json!([
        view("default", 0, json!([]), false),
        view("default", 0, json!([]), false),
        view("other", 0, json!([]), false),
        view("istio-system", 1, json!([8080]), false),
        view("istio-system", 1, json!([8443]), true),
    ]);
    ir.doc["mesh"] = json!({"namespaces": {"default": {"default_view": 0,
        "sidecars": [{"labels": {"app": "special"}, "view": 1}]}}, "other_view": 2});
    ir.doc["gateway_views"] = json!({"istio-system/gw": {"8080": 3, "8443": 4}});
    for (v, name) in ["v0", "v1", "v2", "v3", "v4"].iter().enumerate() {
        let t = ir.target(name, None, Some(80), 80);
        let mut r = fwd(0, vec![], &[(t, 0)]);
        r["matches"] = json!([{"gateways": [usize::from(v >= 3)]}]);
        let r = ir.route(r);
        ir.doc["views"][v]["vhosts"] = json!([{"domains": ["*"], "routes": [r], "default_target": null, "default_port": null}]);
    }
    ir.build()
}

#[test]
fn mesh_view_selection() {
    let t = multi_view();
    let via = |r: Request<'_>| route(&t, &r).host().map(str::to_owned);
    assert_eq!(via(req("x", "/", &[])).as_deref(), Some("v0"));
    let labels = [("app", "special")];
    assert_eq!(
        via(Request {
            source_labels: &labels,
            ..req("x", "/", &[])
        })
        .as_deref(),
        Some("v1")
    );
    assert_eq!(
        via(Request {
            source_namespace: Some("default"),
            ..req("x", "/", &[])
        })
        .as_deref(),
        Some("v0")
    );
    assert_eq!(
        via(Request {
            source_namespace: Some("prod"),
            ..req("x", "/", &[])
        })
        .as_deref(),
        Some("v2")
    );
}

#[test]
fn gateway_view_by_listener_port() {
    let t = multi_view();
    let gw = |port: Option<u16>, authority: &'static str, scheme: &'static str| {
        route(
            &t,
            &Request {
                gateway: "istio-system/gw",
                port,
                scheme,
                ..req(authority, "/p?q", &[])
            },
        )
    };
    assert_eq!(gw(Some(8080), "x", "http").host(), Some("v3"));
    assert_eq!(gw(None, "x:8080", "http").host(), Some("v3"));
    // Port 8443 serves with httpsRedirect: plain http gets a 301, https is routed.
    let d = gw(Some(8443), "x:8443", "http");
    assert_eq!((d.outcome(), d.status()), (Outcome::Redirect, Some(301)));
    assert_eq!(d.redirect_location(), Some("https://x:8443/p?q"));
    assert_eq!(gw(Some(8443), "x", "https").host(), Some("v4"));
    // No port anywhere and two ports: the scheme default (80) is not served.
    assert_eq!(gw(None, "x", "http").status(), Some(404));
    let unknown = route(
        &t,
        &Request {
            gateway: "default/nope",
            ..req("x", "/", &[])
        },
    );
    assert_eq!(
        (unknown.outcome(), unknown.status()),
        (Outcome::NoRoute, Some(404))
    );
    assert!(unknown.to_json().contains(r#""gateway":"default/nope""#));
}
