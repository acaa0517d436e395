//! `Route`: one compiled entry of the shared route pool (an Istio `http[]` route).

use crate::error::{CompileError, ErrorKind, Result};
use crate::fault::Fault;
use crate::headers::HeaderOps;
use crate::matchers::MatchBlock;
use crate::redirect::Redirect;
use crate::rewrite::Rewrite;
use crate::select::Destinations;
use crate::shared::SharedVec;
use crate::spec::{ActionSpec, RouteSpec};

/// The route pool, by RouteId.
pub(crate) type Routes = SharedVec<Route>;

/// Keys of the Decision object; `extra` may not shadow them.
pub(crate) const DECISION_KEYS: &[&str] = &[
    "outcome",
    "status",
    "gateway",
    "namespace",
    "vhost",
    "virtual_service",
    "route_index",
    "route_name",
    "match_index",
    "destination",
    "cluster",
    "fault",
    "request_headers",
    "response_headers",
    "rewrite",
    "redirect",
    "direct_response",
    "traffic_policy",
];

/// A compiled HTTPRoute: ordered match blocks (OR; none = catch-all) and one action.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) vs: Option<u32>,
    /// Position in the root VirtualService's `http[]`.
    pub(crate) index: u32,
    pub(crate) name: Option<Box<str>>,
    pub(crate) matches: Vec<MatchBlock>,
    pub(crate) action: Action,
    pub(crate) rewrite: Option<Rewrite>,
    pub(crate) fault: Option<Fault>,
    /// Route-level response ops, answered with redirects, direct responses and aborts.
    pub(crate) response_headers: HeaderOps,
    /// The `extra` object as a JSON fragment: `,"k":v...` (or empty).
    pub(crate) extra: Box<str>,
}

/// Istio: "A route must have exactly one action: `route`, `redirect`, `directResponse`".
#[derive(Debug)]
pub(crate) enum Action {
    Route(Destinations),
    Redirect(Redirect),
    DirectResponse { status: u16, body: Option<Box<str>> },
}

/// Table sizes the route's references are checked against.
pub(crate) struct Limits {
    pub(crate) virtual_services: usize,
    pub(crate) gateways: usize,
    pub(crate) targets: usize,
}

// === impl Route ===

impl Route {
    /// Compiles `routes[i]`; `at` is that path.
    pub(crate) fn compile(spec: &RouteSpec, at: &str, limits: &Limits) -> Result<Self> {
        if let Some(vs) = spec.vs {
            check_ref(
                vs,
                limits.virtual_services,
                &format!("{at}.vs"),
                "virtual service",
            )?;
        }
        let matches = spec
            .matches
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mat = format!("{at}.matches[{i}]");
                for (j, &g) in m.gateways.iter().enumerate() {
                    check_ref(
                        g,
                        limits.gateways,
                        &format!("{mat}.gateways[{j}]"),
                        "gateway",
                    )?;
                }
                MatchBlock::compile(m, &mat)
            })
            .collect::<Result<Vec<_>>>()?;
        let action = match &spec.action {
            ActionSpec::Route(r) => {
                let dat = format!("{at}.action.route.destinations");
                Action::Route(Destinations::compile(
                    &r.destinations,
                    &dat,
                    limits.targets,
                )?)
            }
            ActionSpec::Redirect(r) => {
                Action::Redirect(Redirect::compile(r, &format!("{at}.action.redirect"))?)
            }
            ActionSpec::DirectResponse(d) => Action::DirectResponse {
                status: d.status,
                body: d.body.as_deref().map(Into::into),
            },
        };
        let forwards = matches!(action, Action::Route(_));
        // Istio: rewrite and fault are "not allowed with redirect/directResponse".
        for (present, field) in [
            (spec.rewrite.is_some(), "rewrite"),
            (spec.fault.is_some(), "fault"),
        ] {
            if present && !forwards {
                let msg = format!("{field} is only allowed with a route action");
                return Err(CompileError::new(
                    ErrorKind::Value,
                    format!("{at}.{field}"),
                    msg,
                ));
            }
        }
        Ok(Self {
            vs: spec.vs,
            index: spec.index,
            name: spec.name.as_deref().map(Into::into),
            matches,
            action,
            rewrite: spec
                .rewrite
                .as_ref()
                .map(|r| Rewrite::compile(r, &format!("{at}.rewrite")))
                .transpose()?,
            fault: spec
                .fault
                .as_ref()
                .map(|f| Fault::compile(f, &format!("{at}.fault")))
                .transpose()?,
            response_headers: HeaderOps::new(spec.response_headers.clone()),
            extra: extra_fragment(&spec.extra, &format!("{at}.extra"))?,
        })
    }

    /// The destinations, for a forwarding route.
    pub(crate) fn destinations(&self) -> Option<&Destinations> {
        match &self.action {
            Action::Route(d) => Some(d),
            _ => None,
        }
    }
}

/// Renders an `extra` object as `,"k":v` pairs to append to the Decision object.
pub(crate) fn extra_fragment(
    extra: &serde_json::Map<String, serde_json::Value>,
    at: &str,
) -> Result<Box<str>> {
    let mut out = String::new();
    for (k, v) in extra {
        if DECISION_KEYS.contains(&k.as_str()) {
            let msg = format!("key {k:?} would shadow a Decision field");
            return Err(CompileError::new(
                ErrorKind::Value,
                format!("{at}.{k}"),
                msg,
            ));
        }
        out.push(',');
        out.push_str(&serde_json::Value::String(k.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    Ok(out.into())
}

/// Fails unless `id < len`.
pub(crate) fn check_ref(id: u32, len: usize, at: &str, what: &str) -> Result<()> {
    if (id as usize) < len {
        Ok(())
    } else {
        let msg = format!("{what} {id} does not exist ({len} defined)");
        Err(CompileError::new(ErrorKind::Reference, at, msg))
    }
}
