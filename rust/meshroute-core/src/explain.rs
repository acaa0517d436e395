//! `RouteTable::explain`: why a request got its decision, block by block.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::decision::RouteRef;
use crate::matchers::ClientCtx;
use crate::request::{Prepared, Request};
use crate::rng::SplitMix64;
use crate::table::RouteTable;
use crate::vhost::block_match;
use crate::view::mesh_listener_port;

/// Seed of the rng used for the decision part, so that `explain` is repeatable.
pub const EXPLAIN_SEED: u64 = 0x6D65_7368_726F_7574;

// === impl RouteTable ===

impl RouteTable {
    /// A JSON report: `{"view", "vhost", "trace": [...], "default_route", "decision"}`.
    ///
    /// `trace` lists the vhost's blocks in evaluation order up to and including the first that
    /// matched, each with `route_index`, `virtual_service`, `match_index`, `match_name` and `result`:
    /// `"matched"`, `"not applicable: <filter>"` or `"no match: <condition>"`. `decision` is
    /// `route()` with a `SplitMix64` seeded with `EXPLAIN_SEED`.
    #[must_use]
    pub fn explain(self: &Arc<Self>, req: &Request<'_>) -> String {
        let decision = self.route(req, &mut SplitMix64::new(EXPLAIN_SEED));
        let decision_json: Value = serde_json::from_str(&decision.to_json()).unwrap_or(Value::Null);
        let prep = Prepared::new(req);
        let mut report = json!({
            "view": null,
            "vhost": null,
            "trace": [],
            "default_route": decision.route == RouteRef::Default,
            "decision": decision_json,
        });
        let Some(selected) = self.selector.select(&prep) else {
            return report.to_string();
        };
        report["view"] = json!(selected.view);
        let view = &self.views[selected.view as usize];
        if let Some(trace) = self.tcp_trace(req, &prep, selected.view) {
            report["trace"] = Value::Array(trace);
            return report.to_string();
        }
        let Some(hit) = view.lookup(
            prep.host,
            selected.port.or(req.port).or(prep.authority_port),
        ) else {
            return report.to_string();
        };
        let vhost = &view.vhosts[hit.vhost as usize];
        report["vhost"] = json!(vhost.domains[hit.domain as usize]);
        let ctx = ClientCtx {
            gateway: view.gateway,
            port: selected
                .port
                .unwrap_or_else(|| mesh_listener_port(&prep, view, Some(vhost))),
            labels: req.source_labels,
            namespace: req.source_namespace.unwrap_or("default"),
        };
        let mut trace = Vec::new();
        for b in &vhost.blocks {
            let route = &self.routes[b.route as usize];
            let result = match block_match(&self.routes, b) {
                _ if !b.gateway_ok => "not applicable: gateways".to_owned(),
                None => "matched".to_owned(),
                Some(m) => match m.applies(&ctx) {
                    Err(filter) => format!("not applicable: {}", filter.as_str()),
                    Ok(()) => match m.check(&prep) {
                        Ok(()) => "matched".to_owned(),
                        Err(miss) => format!("no match: {miss}"),
                    },
                },
            };
            let matched = result == "matched";
            trace.push(json!({
                "route_index": route.index,
                "virtual_service": self.vs_name(route.vs),
                "match_index": b.match_index,
                "match_name": block_match(&self.routes, b).and_then(|m| m.name.as_deref()),
                "result": result,
            }));
            if matched {
                break;
            }
        }
        report["trace"] = Value::Array(trace);
        report.to_string()
    }
}

impl RouteTable {
    /// `ns/name` of a route's VirtualService (None for a default route).
    fn vs_name(&self, vs: Option<u32>) -> Option<String> {
        vs.map(|v| {
            let (ns, name) = &self.virtual_services[v as usize];
            format!("{ns}/{name}")
        })
    }

    /// The trace of a connection to a mesh TCP service port (`tcp.rs`): the service's `tcp`
    /// routes in order up to the first that holds, each block judged on the client filters only
    /// (a TCP route has no request conditions). None when the request is not one.
    fn tcp_trace(&self, req: &Request<'_>, prep: &Prepared<'_>, view: u32) -> Option<Vec<Value>> {
        let (ctx, routes) = crate::tcp::connection(self, req, prep, view)?;
        let mut trace = Vec::new();
        'routes: for &id in routes {
            let route = &self.routes[id as usize];
            // A route without blocks holds; otherwise each block, until one holds.
            let results: Vec<(Option<usize>, String)> = if route.matches.is_empty() {
                vec![(None, "matched".to_owned())]
            } else {
                route
                    .matches
                    .iter()
                    .enumerate()
                    .map(|(i, m)| match m.applies(&ctx) {
                        Ok(()) => (Some(i), "matched".to_owned()),
                        Err(filter) => (Some(i), format!("not applicable: {}", filter.as_str())),
                    })
                    .collect()
            };
            for (match_index, result) in results {
                let matched = result == "matched";
                trace.push(json!({
                    "route_index": route.index,
                    "virtual_service": self.vs_name(route.vs),
                    "match_index": match_index,
                    "match_name": null,
                    "protocol": "tcp",
                    "result": result,
                }));
                if matched {
                    break 'routes;
                }
            }
        }
        Some(trace)
    }
}
