//! `View` and `Views`: one host index per client context, and how a request picks its view.

use std::sync::Arc;

use ahash::AHashMap;

use crate::host::{HostHit, HostSet, ViewHosts};
use crate::request::Prepared;
use crate::spec::UnknownHost;
use crate::vhost::VHost;

/// Everything one client context (a namespace's sidecars, a Sidecar resource, or a gateway
/// listener port) can reach.
///
/// Cloning shares the vhosts and host index (a patched table copies its views so that `route()`
/// reaches them without another pointer).
#[derive(Clone)]
pub(crate) struct View {
    pub(crate) gateway: u32,
    pub(crate) namespace: Box<str>,
    pub(crate) scope: u32,
    pub(crate) ports: Vec<u16>,
    /// Hosts answered with a 301 to https when the request is plain http (`tls.httpsRedirect`).
    pub(crate) https_redirect: HostSet,
    pub(crate) unknown_host: UnknownHost,
    /// Each shared with the other views that use the same `vhost_pool` entry (same gateway).
    pub(crate) vhosts: Arc<[Arc<VHost>]>,
    /// Shared with the table this view was patched from while its vhosts' domains stay put.
    pub(crate) hosts: ViewHosts,
}

// === impl View ===

impl View {
    /// The vhost for `host` (port-stripped, any case) on listener `port` when the request names
    /// one (the `port` argument or the authority's): the first vhost, in view order, claiming the
    /// host and serving that port (docs/ir.md "VHost", `ports`), with the usual precedence (exact
    /// > longest wildcard > `*`). Without a port every vhost counts.
    #[inline]
    pub(crate) fn lookup(&self, host: &str, port: Option<u16>) -> Option<HostHit> {
        let hit = self.hosts.lookup(host);
        match (port, hit) {
            (Some(p), Some(h)) if !self.vhosts[h.vhost as usize].serves(p) => {
                self.lookup_on_port(host, p)
            }
            _ => hit,
        }
    }

    /// The claimant of `host` serving `port`, when the first claimant does not: a walk over the
    /// view's vhosts (only requests to a port their host's first vhost lacks come here).
    #[cold]
    fn lookup_on_port(&self, host: &str, port: u16) -> Option<HostHit> {
        // Rank: 2 + suffix length for a wildcard, 1 for `*`; the first claimant keeps a tie.
        let mut best: Option<(usize, HostHit)> = None;
        for (v, vhost) in (0u32..).zip(self.vhosts.iter()) {
            if !vhost.serves(port) {
                continue;
            }
            for (d, domain) in (0u32..).zip(&vhost.domains) {
                let hit = HostHit {
                    vhost: v,
                    domain: d,
                };
                let rank = if domain == "*" {
                    1
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    let fits = host.len() > suffix.len()
                        && host.is_char_boundary(host.len() - suffix.len())
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix);
                    if !fits {
                        continue;
                    }
                    2 + suffix.len()
                } else if domain.eq_ignore_ascii_case(host) {
                    return Some(hit);
                } else {
                    continue;
                };
                if best.map_or(true, |(r, _)| rank > r) {
                    best = Some((rank, hit));
                }
            }
        }
        best.map(|(_, hit)| hit)
    }
}

/// Label selector: every `(key, value)` must be among the client's labels.
pub(crate) type Labels = Vec<(Box<str>, Box<str>)>;

/// A mesh namespace's views: Sidecar-selected ones first, then the default.
#[derive(Clone)]
pub(crate) struct NamespaceViews {
    pub(crate) sidecars: Vec<(Labels, u32)>,
    pub(crate) default_view: u32,
}

/// View selection (docs/ir.md "View selection").
///
/// Small (a few entries per namespace and gateway): a patched table copies it rather than
/// reach it through another pointer on every request.
#[derive(Clone)]
pub(crate) struct Views {
    pub(crate) namespaces: AHashMap<Box<str>, NamespaceViews>,
    pub(crate) other_view: Option<u32>,
    /// Gateway name → (listener port, view), sorted by port.
    pub(crate) gateways: AHashMap<Box<str>, Vec<(u16, u32)>>,
}

/// The view a request uses, and the listener port when the view selection fixed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Selected {
    pub(crate) view: u32,
    pub(crate) port: Option<u16>,
}

// === impl Views ===

impl Views {
    /// `mesh`: the namespace's first Sidecar whose labels the client carries, else its default
    /// view; an unknown namespace gets `other_view`. A gateway: its view for the listener port.
    /// `None` means 404 (unknown gateway, port, or no view for other namespaces).
    pub(crate) fn select(&self, req: &Prepared<'_>) -> Option<Selected> {
        let r = req.req;
        if r.gateway == "mesh" {
            let ns = r.source_namespace.unwrap_or("default");
            let view = match self.namespaces.get(ns) {
                Some(nv) => nv
                    .sidecars
                    .iter()
                    .find(|(labels, _)| {
                        labels.iter().all(|(k, v)| {
                            r.source_labels
                                .iter()
                                .any(|(ck, cv)| *ck == &**k && *cv == &**v)
                        })
                    })
                    .map_or(nv.default_view, |(_, view)| *view),
                None => self.other_view?,
            };
            return Some(Selected { view, port: None });
        }
        let ports = self.gateways.get(r.gateway)?;
        // Listener port: the argument, the authority's port, the gateway's only port, or the
        // scheme's default.
        let port = match (r.port.or(req.authority_port), ports.as_slice()) {
            (Some(p), _) => p,
            (None, [(only, _)]) => *only,
            (None, _) => default_port(req),
        };
        let pos = ports.binary_search_by_key(&port, |(p, _)| *p).ok()?;
        Some(Selected {
            view: ports[pos].1,
            port: Some(port),
        })
    }
}

/// The listener port of a mesh request: the argument, the authority's port, the view's only
/// port, the vhost's service port, else 80 / 443 by scheme.
pub(crate) fn mesh_listener_port(req: &Prepared<'_>, view: &View, vhost: Option<&VHost>) -> u16 {
    req.req
        .port
        .or(req.authority_port)
        .or(match view.ports.as_slice() {
            [only] => Some(*only),
            _ => None,
        })
        .or(vhost.and_then(|v| v.default_port))
        .unwrap_or_else(|| default_port(req))
}

fn default_port(req: &Prepared<'_>) -> u16 {
    if req.is_https() {
        443
    } else {
        80
    }
}
