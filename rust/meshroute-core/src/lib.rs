//! Istio HTTP route evaluation (VirtualService semantics) over a compiled, immutable table.
//!
//! Python resolves Istio policy (visibility, precedence, DestinationRule merging, ...) into the
//! JSON IR of `docs/ir.md`; this crate does the per-request work: pick the view, find the
//! virtual host, walk the routes (first match wins), pick the weighted destination, draw
//! faults, compute rewrites and redirects.
//!
//! ```
//! use std::sync::Arc;
//! use meshroute_core::{Outcome, Request, RouteTable, SplitMix64};
//!
//! let ir = r#"{"version": 1, "gateways": ["mesh"],
//!   "targets": [{"host": "reviews.default.svc.cluster.local", "subset": null, "port": null}],
//!   "policies": ["{}"], "scopes": [{"clusters": [[0, 9080, 0]]}],
//!   "views": [{"gateway": 0, "namespace": "default", "scope": 0, "vhosts": [
//!     {"domains": ["reviews"], "routes": [], "default_target": 0, "default_port": 9080}]}],
//!   "mesh": {"namespaces": {}, "other_view": 0}}"#;
//! let table = Arc::new(RouteTable::from_json(ir).unwrap());
//! let req = Request { authority: "reviews", path: "/", ..Request::default() };
//! let d = table.route(&req, &mut SplitMix64::new(1));
//! assert_eq!(d.outcome(), Outcome::Route);
//! assert_eq!(d.cluster().as_deref(), Some("outbound|9080||reviews.default.svc.cluster.local"));
//! ```
#![forbid(unsafe_code)]

mod cluster_policy;
mod compile;
mod decision;
mod error;
mod exchange;
mod explain;
mod fault;
mod headers;
mod host;
mod index;
mod json;
mod keymap;
mod matcher_set;
mod matchers;
mod patch;
mod redirect;
mod request;
mod rewrite;
mod rng;
mod route;
mod select;
mod shared;
mod spec;
mod subnet;
mod table;
mod tcp;
mod vhost;
mod view;

#[cfg(test)]
mod tests;

pub use crate::decision::{Decision, Outcome, BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER};
pub use crate::error::{CompileError, ErrorKind};
pub use crate::exchange::{
    Exchange, Forward, Header, ListenerContext, LocalReply, ResponseOps, CLUSTER_HEADER,
    CONTROL_HEADERS, HASH_HEADER, MAX_MIRRORS, MIRROR_HEADERS, ORIGINAL_DST_HEADER,
};
pub use crate::explain::EXPLAIN_SEED;
pub use crate::fault::GRPC_STATUSES;
pub use crate::matcher_set::StringMatchSet;
pub use crate::matchers::re2::check_regex;
pub use crate::request::{Protocol, Request};
pub use crate::rng::{Rng, SplitMix64};
pub use crate::table::RouteTable;

/// `RouteTable` and `Decision` are shared across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RouteTable>();
    assert_send_sync::<Decision>();
};
