//! IR builders shared by the integration tests (no Python needed).
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use meshroute_core::{Decision, Request, RouteTable, SplitMix64};
use serde_json::{json, Value};

pub const REVIEWS: &str = "reviews.default.svc.cluster.local";

/// A one-view mesh IR: view 0 serves every namespace; scope 0 has `clusters` with policy 0
/// (`{}`) unless listed with a policy in `policies`.
pub struct Ir {
    pub doc: Value,
}

impl Ir {
    pub fn new() -> Self {
        Self {
            doc: json!({
                "version": 1,
                "virtual_services": [{"namespace": "default", "name": "reviews"}],
                "gateways": ["mesh"],
                "targets": [],
                "policies": ["{}"],
                "scopes": [{"clusters": []}],
                "routes": [],
                "views": [{"gateway": 0, "namespace": "default", "scope": 0, "ports": [],
                           "https_redirect_hosts": [], "unknown_host": "not_found", "vhosts": []}],
                "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
                "gateway_views": {},
                "default_extra": {"timeout_ms": null}
            }),
        }
    }

    /// Adds a target and its cluster at `cluster_port`; returns the TargetId.
    pub fn target(
        &mut self,
        host: &str,
        subset: Option<&str>,
        port: Option<u16>,
        cluster_port: u16,
    ) -> u32 {
        let targets = self.doc["targets"].as_array_mut().unwrap();
        targets.push(json!({"host": host, "subset": subset, "port": port}));
        let id = targets.len() as u32 - 1;
        self.doc["scopes"][0]["clusters"]
            .as_array_mut()
            .unwrap()
            .push(json!([id, cluster_port, 0]));
        id
    }

    /// Adds a route to the pool; returns the RouteId.
    pub fn route(&mut self, route: Value) -> u32 {
        let routes = self.doc["routes"].as_array_mut().unwrap();
        routes.push(route);
        routes.len() as u32 - 1
    }

    /// Adds a vhost to view 0.
    pub fn vhost(
        &mut self,
        domains: &[&str],
        routes: &[u32],
        default_target: Option<u32>,
        default_port: Option<u16>,
    ) {
        self.doc["views"][0]["vhosts"]
            .as_array_mut()
            .unwrap()
            .push(json!({
                "domains": domains, "routes": routes,
                "default_target": default_target, "default_port": default_port,
            }));
    }

    pub fn json(&self) -> String {
        self.doc.to_string()
    }

    pub fn build(&self) -> Arc<RouteTable> {
        Arc::new(RouteTable::from_json(&self.json()).expect("valid IR"))
    }
}

/// A match block on gateway 0 (`mesh`) with extra fields.
pub fn m(fields: Value) -> Value {
    let mut block = json!({"gateways": [0]});
    for (k, v) in fields.as_object().unwrap() {
        block[k] = v.clone();
    }
    block
}

/// A route of VS 0 at `index` forwarding to `dests` (`[(target, weight)]`).
pub fn fwd(index: u32, matches: Vec<Value>, dests: &[(u32, u32)]) -> Value {
    let destinations: Vec<Value> = dests
        .iter()
        .map(|&(t, w)| json!({"target": t, "weight": w}))
        .collect();
    json!({"vs": 0, "index": index, "name": null, "matches": matches,
           "action": {"route": {"destinations": destinations}}})
}

/// Sets `key` on a route JSON.
pub fn with(mut route: Value, key: &str, value: Value) -> Value {
    route[key] = value;
    route
}

pub fn req<'a>(
    authority: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
) -> Request<'a> {
    Request {
        authority,
        path,
        headers,
        ..Request::default()
    }
}

pub fn route(table: &Arc<RouteTable>, r: &Request<'_>) -> Decision {
    table.route(r, &mut SplitMix64::new(1))
}

/// Bookinfo's reviews: jason → v2, everyone else → v1.
pub fn bookinfo() -> Ir {
    let mut ir = Ir::new();
    let v1 = ir.target(REVIEWS, Some("v1"), Some(9080), 9080);
    let v2 = ir.target(REVIEWS, Some("v2"), Some(9080), 9080);
    let all = ir.target(REVIEWS, None, None, 9080);
    let jason = ir.route(fwd(
        0,
        vec![m(
            json!({"headers": [{"name": "end-user", "match": {"exact": "jason"}}]}),
        )],
        &[(v2, 0)],
    ));
    let rest = ir.route(fwd(1, vec![], &[(v1, 0)]));
    ir.vhost(
        &["reviews", "reviews.default", "reviews.default.svc", REVIEWS],
        &[jason, rest],
        Some(all),
        Some(9080),
    );
    ir
}
