//! `Spec` → `RouteTable`: compile matchers, check every reference, build host and route indexes.

use std::sync::Arc;

use ahash::{AHashMap, AHashSet};

use crate::error::{CompileError, ErrorKind, Result};
use crate::host::{HostSet, ViewHosts};
use crate::route::{check_ref, extra_fragment, Limits, Route, Routes};
use crate::shared::SharedVec;
use crate::spec::{ScopeSpec, Spec, VHostRef, VHostSpec, ViewSpec};
use crate::table::{RouteTable, Scope, Target};
use crate::vhost::VHost;
use crate::view::{NamespaceViews, View, Views};

/// The only IR version this crate reads.
const VERSION: u32 = 1;

pub(crate) fn compile(spec: &Spec) -> Result<RouteTable> {
    if spec.version != VERSION {
        let msg = format!(
            "unsupported IR version {} (expected {VERSION})",
            spec.version
        );
        return Err(CompileError::new(ErrorKind::Version, "version", msg));
    }
    if spec.gateways.first().map(String::as_str) != Some("mesh") {
        return Err(CompileError::new(
            ErrorKind::Value,
            "gateways[0]",
            "must be \"mesh\"",
        ));
    }
    let policies = SharedVec::new(
        spec.policies
            .iter()
            .enumerate()
            .map(|(i, p)| compact_json(p, &format!("policies[{i}]")))
            .collect::<Result<Vec<_>>>()?,
    );
    let limits = Limits {
        virtual_services: spec.virtual_services.len(),
        gateways: spec.gateways.len(),
        targets: spec.targets.len(),
    };
    let scopes = compile_scopes(spec, &limits, policies.len())?;
    let routes = SharedVec::new(
        spec.routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route::compile(r, &format!("routes[{i}]"), &limits))
            .collect::<Result<Vec<_>>>()?,
    );
    let mut pool = Pool {
        specs: &spec.vhost_pool,
        built: AHashMap::new(),
        bases: Vec::new(),
    };
    let views = spec
        .views
        .iter()
        .enumerate()
        .map(|(i, v)| {
            compile_view(
                v,
                &format!("views[{i}]"),
                &routes,
                &limits,
                scopes.len(),
                &mut pool,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let exchange_plan = crate::exchange::Plan::build(spec, &routes, &policies);
    let tcp = crate::tcp::TcpTable::compile(&spec.tcp, views.len(), routes.len())?;
    Ok(RouteTable {
        virtual_services: spec
            .virtual_services
            .iter()
            .map(|v| (v.namespace.as_str().into(), v.name.as_str().into()))
            .collect::<Vec<_>>()
            .into(),
        gateways: spec
            .gateways
            .iter()
            .map(|g| g.as_str().into())
            .collect::<Vec<_>>()
            .into(),
        targets: SharedVec::new(spec.targets.iter().map(Target::compile).collect()),
        policies,
        scopes,
        routes,
        selector: compile_selector(spec, views.len())?,
        views,
        default_extra: extra_fragment(&spec.default_extra, "default_extra")?.into(),
        exchange_plan,
        tcp: Arc::new(tcp),
    })
}

/// Validates an opaque JSON policy and re-renders it compactly for embedding.
pub(crate) fn compact_json(text: &str, at: &str) -> Result<Box<str>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CompileError::new(ErrorKind::Value, at, format!("invalid JSON: {e}")))?;
    Ok(value.to_string().into())
}

fn compile_scopes(spec: &Spec, limits: &Limits, policies: usize) -> Result<Vec<Arc<Scope>>> {
    spec.scopes
        .iter()
        .enumerate()
        .map(|(i, s)| compile_scope(s, &format!("scopes[{i}]"), limits.targets, policies))
        .map(|s| s.map(Arc::new))
        .collect()
}

/// Compiles one scope (`at` is its IR path) against tables of `targets` and `policies` entries.
pub(crate) fn compile_scope(
    spec: &ScopeSpec,
    at: &str,
    targets: usize,
    policies: usize,
) -> Result<Scope> {
    let mut clusters = AHashMap::with_capacity(spec.clusters.len());
    for (j, &(target, port, policy)) in spec.clusters.iter().enumerate() {
        let at = format!("{at}.clusters[{j}]");
        check_ref(target, targets, &format!("{at}[0]"), "target")?;
        check_ref(policy, policies, &format!("{at}[2]"), "policy")?;
        clusters.entry((target, port)).or_insert(policy);
    }
    Ok(Scope { clusters })
}

