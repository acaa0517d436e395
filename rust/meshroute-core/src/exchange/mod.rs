//! `RouteTable::exchange`: the whole per-request answer an Envoy filter applies — the routing
//! decision turned into request-header mutations, response-phase operations, or a local reply.
//!
//! Both engines call this one function: `meshroute serve` (ext_proc, through the PyO3 binding)
//! and the Envoy dynamic module (`rust/meshroute-envoy`). Each writes back what it returns, so
//! the two can never disagree. docs/envoy.md is the contract for the header names.
//!
//! Input: the listener context (fixed per Envoy listener) and the request headers exactly as
//! Envoy holds them (pseudo-headers included, names lower-case, values raw bytes). Output:
//! [`Exchange`]. One seeded RNG stream per decision: weighted pick, fault draws, then mirror
//! draws, in that order.
//!
//! Everything that does not depend on the request is prepared when the table is built
//! ([`plan`]): route `extra` (timeout, retries, mirrors, CORS) read into typed data, request
//! header operations with control headers filtered out, each traffic policy's hash source, the
//! Gateway servers. Per request: decode the headers, pick the Gateway server, `route()`, then
//! assemble the answer from the decision and the plan, in the order serve's answers were defined:
//! route set / add / remove, `:path` / `:authority`, every control header set or removed, then the
//! per-request parts (hash key, mirror draws, passthrough destination) and CORS.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

mod control;
mod cors;
mod gateway;
mod hash;
mod input;
mod mirrors;
mod passthrough;
mod plan;
mod value;

use std::sync::Arc;

pub use self::control::{
    CLUSTER_HEADER, CONTROL_HEADERS, HASH_HEADER, MIRROR_HEADERS, ORIGINAL_DST_HEADER,
};
pub use self::mirrors::MAX_MIRRORS;
pub(crate) use self::plan::Plan;

use self::control::{at, grpc_code};
use self::cors::{CorsPolicy, ORIGIN};
use self::input::Input;
use self::passthrough::original_dst;
use self::plan::Extras;
use crate::decision::{ClusterRef, Decision, Outcome, RouteRef};
use crate::fault::Abort;
use crate::request::{split_authority, Request};
use crate::rng::Rng;
use crate::route::Action;
use crate::spec::HeaderOpsSpec;
use crate::table::RouteTable;

/// Which Envoy listener a request arrived on; built once per filter config, never per request.
///
/// A gateway listener without `source_namespace` and `source_labels` serves every gateway proxy
/// of the config (the proxy is picked per request by host). With either, it is the listener of
/// one gateway proxy, the workload with those labels in that namespace (docs/envoy.md, "One
/// gateway workload"): only that proxy's servers on the port take a request, and a host they do
/// not claim (another proxy's Gateway host) is answered 404.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerContext {
    /// `Some(port)` for a gateway listener (the Gateway server port); `None` for the mesh
    /// (sidecar) listener, whose port comes from the request's authority.
    pub gateway_port: Option<u16>,
    /// The client workload's namespace (mesh listener), or the gateway proxy's own (gateway
    /// listener of one proxy); `None` means `default`.
    pub source_namespace: Option<String>,
    /// The client workload's labels (mesh listener), or the gateway proxy's own (gateway
    /// listener of one proxy).
    pub source_labels: Vec<(String, String)>,
}

impl ListenerContext {
    /// The gateway proxy (namespace, labels) a gateway listener belongs to; `None` for the mesh
    /// listener and for a gateway listener serving every proxy.
    #[must_use]
    pub fn gateway_proxy(&self) -> Option<(&str, &[(String, String)])> {
        if self.gateway_port.is_none()
            || (self.source_namespace.is_none() && self.source_labels.is_empty())
        {
            return None;
        }
        let namespace = self.source_namespace.as_deref().unwrap_or("default");
        Some((namespace, &self.source_labels))
    }
}

/// A header operation's name and value (value bytes as Envoy will store them).
pub type Header = (String, String);

/// What the filter does with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// Let the request continue with these mutations.
    Forward(Forward),
    /// Answer locally and stop the request.
    Reply(LocalReply),
}

/// Mutations for a request that continues to Envoy's router (outcome `route`, or `abort` which
/// Envoy's fault filter answers from the fault headers). Apply them as Envoy applies an ext_proc
/// header mutation: `remove` first, then `set` in order, then `append` in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Forward {
    /// The decision's outcome label (`route`, `abort`).
    pub outcome: &'static str,
    /// Request headers to set, replacing every existing value (pseudo-headers `:path` and
    /// `:authority` included), in order: the route's sets, the rewrites, the control headers
    /// with a value (docs/envoy.md order), then the hash key, fired mirrors and passthrough
    /// destination.
    pub set: Vec<Header>,
    /// Request headers to append (VirtualService `headers.request.add`).
    pub append: Vec<Header>,
    /// Request headers to remove: the route's removes, then every control header not set above.
    pub remove: Vec<String>,
    /// Response-phase operations; `None` when the response needs no change.
    pub response: Option<ResponseOps>,
    /// A fault delay fired (`x-envoy-fault-delay-request` is set).
    pub fault_delay: bool,
    /// A fault abort fired (outcome `abort`).
    pub fault_abort: bool,
}

