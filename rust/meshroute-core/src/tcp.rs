//! Sidecar TCP routing (docs/ir.md, "TCP services"): a connection to a TCP service port is routed
//! by the VirtualService's `tcp` routes, not by the HTTP vhost.
//!
//! The IR's `tcp` section lists, per (views, domains, port), the RouteIds of the pool to walk in
//! order: the VirtualService's `tcp[]` routes, their blocks holding only config-time filters
//! (gateways, port, sourceLabels, sourceNamespace; destinationSubnets are resolved by Python
//! against the service's addresses), then the service's own default route. The first route
//! without blocks, or with a block whose filters hold for the client, wins; its destination is
//! picked by weight per connection. No HTTP condition, rewrite, fault or retry is involved.

use ahash::AHashMap;
use serde::Deserialize;

use crate::decision::{ClusterRef, Decision, DestRef, Outcome, RouteRef};
use crate::error::Result;
use crate::matchers::ClientCtx;
use crate::request::{Prepared, Protocol, Request};
use crate::rng::Rng;
use crate::route::{check_ref, Action};
use crate::subnet::{host_address, Subnet};
use crate::table::RouteTable;

/// One entry of the IR's `tcp` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TcpSpec {
    /// The mesh ViewIds this entry belongs to.
    pub(crate) views: Vec<u32>,
    /// Host names (lower-case, exact) a caller may name the service by.
    pub(crate) domains: Vec<String>,
    /// The service's TCP port.
    pub(crate) port: u16,
    /// True when the service has no other port (a request without a port takes this entry).
    #[serde(default)]
    pub(crate) only_port: bool,
    /// A port declared without a protocol, which Istio sniffs: only a connection that is not
    /// HTTP (`Protocol::Tcp`) takes this entry; an HTTP request goes to the vhost.
    #[serde(default)]
    pub(crate) sniffed: bool,
    /// The service's addresses that are networks (`10.0.0.0/24`): a connection to an address
    /// inside takes this entry when no domain names it (the longest prefix wins, then the first).
    #[serde(default)]
    pub(crate) subnets: Vec<String>,
    /// RouteIds in evaluation order; the last is the service's default route.
    pub(crate) routes: Vec<u32>,
}

/// The compiled `tcp` section.
#[derive(Debug, Default)]
pub(crate) struct TcpTable {
    /// domain -> (view, port) -> entry; port 0 keys the entry of a single-port service. Keyed
    /// by the domain first so that a lower-case request host is looked up without allocating.
    by_host: AHashMap<Box<str>, AHashMap<(u32, u16), u32>>,
    /// Per entry: the service port, whether it is sniffed, and the RouteIds to walk.
    routes: Vec<(u16, bool, Box<[u32]>)>,
    /// The entries' networks, in entry order.
    subnets: Vec<SubnetEntry>,
}

/// One network of an entry, with what a lookup filters on.
#[derive(Debug)]
struct SubnetEntry {
    net: Subnet,
    views: Box<[u32]>,
    port: u16,
    only_port: bool,
    entry: u32,
}

impl TcpTable {
    pub(crate) fn compile(specs: &[TcpSpec], views: usize, routes: usize) -> Result<TcpTable> {
        let mut table = TcpTable::default();
        for (i, spec) in specs.iter().enumerate() {
            let entry = u32::try_from(i).unwrap_or(u32::MAX);
            for (j, &v) in spec.views.iter().enumerate() {
                check_ref(v, views, &format!("tcp[{i}].views[{j}]"), "view")?;
            }
            for (j, &r) in spec.routes.iter().enumerate() {
                check_ref(r, routes, &format!("tcp[{i}].routes[{j}]"), "route")?;
            }
            for d in &spec.domains {
                let d = d.strip_suffix('.').unwrap_or(d).to_ascii_lowercase();
                let keys = table.by_host.entry(d.into()).or_default();
                for &v in &spec.views {
                    // First claim wins, as for vhost domains.
                    keys.entry((v, spec.port)).or_insert(entry);
                    if spec.only_port {
                        keys.entry((v, 0)).or_insert(entry);
                    }
                }
            }
            for (j, text) in spec.subnets.iter().enumerate() {
                let net = Subnet::parse(text, &format!("tcp[{i}].subnets[{j}]"))?;
                table.subnets.push(SubnetEntry {
                    net,
                    views: spec.views.clone().into_boxed_slice(),
                    port: spec.port,
                    only_port: spec.only_port,
                    entry,
                });
            }
            table.routes.push((
                spec.port,
                spec.sniffed,
                spec.routes.clone().into_boxed_slice(),
            ));
        }
        Ok(table)
    }

