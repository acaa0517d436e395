//! `RouteTable`: the immutable compiled IR, and `route()` — the per-request pipeline.

use std::sync::Arc;

use ahash::AHashMap;

use crate::decision::{ClusterRef, Decision, DestRef, Outcome, RouteRef};
use crate::error::CompileError;
use crate::host::{specificity, HostHit};
use crate::matchers::ClientCtx;
use crate::redirect::Redirect;
use crate::request::{Prepared, Protocol, Request};
use crate::rng::Rng;
use crate::route::{Action, Route};
use crate::shared::SharedVec;
use crate::spec::UnknownHost;
use crate::vhost::VHost;
use crate::view::{mesh_listener_port, View, Views};

/// A destination service (and subset, and port when fixed).
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) host: Box<str>,
    pub(crate) subset: Option<Box<str>>,
    pub(crate) port: Option<u16>,
}

impl Target {
    pub(crate) fn compile(t: &crate::spec::TargetSpec) -> Target {
        Target {
            host: t.host.as_str().into(),
            subset: t.subset.as_deref().map(Into::into),
            port: t.port,
        }
    }
}

/// The clusters one client scope can reach, with their traffic policy (PolicyId).
pub(crate) struct Scope {
    pub(crate) clusters: AHashMap<(u32, u16), u32>,
}

/// The compiled route table: built once from the IR, never mutated, shared as `Arc`.
///
/// Every weight, regex and reference problem is reported by `from_json` (or `patched`);
/// `route()` cannot fail.
///
/// The heavy parts are shared rather than owned (`Arc`, [`SharedVec`]) so that
/// [`RouteTable::patched`] builds a new table from an old one at the cost of the patch plus
/// pointer copies. The per-request lookups stay direct indexing: a patch appends routes,
/// targets and policies, replaces scopes whole, and copies the small parts (views, the view
/// selector) that `route()` reads first.
pub struct RouteTable {
    pub(crate) virtual_services: Arc<[(Box<str>, Box<str>)]>,
    pub(crate) gateways: Arc<[Box<str>]>,
    pub(crate) targets: SharedVec<Target>,
    /// Compact JSON text per PolicyId.
    pub(crate) policies: SharedVec<Box<str>>,
    pub(crate) scopes: Vec<Arc<Scope>>,
    pub(crate) routes: SharedVec<Route>,
    pub(crate) views: Vec<View>,
    pub(crate) selector: Views,
    /// `default_extra` as a JSON fragment (`,"k":v...`).
    pub(crate) default_extra: Arc<str>,
    /// What `exchange()` needs beyond routing, prepared once (route extras, hash sources,
    /// Gateway servers).
    pub(crate) exchange_plan: crate::exchange::Plan,
    /// Mesh TCP service ports (`tcp` in the IR); kept as is by `patched`.
    pub(crate) tcp: Arc<crate::tcp::TcpTable>,
}

// === impl RouteTable ===

impl RouteTable {
    /// Parses and compiles the IR (docs/ir.md).
    ///
    /// # Errors
    /// A `CompileError` with the IR path of the first problem found.
    pub fn from_json(ir: &str) -> Result<RouteTable, CompileError> {
        crate::compile::compile(&crate::spec::parse(ir)?)
    }

    /// A new table: this one with the IR patch `patch_json` applied (docs/ir.md, "Patch").
    /// Everything the patch does not change is shared with `self`, which is left as it was.
    ///
    /// # Errors
    /// A `CompileError` with the path of the first problem (`patch.vhosts[0].routes[2]`), as
    /// `from_json` reports it; a patch written for a table of other sizes (`base`) is refused.
    pub fn patched(&self, patch_json: &str) -> Result<RouteTable, CompileError> {
        crate::patch::apply(self, patch_json)
    }

    /// Number of routes in the pool.
    #[must_use]
    pub fn route_count(&self) -> usize {
        self.routes.len()
    }