/// Operations on the upstream's response headers. Apply them as Envoy applies an ext_proc header
/// mutation: `remove` first, then `set` in order, then `append` in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResponseOps {
    /// The route's response sets, then the CORS headers for an allowed origin (which win).
    pub set: Vec<Header>,
    /// The route's response `add` operations.
    pub append: Vec<Header>,
    /// The route's response `remove` operations.
    pub remove: Vec<String>,
}

/// A local reply (redirect, direct response, 404 / 502 / 503, CORS preflight).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// The decision's outcome label (`redirect`, `direct_response`, `no_route`, `no_cluster`,
    /// `cors_preflight`).
    pub outcome: &'static str,
    pub status: u16,
    /// Headers to set on the reply (`location` first for a redirect, then the route's response
    /// sets).
    pub headers: Vec<Header>,
    /// Headers to append to the reply (the route's response `add` operations).
    pub append: Vec<Header>,
    pub body: Vec<u8>,
    /// Envoy's response code details (`route_not_found`, `cluster_not_found`, `redirect`,
    /// `direct_response`, `cors_response`).
    pub details: &'static str,
}

impl RouteTable {
    /// The `gateway_views` name a gateway-listener request on `port` for `host` (lower-case,
    /// port stripped) is routed through: the first server on the port claiming the host, among
    /// the servers of the listener's gateway proxy when the context names one.
    pub(crate) fn gateway_of(&self, ctx: &ListenerContext, port: u16, host: &str) -> Option<&str> {
        let servers = &self.exchange_plan.gateways;
        match ctx.gateway_proxy() {
            Some((namespace, labels)) => servers.select_for_proxy(port, host, namespace, labels),
            None => servers.select(port, host),
        }
    }

    /// Decides one request for an Envoy filter. Never panics on any input: undecodable header
    /// bytes are read as Latin-1, an authority whose port is not a u16 (`echo.test:99999`)
    /// matches no domain.
    ///
    /// A gateway listener routes through the first Gateway (config order) with a server on the
    /// listener port whose hosts match the request host (lower-case, port stripped); none → 404.
    /// The request is routed with its full authority, host lower-cased and port kept as sent
    /// (docs/ir.md): `authority` match blocks see the port as Istio's Envoy does, and a redirect
    /// without a new authority keeps the request's port.
    pub fn exchange<R: Rng + ?Sized>(
        self: &Arc<Self>,
        ctx: &ListenerContext,
        headers: &[(&[u8], &[u8])],
        rng: &mut R,
    ) -> Exchange {
        let input = Input::parse(headers);
        let (authority_host, authority_port) = split_authority(&input.authority);
        let host = input::lower(authority_host);
        let authority = input::lower(&input.authority);
        let labels: Vec<(&str, &str)>;
        let (gateway, port, source_labels, source_namespace) = match ctx.gateway_port {
            Some(listener) => match self.gateway_of(ctx, listener, &host) {
                Some(gateway) => (gateway, Some(listener), &[][..], None),
                None => return Exchange::Reply(reply("no_route", 404, "route_not_found")),
            },
            None => {
                labels = ctx
                    .source_labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                (
                    "mesh",
                    authority_port,
                    labels.as_slice(),
                    ctx.source_namespace.as_deref(),
                )
            }
        };
        let views = input.views();
        let req = Request {
            authority: &authority,
            path: &input.path,
            method: &input.method,
            scheme: &input.scheme,
            headers: &views,
            port,
            gateway,
            source_labels,
            source_namespace,
            // An Envoy HTTP filter only ever sees HTTP requests.
            protocol: crate::request::Protocol::Http,
        };
        let decision = self.route(&req, rng);
        Answer {
            plan: &self.exchange_plan,
            d: &decision,
            input: &input,
            host: &host,
            authority_port,
            mirror_port: ctx.gateway_port.or(authority_port),
        }
        .exchange(rng)
    }
}

/// One decision being turned into its answer.
struct Answer<'a, 'h> {
    plan: &'a Plan,
    d: &'a Decision,
    input: &'a Input<'h>,
    /// The request host, lower-case, port stripped.
    host: &'a str,
    authority_port: Option<u16>,
    /// The port a mirror without one of its own uses: the gateway listener's, else the
    /// authority's (else, later, the destination's or the scheme's).
    mirror_port: Option<u16>,
}

