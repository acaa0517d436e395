//! `redirect`: building the `Location` of a 3xx answer.

use std::fmt::Write;

use crate::error::{CompileError, ErrorKind, Result};
use crate::request::Prepared;
use crate::spec::{DerivePort, RedirectSpec};

/// Redirect codes Istio can translate; other 3xx produce a broken route, so they are rejected.
const CODES: &[u16] = &[301, 302, 303, 307, 308];

/// A compiled HTTPRedirect.
///
/// Istio: "`uri`: replace the whole path (regardless of exact/prefix match). Query string of the
/// original request is kept unless `uri` contains its own `?`." "Port 80 with `http` and 443
/// with `https` are never written explicitly." Default code 301.
#[derive(Debug)]
pub(crate) struct Redirect {
    uri: Option<Box<str>>,
    authority: Option<Box<str>>,
    port: Option<u16>,
    derive_port: Option<DerivePort>,
    scheme: Option<Box<str>>,
    pub(crate) code: u16,
}

// === impl Redirect ===

impl Redirect {
    pub(crate) fn compile(spec: &RedirectSpec, at: &str) -> Result<Self> {
        if !CODES.contains(&spec.code) {
            let msg = format!(
                "redirect code {} is not one of 301, 302, 303, 307, 308",
                spec.code
            );
            return Err(CompileError::new(
                ErrorKind::Value,
                format!("{at}.code"),
                msg,
            ));
        }
        if spec.port.is_some() && spec.derive_port.is_some() {
            let msg = "port and derive_port are exclusive";
            return Err(CompileError::new(ErrorKind::Value, at, msg));
        }
        Ok(Self {
            uri: spec.uri.as_deref().map(Into::into),
            authority: spec.authority.as_deref().map(Into::into),
            port: spec.port,
            derive_port: spec.derive_port,
            scheme: spec.scheme.as_deref().map(Into::into),
            code: spec.code,
        })
    }

    /// The redirect used for a gateway server with `tls.httpsRedirect`.
    pub(crate) fn https() -> Self {
        Self {
            uri: None,
            authority: None,
            port: None,
            derive_port: None,
            scheme: Some("https".into()),
            code: 301,
        }
    }

