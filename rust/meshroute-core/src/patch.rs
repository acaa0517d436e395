//! `RouteTable::patched`: a new table from an old one plus an IR patch (docs/ir.md, "Patch").
//!
//! A one-resource edit of a 10 000-service mesh changes a few routes and vhosts, while a full
//! `from_json` re-parses and re-compiles tens of megabytes. A patch appends routes, targets and
//! policies, replaces or appends scopes, and places new vhosts in views; everything else is
//! shared with the old table (`Arc` clones), which stays untouched and keeps answering. The new
//! table is returned only when the whole patch checked out, so a bad patch changes nothing.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use ahash::AHashMap;
use serde::Deserialize;

use crate::compile::{build_vhost, check_vhost, compact_json, compile_scope, host_index};
use crate::error::{CompileError, ErrorKind, Result};
use crate::route::{check_ref, Limits, Route};
use crate::spec::{RouteSpec, ScopeSpec, TargetSpec, VHostSpec};
use crate::table::{RouteTable, Target};
use crate::vhost::VHost;
use crate::view::View;

/// The only patch format version this crate reads (`"patch": 1`).
const VERSION: u32 = 1;

/// The patch document (docs/ir.md, "Patch"). Absent lists are empty.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchSpec {
    patch: u32,
    base: BaseSpec,
    #[serde(default)]
    routes: Vec<RouteSpec>,
    #[serde(default)]
    targets: Vec<TargetSpec>,
    #[serde(default)]
    policies: Vec<String>,
    /// `[ScopeId, Scope]`: replaces an existing scope, or appends at the next id.
    #[serde(default)]
    scopes: Vec<(u32, ScopeSpec)>,
    #[serde(default)]
    vhosts: Vec<VHostSpec>,
    /// `[ViewId, position, k]`: the view's vhost at `position` becomes `vhosts[k]`.
    #[serde(default)]
    placements: Vec<(u32, u32, u32)>,
    /// `[ViewId, ScopeId]`.
    #[serde(default)]
    view_scopes: Vec<(u32, u32)>,
}

/// The sizes of the table a patch was computed for; ids in the patch continue from them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseSpec {
    routes: usize,
    targets: usize,
    policies: usize,
    scopes: usize,
    views: usize,
}

/// What a patch does to one view.
#[derive(Default)]
struct ViewEdit {
    scope: Option<u32>,
    /// The view's whole vhost list, once a placement touched it.
    vhosts: Option<Vec<Arc<VHost>>>,
    reindex: Reindex,
}

/// How much of a view's host index the placements invalidated (ordered: each covers the last).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
enum Reindex {
    /// Every position keeps its domains (a route edit): the index is shared as it is.
    #[default]
    Nothing,
    /// Only positions past the base index changed or were appended: index those apart.
    Appended,
    /// A position of the base index changed its domains: index the whole view again.
    All,
}

