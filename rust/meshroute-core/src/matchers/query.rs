//! `MatchQueryParam`: `queryParams` conditions.

use super::string::MatchString;
use crate::request::Prepared;

/// A compiled query-parameter condition.
///
/// Istio: "Query parameter `key` must exist and its value match. `exact: ""` matches `?key`
/// (no value). `{}` ⇒ presence. `regex` is full match." Envoy compares the raw (not
/// percent-decoded) value of the first occurrence of the key.
#[derive(Debug)]
pub(crate) struct MatchQueryParam {
    pub(crate) name: Box<str>,
    pub(crate) value: MatchString,
}

// === impl MatchQueryParam ===

impl MatchQueryParam {
    #[inline]
    pub(crate) fn matches(&self, req: &Prepared<'_>) -> bool {
        req.query_param(&self.name)
            .is_some_and(|v| self.value.matches(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use crate::spec::StringMatchSpec;

    fn q(name: &str, spec: StringMatchSpec) -> MatchQueryParam {
        MatchQueryParam {
            name: name.into(),
            value: MatchString::compile(&spec).unwrap(),
        }
    }

    fn run(m: &MatchQueryParam, path: &str) -> bool {
        let req = Request {
            path,
            ..Request::default()
        };
        m.matches(&Prepared::new(&req))
    }

    #[test]
    fn exact_empty_matches_bare_key_and_empty_value() {
        let m = q("debug", StringMatchSpec::Exact(String::new()));
        assert!(run(&m, "/p?debug"));
        assert!(run(&m, "/p?a=1&debug="));
        assert!(!run(&m, "/p?debug=1"));
        assert!(!run(&m, "/p"));
    }

    #[test]
    fn raw_value_not_decoded() {
        let m = q("q", StringMatchSpec::Exact("a b".into()));
        assert!(!run(&m, "/p?q=a%20b"));
        assert!(run(&m, "/p?q=a b"));
    }

    #[test]
    fn regex_full_match_and_presence() {
        let m = q("id", StringMatchSpec::Regex(r"\d+$".into()));
        assert!(run(&m, "/p?id=123"));
        assert!(!run(&m, "/p?id=x123"));
        let p = q("id", StringMatchSpec::Present(true));
        assert!(run(&p, "/p?id"));
        assert!(!run(&p, "/p?idx=1"));
    }

    #[test]
    fn first_occurrence_wins() {
        let m = q("v", StringMatchSpec::Exact("2".into()));
        assert!(!run(&m, "/p?v=1&v=2"));
    }
}