    /// `Location`: scheme + `://` + authority + port part + path (+ original query).
    pub(crate) fn location(&self, req: &Prepared<'_>, listener_port: u16) -> String {
        let scheme = self.scheme.as_deref().unwrap_or(req.req.scheme);
        let port = match (self.port, self.derive_port) {
            (Some(p), _) => Some(p),
            (None, Some(DerivePort::FromRequestPort)) => Some(listener_port),
            (None, Some(DerivePort::FromProtocolDefault)) => None,
            // Envoy's host_redirect replaces host *and* port, so a new `authority` drops the
            // request's port; otherwise the original port is kept, except that a scheme change
            // drops the old scheme's default port (http://h:80 → https://h).
            (None, None) if self.authority.is_some() => None,
            (None, None) => req.authority_port.filter(|&p| {
                scheme.eq_ignore_ascii_case(req.req.scheme)
                    || default_port(req.req.scheme) != Some(p)
            }),
        };
        let host = self.authority.as_deref().unwrap_or(req.host);
        let mut out = String::with_capacity(scheme.len() + host.len() + req.req.path.len() + 16);
        out.push_str(scheme);
        out.push_str("://");
        out.push_str(host);
        if let Some(p) = port.filter(|&p| default_port(scheme) != Some(p)) {
            let _ = write!(out, ":{p}");
        }
        match &self.uri {
            Some(uri) => {
                out.push_str(uri);
                if !uri.contains('?') {
                    out.push_str(req.query_suffix());
                }
            }
            None => out.push_str(req.req.path),
        }
        out
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("http") {
        Some(80)
    } else if scheme.eq_ignore_ascii_case("https") {
        Some(443)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;

    fn redirect(json: serde_json::Value) -> Redirect {
        Redirect::compile(&serde_json::from_value(json).unwrap(), "r").unwrap()
    }

    fn loc(r: &Redirect, scheme: &str, authority: &str, path: &str, listener: u16) -> String {
        let req = Request {
            scheme,
            authority,
            path,
            ..Request::default()
        };
        r.location(&Prepared::new(&req), listener)
    }

    #[test]
    fn uri_replaces_path_and_keeps_query() {
        let r = redirect(serde_json::json!({"uri": "/new"}));
        assert_eq!(
            loc(&r, "http", "a.com", "/old/x?q=1", 80),
            "http://a.com/new?q=1"
        );
        let own = redirect(serde_json::json!({"uri": "/new?z=2"}));
        assert_eq!(
            loc(&own, "http", "a.com", "/old?q=1", 80),
            "http://a.com/new?z=2"
        );
    }

    #[test]
    fn original_port_kept_when_nothing_port_related() {
        let r = redirect(serde_json::json!({"uri": "/n"}));
        assert_eq!(
            loc(&r, "http", "a.com:8080", "/", 8080),
            "http://a.com:8080/n"
        );
        // 80 with http is never written.
        assert_eq!(loc(&r, "http", "a.com:80", "/", 80), "http://a.com/n");
    }

    #[test]
    fn scheme_change_drops_old_default_port_only() {
        let r = redirect(serde_json::json!({"scheme": "https"}));
        assert_eq!(loc(&r, "http", "a.com:80", "/p?x", 80), "https://a.com/p?x");
        assert_eq!(
            loc(&r, "http", "a.com:8080", "/p", 8080),
            "https://a.com:8080/p"
        );
        assert_eq!(
            loc(&Redirect::https(), "http", "a.com", "/p", 80),
            "https://a.com/p"
        );
    }

    #[test]
    fn explicit_and_derived_ports() {
        let p = redirect(serde_json::json!({"port": 8443, "scheme": "https"}));
        assert_eq!(
            loc(&p, "http", "a.com:80", "/p", 80),
            "https://a.com:8443/p"
        );
        let p443 = redirect(serde_json::json!({"port": 443, "scheme": "https"}));
        assert_eq!(loc(&p443, "http", "a.com", "/p", 80), "https://a.com/p");
        let d = redirect(serde_json::json!({"derive_port": "FROM_REQUEST_PORT"}));
        assert_eq!(loc(&d, "http", "a.com", "/p", 9080), "http://a.com:9080/p");
        let d80 = redirect(serde_json::json!({"derive_port": "FROM_REQUEST_PORT"}));
        assert_eq!(loc(&d80, "http", "a.com", "/p", 80), "http://a.com/p");
        let pd = redirect(serde_json::json!({"derive_port": "FROM_PROTOCOL_DEFAULT"}));
        assert_eq!(loc(&pd, "http", "a.com:8080", "/p", 8080), "http://a.com/p");
    }

    #[test]
    fn authority_replaced_drops_request_port_as_envoy_does() {
        let r = redirect(serde_json::json!({"authority": "b.com"}));
        assert_eq!(loc(&r, "http", "a.com:8080", "/p", 8080), "http://b.com/p");
        assert_eq!(loc(&r, "http", "[::1]:8080", "/p", 8080), "http://b.com/p");
        assert_eq!(loc(&r, "http", "a.com", "/p", 8080), "http://b.com/p");
        let keep = redirect(serde_json::json!({"uri": "/x"}));
        assert_eq!(
            loc(&keep, "http", "[::1]:8080", "/p", 8080),
            "http://[::1]:8080/x"
        );
    }

    #[test]
    fn bad_codes_rejected() {
        let spec = serde_json::from_value(serde_json::json!({"uri": "/", "code": 305})).unwrap();
        assert_eq!(
            Redirect::compile(&spec, "routes[0].action.redirect")
                .unwrap_err()
                .path(),
            "routes[0].action.redirect.code"
        );
    }
}
