//! VirtualService `corsPolicy`: what Envoy's CORS filter does with Istio's translation of it
//! (docs/envoy.md "CORS", measured on Envoy 1.40). The policy is compiled once per route, origin
//! matchers included (the route matcher: exact / prefix / RE2 full-match regex); the request's
//! `origin` decides per request between a local preflight reply and response-phase headers.

use serde_json::Value;

use super::input::Input;
use super::value::{get, get_truthy, py_int_str, py_str};
use super::{Header, LocalReply};
use crate::matchers::compile_string;
use crate::matchers::string::MatchString;
use crate::spec::StringMatchSpec;

pub(crate) const ORIGIN: &str = "origin";
const REQUEST_METHOD: &str = "access-control-request-method";
const REQUEST_HEADERS: &str = "access-control-request-headers";
const ALLOW_ORIGIN: &str = "access-control-allow-origin";
const ALLOW_CREDENTIALS: &str = "access-control-allow-credentials";
const ALLOW_METHODS: &str = "access-control-allow-methods";
const ALLOW_HEADERS: &str = "access-control-allow-headers";
const MAX_AGE: &str = "access-control-max-age";
const EXPOSE_HEADERS: &str = "access-control-expose-headers";
/// Envoy's response code details for the CORS filter's preflight reply.
const PREFLIGHT_DETAILS: &str = "cors_response";

/// One route's CORS policy, ready to answer requests.
#[derive(Debug)]
pub(crate) struct CorsPolicy {
    origins: Vec<MatchString>,
    /// A matcher matches the literal `*` (Envoy's `isOriginAllowed`): every origin is allowed.
    allow_all: bool,
    /// `""` = no header; `"*"` = echo the requested method.
    allow_methods: Box<str>,
    /// `""` = no header; `"*"` = echo the requested headers.
    allow_headers: Box<str>,
    max_age: Option<Box<str>>,
    expose_headers: Box<str>,
    credentials: bool,
    /// `unmatchedPreflights` FORWARD (the default) rather than IGNORE.
    forward: bool,
}

impl CorsPolicy {
    /// The route's `extra.cors` (docs/ir.md); `None` for no policy. An `allowOrigins` entry the
    /// core cannot compile (only in an IR that skipped validation, which runs this compiler)
    /// matches nothing; the others still apply.
    pub(crate) fn from_extra(extra: &Value) -> Option<CorsPolicy> {
        let cors = get_truthy(extra, "cors").filter(|c| c.is_object())?;
        let origins: Vec<MatchString> = get_truthy(cors, "allow_origins")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|m| m.is_object())
                    .filter_map(|m| serde_json::from_value::<StringMatchSpec>(m.clone()).ok())
                    .filter_map(|spec| compile_string(&spec, "allow_origins").ok())
                    .collect()
            })
            .unwrap_or_default();
        let allow_all = origins.iter().any(|m| m.matches("*"));
        Some(CorsPolicy {
            origins,
            allow_all,
            allow_methods: joined(cors, "allow_methods"),
            allow_headers: joined(cors, "allow_headers"),
            max_age: get(cors, "max_age_s").and_then(py_int_str).map(Into::into),
            expose_headers: joined(cors, "expose_headers"),
            credentials: get(cors, "allow_credentials") == Some(&Value::Bool(true)),
            forward: get(cors, "unmatched_preflights").and_then(Value::as_str) != Some("IGNORE"),
        })
    }

    /// Whether a (non-empty) origin is allowed.
    pub(crate) fn allows(&self, origin: &str) -> bool {
        self.allow_all || self.origins.iter().any(|m| m.matches(origin))
    }

    /// The local reply to an `OPTIONS` request (`origin` `None`: not allowed), or `None` when
    /// Envoy lets it through: no `access-control-request-method`, or a disallowed origin with
    /// `unmatchedPreflights` FORWARD.
    pub(crate) fn preflight(&self, input: &Input<'_>, origin: Option<&str>) -> Option<LocalReply> {
        let method = input
            .header_value(REQUEST_METHOD)
            .filter(|m| !m.is_empty())?;
        if origin.is_none() && self.forward {
            return None;
        }
        let mut headers: Vec<Header> = Vec::with_capacity(6);
        if let Some(origin) = origin {
            headers.push(header(ALLOW_ORIGIN, origin));
        }
        if self.credentials {
            headers.push(header(ALLOW_CREDENTIALS, "true"));
        }
        if !self.allow_methods.is_empty() {
            let value = if &*self.allow_methods == "*" {
                &*method
            } else {
                &*self.allow_methods
            };
            headers.push(header(ALLOW_METHODS, value));
        }
        if !self.allow_headers.is_empty() {
            if &*self.allow_headers == "*" {
                let requested = input.header_value(REQUEST_HEADERS);
                headers.push(header(ALLOW_HEADERS, requested.as_deref().unwrap_or("")));
            } else {
                headers.push(header(ALLOW_HEADERS, &self.allow_headers));
            }
        }
        if let Some(max_age) = &self.max_age {
            headers.push(header(MAX_AGE, max_age));
        }
        if origin.is_some() && !self.expose_headers.is_empty() {
            headers.push(header(EXPOSE_HEADERS, &self.expose_headers));
        }
        Some(LocalReply {
            outcome: "cors_preflight",
            status: 200,
            headers,
            append: Vec::new(),
            body: Vec::new(),
            details: PREFLIGHT_DETAILS,
        })
    }

    /// Response headers for an allowed origin, set after the route's response operations.
    pub(crate) fn response(&self, origin: &str) -> impl Iterator<Item = Header> + '_ {
        let origin = header(ALLOW_ORIGIN, origin);
        let credentials = self.credentials.then(|| header(ALLOW_CREDENTIALS, "true"));
        let expose =
            (!self.expose_headers.is_empty()).then(|| header(EXPOSE_HEADERS, &self.expose_headers));
        std::iter::once(origin).chain(credentials).chain(expose)
    }
}