    /// The entry's service port and routes for (view, host, port); port 0: no port given. A
    /// sniffed port's entry answers only an opaque TCP connection (`tcp`).
    pub(crate) fn lookup(
        &self,
        view: u32,
        host: &str,
        port: u16,
        tcp: bool,
    ) -> Option<(u16, &[u32])> {
        if self.by_host.is_empty() {
            return None;
        }
        let host = host.strip_suffix('.').unwrap_or(host);
        let keys = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.by_host.get(&*host.to_ascii_lowercase())
        } else {
            self.by_host.get(host)
        };
        let entry = match keys.and_then(|k| k.get(&(view, port))) {
            Some(&entry) => entry,
            None => self.in_subnet(view, host, port)?,
        };
        let (port, sniffed, routes) = &self.routes[entry as usize];
        (tcp || !sniffed).then_some((*port, &**routes))
    }

    /// The entry of the longest network of `view` and `port` holding `host` (an IP address);
    /// the first entry among equal prefixes (Istio keeps the first of two identical networks).
    fn in_subnet(&self, view: u32, host: &str, port: u16) -> Option<u32> {
        if self.subnets.is_empty() {
            return None;
        }
        let addr = host_address(host)?;
        let mut best: Option<(u8, u32)> = None;
        for s in &self.subnets {
            let port_ok = s.port == port || (port == 0 && s.only_port);
            let longer = best.map_or(true, |(p, _)| s.net.prefix() > p);
            if port_ok && longer && s.views.contains(&view) && s.net.contains(addr) {
                best = Some((s.net.prefix(), s.entry));
            }
        }
        best.map(|(_, entry)| entry)
    }
}

/// The tcp routes a mesh request to a TCP service port walks, with the client context its
/// blocks are judged in; None when the request is not one (a gateway view, no TCP entry, or a
/// sniffed port for an HTTP request). Shared by `route` and `RouteTable::explain`.
pub(crate) fn connection<'t, 'r>(
    table: &'t RouteTable,
    req: &Request<'r>,
    prep: &Prepared<'_>,
    view: u32,
) -> Option<(ClientCtx<'r>, &'t [u32])> {
    if table.views[view as usize].gateway != 0 {
        return None;
    }
    let asked = req.port.or(prep.authority_port).unwrap_or(0);
    let tcp = req.protocol == Protocol::Tcp;
    let (port, routes) = table.tcp.lookup(view, prep.host, asked, tcp)?;
    let ctx = ClientCtx {
        gateway: 0,
        port,
        labels: req.source_labels,
        namespace: req.source_namespace.unwrap_or("default"),
    };
    Some((ctx, routes))
}