impl Answer<'_, '_> {
    fn exchange<R: Rng + ?Sized>(&self, rng: &mut R) -> Exchange {
        let d = self.d;
        match d.outcome {
            Outcome::Route | Outcome::Abort => self.forward(rng),
            Outcome::Redirect => {
                let location = d.redirect_location().unwrap_or_default();
                let mut out = local_reply(
                    "redirect",
                    d.status.unwrap_or(301),
                    "redirect",
                    route_response_ops(d),
                );
                out.headers
                    .insert(0, ("location".to_owned(), location.to_owned()));
                Exchange::Reply(out)
            }
            Outcome::DirectResponse => {
                let (status, body) = match d.pool_route().map(|r| &r.action) {
                    Some(Action::DirectResponse { status, body }) => (*status, body.as_deref()),
                    _ => (d.status.unwrap_or(503), None),
                };
                let mut out = local_reply(
                    "direct_response",
                    status,
                    "direct_response",
                    route_response_ops(d),
                );
                out.body = body.unwrap_or_default().as_bytes().to_vec();
                Exchange::Reply(out)
            }
            // The decision's status: 503 for a cluster the client cannot see, 502 for an unknown
            // host under REGISTRY_ONLY (BlackHoleCluster).
            Outcome::NoCluster => Exchange::Reply(reply(
                "no_cluster",
                d.status.filter(|&s| s != 0).unwrap_or(503),
                "cluster_not_found",
            )),
            Outcome::NoRoute => Exchange::Reply(reply(
                "no_route",
                d.status.filter(|&s| s != 0).unwrap_or(404),
                "route_not_found",
            )),
        }
    }

