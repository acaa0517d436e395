//! `MatchBlock`: one HTTPMatchRequest — every condition must hold (AND); a route's blocks are
//! tried in order (OR). One matcher kind per file.

mod header;
mod path;
mod query;
pub(crate) mod re2;
pub(crate) mod string;

use std::fmt;

pub(crate) use self::header::MatchHeader;
pub(crate) use self::path::{implicit_prefix_span, MatchPath, PathKey};
pub(crate) use self::query::MatchQueryParam;
pub(crate) use self::string::MatchString;
use crate::error::{CompileError, ErrorKind, Result};
use crate::request::Prepared;
use crate::spec::{MatchSpec, NamedMatchSpec, StringMatchSpec};

/// The client context the config-time filters are evaluated against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientCtx<'a> {
    pub(crate) gateway: u32,
    pub(crate) port: u16,
    pub(crate) labels: &'a [(&'a str, &'a str)],
    pub(crate) namespace: &'a str,
}

/// A compiled HTTPMatchRequest.
///
/// Istio: "All set conditions in one block must hold (AND). The block list is OR." `gateways`,
/// `port`, `sourceLabels` and `sourceNamespace` are config-time filters: a block whose filter
/// fails does not exist for this client.
#[derive(Debug)]
pub(crate) struct MatchBlock {
    /// Istio `match[].name` (Envoy route name `route.name + "." + match.name`).
    pub(crate) name: Option<Box<str>>,
    pub(crate) uri: Option<MatchPath>,
    scheme: Option<MatchString>,
    method: Option<MatchString>,
    authority: Option<MatchString>,
    /// `headers` then `withoutHeaders`.
    pub(crate) headers: Vec<MatchHeader>,
    query_params: Vec<MatchQueryParam>,
    gateways: Vec<u32>,
    port: Option<u16>,
    source_labels: Vec<(Box<str>, Box<str>)>,
    source_namespace: Option<Box<str>>,
}

/// The config-time filter that removed a block for this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    Gateways,
    Port,
    SourceLabels,
    SourceNamespace,
}

