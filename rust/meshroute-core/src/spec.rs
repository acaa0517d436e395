//! Serde types for the versioned IR that Python sends (docs/ir.md): the one boundary format.
//!
//! These types carry no semantics; `compile` turns them into the immutable `RouteTable`.
//! Unknown fields are rejected so that Python and Rust cannot drift silently.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

/// The whole IR document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    pub(crate) version: u32,
    #[serde(default)]
    pub(crate) virtual_services: Vec<VsSpec>,
    pub(crate) gateways: Vec<String>,
    #[serde(default)]
    pub(crate) targets: Vec<TargetSpec>,
    #[serde(default)]
    pub(crate) policies: Vec<String>,
    #[serde(default)]
    pub(crate) scopes: Vec<ScopeSpec>,
    #[serde(default)]
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) views: Vec<ViewSpec>,
    pub(crate) mesh: MeshSpec,
    #[serde(default)]
    pub(crate) gateway_views: BTreeMap<String, BTreeMap<String, u32>>,
    #[serde(default)]
    pub(crate) default_extra: Map<String, Value>,
    /// Gateway servers in config order: `[port, [host patterns], "ns/name"]` (docs/ir.md).
    #[serde(default)]
    pub(crate) gateway_servers: Vec<(u16, Vec<String>, String)>,
    /// Vhosts shared by several views, referenced by index from `views[].vhosts` (docs/ir.md).
    #[serde(default)]
    pub(crate) vhost_pool: Vec<VHostSpec>,
    /// Mesh TCP service ports and their `tcp` routes (docs/ir.md, "TCP services").
    #[serde(default)]
    pub(crate) tcp: Vec<crate::tcp::TcpSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VsSpec {
    pub(crate) namespace: String,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetSpec {
    pub(crate) host: String,
    #[serde(default)]
    pub(crate) subset: Option<String>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScopeSpec {
    /// `[TargetId, port, PolicyId]` triples.
    pub(crate) clusters: Vec<(u32, u16, u32)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MeshSpec {
    #[serde(default)]
    pub(crate) namespaces: BTreeMap<String, NamespaceSpec>,
    #[serde(default)]
    pub(crate) other_view: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceSpec {
    pub(crate) default_view: u32,
    #[serde(default)]
    pub(crate) sidecars: Vec<SidecarSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SidecarSpec {
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) view: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ViewSpec {
    pub(crate) gateway: u32,
    pub(crate) namespace: String,
    pub(crate) scope: u32,
    #[serde(default)]
    pub(crate) ports: Vec<u16>,
    /// Host patterns of the gateway servers with `tls.httpsRedirect` (`ns/` part stripped):
    /// each stands for a vhost of its own that requires TLS and has no routes (docs/ir.md).
    #[serde(default)]
    pub(crate) https_redirect_hosts: Vec<String>,
    #[serde(default)]
    pub(crate) unknown_host: UnknownHost,
    pub(crate) vhosts: Vec<VHostRef>,
}

/// A view's vhost: written out, or the index of a `vhost_pool` entry shared with other views.
#[derive(Debug)]
pub(crate) enum VHostRef {
    Inline(VHostSpec),
    Pooled(u32),
}

impl<'de> Deserialize<'de> for VHostRef {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> serde::de::Visitor<'de> for RefVisitor {
            type Value = VHostRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a vhost object or a vhost_pool index")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<VHostRef, E> {
                u32::try_from(v)
                    .map(VHostRef::Pooled)
                    .map_err(|_| E::custom("vhost_pool index out of range"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<VHostRef, A::Error> {
                // Through the map access itself, so error paths still reach into the object.
                VHostSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(VHostRef::Inline)
            }
        }
        de.deserialize_any(RefVisitor)
    }
}

/// What a view does with a host no vhost claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnknownHost {
    /// 404 (gateways; sidecars without a catch-all).
    #[default]
    NotFound,
    /// `ALLOW_ANY`: forward to `PassthroughCluster`.
    Passthrough,
    /// `REGISTRY_ONLY`: `BlackHoleCluster`, 502.
    Blackhole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VHostSpec {
    pub(crate) domains: Vec<String>,
    pub(crate) routes: Vec<u32>,
    #[serde(default)]
    pub(crate) default_target: Option<u32>,
    #[serde(default)]
    pub(crate) default_port: Option<u16>,
    /// The listener ports this vhost serves (docs/ir.md "VHost"); absent = every port.
    #[serde(default)]
    pub(crate) ports: Option<Vec<u16>>,
    /// Istio `require_tls: ALL`: a gateway server this vhost was built for has
    /// `tls.httpsRedirect`, so a request that is not https gets a 301 to https.
    #[serde(default)]
    pub(crate) require_tls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteSpec {
    #[serde(default)]
    pub(crate) vs: Option<u32>,
    pub(crate) index: u32,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) matches: Vec<MatchSpec>,
    pub(crate) action: ActionSpec,
    #[serde(default)]
    pub(crate) rewrite: Option<RewriteSpec>,
    #[serde(default)]
    pub(crate) fault: Option<FaultSpec>,
    #[serde(default)]
    pub(crate) response_headers: HeaderOpsSpec,
    #[serde(default)]
    pub(crate) extra: Map<String, Value>,
}

/// One HTTPMatchRequest block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MatchSpec {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) uri: Option<StringMatchSpec>,
    #[serde(default)]
    pub(crate) ignore_uri_case: bool,
    #[serde(default)]
    pub(crate) scheme: Option<StringMatchSpec>,
    #[serde(default)]
    pub(crate) method: Option<StringMatchSpec>,
    #[serde(default)]
    pub(crate) authority: Option<StringMatchSpec>,
    #[serde(default)]
    pub(crate) headers: Vec<NamedMatchSpec>,
    #[serde(default)]
    pub(crate) without_headers: Vec<NamedMatchSpec>,
    #[serde(default)]
    pub(crate) query_params: Vec<NamedMatchSpec>,
    pub(crate) gateways: Vec<u32>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
    #[serde(default)]
    pub(crate) source_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) source_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedMatchSpec {
    pub(crate) name: String,
    #[serde(rename = "match")]
    pub(crate) matcher: StringMatchSpec,
}

/// `{"exact": v} | {"prefix": v} | {"regex": v} | {"present": true}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum StringMatchSpec {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present(bool),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ActionSpec {
    Route(RouteActionSpec),
    Redirect(RedirectSpec),
    DirectResponse(DirectResponseSpec),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteActionSpec {
    pub(crate) destinations: Vec<DestinationSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DestinationSpec {
    pub(crate) target: u32,
    #[serde(default)]
    pub(crate) weight: u32,
    #[serde(default)]
    pub(crate) request_headers: HeaderOpsSpec,
    #[serde(default)]
    pub(crate) response_headers: HeaderOpsSpec,
    #[serde(default)]
    pub(crate) authority: Option<String>,
}

/// Header operations in application order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeaderOpsSpec {
    #[serde(default)]
    pub(crate) set: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) add: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedirectSpec {
    #[serde(default)]
    pub(crate) uri: Option<String>,
    #[serde(default)]
    pub(crate) authority: Option<String>,
    #[serde(default)]
    pub(crate) port: Option<u16>,
    #[serde(default)]
    pub(crate) derive_port: Option<DerivePort>,
    #[serde(default)]
    pub(crate) scheme: Option<String>,
    #[serde(default = "default_redirect_code")]
    pub(crate) code: u16,
}

fn default_redirect_code() -> u16 {
    301
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum DerivePort {
    FromProtocolDefault,
    FromRequestPort,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DirectResponseSpec {
    pub(crate) status: u16,
    #[serde(default)]
    pub(crate) body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RewriteSpec {
    #[serde(default)]
    pub(crate) uri: Option<String>,
    #[serde(default)]
    pub(crate) authority: Option<String>,
    #[serde(default)]
    pub(crate) regex: Option<RegexRewriteSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegexRewriteSpec {
    #[serde(rename = "match")]
    pub(crate) pattern: String,
    pub(crate) rewrite: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FaultSpec {
    #[serde(default)]
    pub(crate) delay: Option<DelaySpec>,
    #[serde(default)]
    pub(crate) abort: Option<AbortSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DelaySpec {
    pub(crate) fixed_delay_ms: u64,
    pub(crate) per_million: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AbortSpec {
    #[serde(default)]
    pub(crate) http_status: Option<u16>,
    #[serde(default)]
    pub(crate) grpc_status: Option<String>,
    pub(crate) per_million: u32,
}

/// Parses IR JSON (the whole `Spec`, or a part such as a `StringMatch` list); schema errors carry
/// the serde path of the offending element.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(ir: &str) -> crate::error::Result<T> {
    let de = &mut serde_json::Deserializer::from_str(ir);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        crate::error::CompileError::new(
            crate::error::ErrorKind::Schema,
            path,
            e.into_inner().to_string(),
        )
    })
}