    /// Routes one request: view, virtual host, first matching block, destination, faults.
    ///
    /// Random draws come from `rng`, in the documented order: the weighted destination (only
    /// with several), then the fault delay, then the abort (each only when its percentage is
    /// strictly between 0 and 100).
    pub fn route<R: Rng + ?Sized>(self: &Arc<Self>, req: &Request<'_>, rng: &mut R) -> Decision {
        let prep = Prepared::new(req);
        let mut d = Decision::new(Arc::clone(self));
        let Some(selected) = self.selector.select(&prep) else {
            d.owned_mut().gateway = Some(req.gateway.to_owned());
            return d;
        };
        d.view = Some(selected.view);
        let mut d = match crate::tcp::route(self, d, req, &prep, selected.view, rng) {
            Ok(tcp) => return tcp,
            Err(d) => d,
        };
        let view = &self.views[selected.view as usize];
        d.host_hit = view.lookup(
            prep.host,
            selected.port.or(req.port).or(prep.authority_port),
        );
        if req.protocol == Protocol::Tcp {
            // Not a TCP port of the host (tcp.rs answered those): a host the view has a vhost
            // for is served by an HTTP connection manager there, which closes a connection
            // that does not speak HTTP; any other host is an unknown host, as for HTTP.
            return match d.host_hit {
                Some(_) => closed(d),
                None => unknown_host(d, view.unknown_host),
            };
        }
        let mut vhost = d.host_hit.map(|h| &*view.vhosts[h.vhost as usize]);
        let port = selected
            .port
            .unwrap_or_else(|| mesh_listener_port(&prep, view, vhost));
        if let Some(tls) = require_tls(view, &prep, d.host_hit) {
            if !prep.is_https() {
                let location = Redirect::https().location(&prep, port);
                return redirected(d, location, 301);
            }
            if tls == RequireTls::RedirectOnly {
                // The redirect-only vhost has no routes (Istio: 404 for what it lets through).
                d.host_hit = None;
                vhost = None;
            }
        }
        let Some(vhost) = vhost else {
            return unknown_host(d, view.unknown_host);
        };
        let ctx = ClientCtx {
            gateway: view.gateway,
            port,
            labels: req.source_labels,
            namespace: req.source_namespace.unwrap_or("default"),
        };
        match vhost.select(&self.routes, &ctx, &prep) {
            Some(block) => self.act(d, view, vhost, block, &prep, port, rng),
            None => self.no_match(d, view, vhost, &ctx, port),
        }
    }

    /// Carries out the matched block's route action.
    #[allow(clippy::too_many_arguments)]
    fn act<R: Rng + ?Sized>(
        &self,
        mut d: Decision,
        view: &View,
        vhost: &VHost,
        block: u32,
        prep: &Prepared<'_>,
        port: u16,
        rng: &mut R,
    ) -> Decision {
        let b = vhost.blocks[block as usize];
        let route = &self.routes[b.route as usize];
        d.route = RouteRef::Pool(b.route);
        d.match_index = b.match_index;
        let dests = match &route.action {
            Action::Redirect(r) => return redirected(d, r.location(prep, port), r.code),
            Action::DirectResponse { status, .. } => {
                d.outcome = Outcome::DirectResponse;
                d.status = Some(*status);
                return d;
            }
            Action::Route(dests) => dests,
        };
        let choice = dests.pick(rng);
        let target = dests.list[choice].target;
        let port = self.targets[target as usize].port.unwrap_or(port);
        d.dest = Some(DestRef {
            target,
            port,
            choice: u32::try_from(choice).ok(),
        });
        d.cluster = ClusterRef::Target;
        if let Some(fault) = &route.fault {
            d.fired = fault.draw(rng);
            if d.fired.abort {
                d.outcome = Outcome::Abort;
                d.status = fault.abort().map(crate::fault::Abort::http_status);
                return d;
            }
        }
        if !self.bind_cluster(&mut d, view, target, port) {
            return d;
        }
        if let Some(path) = route.rewrite.as_ref().and_then(|rw| {
            let m = b.match_index.map(|i| &route.matches[i as usize]);
            rw.path(m, prep)
        }) {
            d.owned_mut().rewrite_path = Some(path);
        }
        d
    }