/// `vhost_pool` entries, each compiled once per gateway and shared by the views using it.
struct Pool<'a> {
    specs: &'a [VHostSpec],
    built: AHashMap<(u32, u32), Arc<VHost>>,
    /// Host indexes other views may share (`shared_hosts`).
    bases: Vec<SharedBase>,
}

/// A view's host index that later views whose vhost lists mostly coincide share.
struct SharedBase {
    vhosts: Vec<Arc<VHost>>,
    index: Arc<crate::host::HostIndex>,
    /// The domains (lower-cased) that more than one entry of `vhosts` lists.
    contested: AHashSet<String>,
}

/// Views shorter than this get an index of their own.
const MIN_SHARED: usize = 64;
/// At most this many bases are kept to compare views with.
const MAX_BASES: usize = 8;

/// The host index of a view: an earlier view's, when their vhost lists have the same length
/// and differ in at most a quarter of the positions, with a small index over the positions
/// that differ; else one of its own, which later views may share. Namespace views of a large
/// mesh see the same services and differ in their own namespace's (short names): one index
/// serves them all.
fn shared_hosts(vhosts: &[Arc<VHost>], bases: &mut Vec<SharedBase>) -> ViewHosts {
    if vhosts.len() < MIN_SHARED {
        return host_index(vhosts);
    }
    'bases: for base in bases.iter() {
        if base.vhosts.len() != vhosts.len() {
            continue;
        }
        let limit = vhosts.len() / 4;
        let mut own: Vec<(u32, &[String])> = Vec::new();
        for (p, (a, b)) in (0u32..).zip(base.vhosts.iter().zip(vhosts)) {
            if Arc::ptr_eq(a, b) || a.domains == b.domains {
                continue;
            }
            // Skipping the base's entries for `p` must not hide another claimant.
            let hides = a
                .domains
                .iter()
                .any(|d| base.contested.contains(&d.to_ascii_lowercase()));
            if own.len() == limit || hides {
                continue 'bases;
            }
            own.push((p, b.domains.as_slice()));
        }
        return ViewHosts::shared(Arc::clone(&base.index), vhosts.len(), &own);
    }
    let hosts = host_index(vhosts);
    if bases.len() < MAX_BASES {
        let mut seen: AHashSet<String> = AHashSet::new();
        let mut contested = AHashSet::new();
        for d in vhosts.iter().flat_map(|v| &v.domains) {
            let d = d.to_ascii_lowercase();
            if !seen.insert(d.clone()) {
                contested.insert(d);
            }
        }
        bases.push(SharedBase {
            vhosts: vhosts.to_vec(),
            index: Arc::clone(&hosts.base),
            contested,
        });
    }
    hosts
}

fn compile_vhost(
    v: &VHostSpec,
    at: &str,
    routes: &Routes,
    limits: &Limits,
    gateway: u32,
) -> Result<VHost> {
    check_vhost(v, at, routes.len(), limits.targets)?;
    Ok(build_vhost(v, routes, gateway))
}

/// The references of a vhost (`at` is its IR path): its routes and default target.
pub(crate) fn check_vhost(v: &VHostSpec, at: &str, routes: usize, targets: usize) -> Result<()> {
    for (j, &r) in v.routes.iter().enumerate() {
        check_ref(r, routes, &format!("{at}.routes[{j}]"), "route")?;
    }
    if let Some(t) = v.default_target {
        check_ref(t, targets, &format!("{at}.default_target"), "target")?;
    }
    Ok(())
}

/// A vhost whose references `check_vhost` accepted, laid out for a view on `gateway`.
pub(crate) fn build_vhost(v: &VHostSpec, routes: &Routes, gateway: u32) -> VHost {
    let domains = v.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    let mut vhost = VHost::build(
        domains,
        &v.routes,
        routes,
        gateway,
        v.default_target,
        v.default_port,
    );
    vhost.ports = v.ports.as_deref().map(|p| {
        let mut p = p.to_vec();
        p.sort_unstable();
        p.dedup();
        p.into_boxed_slice()
    });
    vhost.require_tls = v.require_tls;
    vhost
}

