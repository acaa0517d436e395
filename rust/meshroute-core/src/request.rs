//! The borrowed request view, and its once-per-request preparation (authority and path split).
//!
//! Nothing here allocates, except joining a header that occurs several times.

use std::borrow::Cow;

/// How the client speaks on its connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP (the default): the request is routed by the vhost's HTTP routes, except on a port
    /// the service declares TCP (opaque: always the `tcp` routes).
    #[default]
    Http,
    /// An opaque TCP connection: on a port Istio sniffs (declared without a protocol) it takes
    /// the `tcp` routes as a declared TCP port does; on an HTTP port it is no request at all.
    Tcp,
}

/// One HTTP request as seen by the router. Everything is borrowed from the caller.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `:authority` / `Host` as sent, possibly with `:port`.
    pub authority: &'a str,
    /// `:path` as sent, query string included.
    pub path: &'a str,
    /// `:method`, case-sensitive (`GET` ≠ `get`).
    pub method: &'a str,
    /// `:scheme`: `http` or `https`.
    pub scheme: &'a str,
    /// Header names in any case; a name may repeat (values are then joined with `,`).
    pub headers: &'a [(&'a str, &'a str)],
    /// Listener port the request arrived on, when the caller knows it.
    pub port: Option<u16>,
    /// `"mesh"` for sidecar traffic, or the gateway as `ns/name`.
    pub gateway: &'a str,
    /// The client workload's labels (sidecar traffic).
    pub source_labels: &'a [(&'a str, &'a str)],
    /// The client workload's namespace; `None` means `"default"`.
    pub source_namespace: Option<&'a str>,
    /// HTTP, or an opaque TCP connection (`tcp.rs`).
    pub protocol: Protocol,
}

impl Default for Request<'_> {
    fn default() -> Self {
        Self {
            authority: "",
            path: "/",
            method: "GET",
            scheme: "http",
            headers: &[],
            port: None,
            gateway: "mesh",
            source_labels: &[],
            source_namespace: None,
            protocol: Protocol::Http,
        }
    }
}

/// Splits `host[:port]`, `[v6]:port` or a bare IPv6 literal. A port that is not a valid u16
/// stays part of the host, so such an authority simply matches no domain.
pub(crate) fn split_authority(authority: &str) -> (&str, Option<u16>) {
    if authority.starts_with('[') {
        if let Some(end) = authority.find(']') {
            let (host, rest) = authority.split_at(end + 1);
            return match rest.strip_prefix(':') {
                // `u16::from_str` accepts a leading `+`; a Host header does not.
                Some(port) if !port.starts_with('+') => match port.parse::<u16>() {
                    Ok(n) => (host, Some(n)),
                    Err(_) => (host, None),
                },
                _ => (host, None),
            };
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        // Several colons without brackets: an IPv6 literal, no port.
        Some((host, _)) if host.contains(':') => (authority, None),
        Some((host, port)) => match port.parse::<u16>() {
            // `u16::from_str` accepts a leading `+`; a Host header does not.
            Ok(n) if !port.starts_with('+') => (host, Some(n)),
            _ => (authority, None),
        },
        None => (authority, None),
    }
}

/// A request with its authority and path split once, shared by every matcher.
pub(crate) struct Prepared<'r> {
    pub(crate) req: &'r Request<'r>,
    /// Host part of the authority, port stripped, case as sent.
    pub(crate) host: &'r str,
    pub(crate) authority_port: Option<u16>,
    /// The path before `?`.
    pub(crate) path_only: &'r str,
    /// The text after the first `?`, if any.
    pub(crate) query: Option<&'r str>,
}

// === impl Prepared ===

impl<'r> Prepared<'r> {
    pub(crate) fn new(req: &'r Request<'r>) -> Self {
        let (host, authority_port) = split_authority(req.authority);
        let (path_only, query) = match req.path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (req.path, None),
        };
        Self {
            req,
            host,
            authority_port,
            path_only,
            query,
        }
    }

    /// The value of header `name` (lower-case), joined with `,` when repeated; pseudo-headers
    /// come from the request fields. Envoy: "repeated headers are matched against the values
    /// joined with ','".
    pub(crate) fn header(&self, name: &str) -> Option<Cow<'r, str>> {
        if let Some(pseudo) = name.strip_prefix(':') {
            return self.pseudo_header(pseudo).map(Cow::Borrowed);
        }
        let mut found: Option<Cow<'r, str>> = None;
        for &(k, v) in self.req.headers {
            if !k.eq_ignore_ascii_case(name) {
                continue;
            }
            found = Some(match found {
                None => Cow::Borrowed(v),
                Some(prev) => {
                    let mut joined = prev.into_owned();
                    joined.push(',');
                    joined.push_str(v);
                    Cow::Owned(joined)
                }
            });
        }
        found
    }

    fn pseudo_header(&self, name: &str) -> Option<&'r str> {
        match name {
            "authority" => Some(self.req.authority),
            "path" => Some(self.req.path),
            "method" => Some(self.req.method),
            "scheme" => Some(self.req.scheme),
            _ => None,
        }
    }

    /// The raw value of the first query parameter `key` (`""` for `?key`), not percent-decoded.
    pub(crate) fn query_param(&self, key: &str) -> Option<&'r str> {
        self.query?
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((k, v)) if k == key => Some(v),
                None if pair == key => Some(""),
                _ => None,
            })
    }

    /// The path's query part including `?`, or `""`.
    pub(crate) fn query_suffix(&self) -> &'r str {
        &self.req.path[self.path_only.len()..]
    }

    pub(crate) fn is_https(&self) -> bool {
        self.req.scheme.eq_ignore_ascii_case("https")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_forms() {
        assert_eq!(split_authority("reviews"), ("reviews", None));
        assert_eq!(split_authority("reviews:9080"), ("reviews", Some(9080)));
        assert_eq!(split_authority("[::1]:80"), ("[::1]", Some(80)));
        assert_eq!(split_authority("[::1]"), ("[::1]", None));
        assert_eq!(split_authority("::1"), ("::1", None));
        assert_eq!(split_authority("a:99999"), ("a:99999", None));
        assert_eq!(split_authority("a:+80"), ("a:+80", None));
        assert_eq!(split_authority("[::1]:+80"), ("[::1]", None));
        assert_eq!(split_authority("a:"), ("a:", None));
        assert_eq!(split_authority(""), ("", None));
    }

    #[test]
    fn headers_case_insensitive_and_joined() {
        let headers = [("End-User", "jason"), ("x-a", "1"), ("X-A", "2")];
        let req = Request {
            headers: &headers,
            path: "/p?x=1",
            ..Request::default()
        };
        let p = Prepared::new(&req);
        assert_eq!(p.header("end-user").as_deref(), Some("jason"));
        assert_eq!(p.header("x-a").as_deref(), Some("1,2"));
        assert_eq!(p.header("missing"), None);
        assert_eq!(p.header(":path").as_deref(), Some("/p?x=1"));
        assert_eq!(p.path_only, "/p");
        assert_eq!(p.query_suffix(), "?x=1");
    }

    #[test]
    fn query_params_raw_first_wins() {
        let req = Request {
            path: "/p?a=1&b&c=&a=2&d=x%20y",
            ..Request::default()
        };
        let p = Prepared::new(&req);
        assert_eq!(p.query_param("a"), Some("1"));
        assert_eq!(p.query_param("b"), Some(""));
        assert_eq!(p.query_param("c"), Some(""));
        assert_eq!(p.query_param("d"), Some("x%20y"));
        assert_eq!(p.query_param("e"), None);
    }
}
