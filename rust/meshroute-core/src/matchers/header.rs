//! `MatchHeader`: `headers` and `withoutHeaders` conditions.

use super::string::MatchString;
use crate::request::Prepared;

/// A compiled header condition.
///
/// Istio: "A missing header never matches a value matcher. `{}` ⇒ presence check. Repeated
/// headers are matched against the values joined with ','." For `withoutHeaders`: "the block
/// fails if the header matches. For value matchers a missing header is treated as the empty
/// string before negating; `{}` ⇒ header must be absent."
#[derive(Debug)]
pub(crate) struct MatchHeader {
    /// Lower-case; compared case-insensitively.
    pub(crate) name: Box<str>,
    pub(crate) value: MatchString,
    /// `withoutHeaders`.
    pub(crate) negated: bool,
}

// === impl MatchHeader ===

impl MatchHeader {
    pub(crate) fn new(name: &str, value: MatchString, negated: bool) -> Self {
        Self {
            name: name.to_ascii_lowercase().into(),
            value,
            negated,
        }
    }

    #[inline]
    pub(crate) fn matches(&self, req: &Prepared<'_>) -> bool {
        let found = req.header(&self.name);
        match (self.negated, &self.value, found) {
            (false, _, None) => false,
            (false, m, Some(v)) => m.matches(&v),
            (true, MatchString::Present, found) => found.is_none(),
            (true, m, found) => !m.matches(found.as_deref().unwrap_or("")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use crate::spec::StringMatchSpec;

    fn h(name: &str, spec: StringMatchSpec, negated: bool) -> MatchHeader {
        MatchHeader::new(name, MatchString::compile(&spec).unwrap(), negated)
    }

    fn run(m: &MatchHeader, headers: &[(&str, &str)]) -> bool {
        let req = Request {
            headers,
            ..Request::default()
        };
        m.matches(&Prepared::new(&req))
    }

    #[test]
    fn exact_case_insensitive_name() {
        let m = h("end-user", StringMatchSpec::Exact("jason".into()), false);
        assert!(run(&m, &[("End-User", "jason")]));
        assert!(!run(&m, &[("end-user", "Jason")]));
        assert!(!run(&m, &[]));
    }

    #[test]
    fn missing_never_matches_value_matchers() {
        let m = h("x", StringMatchSpec::Exact(String::new()), false);
        assert!(!run(&m, &[]));
        assert!(run(&m, &[("x", "")]));
        let r = h("x", StringMatchSpec::Regex(".*".into()), false);
        assert!(!run(&r, &[]));
    }

    #[test]
    fn present() {
        let m = h("x", StringMatchSpec::Present(true), false);
        assert!(run(&m, &[("X", "")]));
        assert!(!run(&m, &[("y", "1")]));
    }

    #[test]
    fn repeated_headers_joined() {
        let m = h("x", StringMatchSpec::Exact("a,b".into()), false);
        assert!(run(&m, &[("x", "a"), ("y", "z"), ("X", "b")]));
        assert!(!run(&m, &[("x", "a")]));
    }

    #[test]
    fn without_headers_value_treats_missing_as_empty() {
        let m = h("x", StringMatchSpec::Exact("bar".into()), true);
        assert!(run(&m, &[]));
        assert!(run(&m, &[("x", "baz")]));
        assert!(!run(&m, &[("x", "bar")]));
        let empty = h("x", StringMatchSpec::Exact(String::new()), true);
        assert!(!run(&empty, &[]));
    }

    #[test]
    fn without_headers_present_means_absent() {
        let m = h("x", StringMatchSpec::Present(true), true);
        assert!(run(&m, &[]));
        assert!(!run(&m, &[("x", "")]));
    }
}
