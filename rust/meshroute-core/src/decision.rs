//! `Decision`: what `route()` decided, as indices into the shared table plus a few values.
//!
//! Strings are borrowed from the table on demand (the cluster name is built lazily), so the
//! common path does not allocate; only rewritten paths and redirect locations are owned.

use std::fmt;
use std::sync::Arc;

use crate::fault::Fired;
use crate::host::HostHit;
use crate::route::Route;
use crate::select::Destination;
use crate::table::{RouteTable, Target};

/// The kind of answer a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forward to `cluster()`.
    Route,
    /// Answer with a 3xx and a `Location`.
    Redirect,
    /// Answer with a fixed status and body.
    DirectResponse,
    /// Fault injection aborted the request.
    Abort,
    /// No route (404): unknown gateway/port/host, or no block matched.
    NoRoute,
    /// The chosen cluster does not exist for this client (503), or `REGISTRY_ONLY` (502).
    NoCluster,
}

impl Outcome {
    /// `"route"`, `"redirect"`, `"direct_response"`, `"abort"`, `"no_route"` or `"no_cluster"`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Redirect => "redirect",
            Self::DirectResponse => "direct_response",
            Self::Abort => "abort",
            Self::NoRoute => "no_route",
            Self::NoCluster => "no_cluster",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which route produced the decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteRef {
    None,
    /// A RouteId of the pool.
    Pool(u32),
    /// The service's synthetic default route (no VirtualService applies).
    Default,
}

/// The chosen destination: a target, its resolved port, and which `route[]` entry it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DestRef {
    pub(crate) target: u32,
    pub(crate) port: u16,
    pub(crate) choice: Option<u32>,
}

/// Istio's cluster for an unknown host under `ALLOW_ANY` (an ORIGINAL_DST cluster).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Istio's cluster for an unknown host under `REGISTRY_ONLY` (no endpoints).
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterRef {
    None,
    /// `outbound|port|subset|host` of the destination.
    Target,
    Passthrough,
    BlackHole,
}

/// Values computed from the request that cannot be indices.
#[derive(Debug, Clone, Default)]
pub(crate) struct Owned {
    pub(crate) rewrite_path: Option<String>,
    pub(crate) location: Option<String>,
    /// The requested gateway when no view serves it.
    pub(crate) gateway: Option<String>,
}

/// The routing decision for one request. Cheap to clone; `'static`, `Send` and `Sync`.
#[derive(Clone)]
pub struct Decision {
    pub(crate) table: Arc<RouteTable>,
    pub(crate) outcome: Outcome,
    pub(crate) status: Option<u16>,
    pub(crate) view: Option<u32>,
    pub(crate) host_hit: Option<HostHit>,
    pub(crate) route: RouteRef,
    pub(crate) match_index: Option<u32>,
    pub(crate) dest: Option<DestRef>,
    pub(crate) cluster: ClusterRef,
    pub(crate) policy: Option<u32>,
    pub(crate) fired: Fired,
    pub(crate) owned: Option<Box<Owned>>,
}

// === impl Decision ===

impl Decision {
    pub(crate) fn new(table: Arc<RouteTable>) -> Self {
        Self {
            table,
            outcome: Outcome::NoRoute,
            status: Some(404),
            view: None,
            host_hit: None,
            route: RouteRef::None,
            match_index: None,
            dest: None,
            cluster: ClusterRef::None,
            policy: None,
            fired: Fired::default(),
            owned: None,
        }
    }

    pub(crate) fn owned_mut(&mut self) -> &mut Owned {
        self.owned.get_or_insert_with(Box::default)
    }

    /// The kind of answer.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// The HTTP status the client gets; `None` for `Route` (the upstream answers).
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// `(namespace, name)` of the VirtualService whose route matched.
    #[must_use]
    pub fn virtual_service(&self) -> Option<(&str, &str)> {
        let vs = self.pool_route()?.vs?;
        let (ns, name) = &self.table.virtual_services[vs as usize];
        Some((ns, name))
    }

    /// Position of the matched route in its VirtualService's `http[]`.
    #[must_use]
    pub fn route_index(&self) -> Option<u32> {
        self.pool_route().map(|r| r.index)
    }

