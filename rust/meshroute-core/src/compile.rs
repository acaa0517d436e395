//! `Spec` → `RouteTable`: compile matchers, check every reference, build host and route indexes.

use std::sync::Arc;

use ahash::AHashMap;

use crate::error::{CompileError, ErrorKind, Result};
use crate::host::{HostIndex, HostSet};
use crate::route::{check_ref, extra_fragment, Limits, Route};
use crate::spec::{Spec, VHostRef, VHostSpec, ViewSpec};
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
    let policies = spec
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| compact_json(p, &format!("policies[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let limits = Limits {
        virtual_services: spec.virtual_services.len(),
        gateways: spec.gateways.len(),
        targets: spec.targets.len(),
    };
    let scopes = compile_scopes(spec, &limits, policies.len())?;
    let routes = spec
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route::compile(r, &format!("routes[{i}]"), &limits))
        .collect::<Result<Vec<_>>>()?;
    let mut pool = Pool {
        specs: &spec.vhost_pool,
        built: AHashMap::new(),
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
    Ok(RouteTable {
        virtual_services: spec
            .virtual_services
            .iter()
            .map(|v| (v.namespace.as_str().into(), v.name.as_str().into()))
            .collect(),
        gateways: spec.gateways.iter().map(|g| g.as_str().into()).collect(),
        targets: spec
            .targets
            .iter()
            .map(|t| Target {
                host: t.host.as_str().into(),
                subset: t.subset.as_deref().map(Into::into),
                port: t.port,
            })
            .collect(),
        policies,
        scopes,
        routes,
        selector: compile_selector(spec, views.len())?,
        views,
        default_extra: extra_fragment(&spec.default_extra, "default_extra")?,
        exchange_plan,
    })
}

/// Validates an opaque JSON policy and re-renders it compactly for embedding.
fn compact_json(text: &str, at: &str) -> Result<Box<str>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| CompileError::new(ErrorKind::Value, at, format!("invalid JSON: {e}")))?;
    Ok(value.to_string().into())
}

fn compile_scopes(spec: &Spec, limits: &Limits, policies: usize) -> Result<Vec<Scope>> {
    let mut scopes = Vec::with_capacity(spec.scopes.len());
    for (i, s) in spec.scopes.iter().enumerate() {
        let mut clusters = AHashMap::with_capacity(s.clusters.len());
        for (j, &(target, port, policy)) in s.clusters.iter().enumerate() {
            let at = format!("scopes[{i}].clusters[{j}]");
            check_ref(target, limits.targets, &format!("{at}[0]"), "target")?;
            check_ref(policy, policies, &format!("{at}[2]"), "policy")?;
            clusters.entry((target, port)).or_insert(policy);
        }
        scopes.push(Scope { clusters });
    }
    Ok(scopes)
}

/// `vhost_pool` entries, each compiled once per gateway and shared by the views using it.
struct Pool<'a> {
    specs: &'a [VHostSpec],
    built: AHashMap<(u32, u32), Arc<VHost>>,
}

fn compile_vhost(
    v: &VHostSpec,
    at: &str,
    routes: &[Route],
    limits: &Limits,
    gateway: u32,
) -> Result<VHost> {
    for (j, &r) in v.routes.iter().enumerate() {
        check_ref(r, routes.len(), &format!("{at}.routes[{j}]"), "route")?;
    }
    if let Some(t) = v.default_target {
        check_ref(t, limits.targets, &format!("{at}.default_target"), "target")?;
    }
    let domains = v.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
    Ok(VHost::build(
        domains,
        &v.routes,
        routes,
        gateway,
        v.default_target,
        v.default_port,
    ))
}

fn compile_view(
    spec: &ViewSpec,
    at: &str,
    routes: &[Route],
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
        hosts: HostIndex::build(vhosts.iter().map(|v| v.domains.as_slice())),
        vhosts,
    })
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