fn compile_view(
    spec: &ViewSpec,
    at: &str,
    routes: &Routes,
    limits: &Limits,
    scopes: usize,
    pool: &mut Pool<'_>,
) -> Result<View> {
    check_ref(
        spec.gateway,
        limits.gateways,
        &format!("{at}.gateway"),
        "gateway",
    )?;
    check_ref(spec.scope, scopes, &format!("{at}.scope"), "scope")?;
    let mut vhosts = Vec::with_capacity(spec.vhosts.len());
    for (i, v) in spec.vhosts.iter().enumerate() {
        let vhost = match v {
            VHostRef::Inline(v) => Arc::new(compile_vhost(
                v,
                &format!("{at}.vhosts[{i}]"),
                routes,
                limits,
                spec.gateway,
            )?),
            VHostRef::Pooled(id) => {
                check_ref(*id, pool.specs.len(), &format!("{at}.vhosts[{i}]"), "vhost")?;
                match pool.built.get(&(*id, spec.gateway)) {
                    Some(built) => Arc::clone(built),
                    None => {
                        let pat = format!("vhost_pool[{id}]");
                        let built = Arc::new(compile_vhost(
                            &pool.specs[*id as usize],
                            &pat,
                            routes,
                            limits,
                            spec.gateway,
                        )?);
                        pool.built.insert((*id, spec.gateway), Arc::clone(&built));
                        built
                    }
                }
            }
        };
        vhosts.push(vhost);
    }
    let mut ports = spec.ports.clone();
    ports.dedup();
    Ok(View {
        gateway: spec.gateway,
        namespace: spec.namespace.as_str().into(),
        scope: spec.scope,
        ports,
        https_redirect: HostSet::build(&spec.https_redirect_hosts),
        unknown_host: spec.unknown_host,
        hosts: shared_hosts(&vhosts, &mut pool.bases),
        vhosts: vhosts.into(),
    })
}

/// The host index of a view's vhosts (in view order: the first claim of a domain wins).
pub(crate) fn host_index(vhosts: &[Arc<VHost>]) -> ViewHosts {
    ViewHosts::build(vhosts.iter().map(|v| v.domains.as_slice()))
}

fn compile_selector(spec: &Spec, views: usize) -> Result<Views> {
    let mut namespaces = AHashMap::with_capacity(spec.mesh.namespaces.len());
    for (ns, nv) in &spec.mesh.namespaces {
        let at = format!("mesh.namespaces.{ns}");
        check_ref(
            nv.default_view,
            views,
            &format!("{at}.default_view"),
            "view",
        )?;
        let mut sidecars = Vec::with_capacity(nv.sidecars.len());
        for (i, s) in nv.sidecars.iter().enumerate() {
            check_ref(s.view, views, &format!("{at}.sidecars[{i}].view"), "view")?;
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect();
            sidecars.push((labels, s.view));
        }
        namespaces.insert(
            ns.as_str().into(),
            NamespaceViews {
                sidecars,
                default_view: nv.default_view,
            },
        );
    }
    if let Some(v) = spec.mesh.other_view {
        check_ref(v, views, "mesh.other_view", "view")?;
    }
    let mut gateways = AHashMap::with_capacity(spec.gateway_views.len());
    for (gw, by_port) in &spec.gateway_views {
        let mut ports = Vec::with_capacity(by_port.len());
        for (port, &view) in by_port {
            let at = format!("gateway_views.{gw}.{port}");
            let p: u16 = port.parse().map_err(|_| {
                CompileError::new(
                    ErrorKind::Value,
                    at.as_str(),
                    "port key must be a number 0-65535",
                )
            })?;
            check_ref(view, views, &at, "view")?;
            ports.push((p, view));
        }
        ports.sort_unstable();
        gateways.insert(gw.as_str().into(), ports);
    }
    Ok(Views {
        namespaces,
        other_view: spec.mesh.other_view,
        gateways,
    })
}
