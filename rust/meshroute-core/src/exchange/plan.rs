//! What `exchange` needs beyond the routing table, prepared once when the table is built: each
//! route's `extra` read into typed data (control header values, mirrors, CORS policy), its
//! request header operations with control headers filtered out, each traffic policy's hash
//! source, and the Gateway servers. Nothing here is parsed per request.

use std::sync::Arc;

use serde_json::Value;

use super::control::{is_control, RouteControl};
use super::cors::CorsPolicy;
use super::gateway::GatewayServers;
use super::hash::HashSource;
use super::mirrors::Mirror;
use crate::route::{Route, Routes};
use crate::shared::SharedVec;
use crate::spec::{HeaderOpsSpec, RouteSpec, Spec};

/// The prepared per-route and per-policy data of one table.
///
/// Shared like the table's own lists: a patched table appends route and policy entries and
/// keeps the rest (`Arc`), so cloning a plan costs pointer copies.
#[derive(Debug, Default, Clone)]
pub(crate) struct Plan {
    /// By RouteId.
    pub(crate) routes: SharedVec<RoutePlan>,
    /// For the synthetic default routes (`default_extra`).
    pub(crate) default_extras: Arc<Extras>,
    /// By PolicyId.
    pub(crate) hash: SharedVec<Option<HashSource>>,
    pub(crate) gateways: Arc<GatewayServers>,
}

/// What a route's `extra` says, typed.
#[derive(Debug, Default)]
pub(crate) struct Extras {
    pub(crate) control: RouteControl,
    pub(crate) mirrors: Vec<Mirror>,
    pub(crate) cors: Option<CorsPolicy>,
}

#[derive(Debug, Default)]
pub(crate) struct RoutePlan {
    pub(crate) extras: Extras,
    /// By destination choice: the request header operations a client-visible answer applies.
    pub(crate) dests: Vec<RequestOps>,
}

/// A destination's request header operations without any control header (the answer owns
/// those), removes deduplicated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RequestOps {
    pub(crate) set: Vec<(Box<str>, Box<str>)>,
    pub(crate) add: Vec<(Box<str>, Box<str>)>,
    pub(crate) remove: Vec<Box<str>>,
}

impl Plan {
    /// `routes[i]` is the compiled `spec.routes[i]`; `policies[i]` the JSON text of PolicyId i.
    pub(crate) fn build(spec: &Spec, routes: &Routes, policies: &SharedVec<Box<str>>) -> Plan {
        Plan {
            routes: SharedVec::new(
                spec.routes
                    .iter()
                    .zip(routes.iter())
                    .map(RoutePlan::of)
                    .collect(),
            ),
            default_extras: Arc::new(Extras::read(&Value::Object(spec.default_extra.clone()))),
            hash: SharedVec::new(policies.iter().map(|p| HashSource::of_policy(p)).collect()),
            gateways: Arc::new(GatewayServers::build(
                spec.gateway_servers
                    .iter()
                    .map(|(port, hosts, gw)| (*port, hosts.as_slice(), gw.as_str())),
            )),
        }
    }

    /// This plan with the entries of appended routes (spec and compiled route, in RouteId
    /// order) and appended policies; everything else shared.
    pub(crate) fn appended<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'a RouteSpec, &'a Route)>,
        policies: &[Box<str>],
    ) -> Plan {
        Plan {
            routes: self.routes.appended(routes.into_iter().map(RoutePlan::of)),
            default_extras: Arc::clone(&self.default_extras),
            hash: self
                .hash
                .appended(policies.iter().map(|p| HashSource::of_policy(p))),
            gateways: Arc::clone(&self.gateways),
        }
    }
}

impl RoutePlan {
    fn of((spec, route): (&RouteSpec, &Route)) -> RoutePlan {
        RoutePlan {
            extras: Extras::read(&Value::Object(spec.extra.clone())),
            dests: route.destinations().map_or_else(Vec::new, |d| {
                d.list
                    .iter()
                    .map(|dest| RequestOps::filtered(&dest.request_headers.ops))
                    .collect()
            }),
        }
    }
}

impl Extras {
    fn read(extra: &Value) -> Extras {
        Extras {
            control: RouteControl::from_extra(extra),
            mirrors: Mirror::list(extra),
            cors: CorsPolicy::from_extra(extra),
        }
    }
}

impl RequestOps {
    fn filtered(ops: &HeaderOpsSpec) -> RequestOps {
        let keep = |(k, v): &(String, String)| {
            (!is_control(k)).then(|| (k.as_str().into(), v.as_str().into()))
        };
        let mut remove: Vec<Box<str>> = Vec::with_capacity(ops.remove.len());
        for k in &ops.remove {
            if !is_control(k) && !remove.iter().any(|r| **r == **k) {
                remove.push(k.as_str().into());
            }
        }
        RequestOps {
            set: ops.set.iter().filter_map(keep).collect(),
            add: ops.add.iter().filter_map(keep).collect(),
            remove,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn route_ops_cannot_touch_control_headers() {
        let ops = HeaderOpsSpec {
            set: vec![
                ("x-a".into(), "1".into()),
                ("X-Envoy-Max-Retries".into(), "99".into()),
            ],
            add: vec![
                ("x-meshroute-cluster".into(), "evil".into()),
                ("x-b".into(), "2".into()),
            ],
            remove: vec!["x-c".into(), "x-envoy-retry-on".into(), "x-c".into()],
        };
        let got = RequestOps::filtered(&ops);
        assert_eq!(got.set, vec![("x-a".into(), "1".into())]);
        assert_eq!(got.add, vec![("x-b".into(), "2".into())]);
        assert_eq!(got.remove, vec![Box::<str>::from("x-c")]);
    }
}