fn header(name: &str, value: &str) -> Header {
    (name.to_owned(), value.to_owned())
}

/// `",".join(cors.get(key) or [])`.
fn joined(cors: &Value, key: &str) -> Box<str> {
    get_truthy(cors, key)
        .and_then(Value::as_array)
        .map(|items| items.iter().map(py_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(cors: Value) -> CorsPolicy {
        CorsPolicy::from_extra(&json!({ "cors": cors })).unwrap()
    }

    fn input<'a>(raw: &'a [(&'a [u8], &'a [u8])]) -> Input<'a> {
        Input::parse(raw)
    }

    #[test]
    fn origins_exact_prefix_regex_and_star() {
        let p = policy(
            json!({"allow_origins": [{"prefix": "https://a."}, {"regex": "https://[0-9]+"},
                                                {"regex": "("}, "junk", {"suffix": "x"}]}),
        );
        assert!(p.allows("https://a.example") && p.allows("https://42"));
        assert!(!p.allows("https://42x") && !p.allows("*"));
        assert!(policy(json!({"allow_origins": [{"regex": ".*"}]})).allows("anything"));
        assert!(policy(json!({"allow_origins": [{"exact": "*"}]})).allow_all);
        assert!(CorsPolicy::from_extra(&json!({"cors": null})).is_none());
        assert!(CorsPolicy::from_extra(&json!({"cors": {}})).is_none());
    }

    #[test]
    fn preflight_allowed_echoes_stars() {
        let p = policy(
            json!({"allow_origins": [{"exact": "https://a"}], "allow_methods": ["*"],
                              "allow_headers": ["*"], "max_age_s": 10, "expose_headers": ["x-b", "x-c"],
                              "allow_credentials": true}),
        );
        let raw: [(&[u8], &[u8]); 2] = [
            (b"access-control-request-method", b"PUT"),
            (b"access-control-request-headers", b"x-a"),
        ];
        let reply = p.preflight(&input(&raw), Some("https://a")).unwrap();
        assert_eq!((reply.status, reply.details), (200, "cors_response"));
        let names: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("access-control-allow-origin", "https://a"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-headers", "x-a"),
                ("access-control-max-age", "10"),
                ("access-control-expose-headers", "x-b,x-c"),
            ]
        );
    }

    #[test]
    fn preflight_unmatched_forward_or_ignore() {
        let raw: [(&[u8], &[u8]); 1] = [(b"access-control-request-method", b"GET")];
        let forward =
            policy(json!({"allow_origins": [{"exact": "https://a"}], "allow_methods": ["GET"]}));
        assert!(forward.preflight(&input(&raw), None).is_none());
        let ignore = policy(
            json!({"allow_origins": [{"exact": "https://a"}], "allow_methods": ["GET"],
                                   "expose_headers": ["x"], "unmatched_preflights": "IGNORE"}),
        );
        let reply = ignore.preflight(&input(&raw), None).unwrap();
        assert_eq!(reply.headers, vec![header(ALLOW_METHODS, "GET")]);
        // No request method: not a preflight.
        assert!(ignore.preflight(&input(&[]), Some("https://a")).is_none());
    }

    #[test]
    fn response_headers() {
        let p = policy(
            json!({"allow_origins": [{"exact": "https://a"}], "allow_credentials": true,
                              "expose_headers": ["x-b"]}),
        );
        let got: Vec<Header> = p.response("https://a").collect();
        assert_eq!(
            got,
            vec![
                header(ALLOW_ORIGIN, "https://a"),
                header(ALLOW_CREDENTIALS, "true"),
                header(EXPOSE_HEADERS, "x-b"),
            ]
        );
        let plain = policy(json!({"allow_origins": [{"exact": "https://a"}]}));
        assert_eq!(plain.response("o").count(), 1);
    }
}
