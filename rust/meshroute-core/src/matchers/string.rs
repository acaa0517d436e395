//! `MatchString`: Istio's `StringMatch` (exact / prefix / regex / presence), compiled once.

use regex::Regex;

use super::re2;
use crate::spec::StringMatchSpec;

/// A compiled `StringMatch`.
///
/// Istio: "`exact`: byte-exact, case-sensitive; `prefix`: starts-with, case-sensitive; `regex`:
/// RE2 syntax" with full-match semantics in Envoy. `present` (`{}` in the VirtualService) only
/// asks that the value exist, so it matches every value handed to it.
#[derive(Debug)]
pub(crate) enum MatchString {
    Exact(Box<str>),
    Prefix(Box<str>),
    Regex(Regex),
    Present,
}

// === impl MatchString ===

impl MatchString {
    /// Compiles a spec; the error is a message for the caller to attach a path to.
    pub(crate) fn compile(spec: &StringMatchSpec) -> Result<Self, (&'static str, String)> {
        Ok(match spec {
            StringMatchSpec::Exact(v) => Self::Exact(v.as_str().into()),
            StringMatchSpec::Prefix(v) => Self::Prefix(v.as_str().into()),
            StringMatchSpec::Regex(p) => {
                Self::Regex(re2::compile(p, true).map_err(|e| ("regex", e))?)
            }
            StringMatchSpec::Present(true) => Self::Present,
            StringMatchSpec::Present(false) => {
                return Err((
                    "present",
                    "`present` must be true (use without_headers for absence)".into(),
                ))
            }
        })
    }

    #[inline]
    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(v) => value == &**v,
            Self::Prefix(p) => value.starts_with(&**p),
            Self::Regex(re) => re.is_match(value),
            Self::Present => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(spec: StringMatchSpec) -> MatchString {
        MatchString::compile(&spec).unwrap()
    }

    #[test]
    fn exact_is_case_sensitive() {
        let e = m(StringMatchSpec::Exact("GET".into()));
        assert!(e.matches("GET"));
        assert!(!e.matches("get"));
        assert!(!e.matches("GETX"));
    }

    #[test]
    fn empty_exact_matches_only_empty() {
        let e = m(StringMatchSpec::Exact(String::new()));
        assert!(e.matches(""));
        assert!(!e.matches("x"));
    }

    #[test]
    fn prefix() {
        let p = m(StringMatchSpec::Prefix("ja".into()));
        assert!(p.matches("jason"));
        assert!(p.matches("ja"));
        assert!(!p.matches("Jason"));
        assert!(m(StringMatchSpec::Prefix(String::new())).matches("anything"));
    }

    #[test]
    fn regex_full_match() {
        let r = m(StringMatchSpec::Regex("v[0-9]+".into()));
        assert!(r.matches("v12"));
        assert!(!r.matches("xv12"));
        assert!(!r.matches("v12x"));
    }

    #[test]
    fn present_and_errors() {
        assert!(m(StringMatchSpec::Present(true)).matches(""));
        assert_eq!(
            MatchString::compile(&StringMatchSpec::Present(false))
                .unwrap_err()
                .0,
            "present"
        );
        assert_eq!(
            MatchString::compile(&StringMatchSpec::Regex("(".into()))
                .unwrap_err()
                .0,
            "regex"
        );
    }
}
