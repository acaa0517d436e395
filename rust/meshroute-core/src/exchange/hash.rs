//! The consistent-hash key (`x-meshroute-hash`): where the destination's DestinationRule takes it
//! from, read once per traffic policy, and its value for one request.

use serde_json::Value;

use super::input::{lower, strip, Input};
use super::value::{get_truthy, py_str};

/// `loadBalancer.consistentHash` of a traffic policy, when it hashes on the request.
/// (`useSourceIp` is Envoy's route hash policy; `ringHash`/`maglev` settings are the cluster's.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashSource {
    /// `httpHeaderName`, lower-cased.
    Header(Box<str>),
    /// `httpCookie.name`.
    Cookie(Box<str>),
    /// `httpQueryParameterName`.
    Query(Box<str>),
}

impl HashSource {
    /// From a traffic policy's JSON text; `None` when it does not hash on the request.
    pub(crate) fn of_policy(text: &str) -> Option<HashSource> {
        let policy: Value = serde_json::from_str(text).ok()?;
        let ch =
            get_truthy(&policy, "loadBalancer").and_then(|lb| get_truthy(lb, "consistentHash"))?;
        if let Some(name) = get_truthy(ch, "httpHeaderName") {
            return Some(Self::Header(lower(&py_str(name)).into()));
        }
        if let Some(name) = get_truthy(ch, "httpCookie").and_then(|c| get_truthy(c, "name")) {
            return Some(Self::Cookie(py_str(name).into()));
        }
        get_truthy(ch, "httpQueryParameterName").map(|name| Self::Query(py_str(name).into()))
    }

    /// The key for this request; `None` when the request lacks it (the header is then removed
    /// and Envoy falls back to the next hash policy).
    pub(crate) fn key(&self, input: &Input<'_>) -> Option<String> {
        match self {
            Self::Header(name) => input.header_value(name).map(|v| v.into_owned()),
            Self::Cookie(name) => {
                let cookies = input.joined("cookie", "; ")?;
                cookies
                    .split(';')
                    .find_map(|part| match strip(part).split_once('=') {
                        Some((k, v)) if k == &**name => Some(v.to_owned()),
                        _ => None,
                    })
            }
            Self::Query(name) => {
                let query = input.path.split_once('?').map_or("", |(_, q)| q);
                query.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == &**name).then(|| v.to_owned())
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(source: &HashSource, headers: &[(&str, &str)], path: &str) -> Option<String> {
        let mut raw: Vec<(&[u8], &[u8])> = vec![(b":path", path.as_bytes())];
        raw.extend(headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        source.key(&Input::parse(&raw))
    }

    #[test]
    fn sources() {
        let of = |p: &str| HashSource::of_policy(p);
        assert_eq!(
            of(r#"{"loadBalancer":{"consistentHash":{"httpHeaderName":"X-User"}}}"#),
            Some(HashSource::Header("x-user".into()))
        );
        assert_eq!(
            of(r#"{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"s","ttl":"0s"}}}}"#),
            Some(HashSource::Cookie("s".into()))
        );
        assert_eq!(
            of(r#"{"loadBalancer":{"consistentHash":{"httpQueryParameterName":"u"}}}"#),
            Some(HashSource::Query("u".into()))
        );
        assert_eq!(
            of(r#"{"loadBalancer":{"consistentHash":{"useSourceIp":true}}}"#),
            None
        );
        assert_eq!(of(r#"{"loadBalancer":{"simple":"ROUND_ROBIN"}}"#), None);
        assert_eq!(of("{}"), None);
        assert_eq!(of("not json"), None);
    }

    #[test]
    fn header_cookie_query_keys() {
        let h = HashSource::Header("x-user".into());
        assert_eq!(
            key(&h, &[("X-User", "a"), ("x-user", "b")], "/"),
            Some("a,b".into())
        );
        assert_eq!(key(&h, &[], "/"), None);
        let c = HashSource::Cookie("s".into());
        assert_eq!(
            key(&c, &[("cookie", "a=1; s=xyz")], "/"),
            Some("xyz".into())
        );
        assert_eq!(
            key(&c, &[("cookie", "a=1"), ("Cookie", "s=2=3")], "/"),
            Some("2=3".into())
        );
        assert_eq!(key(&c, &[("cookie", "s"), ("cookie", "S=1")], "/"), None);
        let q = HashSource::Query("u".into());
        assert_eq!(key(&q, &[], "/p?x=1&u=7&u=8"), Some("7".into()));
        assert_eq!(key(&q, &[], "/p?u"), Some(String::new()));
        assert_eq!(key(&q, &[], "/p"), None);
    }
}