/// The TCP decision for a mesh request to a TCP service port, or `Err(d)` unchanged when the
/// request is not one (the HTTP pipeline then decides).
pub(crate) fn route<R: Rng + ?Sized>(
    table: &RouteTable,
    mut d: Decision,
    req: &Request<'_>,
    prep: &Prepared<'_>,
    view: u32,
    rng: &mut R,
) -> std::result::Result<Decision, Decision> {
    let Some((ctx, routes)) = connection(table, req, prep, view) else {
        return Err(d);
    };
    let v = &table.views[view as usize];
    for &id in routes {
        let route = &table.routes[id as usize];
        let matched = if route.matches.is_empty() {
            None
        } else {
            match route.matches.iter().position(|m| m.applies(&ctx).is_ok()) {
                Some(i) => Some(u32::try_from(i).unwrap_or(u32::MAX)),
                None => continue,
            }
        };
        let Action::Route(dests) = &route.action else {
            continue;
        };
        let choice = dests.pick(rng);
        let target = dests.list[choice].target;
        let port = table.targets[target as usize].port.unwrap_or(ctx.port);
        d.route = RouteRef::Pool(id);
        d.match_index = matched;
        d.dest = Some(DestRef {
            target,
            port,
            choice: u32::try_from(choice).ok(),
        });
        d.cluster = ClusterRef::Target;
        match table.scopes[v.scope as usize].clusters.get(&(target, port)) {
            Some(&policy) => {
                d.outcome = Outcome::Route;
                d.status = None;
                d.policy = Some(policy);
            }
            None => {
                // Envoy closes a connection whose cluster does not exist.
                d.outcome = Outcome::NoCluster;
                d.status = Some(503);
            }
        }
        return Ok(d);
    }
    Err(d)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::{Outcome, Protocol, Request, RouteTable, SplitMix64};

    fn tcp_route(
        vs: Option<u32>,
        matches: serde_json::Value,
        dests: &[(u32, u32)],
    ) -> serde_json::Value {
        let d: Vec<_> = dests
            .iter()
            .map(|(t, w)| json!({"target": t, "weight": w}))
            .collect();
        json!({"vs": vs, "index": 0, "matches": matches,
               "action": {"route": {"destinations": d}}, "extra": {"protocol": "tcp"}})
    }

    fn table() -> Arc<RouteTable> {
        Arc::new(RouteTable::from_json(&table_ir()).unwrap())
    }

    fn table_ir() -> String {
        let block = |labels: serde_json::Value| json!({"gateways": [0], "source_labels": labels});
        let ir = json!({"version": 1, "gateways": ["mesh"],
            "virtual_services": [{"namespace": "default", "name": "tcp-echo"}],
            "targets": [{"host": "tcp-echo", "subset": "v1", "port": 9000},
                        {"host": "tcp-echo", "subset": "v2", "port": 9000},
                        {"host": "tcp-echo", "subset": null, "port": null}],
            "policies": ["{}"],
            "scopes": [{"clusters": [[0, 9000, 0], [1, 9000, 0], [2, 9000, 0], [2, 8080, 0]]}],
            "routes": [
                tcp_route(Some(0), json!([block(json!({"app": "test"}))]), &[(1, 1)]),
                tcp_route(Some(0), json!([]), &[(0, 80), (1, 20)]),
                tcp_route(None, json!([]), &[(2, 1)]),
                {"vs": null, "index": 0, "matches": [],
                 "action": {"route": {"destinations": [{"target": 2, "weight": 1}]}},
                 "extra": {"retries": {"attempts": 2}}}],
            "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": [
                {"domains": ["tcp-echo"], "routes": [3], "default_target": 2}]}],
            "tcp": [{"views": [0], "domains": ["tcp-echo"], "port": 9000, "routes": [0, 1, 2]}],
            "mesh": {"other_view": 0}});
        ir.to_string()
    }

    #[test]
    fn weights_labels_and_http_fallback() {
        let t = table();
        let mut rng = SplitMix64::new(7);
        let req = Request {
            authority: "tcp-echo:9000",
            ..Request::default()
        };
        let mut v2 = 0;
        for _ in 0..1000 {
            let d = t.route(&req, &mut rng);
            assert_eq!(d.outcome(), Outcome::Route);
            assert_eq!(d.route_index(), Some(0));
            assert!(!d.to_json().contains("retries"));
            v2 += usize::from(d.subset() == Some("v2"));
        }
        assert!((150..250).contains(&v2), "{v2}");
        let labels = [("app", "test")];
        let req = Request {
            authority: "tcp-echo",
            port: Some(9000),
            source_labels: &labels,
            ..Request::default()
        };
        let d = t.route(&req, &mut rng);
        assert_eq!(d.cluster().as_deref(), Some("outbound|9000|v2|tcp-echo"));
        assert_eq!(d.match_index(), Some(0));
        // Another port of the service is HTTP: the vhost decides, with its extras.
        let req = Request {
            authority: "tcp-echo:8080",
            ..Request::default()
        };
        assert!(t.route(&req, &mut rng).to_json().contains("retries"));
    }

    #[test]
    fn a_sniffed_port_takes_tcp_routes_only_for_tcp_connections() {
        // The same service with port 8080 declared without a protocol: an HTTP request there
        // keeps the vhost; a connection that is not HTTP walks the tcp routes; a TCP connection
        // to a port with an HTTP vhost only is closed.
        let mut ir: serde_json::Value = serde_json::from_str(&table_ir()).unwrap();
        ir["tcp"].as_array_mut().unwrap().push(
            json!({"views": [0], "domains": ["tcp-echo"], "port": 8080, "sniffed": true, "routes": [0, 2]}),
        );
        let t = Arc::new(RouteTable::from_json(&ir.to_string()).unwrap());
        let mut rng = SplitMix64::new(1);
        let http = Request {
            authority: "tcp-echo:8080",
            ..Request::default()
        };
        assert!(t.route(&http, &mut rng).to_json().contains("retries"));
        let tcp = Request {
            protocol: Protocol::Tcp,
            ..http
        };
        let d = t.route(&tcp, &mut rng);
        assert_eq!(d.outcome(), Outcome::Route);
        assert_eq!(d.cluster().as_deref(), Some("outbound|8080||tcp-echo"));
        assert!(!d.to_json().contains("retries"));
        let labels = [("app", "test")];
        let canary = Request {
            source_labels: &labels,
            ..tcp
        };
        assert_eq!(
            t.route(&canary, &mut rng).cluster().as_deref(),
            Some("outbound|9000|v2|tcp-echo")
        );
        // No TCP entry at all for this host: it has an HTTP vhost there, so nothing answers.
        let mut plain = ir.clone();
        plain["tcp"] = json!([]);
        let t = Arc::new(RouteTable::from_json(&plain.to_string()).unwrap());
        let d = t.route(&tcp, &mut rng);
        assert_eq!((d.outcome(), d.status()), (Outcome::NoRoute, None));
        let unknown = Request {
            authority: "other:5432",
            ..tcp
        };
        assert_eq!(t.route(&unknown, &mut rng).outcome(), Outcome::NoRoute);
    }

    #[test]
    fn patched_table_keeps_tcp() {
        let t = table();
        let patch = json!({"patch": 1,
            "base": {"routes": 4, "targets": 3, "policies": 1, "scopes": 1, "views": 1},
            "routes": [{"vs": null, "index": 0, "matches": [],
                        "action": {"direct_response": {"status": 418}}}],
            "vhosts": [{"domains": ["tcp-echo"], "routes": [4], "default_target": 2}],
            "placements": [[0, 0, 0]]});
        let p = Arc::new(t.patched(&patch.to_string()).unwrap());
        let req = Request {
            authority: "tcp-echo:9000",
            ..Request::default()
        };
        let d = p.route(&req, &mut SplitMix64::new(1));
        assert_eq!(d.outcome(), Outcome::Route);
        assert_eq!(d.host(), Some("tcp-echo"));
        let req = Request {
            authority: "tcp-echo:8080",
            ..Request::default()
        };
        assert_eq!(p.route(&req, &mut SplitMix64::new(1)).status(), Some(418));
    }

    #[test]
    fn bad_references_name_their_path() {
        let ir = json!({"version": 1, "gateways": ["mesh"],
            "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": []}],
            "scopes": [{"clusters": []}],
            "tcp": [{"views": [0], "domains": ["a"], "port": 1, "routes": [3]}],
            "mesh": {"other_view": 0}});
        let Err(err) = RouteTable::from_json(&ir.to_string()) else {
            panic!("a route that does not exist is accepted");
        };
        assert!(err.to_string().contains("tcp[0].routes[0]"), "{err}");
    }

    #[test]
    fn only_port_answers_without_a_port() {
        let ir = json!({"version": 1, "gateways": ["mesh"],
            "targets": [{"host": "db", "subset": null, "port": 5432}],
            "policies": ["{}"], "scopes": [{"clusters": [[0, 5432, 0]]}],
            "routes": [tcp_route(Some(0), json!([{"gateways": [0], "port": 5432}]), &[(0, 1)])],
            "virtual_services": [{"namespace": "default", "name": "db"}],
            "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": []}],
            "tcp": [{"views": [0], "domains": ["db"], "port": 5432, "only_port": true,
                     "routes": [0]}],
            "mesh": {"other_view": 0}});
        let t = Arc::new(RouteTable::from_json(&ir.to_string()).unwrap());
        let req = Request {
            authority: "DB",
            ..Request::default()
        };
        let d = t.route(&req, &mut SplitMix64::new(1));
        assert_eq!(d.cluster().as_deref(), Some("outbound|5432||db"));
        // The L4 block's port is the service port even when the request names none.
        assert_eq!(d.match_index(), Some(0));
    }
}
