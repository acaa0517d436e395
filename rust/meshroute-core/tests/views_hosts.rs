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
    let view = |ns: &str, gw: u32, ports: serde_json::Value, redirect: &[&str]| {
        json!({"gateway": gw, "namespace": ns, "scope": 0, "ports": ports, "https_redirect_hosts": redirect,
               "unknown_host": "not_found", "vhosts": []})
    };
    ir.doc["views"] = json!([
        view("default", 0, json!([]), &[]),
        view("default", 0, json!([]), &[]),
        view("other", 0, json!([]), &[]),
        view("istio-system", 1, json!([8080]), &[]),
        view("istio-system", 1, json!([8443]), &["*"]),
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

/// One gateway port with two servers: `secure.example.com` (+ `*.admin.example.com`) with
/// `tls.httpsRedirect`, `plain.example.com` without; a VS routes each host.
fn split_redirect() -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    ir.doc["gateways"] = json!(["mesh", "default/gw"]);
    let secure = ir.target("secure", None, Some(80), 80);
    let plain = ir.target("plain", None, Some(80), 80);
    let on_gw = json!([{"gateways": [1]}]);
    let rs = ir.route(with(
        fwd(0, vec![], &[(secure, 0)]),
        "matches",
        on_gw.clone(),
    ));
    let rp = ir.route(with(fwd(1, vec![], &[(plain, 0)]), "matches", on_gw));
    ir.doc["views"] = json!([{"gateway": 1, "namespace": "default", "scope": 0, "ports": [80],
        "https_redirect_hosts": ["secure.example.com", "*.admin.example.com"],
        "unknown_host": "not_found", "vhosts": [
            {"domains": ["secure.example.com"], "routes": [rs], "default_target": null, "default_port": null},
            {"domains": ["plain.example.com"], "routes": [rp], "default_target": null, "default_port": null}]}]);
    ir.doc["mesh"] = json!({"namespaces": {}, "other_view": null});
    ir.doc["gateway_views"] = json!({"default/gw": {"80": 0}});
    ir.build()
}

#[test]
fn https_redirect_only_for_the_redirecting_servers_hosts() {
    let t = split_redirect();
    let gw = |authority: &'static str, scheme: &'static str| {
        route(
            &t,
            &Request {
                gateway: "default/gw",
                scheme,
                ..req(authority, "/a?b=1", &[])
            },
        )
    };
    let d = gw("secure.example.com", "http");
    assert_eq!((d.outcome(), d.status()), (Outcome::Redirect, Some(301)));
    assert_eq!(
        d.redirect_location(),
        Some("https://secure.example.com/a?b=1")
    );
    let d = gw("Secure.Example.com:80", "http");
    assert_eq!(
        d.redirect_location(),
        Some("https://Secure.Example.com/a?b=1")
    );
    assert_eq!(gw("secure.example.com", "https").host(), Some("secure"));
    // The other server's host is routed by its VS, not redirected.
    let d = gw("plain.example.com", "http");
    assert_eq!((d.outcome(), d.host()), (Outcome::Route, Some("plain")));
    // A redirect host without a VS still redirects; a host of no server is 404.
    let d = gw("x.admin.example.com", "http");
    assert_eq!(
        d.redirect_location(),
        Some("https://x.admin.example.com/a?b=1")
    );
    let d = gw("other.example.com", "http");
    assert_eq!((d.outcome(), d.status()), (Outcome::NoRoute, Some(404)));
    let d = gw("admin.example.com", "http");
    assert_eq!((d.outcome(), d.status()), (Outcome::NoRoute, Some(404)));
}

/// Istio's per-vhost `require_tls` (semantics §4): a redirect server `*.example.com` (no VS of
/// its own), a plain server `*` routing `a.example.com` and `*`, and a vhost `b.example.com`
/// built for a redirect server (`require_tls`). Envoy's domain order decides which vhost a
/// host reaches, and only that vhost's `require_tls` counts.
fn per_vhost_redirect() -> std::sync::Arc<meshroute_core::RouteTable> {
    let mut ir = Ir::new();
    ir.doc["gateways"] = json!(["mesh", "default/gw"]);
    let app = ir.target("app", None, Some(80), 80);
    let rest = ir.target("rest", None, Some(80), 80);
    let on_gw = json!([{"gateways": [1]}]);
    let ra = ir.route(with(fwd(0, vec![], &[(app, 0)]), "matches", on_gw.clone()));
    let rr = ir.route(with(fwd(1, vec![], &[(rest, 0)]), "matches", on_gw));
    ir.doc["views"] = json!([{"gateway": 1, "namespace": "default", "scope": 0, "ports": [80],
        "https_redirect_hosts": ["*.example.com"],
        "unknown_host": "not_found", "vhosts": [
            {"domains": ["a.example.com"], "routes": [ra], "default_target": null, "default_port": null},
            {"domains": ["b.example.com"], "routes": [ra], "default_target": null, "default_port": null,
             "require_tls": true},
            {"domains": ["*"], "routes": [rr], "default_target": null, "default_port": null}]}]);
    ir.doc["mesh"] = json!({"namespaces": {}, "other_view": null});
    ir.doc["gateway_views"] = json!({"default/gw": {"80": 0}});
    ir.build()
}

#[test]
fn https_redirect_is_decided_by_the_vhost_the_host_reaches() {
    let t = per_vhost_redirect();
    let gw = |authority: &'static str, scheme: &'static str| {
        route(
            &t,
            &Request {
                gateway: "default/gw",
                scheme,
                ..req(authority, "/p", &[])
            },
        )
    };
    // More specific than the redirect pattern, built for a plain server: routed.
    let d = gw("a.example.com", "http");
    assert_eq!((d.outcome(), d.host()), (Outcome::Route, Some("app")));
    // Its own vhost requires TLS: redirected over http, routed over https.
    let d = gw("B.example.com", "http");
    assert_eq!(d.redirect_location(), Some("https://B.example.com/p"));
    assert_eq!(gw("b.example.com", "https").host(), Some("app"));
    // Only the redirect pattern's vhost (more specific than `*`): 301, and 404 over https
    // (that vhost has no routes); the `*` vhost is not reached.
    let d = gw("x.example.com", "http");
    assert_eq!(d.redirect_location(), Some("https://x.example.com/p"));
    let d = gw("x.example.com", "https");
    assert_eq!((d.outcome(), d.status()), (Outcome::NoRoute, Some(404)));
    // Outside the pattern: the plain `*` vhost routes.
    let d = gw("example.org", "http");
    assert_eq!((d.outcome(), d.host()), (Outcome::Route, Some("rest")));
    let d = gw("example.com", "http");
    assert_eq!((d.outcome(), d.host()), (Outcome::Route, Some("rest")));
}
