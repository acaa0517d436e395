//! `MatchPath`: the `uri` condition of an HTTPMatchRequest.

use regex::Regex;

use super::re2;
use crate::spec::StringMatchSpec;

/// A compiled `uri` matcher.
///
/// Istio: "`exact` and `regex` compare the path with the query string removed; `prefix`
/// compares the beginning of the raw `:path`. `regex` must match the entire path."
/// `ignoreUriCase` "makes `uri` exact/prefix case-insensitive; no effect on `uri.regex`".
#[derive(Debug)]
pub(crate) struct MatchPath {
    kind: PathKind,
    ignore_case: bool,
}

#[derive(Debug)]
enum PathKind {
    Exact(Box<str>),
    Prefix(Box<str>),
    Regex {
        re: Regex,
        literal_prefix: Box<str>,
    },
    /// `present` on a uri: undefined in Istio; treated as "no condition".
    Any,
}

/// How a uri matcher narrows the candidate set, for the route index.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathKey<'a> {
    /// Only this path (query excluded) can match.
    Exact { path: &'a str, ignore_case: bool },
    /// Only raw paths starting with this can match.
    Prefix { prefix: &'a str, ignore_case: bool },
    /// Any path may match.
    None,
}

// === impl MatchPath ===

impl MatchPath {
    pub(crate) fn compile(spec: &StringMatchSpec, ignore_case: bool) -> Result<Self, String> {
        let kind = match spec {
            StringMatchSpec::Exact(v) => PathKind::Exact(v.as_str().into()),
            StringMatchSpec::Prefix(v) => PathKind::Prefix(v.as_str().into()),
            StringMatchSpec::Regex(p) => PathKind::Regex {
                re: re2::compile(p, true)?,
                literal_prefix: re2::literal_prefix(p).into(),
            },
            StringMatchSpec::Present(_) => PathKind::Any,
        };
        Ok(Self { kind, ignore_case })
    }

    /// `path` is the raw `:path`; `path_only` the part before `?`.
    #[inline]
    pub(crate) fn matches(&self, path: &str, path_only: &str) -> bool {
        match &self.kind {
            PathKind::Exact(v) if self.ignore_case => path_only.eq_ignore_ascii_case(v),
            PathKind::Exact(v) => path_only == &**v,
            PathKind::Prefix(p) if self.ignore_case => starts_with_ignore_case(path, p),
            PathKind::Prefix(p) => path.starts_with(&**p),
            PathKind::Regex { re, .. } => re.is_match(path_only),
            PathKind::Any => true,
        }
    }

    /// How many leading bytes of the raw path `rewrite.uri` replaces: the matched prefix, or the
    /// whole path (query kept) for `exact` and `regex`.
    pub(crate) fn rewrite_span(&self, path: &str, path_only: &str) -> usize {
        match &self.kind {
            PathKind::Prefix(p) => p.len(),
            PathKind::Exact(_) | PathKind::Regex { .. } => path_only.len(),
            PathKind::Any => implicit_prefix_span(path),
        }
    }

    pub(crate) fn key(&self) -> PathKey<'_> {
        let ignore_case = self.ignore_case;
        match &self.kind {
            PathKind::Exact(path) => PathKey::Exact { path, ignore_case },
            PathKind::Prefix(prefix) if !prefix.is_empty() => PathKey::Prefix {
                prefix,
                ignore_case,
            },
            // `ignoreUriCase` does not apply to regexes, so their literal prefix is exact.
            PathKind::Regex { literal_prefix, .. } if !literal_prefix.is_empty() => {
                PathKey::Prefix {
                    prefix: literal_prefix,
                    ignore_case: false,
                }
            }
            _ => PathKey::None,
        }
    }
}

/// A block without a uri condition has the implicit prefix `/`, which `rewrite.uri` replaces
/// (`/foo` + rewrite `/v1` ⇒ `/v1foo`, the classic Istio gotcha).
pub(crate) fn implicit_prefix_span(path: &str) -> usize {
    usize::from(path.starts_with('/'))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(spec: StringMatchSpec, ic: bool) -> MatchPath {
        MatchPath::compile(&spec, ic).unwrap()
    }

    fn hit(m: &MatchPath, path: &str) -> bool {
        let only = path.split_once('?').map_or(path, |(p, _)| p);
        m.matches(path, only)
    }

    #[test]
    fn exact_ignores_query() {
        let e = m(StringMatchSpec::Exact("/login".into()), false);
        assert!(hit(&e, "/login"));
        assert!(hit(&e, "/login?next=/"));
        assert!(!hit(&e, "/Login"));
        assert!(!hit(&e, "/login/"));
    }

    #[test]
    fn prefix_is_on_raw_path_and_not_segment_aware() {
        let p = m(StringMatchSpec::Prefix("/api".into()), false);
        assert!(hit(&p, "/api/x"));
        assert!(hit(&p, "/apix"));
        assert!(!hit(&p, "/ap"));
        let q = m(StringMatchSpec::Prefix("/a?x".into()), false);
        assert!(hit(&q, "/a?x=1"));
    }

    #[test]
    fn ignore_case_exact_and_prefix_only() {
        let e = m(StringMatchSpec::Exact("/Login".into()), true);
        assert!(hit(&e, "/LOGIN"));
        let p = m(StringMatchSpec::Prefix("/API".into()), true);
        assert!(hit(&p, "/api/v1"));
        let r = m(StringMatchSpec::Regex("/api".into()), true);
        assert!(!hit(&r, "/API"));
    }

    #[test]
    fn regex_ignores_query() {
        let r = m(StringMatchSpec::Regex("/u/[0-9]+".into()), false);
        assert!(hit(&r, "/u/12?x=y"));
        assert!(!hit(&r, "/u/12/"));
    }

    #[test]
    fn rewrite_spans() {
        let p = m(StringMatchSpec::Prefix("/api".into()), false);
        assert_eq!(p.rewrite_span("/api/x?q", "/api/x"), 4);
        let e = m(StringMatchSpec::Exact("/a".into()), false);
        assert_eq!(e.rewrite_span("/a?q", "/a"), 2);
        assert_eq!(implicit_prefix_span("/foo"), 1);
        assert_eq!(implicit_prefix_span("*"), 0);
    }

    #[test]
    fn keys() {
        let r = m(StringMatchSpec::Regex("/re/1/[0-9]+".into()), true);
        assert_eq!(
            r.key(),
            PathKey::Prefix {
                prefix: "/re/1/",
                ignore_case: false
            }
        );
        let p = m(StringMatchSpec::Prefix(String::new()), false);
        assert_eq!(p.key(), PathKey::None);
    }
}