pub(crate) fn apply(table: &RouteTable, text: &str) -> Result<RouteTable> {
    let patch: PatchSpec = crate::spec::parse(text).map_err(under_patch)?;
    if patch.patch != VERSION {
        let msg = format!(
            "unsupported patch version {} (expected {VERSION})",
            patch.patch
        );
        return Err(CompileError::new(ErrorKind::Version, "patch.patch", msg));
    }
    check_base(table, &patch.base)?;

    let new_policies = patch
        .policies
        .iter()
        .enumerate()
        .map(|(i, p)| compact_json(p, &format!("patch.policies[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let targets = table
        .targets
        .appended(patch.targets.iter().map(Target::compile));
    let limits = Limits {
        virtual_services: table.virtual_services.len(),
        gateways: table.gateways.len(),
        targets: targets.len(),
    };
    let new_routes = patch
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route::compile(r, &format!("patch.routes[{i}]"), &limits))
        .collect::<Result<Vec<_>>>()?;
    let exchange_plan = table
        .exchange_plan
        .appended(patch.routes.iter().zip(&new_routes), &new_policies);
    let routes = table.routes.appended(new_routes);
    let policies = table.policies.appended(new_policies);

    let mut scopes = table.scopes.clone();
    for (i, (id, spec)) in patch.scopes.iter().enumerate() {
        let at = format!("patch.scopes[{i}]");
        let slot = *id as usize;
        if slot > scopes.len() {
            let msg = format!(
                "scope {id} does not exist ({} defined; an appended scope takes the next id)",
                scopes.len()
            );
            return Err(CompileError::new(
                ErrorKind::Reference,
                format!("{at}[0]"),
                msg,
            ));
        }
        let scope = Arc::new(compile_scope(
            spec,
            &format!("{at}[1]"),
            targets.len(),
            policies.len(),
        )?);
        match slot.cmp(&scopes.len()) {
            Ordering::Less => scopes[slot] = scope,
            _ => scopes.push(scope),
        }
    }

    // Every new vhost's references, placed or not, as from_json checks a pool entry.
    for (k, v) in patch.vhosts.iter().enumerate() {
        check_vhost(
            v,
            &format!("patch.vhosts[{k}]"),
            routes.len(),
            targets.len(),
        )?;
    }
    let mut edits: BTreeMap<u32, ViewEdit> = BTreeMap::new();
    for (i, &(view, scope)) in patch.view_scopes.iter().enumerate() {
        let at = format!("patch.view_scopes[{i}]");
        check_ref(view, table.views.len(), &format!("{at}[0]"), "view")?;
        check_ref(scope, scopes.len(), &format!("{at}[1]"), "scope")?;
        edits.entry(view).or_default().scope = Some(scope);
    }
    // Each new vhost is compiled once per gateway and shared by its placements there, as a
    // `vhost_pool` entry is.
    let mut built: AHashMap<(u32, u32), Arc<VHost>> = AHashMap::new();
    for (i, &(view, position, k)) in patch.placements.iter().enumerate() {
        let at = format!("patch.placements[{i}]");
        check_ref(view, table.views.len(), &format!("{at}[0]"), "view")?;
        check_ref(k, patch.vhosts.len(), &format!("{at}[2]"), "vhost")?;
        let old = &table.views[view as usize];
        let vhost = Arc::clone(built.entry((k, old.gateway)).or_insert_with(|| {
            Arc::new(build_vhost(&patch.vhosts[k as usize], &routes, old.gateway))
        }));
        let edit = edits.entry(view).or_default();
        let list = edit.vhosts.get_or_insert_with(|| old.vhosts.to_vec());
        let pos = position as usize;
        let in_base = position < old.hosts.base_len;
        match pos.cmp(&list.len()) {
            Ordering::Less => {
                // Index entries name (position, domain number): they stay valid while the
                // position's domain list is the same.
                if list[pos].domains != vhost.domains {
                    let needed = if in_base {
                        Reindex::All
                    } else {
                        Reindex::Appended
                    };
                    edit.reindex = edit.reindex.max(needed);
                }
                list[pos] = vhost;
            }
            Ordering::Equal => {
                edit.reindex = edit.reindex.max(Reindex::Appended);
                list.push(vhost);
            }
            Ordering::Greater => {
                let msg = format!(
                    "position {position} is beyond the view's {} vhosts (equal appends)",
                    list.len()
                );
                return Err(CompileError::new(
                    ErrorKind::Reference,
                    format!("{at}[1]"),
                    msg,
                ));
            }
        }
    }
    let mut views = table.views.clone();
    for (id, edit) in edits {
        let old = &table.views[id as usize];
        let vhosts: Arc<[Arc<VHost>]> = match edit.vhosts {
            Some(list) => list.into(),
            None => Arc::clone(&old.vhosts),
        };
        let hosts = match edit.reindex {
            Reindex::Nothing => old.hosts.clone(),
            Reindex::Appended => old.hosts.with_appended(
                vhosts
                    .iter()
                    .skip(old.hosts.base_len as usize)
                    .map(|v| v.domains.as_slice()),
            ),
            Reindex::All => host_index(&vhosts),
        };
        views[id as usize] = View {
            scope: edit.scope.unwrap_or(old.scope),
            vhosts,
            hosts,
            ..old.clone()
        };
    }

    Ok(RouteTable {
        virtual_services: Arc::clone(&table.virtual_services),
        gateways: Arc::clone(&table.gateways),
        targets,
        policies,
        scopes,
        routes,
        views,
        selector: table.selector.clone(),
        default_extra: Arc::clone(&table.default_extra),
        exchange_plan,
        tcp: Arc::clone(&table.tcp),
    })
}

/// A patch computed for a table of other sizes would point its ids at the wrong entries.
fn check_base(table: &RouteTable, base: &BaseSpec) -> Result<()> {
    for (field, expected, actual) in [
        ("routes", base.routes, table.routes.len()),
        ("targets", base.targets, table.targets.len()),
        ("policies", base.policies, table.policies.len()),
        ("scopes", base.scopes, table.scopes.len()),
        ("views", base.views, table.views.len()),
    ] {
        if expected != actual {
            let msg =
                format!("the patch is for a table of {expected} {field}; this one has {actual}");
            return Err(CompileError::new(
                ErrorKind::Value,
                format!("patch.base.{field}"),
                msg,
            ));
        }
    }
    Ok(())
}

/// Schema errors name the offending element inside the patch document.
fn under_patch(e: CompileError) -> CompileError {
    let path = if e.path().is_empty() {
        "patch".to_owned()
    } else {
        format!("patch.{}", e.path())
    };
    CompileError::new(e.kind(), path, e.message())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Three mesh views of two vhosts each (`a`, `b`), the second and third sharing pool entries.
    fn table() -> RouteTable {
        let route = |t: u32| {
            json!({"vs": null, "index": 0, "matches": [],
                   "action": {"route": {"destinations": [{"target": t, "weight": 1}]}}})
        };
        let a = json!({"domains": ["a"], "routes": [0], "default_target": null});
        let b = json!({"domains": ["b"], "routes": [1], "default_target": null});
        let ir = json!({"version": 1, "gateways": ["mesh"],
            "targets": [{"host": "a"}, {"host": "b"}], "policies": ["{}"],
            "scopes": [{"clusters": [[0, 80, 0], [1, 80, 0]]}],
            "routes": [route(0), route(1)], "vhost_pool": [a, b],
            "views": [{"gateway": 0, "namespace": "x", "scope": 0, "vhosts": [a, b]},
                      {"gateway": 0, "namespace": "y", "scope": 0, "vhosts": [0, 1]},
                      {"gateway": 0, "namespace": "z", "scope": 0, "vhosts": [0, 1]}],
            "mesh": {"other_view": 0}});
        RouteTable::from_json(&ir.to_string()).unwrap()
    }

    #[test]
    fn shares_what_the_patch_leaves_alone() {
        let old = table();
        let patch = json!({"patch": 1,
            "base": {"routes": 2, "targets": 2, "policies": 1, "scopes": 1, "views": 3},
            "routes": [{"vs": null, "index": 1, "matches": [],
                        "action": {"route": {"destinations": [{"target": 1, "weight": 1}]}}}],
            "scopes": [[1, {"clusters": []}]],
            // k = 0 keeps `a`'s domains; k = 1 changes them.
            "vhosts": [{"domains": ["A"], "routes": [2]}, {"domains": ["c"], "routes": [2]}],
            "placements": [[0, 0, 0], [1, 0, 0], [2, 0, 1]],
            "view_scopes": [[1, 1]]});
        let new = old.patched(&patch.to_string()).unwrap();
        assert!(new.routes.shares_base_with(&old.routes));
        assert!(new.targets.shares_base_with(&old.targets));
        assert!(Arc::ptr_eq(&new.scopes[0], &old.scopes[0]));
        assert!(Arc::ptr_eq(
            &new.exchange_plan.gateways,
            &old.exchange_plan.gateways
        ));
        assert_eq!((new.routes.len(), new.scopes.len()), (3, 2));
        // Same domains: the host index is shared; the untouched vhost too.
        for v in [0, 1] {
            assert!(Arc::ptr_eq(
                &new.views[v].hosts.base,
                &old.views[v].hosts.base
            ));
            assert!(new.views[v].hosts.appended.is_none());
            assert!(Arc::ptr_eq(
                &new.views[v].vhosts[1],
                &old.views[v].vhosts[1]
            ));
            assert!(!Arc::ptr_eq(
                &new.views[v].vhosts[0],
                &old.views[v].vhosts[0]
            ));
        }
        // One compiled vhost for both placements on the mesh gateway.
        assert!(Arc::ptr_eq(
            &new.views[0].vhosts[0],
            &new.views[1].vhosts[0]
        ));
        assert_eq!((new.views[0].scope, new.views[1].scope), (0, 1));
        // New domains: a new host index.
        assert!(!Arc::ptr_eq(
            &new.views[2].hosts.base,
            &old.views[2].hosts.base
        ));
        assert_eq!(new.views[2].hosts.lookup("c").map(|h| h.vhost), Some(0));
        assert_eq!(new.views[2].hosts.lookup("a"), None);
        assert_eq!(old.views[2].hosts.lookup("a").map(|h| h.vhost), Some(0));
        // An empty patch shares every view.
        let base = json!({"routes": 3, "targets": 2, "policies": 1, "scopes": 2, "views": 3});
        let same = new
            .patched(&json!({"patch": 1, "base": base}).to_string())
            .unwrap();
        for v in 0..3 {
            assert!(Arc::ptr_eq(&same.views[v].vhosts, &new.views[v].vhosts));
            assert!(Arc::ptr_eq(
                &same.views[v].hosts.base,
                &new.views[v].hosts.base
            ));
        }
    }

    #[test]
    fn appended_vhosts_are_indexed_apart() {
        let old = table();
        let base = json!({"routes": 2, "targets": 2, "policies": 1, "scopes": 1, "views": 3});
        let patch = json!({"patch": 1, "base": base,
            "vhosts": [{"domains": ["c", "a"], "routes": [0]}, {"domains": ["d"], "routes": [1]}],
            "placements": [[0, 2, 0], [1, 2, 0], [1, 3, 1]]});
        let new = old.patched(&patch.to_string()).unwrap();
        for v in [0, 1] {
            let hosts = &new.views[v].hosts;
            assert!(Arc::ptr_eq(&hosts.base, &old.views[v].hosts.base));
            assert_eq!(hosts.base_len, 2);
            assert!(hosts.appended.is_some());
            assert_eq!(hosts.lookup("c").map(|h| h.vhost), Some(2));
            assert_eq!(hosts.lookup("a").map(|h| h.vhost), Some(0), "first claim");
        }
        assert_eq!(new.views[1].hosts.lookup("d").map(|h| h.vhost), Some(3));
        // Replacing an appended vhost's domains re-indexes the appended part only; a base
        // position's, the whole view.
        let base = json!({"routes": 2, "targets": 2, "policies": 1, "scopes": 1, "views": 3});
        let patch = json!({"patch": 1, "base": base,
            "vhosts": [{"domains": ["e"], "routes": [0]}],
            "placements": [[1, 3, 0], [0, 1, 0]]});
        let newer = new.patched(&patch.to_string()).unwrap();
        let hosts = &newer.views[1].hosts;
        assert!(Arc::ptr_eq(&hosts.base, &old.views[1].hosts.base));
        assert_eq!(
            (hosts.lookup("e").map(|h| h.vhost), hosts.lookup("d")),
            (Some(3), None)
        );
        let hosts = &newer.views[0].hosts;
        assert!(!Arc::ptr_eq(&hosts.base, &old.views[0].hosts.base));
        assert_eq!((hosts.base_len, hosts.appended.is_none()), (3, true));
        assert_eq!(hosts.lookup("b"), None);
        assert_eq!(hosts.lookup("e").map(|h| h.vhost), Some(1));
        assert_eq!(hosts.lookup("c").map(|h| h.vhost), Some(2));
    }
}
