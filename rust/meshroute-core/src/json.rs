//! `Decision::to_json`: the Decision object of docs/ir.md, written by hand in one pass.

use std::fmt::Write;

use crate::decision::{Decision, Outcome, RouteRef};
use crate::fault::Abort;
use crate::headers::EMPTY_JSON;
use crate::route::Action;

// === impl Decision ===

impl Decision {
    /// The Decision object of docs/ir.md, followed by the keys of the route's `extra` (or of
    /// `default_extra` for the synthetic default route).
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut w = String::with_capacity(640);
        w.push('{');
        key(&mut w, "outcome", false);
        string(&mut w, Some(self.outcome.as_str()));
        key(&mut w, "status", true);
        number(&mut w, self.status);
        key(&mut w, "gateway", true);
        string(&mut w, self.gateway_name());
        key(&mut w, "namespace", true);
        string(
            &mut w,
            self.view.map(|v| &*self.table.views[v as usize].namespace),
        );
        key(&mut w, "vhost", true);
        string(&mut w, self.vhost());
        key(&mut w, "virtual_service", true);
        string(
            &mut w,
            self.virtual_service()
                .map(|(ns, n)| format!("{ns}/{n}"))
                .as_deref(),
        );
        key(&mut w, "route_index", true);
        number(&mut w, self.route_index());
        key(&mut w, "route_name", true);
        string(&mut w, self.route_name());
        key(&mut w, "match_index", true);
        number(&mut w, self.match_index);
        self.write_destination(&mut w);
        self.write_fault(&mut w);
        let (request, response) = self.header_ops();
        key(&mut w, "request_headers", true);
        w.push_str(request);
        key(&mut w, "response_headers", true);
        w.push_str(response);
        self.write_actions(&mut w);
        key(&mut w, "traffic_policy", true);
        w.push_str(self.traffic_policy().unwrap_or("null"));
        w.push_str(match self.route {
            RouteRef::Pool(_) => self.pool_route().map_or("", |r| &r.extra),
            RouteRef::Default => &self.table.default_extra,
            RouteRef::None => "",
        });
        w.push('}');
        w
    }

    fn gateway_name(&self) -> Option<&str> {
        match self.view {
            Some(v) => Some(&self.table.gateways[self.table.views[v as usize].gateway as usize]),
            None => self.owned.as_ref()?.gateway.as_deref(),
        }
    }

    fn write_destination(&self, w: &mut String) {
        key(w, "destination", true);
        match self.target() {
            Some(t) => {
                w.push_str("{\"host\":");
                string(w, Some(&t.host));
                w.push_str(",\"subset\":");
                string(w, t.subset.as_deref());
                w.push_str(",\"port\":");
                number(w, self.port());
                w.push('}');
            }
            None => w.push_str("null"),
        }
        key(w, "cluster", true);
        string(w, self.cluster().as_deref());
    }

    fn write_fault(&self, w: &mut String) {
        key(w, "fault", true);
        let abort = self.abort();
        if self.fired.delay_ms.is_none() && abort.is_none() {
            w.push_str("null");
            return;
        }
        w.push_str("{\"delay_ms\":");
        number(w, self.fired.delay_ms);
        w.push_str(",\"abort\":");
        match abort {
            Some(Abort::Http(s)) => {
                let _ = write!(w, "{{\"http_status\":{s}}}");
            }
            Some(Abort::Grpc(g)) => {
                w.push_str("{\"grpc_status\":");
                string(w, Some(g));
                w.push('}');
            }
            None => w.push_str("null"),
        }
        w.push('}');
    }

    /// The abort that fired, if any.
    fn abort(&self) -> Option<&Abort> {
        if !self.fired.abort {
            return None;
        }
        self.pool_route()?.fault.as_ref()?.abort()
    }

    /// Request and response header ops: the destination's when forwarding, the route's when
    /// answering locally.
    fn header_ops(&self) -> (&str, &str) {
        match self.outcome {
            Outcome::Route => match self.destination() {
                Some(d) => (&d.request_headers.json, &d.response_headers.json),
                None => (EMPTY_JSON, EMPTY_JSON),
            },
            Outcome::Redirect | Outcome::DirectResponse | Outcome::Abort => (
                EMPTY_JSON,
                self.pool_route()
                    .map_or(EMPTY_JSON, |r| &r.response_headers.json),
            ),
            Outcome::NoRoute | Outcome::NoCluster => (EMPTY_JSON, EMPTY_JSON),
        }
    }

    fn write_actions(&self, w: &mut String) {
        key(w, "rewrite", true);
        let path = self.rewrite_path();
        let authority = self.rewrite_authority();
        if path.is_none() && authority.is_none() {
            w.push_str("null");
        } else {
            w.push_str("{\"path\":");
            string(w, path);
            w.push_str(",\"authority\":");
            string(w, authority);
            w.push('}');
        }
        key(w, "redirect", true);
        match self.redirect_location() {
            Some(location) => {
                w.push_str("{\"location\":");
                string(w, Some(location));
                w.push_str(",\"status\":");
                number(w, self.status);
                w.push('}');
            }
            None => w.push_str("null"),
        }
        key(w, "direct_response", true);
        match self.pool_route().map(|r| &r.action) {
            Some(Action::DirectResponse { status, body })
                if self.outcome == Outcome::DirectResponse =>
            {
                let _ = write!(w, "{{\"status\":{status},\"body\":");
                string(w, body.as_deref());
                w.push('}');
            }
            _ => w.push_str("null"),
        }
    }
}

fn key(w: &mut String, k: &str, comma: bool) {
    if comma {
        w.push(',');
    }
    w.push('"');
    w.push_str(k);
    w.push_str("\":");
}

fn string(w: &mut String, s: Option<&str>) {
    match s {
        Some(s) => w.push_str(&serde_json::Value::from(s).to_string()),
        None => w.push_str("null"),
    }
}

fn number<N: std::fmt::Display>(w: &mut String, n: Option<N>) {
    match n {
        Some(n) => {
            let _ = write!(w, "{n}");
        }
        None => w.push_str("null"),
    }
}