    /// Outcome `route` or `abort`: mutations for Envoy's fault filter and router.
    fn forward<R: Rng + ?Sized>(&self, rng: &mut R) -> Exchange {
        let d = self.d;
        let is_route = d.outcome == Outcome::Route;
        let (route_plan, extras) = match d.route {
            RouteRef::Pool(r) => {
                let p = self.plan.routes.get(r as usize);
                (p, p.map(|p| &p.extras))
            }
            RouteRef::Default => (None, Some(&*self.plan.default_extras)),
            RouteRef::None => (None, None),
        };
        // CORS first: a preflight is answered locally, before any other per-request work.
        // Istio puts the fault filter before the CORS filter: an abort never reaches it.
        let mut cors_origin = None;
        if let Some(cors) = extras.and_then(|e| e.cors.as_ref()).filter(|_| is_route) {
            match self.cors(cors) {
                Ok(origin) => cors_origin = origin.map(|o| (cors, o)),
                Err(preflight) => return Exchange::Reply(preflight),
            }
        }
        let mut f = Forward {
            outcome: d.outcome.as_str(),
            // Room for a typical answer (a few route operations plus the control headers).
            set: Vec::with_capacity(16),
            remove: Vec::with_capacity(CONTROL_HEADERS.len() + 4),
            fault_delay: d.fired.delay_ms.is_some(),
            fault_abort: d.fired.abort,
            ..Forward::default()
        };
        if is_route {
            let ops = route_plan
                .zip(d.dest.and_then(|x| x.choice))
                .and_then(|(p, choice)| p.dests.get(choice as usize));
            if let Some(ops) = ops {
                f.set
                    .extend(ops.set.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                f.append
                    .extend(ops.add.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                f.remove.extend(ops.remove.iter().map(ToString::to_string));
            }
        }
        if let Some(path) = d.rewrite_path().filter(|p| !p.is_empty()) {
            f.set.push((":path".to_owned(), path.to_owned()));
        }
        if let Some(authority) = d.rewrite_authority().filter(|a| !a.is_empty()) {
            f.set.push((":authority".to_owned(), authority.to_owned()));
        }
        let hash = d
            .policy
            .and_then(|p| self.plan.hash.get(p as usize))
            .and_then(Option::as_ref);
        let mirrors = extras.map_or(&[][..], |e| e.mirrors.as_slice());
        let passthrough = d.cluster == ClusterRef::Passthrough;
        self.control(
            &mut f,
            extras,
            hash.is_some(),
            !mirrors.is_empty(),
            passthrough,
        );
        // The per-request parts, after every other control header.
        if let Some(hash) = hash {
            put(&mut f, at::HASH, hash.key(self.input));
        }
        if !mirrors.is_empty() {
            let port = self
                .mirror_port
                .or_else(|| d.dest.map(|x| x.port).filter(|&p| p != 0))
                .unwrap_or(if self.input.scheme == "https" {
                    443
                } else {
                    80
                });
            for i in 0..MAX_MIRRORS {
                let cluster = match mirrors.get(i) {
                    Some(m) if m.fires(rng) => Some(m.cluster_for(port)),
                    _ => None,
                };
                put(&mut f, at::MIRROR + i, cluster);
            }
        }
        if passthrough {
            put(
                &mut f,
                at::ORIGINAL_DST,
                original_dst(self.host, self.authority_port),
            );
        }
        f.response = self.response(cors_origin);
        Exchange::Forward(f)
    }

    /// The CORS decision for outcome `route`: `Err(reply)` for a preflight answered locally,
    /// `Ok(Some(origin))` when the response gets CORS headers, `Ok(None)` when CORS does nothing.
    fn cors(&self, cors: &CorsPolicy) -> Result<Option<String>, LocalReply> {
        let Some(origin) = self.input.header_value(ORIGIN).filter(|o| !o.is_empty()) else {
            return Ok(None); // Envoy's filter ignores a missing or empty origin
        };
        let allowed = cors.allows(&origin);
        if self.input.method == "OPTIONS" {
            if let Some(reply) = cors.preflight(self.input, allowed.then_some(&*origin)) {
                return Err(reply);
            }
        }
        Ok(allowed.then(|| origin.into_owned()))
    }

    /// Every control header but the per-request ones (hash key, mirrors, passthrough
    /// destination, when the decision has them) set or removed, in docs/envoy.md order.
    fn control(
        &self,
        f: &mut Forward,
        extras: Option<&Extras>,
        hash: bool,
        mirrors: bool,
        passthrough: bool,
    ) {
        let d = self.d;
        let abort = if d.fired.abort {
            d.pool_route()
                .and_then(|r| r.fault.as_ref())
                .and_then(crate::fault::Fault::abort)
        } else {
            None
        };
        for i in 0..CONTROL_HEADERS.len() {
            let value = match i {
                at::CLUSTER => d.cluster(),
                at::HASH if hash => continue,
                at::ORIGINAL_DST if passthrough => continue,
                i if mirrors && (at::MIRROR..at::MIRROR + MAX_MIRRORS).contains(&i) => continue,
                at::FAULT_DELAY => d.fired.delay_ms.map(|ms| ms.to_string()),
                at::FAULT_ABORT => match abort {
                    Some(Abort::Http(status)) => Some(status.to_string()),
                    _ => None,
                },
                at::FAULT_ABORT_GRPC => match abort {
                    Some(Abort::Grpc(name)) => Some(grpc_code(name).to_string()),
                    _ => None,
                },
                i => extras.and_then(|e| e.control.get(i)).map(str::to_owned),
            };
            put(f, i, value);
        }
    }

    /// The response phase: the destination's response operations (the route's for an abort),
    /// then the CORS headers for an allowed origin.
    fn response(&self, cors: Option<(&CorsPolicy, String)>) -> Option<ResponseOps> {
        let d = self.d;
        let ops = match d.outcome {
            Outcome::Route => d.destination().map(|x| &x.response_headers.ops),
            _ => d.pool_route().map(|r| &r.response_headers.ops),
        };
        let mut out = ops
            .filter(|o| !(o.set.is_empty() && o.add.is_empty() && o.remove.is_empty()))
            .map(|o| ResponseOps {
                set: o.set.clone(),
                append: o.add.clone(),
                remove: o.remove.clone(),
            });
        if let Some((cors, origin)) = cors {
            let out = out.get_or_insert_with(ResponseOps::default);
            let headers: Vec<Header> = cors.response(&origin).collect();
            // The CORS filter runs after the router's response operations, so its headers replace
            // any the route appended: with `append` applied after `set`, drop those appends.
            out.append
                .retain(|(k, _)| !headers.iter().any(|(c, _)| k.eq_ignore_ascii_case(c)));
            out.set.extend(headers);
        }
        out
    }
}

/// Sets control header `i` to `value`, or removes it.
fn put(f: &mut Forward, i: usize, value: Option<String>) {
    let Some(&name) = CONTROL_HEADERS.get(i) else {
        return;
    };
    match value {
        Some(v) => f.set.push((name.to_owned(), v)),
        None => f.remove.push(name.to_owned()),
    }
}

/// The route's response operations, for a local reply: (sets, appends); removes do not apply.
fn route_response_ops(d: &Decision) -> (Vec<Header>, Vec<Header>) {
    match d.pool_route().map(|r| &r.response_headers.ops) {
        Some(HeaderOpsSpec { set, add, .. }) => (set.clone(), add.clone()),
        None => (Vec::new(), Vec::new()),
    }
}

fn local_reply(
    outcome: &'static str,
    status: u16,
    details: &'static str,
    (headers, append): (Vec<Header>, Vec<Header>),
) -> LocalReply {
    LocalReply {
        outcome,
        status,
        headers,
        append,
        body: Vec::new(),
        details,
    }
}

fn reply(outcome: &'static str, status: u16, details: &'static str) -> LocalReply {
    local_reply(outcome, status, details, (Vec::new(), Vec::new()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests;