/// The first runtime condition of a block that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss<'a> {
    Uri,
    Scheme,
    Method,
    Authority,
    Header(&'a str),
    WithoutHeader(&'a str),
    QueryParam(&'a str),
}

// === impl MatchBlock ===

impl MatchBlock {
    /// Compiles one block; `at` is its IR path, e.g. `routes[3].matches[0]`.
    pub(crate) fn compile(spec: &MatchSpec, at: &str) -> Result<Self> {
        let uri =
            match &spec.uri {
                Some(s) => Some(MatchPath::compile(s, spec.ignore_uri_case).map_err(|e| {
                    CompileError::new(ErrorKind::Regex, format!("{at}.uri.regex"), e)
                })?),
                None => None,
            };
        let string = |s: &Option<StringMatchSpec>, field: &str| -> Result<Option<MatchString>> {
            s.as_ref()
                .map(|s| compile_string(s, &format!("{at}.{field}")))
                .transpose()
        };
        let mut headers = named(&spec.headers, &format!("{at}.headers"), |n, m| {
            MatchHeader::new(n, m, false)
        })?;
        headers.extend(named(
            &spec.without_headers,
            &format!("{at}.without_headers"),
            |n, m| MatchHeader::new(n, m, true),
        )?);
        let query_params = named(&spec.query_params, &format!("{at}.query_params"), |n, m| {
            MatchQueryParam {
                name: n.into(),
                value: m,
            }
        })?;
        if spec.gateways.is_empty() {
            return Err(CompileError::new(
                ErrorKind::Value,
                format!("{at}.gateways"),
                "must not be empty",
            ));
        }
        Ok(Self {
            name: spec.name.as_deref().map(Into::into),
            uri,
            scheme: string(&spec.scheme, "scheme")?,
            method: string(&spec.method, "method")?,
            authority: string(&spec.authority, "authority")?,
            headers,
            query_params,
            gateways: spec.gateways.clone(),
            port: spec.port,
            source_labels: spec
                .source_labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            source_namespace: spec.source_namespace.as_deref().map(Into::into),
        })
    }

    pub(crate) fn gateways(&self) -> &[u32] {
        &self.gateways
    }

    /// True when a filter other than `gateways` depends on the individual request.
    pub(crate) fn has_client_filters(&self) -> bool {
        self.port.is_some() || !self.source_labels.is_empty() || self.source_namespace.is_some()
    }

    /// Config-time filters against the client context.
    pub(crate) fn applies(&self, ctx: &ClientCtx<'_>) -> std::result::Result<(), Filter> {
        if !self.gateways.contains(&ctx.gateway) {
            return Err(Filter::Gateways);
        }
        if self.port.is_some_and(|p| p != ctx.port) {
            return Err(Filter::Port);
        }
        let has_label = |(k, v): &(Box<str>, Box<str>)| {
            ctx.labels.iter().any(|(ck, cv)| *ck == &**k && *cv == &**v)
        };
        if !self.source_labels.iter().all(has_label) {
            return Err(Filter::SourceLabels);
        }
        if self
            .source_namespace
            .as_deref()
            .is_some_and(|ns| ns != ctx.namespace)
        {
            return Err(Filter::SourceNamespace);
        }
        Ok(())
    }

    /// Runtime conditions, cheapest and most selective first.
    #[inline]
    pub(crate) fn check(&self, req: &Prepared<'_>) -> std::result::Result<(), Miss<'_>> {
        if let Some(uri) = &self.uri {
            if !uri.matches(req.req.path, req.path_only) {
                return Err(Miss::Uri);
            }
        }
        if self
            .method
            .as_ref()
            .is_some_and(|m| !m.matches(req.req.method))
        {
            return Err(Miss::Method);
        }
        if self
            .scheme
            .as_ref()
            .is_some_and(|m| !m.matches(req.req.scheme))
        {
            return Err(Miss::Scheme);
        }
        // Istio: authority is matched "as sent, i.e. including any :port".
        if self
            .authority
            .as_ref()
            .is_some_and(|m| !m.matches(req.req.authority))
        {
            return Err(Miss::Authority);
        }
        if let Some(h) = self.headers.iter().find(|h| !h.matches(req)) {
            return Err(if h.negated {
                Miss::WithoutHeader(&h.name)
            } else {
                Miss::Header(&h.name)
            });
        }
        if let Some(q) = self.query_params.iter().find(|q| !q.matches(req)) {
            return Err(Miss::QueryParam(&q.name));
        }
        Ok(())
    }

    /// Leading bytes of the raw path that `rewrite.uri` replaces.
    pub(crate) fn rewrite_span(&self, req: &Prepared<'_>) -> usize {
        match &self.uri {
            Some(uri) => uri.rewrite_span(req.req.path, req.path_only),
            None => implicit_prefix_span(req.req.path),
        }
    }
}

pub(crate) fn compile_string(spec: &StringMatchSpec, at: &str) -> Result<MatchString> {
    MatchString::compile(spec).map_err(|(field, msg)| {
        let kind = if field == "regex" {
            ErrorKind::Regex
        } else {
            ErrorKind::Value
        };
        CompileError::new(kind, format!("{at}.{field}"), msg)
    })
}

fn named<T>(
    specs: &[NamedMatchSpec],
    at: &str,
    make: impl Fn(&str, MatchString) -> T,
) -> Result<Vec<T>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Ok(make(
                &s.name,
                compile_string(&s.matcher, &format!("{at}[{i}].match"))?,
            ))
        })
        .collect()
}

impl Filter {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Gateways => "gateways",
            Self::Port => "port",
            Self::SourceLabels => "source_labels",
            Self::SourceNamespace => "source_namespace",
        }
    }
}

impl fmt::Display for Miss<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uri => f.write_str("uri"),
            Self::Scheme => f.write_str("scheme"),
            Self::Method => f.write_str("method"),
            Self::Authority => f.write_str("authority"),
            Self::Header(n) => write!(f, "header {n}"),
            Self::WithoutHeader(n) => write!(f, "without_header {n}"),
            Self::QueryParam(n) => write!(f, "query_param {n}"),
        }
    }
}