    /// The matched route's `name`.
    #[must_use]
    pub fn route_name(&self) -> Option<&str> {
        self.pool_route()?.name.as_deref()
    }

    /// Which of the route's match blocks matched (`None` for a route without blocks).
    #[must_use]
    pub fn match_index(&self) -> Option<u32> {
        self.match_index
    }

    /// Destination host (FQDN).
    #[must_use]
    pub fn host(&self) -> Option<&str> {
        self.target().map(|t| &*t.host)
    }

    /// Destination subset.
    #[must_use]
    pub fn subset(&self) -> Option<&str> {
        self.target()?.subset.as_deref()
    }

    /// Destination port (resolved: the target's port, else the listener port).
    #[must_use]
    pub fn port(&self) -> Option<u16> {
        self.dest.map(|d| d.port)
    }

    /// Envoy cluster name: `outbound|PORT|SUBSET|HOST`, `PassthroughCluster` or
    /// `BlackHoleCluster`.
    #[must_use]
    pub fn cluster(&self) -> Option<String> {
        match self.cluster {
            ClusterRef::None => None,
            ClusterRef::Passthrough => Some(PASSTHROUGH_CLUSTER.into()),
            ClusterRef::BlackHole => Some(BLACKHOLE_CLUSTER.into()),
            ClusterRef::Target => {
                let t = self.target()?;
                let port = self.dest?.port;
                Some(format!(
                    "outbound|{port}|{}|{}",
                    t.subset.as_deref().unwrap_or(""),
                    t.host
                ))
            }
        }
    }

    /// The fault delay that fired, in milliseconds.
    #[must_use]
    pub fn delay_ms(&self) -> Option<u64> {
        self.fired.delay_ms
    }

    /// The domain entry of the vhost that matched the request host.
    #[must_use]
    pub fn vhost(&self) -> Option<&str> {
        let hit = self.host_hit?;
        let view = &self.table.views[self.view? as usize];
        Some(&view.vhosts[hit.vhost as usize].domains[hit.domain as usize])
    }

    /// The path the upstream should see, when rewritten (query kept).
    #[must_use]
    pub fn rewrite_path(&self) -> Option<&str> {
        self.owned.as_ref()?.rewrite_path.as_deref()
    }

    /// The authority the upstream should see, when rewritten.
    #[must_use]
    pub fn rewrite_authority(&self) -> Option<&str> {
        if self.outcome != Outcome::Route {
            return None;
        }
        let from_rewrite = self
            .pool_route()?
            .rewrite
            .as_ref()
            .and_then(|r| r.authority.as_deref());
        from_rewrite.or_else(|| self.destination()?.authority.as_deref())
    }

    /// The `Location` of a redirect.
    #[must_use]
    pub fn redirect_location(&self) -> Option<&str> {
        self.owned.as_ref()?.location.as_deref()
    }

    /// The effective DestinationRule traffic policy for the cluster, as compact JSON text.
    #[must_use]
    pub fn traffic_policy(&self) -> Option<&str> {
        self.policy.map(|p| &*self.table.policies[p as usize])
    }

    pub(crate) fn pool_route(&self) -> Option<&Route> {
        match self.route {
            RouteRef::Pool(r) => Some(&self.table.routes[r as usize]),
            _ => None,
        }
    }

    pub(crate) fn target(&self) -> Option<&Target> {
        self.dest.map(|d| &self.table.targets[d.target as usize])
    }

    /// The chosen `route[]` entry of a forwarding pool route.
    pub(crate) fn destination(&self) -> Option<&Destination> {
        let choice = self.dest?.choice?;
        self.pool_route()?
            .destinations()
            .map(|d| &d.list[choice as usize])
    }
}

impl fmt::Debug for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decision")
            .field("outcome", &self.outcome)
            .field("status", &self.status)
            .field("vhost", &self.vhost())
            .field("virtual_service", &self.virtual_service())
            .field("route_index", &self.route_index())
            .field("match_index", &self.match_index)
            .field("cluster", &self.cluster())
            .field("delay_ms", &self.fired.delay_ms)
            .finish_non_exhaustive()
    }
}
