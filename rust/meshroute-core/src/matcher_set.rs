//! `StringMatchSet`: Istio `StringMatch`es usable outside a route table.
//!
//! Some Istio fields match a value against a list of `StringMatch`es without being a route match
//! (CORS `allowOrigins`). They must follow the same rules as route matching (exact, prefix, RE2
//! full-match regex), so they reuse `MatchString` rather than a second implementation.

use crate::error::CompileError;
use crate::matchers::compile_string;
use crate::matchers::string::MatchString;
use crate::spec::StringMatchSpec;

/// Compiled `StringMatch`es; a value matches the set when it matches any of them.
#[derive(Debug)]
pub struct StringMatchSet {
    matchers: Vec<MatchString>,
}

impl StringMatchSet {
    /// Compiles a JSON list in the IR's `StringMatch` syntax
    /// (`[{"exact": v} | {"prefix": v} | {"regex": v} | {"present": true}, ...]`).
    ///
    /// # Errors
    /// A list that does not follow that syntax, or a regex the engine rejects; the path names
    /// the offending element (`[2].regex`).
    pub fn from_json(json: &str) -> Result<Self, CompileError> {
        let specs: Vec<StringMatchSpec> = crate::spec::parse(json)?;
        let matchers = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| compile_string(spec, &format!("[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Self { matchers })
    }

    /// Whether `value` matches any of the set's matchers.
    #[must_use]
    pub fn matches(&self, value: &str) -> bool {
        self.matchers.iter().any(|m| m.matches(value))
    }

    /// Number of matchers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.matchers.len()
    }

    /// True when the set has no matcher (it then matches nothing).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.matchers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn any_of_exact_prefix_regex() {
        let set = StringMatchSet::from_json(
            r#"[{"exact": "https://a.example"}, {"prefix": "http://dev."}, {"regex": "https://[a-z]+\\.b\\.example"}]"#,
        )
        .unwrap();
        assert!(set.matches("https://a.example"));
        assert!(set.matches("http://dev.local:8080"));
        assert!(set.matches("https://x.b.example"));
        // RE2 full match: a longer value is not a match
        assert!(!set.matches("https://x.b.example.evil"));
        assert!(!set.matches("https://a.example/"));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn empty_set_matches_nothing() {
        let set = StringMatchSet::from_json("[]").unwrap();
        assert!(set.is_empty());
        assert!(!set.matches(""));
    }

    #[test]
    fn errors_name_the_element() {
        let err = StringMatchSet::from_json(r#"[{"exact": "a"}, {"regex": "("}]"#).unwrap_err();
        assert_eq!((err.kind(), err.path()), (ErrorKind::Regex, "[1].regex"));
        let err = StringMatchSet::from_json(r#"[{"suffix": "a"}]"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Schema);
    }
}
