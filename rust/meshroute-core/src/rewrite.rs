//! `rewrite`: the path and authority the upstream sees.

use regex::Regex;

use crate::error::{CompileError, ErrorKind, Result};
use crate::matchers::{implicit_prefix_span, re2, MatchBlock};
use crate::request::Prepared;
use crate::spec::RewriteSpec;

/// A compiled HTTPRewrite.
///
/// Istio: "`rewrite.uri` replaces the matched prefix of the path. With `uri.exact` the whole path
/// is replaced; with no `uri` match the implicit prefix `/` is replaced (`/foo` + rewrite `/v1`
/// ⇒ `/v1foo`); query string kept." `uriRegexRewrite` "replaces all non-overlapping matches in
/// the path (query untouched); `\1`, `\2` reference capture groups."
#[derive(Debug)]
pub(crate) struct Rewrite {
    uri: Option<Box<str>>,
    pub(crate) authority: Option<Box<str>>,
    regex: Option<(Regex, String)>,
}

// === impl Rewrite ===

impl Rewrite {
    pub(crate) fn compile(spec: &RewriteSpec, at: &str) -> Result<Self> {
        if spec.uri.is_some() && spec.regex.is_some() {
            let msg = "uri and regex rewrites are exclusive";
            return Err(CompileError::new(ErrorKind::Value, at, msg));
        }
        let regex = match &spec.regex {
            Some(r) => {
                let re = re2::compile(&r.pattern, false).map_err(|e| {
                    CompileError::new(ErrorKind::Regex, format!("{at}.regex.match"), e)
                })?;
                let template =
                    re2::rewrite_template(&r.rewrite, re.captures_len()).map_err(|e| {
                        CompileError::new(ErrorKind::Regex, format!("{at}.regex.rewrite"), e)
                    })?;
                Some((re, template))
            }
            None => None,
        };
        Ok(Self {
            uri: spec.uri.as_deref().map(Into::into),
            authority: spec.authority.as_deref().map(Into::into),
            regex,
        })
    }

    /// The rewritten path (query kept), or `None` when the path is not rewritten.
    /// `block` is the matched block (`None` for a route without match blocks).
    pub(crate) fn path(&self, block: Option<&MatchBlock>, req: &Prepared<'_>) -> Option<String> {
        let path = req.req.path;
        if let Some(uri) = &self.uri {
            let span = block.map_or_else(|| implicit_prefix_span(path), |b| b.rewrite_span(req));
            return Some(format!("{uri}{}", &path[span..]));
        }
        let (re, template) = self.regex.as_ref()?;
        let replaced = re.replace_all(req.path_only, template.as_str());
        Some(format!("{replaced}{}", req.query_suffix()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Request;
    use crate::spec::{MatchSpec, RegexRewriteSpec, StringMatchSpec};

    fn block(uri: Option<StringMatchSpec>) -> MatchBlock {
        let spec: MatchSpec = serde_json::from_value(serde_json::json!({"gateways": [0]})).unwrap();
        MatchBlock::compile(&MatchSpec { uri, ..spec }, "m").unwrap()
    }

    fn uri(u: &str) -> Rewrite {
        let spec = RewriteSpec {
            uri: Some(u.into()),
            authority: None,
            regex: None,
        };
        Rewrite::compile(&spec, "r").unwrap()
    }

    fn run(rw: &Rewrite, b: Option<&MatchBlock>, path: &str) -> Option<String> {
        let req = Request {
            path,
            ..Request::default()
        };
        rw.path(b, &Prepared::new(&req))
    }

    #[test]
    fn prefix_replaces_matched_prefix_and_keeps_query() {
        let b = block(Some(StringMatchSpec::Prefix("/api/v1".into())));
        assert_eq!(
            run(&uri("/v2"), Some(&b), "/api/v1/users?x=1").as_deref(),
            Some("/v2/users?x=1")
        );
        assert_eq!(
            run(&uri("/"), Some(&b), "/api/v1/x").as_deref(),
            Some("//x")
        );
    }

    #[test]
    fn exact_replaces_whole_path() {
        let b = block(Some(StringMatchSpec::Exact("/login".into())));
        assert_eq!(
            run(&uri("/auth/login"), Some(&b), "/login?n=1").as_deref(),
            Some("/auth/login?n=1")
        );
    }

    #[test]
    fn no_uri_match_replaces_implicit_slash() {
        let b = block(None);
        assert_eq!(
            run(&uri("/v1"), Some(&b), "/foo").as_deref(),
            Some("/v1foo")
        );
        assert_eq!(run(&uri("/v1"), None, "/foo").as_deref(), Some("/v1foo"));
    }

    #[test]
    fn regex_uri_match_replaces_whole_path() {
        let b = block(Some(StringMatchSpec::Regex("/u/[0-9]+".into())));
        assert_eq!(
            run(&uri("/user"), Some(&b), "/u/12?a").as_deref(),
            Some("/user?a")
        );
    }

    #[test]
    fn regex_rewrite_all_matches_query_untouched() {
        let spec = RewriteSpec {
            uri: None,
            authority: None,
            regex: Some(RegexRewriteSpec {
                pattern: "/a/([0-9]+)".into(),
                rewrite: r"/b/\1".into(),
            }),
        };
        let rw = Rewrite::compile(&spec, "r").unwrap();
        assert_eq!(
            run(&rw, None, "/a/1/a/22?q=/a/3").as_deref(),
            Some("/b/1/b/22?q=/a/3")
        );
        assert_eq!(run(&rw, None, "/x").as_deref(), Some("/x"));
    }

    #[test]
    fn authority_only_keeps_path() {
        let spec = RewriteSpec {
            uri: None,
            authority: Some("h".into()),
            regex: None,
        };
        assert_eq!(
            run(&Rewrite::compile(&spec, "r").unwrap(), None, "/x"),
            None
        );
    }

    #[test]
    fn bad_regex_rewrite_has_path() {
        let spec = RewriteSpec {
            uri: None,
            authority: None,
            regex: Some(RegexRewriteSpec {
                pattern: "/a".into(),
                rewrite: r"\1".into(),
            }),
        };
        assert_eq!(
            Rewrite::compile(&spec, "routes[1].rewrite")
                .unwrap_err()
                .path(),
            "routes[1].rewrite.regex.rewrite"
        );
    }
}
