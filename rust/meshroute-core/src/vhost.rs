//! `VHost`: one virtual host of a view — its match blocks in evaluation order, and their index.

use crate::index::{RouteIndex, INDEX_THRESHOLD};
use crate::matchers::{ClientCtx, MatchBlock};
use crate::request::Prepared;
use crate::route::Routes;

/// One match block of one route, in the vhost's evaluation order.
///
/// Istio: "Each match block becomes its own proxy route, in order." A route without match
/// blocks is a single catch-all block (`match_index` `None`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    pub(crate) route: u32,
    pub(crate) match_index: Option<u32>,
    /// The block's `gateways` include the view's gateway (decided at compile time).
    pub(crate) gateway_ok: bool,
}

/// A compiled virtual host.
pub(crate) struct VHost {
    pub(crate) domains: Vec<String>,
    pub(crate) blocks: Vec<Block>,
    index: Option<RouteIndex>,
    pub(crate) default_target: Option<u32>,
    pub(crate) default_port: Option<u16>,
    /// The listener ports this vhost serves, sorted (`None`: every port; docs/ir.md "VHost").
    pub(crate) ports: Option<Box<[u16]>>,
    /// Istio `require_tls: ALL` (a `tls.httpsRedirect` server built it): plain http gets a 301.
    pub(crate) require_tls: bool,
    /// Some block applies to every client of the view, so "no block applicable" cannot happen.
    unconditional: bool,
}

// === impl VHost ===

impl VHost {
    /// Lays out the blocks of `route_ids` for a view on `gateway`; indexes large vhosts.
    pub(crate) fn build(
        domains: Vec<String>,
        route_ids: &[u32],
        routes: &Routes,
        gateway: u32,
        default_target: Option<u32>,
        default_port: Option<u16>,
    ) -> Self {
        let mut blocks = Vec::new();
        for &r in route_ids {
            let route = &routes[r as usize];
            if route.matches.is_empty() {
                blocks.push(Block {
                    route: r,
                    match_index: None,
                    gateway_ok: true,
                });
            }
            for (i, m) in (0u32..).zip(&route.matches) {
                let gateway_ok = m.gateways().contains(&gateway);
                blocks.push(Block {
                    route: r,
                    match_index: Some(i),
                    gateway_ok,
                });
            }
        }
        let unconditional = blocks.iter().any(|b| {
            b.gateway_ok
                && b.match_index.map_or(true, |i| {
                    !routes[b.route as usize].matches[i as usize].has_client_filters()
                })
        });
        let mut vhost = Self {
            domains,
            blocks,
            index: None,
            default_target,
            default_port,
            ports: None,
            require_tls: false,
            unconditional,
        };
        vhost.reindex(routes, INDEX_THRESHOLD);
        vhost
    }

    /// Whether a request on listener `port` may use this vhost (Istio builds one route table
    /// per port: semantics §2.16 step 1).
    #[inline]
    pub(crate) fn serves(&self, port: u16) -> bool {
        self.ports
            .as_deref()
            .map_or(true, |p| p.binary_search(&port).is_ok())
    }

    /// (Re)builds the index when at least `threshold` blocks can apply; tests force it.
    pub(crate) fn reindex(&mut self, routes: &Routes, threshold: usize) {
        let live = self.blocks.iter().filter(|b| b.gateway_ok).count();
        self.index = (live >= threshold).then(|| {
            let live = (0u32..).zip(&self.blocks).filter(|(_, b)| b.gateway_ok);
            RouteIndex::build(live.map(|(id, b)| (id, block_match(routes, b))))
        });
    }

    /// The first block (in order) that applies to the client and matches the request.
    #[inline]
    pub(crate) fn select(
        &self,
        routes: &Routes,
        ctx: &ClientCtx<'_>,
        req: &Prepared<'_>,
    ) -> Option<u32> {
        let eval = |id: u32| self.eval(routes, id, ctx, req);
        match &self.index {
            Some(index) => index.find(req, eval),
            None => self.select_linear(routes, ctx, req),
        }
    }

    /// The reference walk: every block in order. The index must agree with it.
    pub(crate) fn select_linear(
        &self,
        routes: &Routes,
        ctx: &ClientCtx<'_>,
        req: &Prepared<'_>,
    ) -> Option<u32> {
        (0u32..)
            .take(self.blocks.len())
            .find(|&id| self.eval(routes, id, ctx, req))
    }

    #[inline]
    fn eval(&self, routes: &Routes, id: u32, ctx: &ClientCtx<'_>, req: &Prepared<'_>) -> bool {
        let b = &self.blocks[id as usize];
        b.gateway_ok
            && block_match(routes, b)
                .map_or(true, |m| m.applies(ctx).is_ok() && m.check(req).is_ok())
    }

    /// Istio: "If config-time filtering leaves a VS with zero routes for this client, the client
    /// gets the default route for the service — not 404."
    pub(crate) fn any_applicable(&self, routes: &Routes, ctx: &ClientCtx<'_>) -> bool {
        self.unconditional
            || self.blocks.iter().any(|b| {
                b.gateway_ok && block_match(routes, b).map_or(true, |m| m.applies(ctx).is_ok())
            })
    }
}

/// The block's HTTPMatchRequest (`None` for a route without match blocks).
pub(crate) fn block_match<'r>(routes: &'r Routes, b: &Block) -> Option<&'r MatchBlock> {
    b.match_index
        .map(|i| &routes[b.route as usize].matches[i as usize])
}