    /// No block matched: 404, unless no block applies to this client and the service has a
    /// default route.
    fn no_match(
        &self,
        mut d: Decision,
        view: &View,
        vhost: &VHost,
        ctx: &ClientCtx<'_>,
        port: u16,
    ) -> Decision {
        match vhost.default_target {
            Some(target) if !vhost.any_applicable(&self.routes, ctx) => {
                let port = self.targets[target as usize].port.unwrap_or(port);
                d.route = RouteRef::Default;
                d.dest = Some(DestRef {
                    target,
                    port,
                    choice: None,
                });
                d.cluster = ClusterRef::Target;
                self.bind_cluster(&mut d, view, target, port);
                d
            }
            _ => d,
        }
    }

    /// Routes to (target, port) if that cluster exists for the view's scope; else 503.
    fn bind_cluster(&self, d: &mut Decision, view: &View, target: u32, port: u16) -> bool {
        match self.scopes[view.scope as usize]
            .clusters
            .get(&(target, port))
        {
            Some(&policy) => {
                d.outcome = Outcome::Route;
                d.status = None;
                d.policy = Some(policy);
                true
            }
            None => {
                d.outcome = Outcome::NoCluster;
                d.status = Some(503);
                false
            }
        }
    }
}

/// Which virtual host requiring TLS a request reached, when it reached one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequireTls {
    /// The vhost the host lookup found (`require_tls`, or a redirect pattern equal to its domain).
    VHost,
    /// A redirect host pattern more specific than any vhost domain (or matched alone): Istio's
    /// vhost for a `tls.httpsRedirect` server host that no VirtualService host equals.
    RedirectOnly,
}

/// Istio's per-vhost `require_tls: ALL` (semantics §4): a view's vhosts and its redirect host
/// patterns (each a vhost of its own, with no routes) compete by Envoy's domain order; the
/// winner decides. A redirect pattern equal to the found vhost's domain marks that vhost (Istio
/// sets `require_tls` on the vhost of that name when there is one).
#[inline]
fn require_tls(view: &View, prep: &Prepared<'_>, hit: Option<HostHit>) -> Option<RequireTls> {
    let found = hit.map(|h| (&*view.vhosts[h.vhost as usize], h.domain as usize));
    if found.is_some_and(|(v, _)| v.require_tls) {
        return Some(RequireTls::VHost);
    }
    let pattern = view.https_redirect.best(prep.host)?;
    match found.map(|(v, d)| specificity(&v.domains[d])) {
        Some(rank) if rank > pattern => None,
        Some(rank) if rank == pattern => Some(RequireTls::VHost),
        _ => Some(RequireTls::RedirectOnly),
    }
}

fn redirected(mut d: Decision, location: String, code: u16) -> Decision {
    d.outcome = Outcome::Redirect;
    d.status = Some(code);
    d.owned_mut().location = Some(location);
    d
}

/// Istio: "Host not known at all → sidecar: ALLOW_ANY passthrough or REGISTRY_ONLY 502;
/// gateway: 404."
/// An opaque TCP connection to an HTTP port: no route, no status (nothing answers it).
fn closed(mut d: Decision) -> Decision {
    d.outcome = Outcome::NoRoute;
    d.status = None;
    d
}

fn unknown_host(mut d: Decision, policy: UnknownHost) -> Decision {
    match policy {
        UnknownHost::NotFound => {}
        UnknownHost::Passthrough => {
            d.outcome = Outcome::Route;
            d.status = None;
            d.cluster = ClusterRef::Passthrough;
        }
        UnknownHost::Blackhole => {
            d.outcome = Outcome::NoCluster;
            d.status = Some(502);
            d.cluster = ClusterRef::BlackHole;
        }
    }
    d
}
