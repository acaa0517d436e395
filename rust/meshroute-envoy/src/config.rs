//! Filter configs: the `filter_config` JSON, the shared route tables, the per-request RNG.
//!
//! Everything here is plain Rust (no Envoy call), so the loading rules are unit-tested; the hook
//! in `ffi` logs the errors and defines the stats.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::SystemTime;

use meshroute_core::{Exchange, ListenerContext, RouteTable, SplitMix64};
use serde::Deserialize;

use crate::ffi::{CounterId, HistogramId};

/// `filter_config` as written in the bootstrap (format in the crate documentation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    table: PathBuf,
    #[serde(default)]
    listener: RawListener,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    panic_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    #[serde(default)]
    gateway_port: Option<u16>,
    #[serde(default)]
    source_namespace: Option<String>,
    #[serde(default)]
    source_labels: BTreeMap<String, String>,
}

/// Envoy stat handles of one filter config; `None` when Envoy refused to define one (the filter
/// then works without that stat).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) decisions: Option<CounterId>,
    pub(crate) panics: Option<CounterId>,
    pub(crate) decision_us: Option<HistogramId>,
}

/// One loaded filter config, shared (`Arc`) by every stream Envoy creates from it.
pub(crate) struct FilterConfig {
    pub(crate) table: Arc<RouteTable>,
    pub(crate) table_path: PathBuf,
    pub(crate) listener: ListenerContext,
    seed: Option<u64>,
    /// Requests decided so far, for `seed + i`.
    next: AtomicU64,
    /// `panic-test` builds: the header whose value `1` panics the request hook.
    #[cfg_attr(not(feature = "panic-test"), allow(dead_code))]
    pub(crate) panic_marker: Option<String>,
    pub(crate) stats: Stats,
}

impl std::fmt::Debug for FilterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilterConfig")
            .field("table_path", &self.table_path)
            .field("routes", &self.table.route_count())
            .field("listener", &self.listener)
            .field("seed", &self.seed)
            .field("panic_marker", &self.panic_marker)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl FilterConfig {
    /// Parses `filter_config` and loads (or shares) its table.
    ///
    /// # Errors
    /// A message naming the problem: JSON, a relative or unreadable table path, an IR the core
    /// rejects, `panic_marker` in a build without the `panic-test` feature.
    pub(crate) fn load(filter_config: &[u8]) -> Result<FilterConfig, String> {
        let raw: RawConfig = serde_json::from_slice(filter_config)
            .map_err(|e| format!("filter_config is not the expected JSON object: {e}"))?;
        let panic_marker = if cfg!(feature = "panic-test") {
            // Envoy's header names are lower-case.
            let marker = raw
                .panic_marker
                .as_deref()
                .unwrap_or("x-meshroute-test-panic");
            Some(marker.to_ascii_lowercase())
        } else if raw.panic_marker.is_some() {
            return Err(
                "panic_marker needs a module built with the `panic-test` feature".to_owned(),
            );
        } else {
            None
        };
        let table = shared_table(&raw.table)?;
        Ok(FilterConfig {
            table,
            table_path: raw.table,
            listener: ListenerContext {
                gateway_port: raw.listener.gateway_port,
                source_namespace: raw.listener.source_namespace,
                source_labels: raw.listener.source_labels.into_iter().collect(),
            },
            seed: raw.seed,
            next: AtomicU64::new(0),
            panic_marker,
            stats: Stats::default(),
        })
    }

    /// The decision for one request's headers (pseudo-headers included).
    pub(crate) fn decide(&self, headers: &[(&[u8], &[u8])]) -> Exchange {
        if let Some(seed) = self.seed {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let mut rng = SplitMix64::new(seed.wrapping_add(i));
            return self.table.exchange(&self.listener, headers, &mut rng);
        }
        WORKER_RNG.with(|rng| match rng.try_borrow_mut() {
            Ok(mut rng) => self.table.exchange(&self.listener, headers, &mut *rng),
            // Only reachable if a decision re-entered this thread's generator: use a fresh one.
            Err(_) => self
                .table
                .exchange(&self.listener, headers, &mut SplitMix64::new(os_seed())),
        })
    }
}

thread_local! {
    /// One generator per Envoy worker thread, seeded from the OS.
    static WORKER_RNG: RefCell<SplitMix64> = RefCell::new(SplitMix64::new(os_seed()));
}

/// 64 random bits: std's `RandomState` keys come from the OS generator.
pub(crate) fn os_seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.finish()
}

/// A built table, keyed by the file it came from.
struct CachedTable {
    path: PathBuf,
    modified: Option<SystemTime>,
    content_hash: u64,
    table: Weak<RouteTable>,
}

/// Tables currently in use by some filter config; entries die with their last config.
static TABLES: Mutex<Vec<CachedTable>> = Mutex::new(Vec::new());

/// The table built from `path`: shared with the live filter configs that loaded the same file
/// (same path, modification time and content), built otherwise.
fn shared_table(path: &Path) -> Result<Arc<RouteTable>, String> {
    if !path.is_absolute() {
        return Err(format!("table {}: not an absolute path", path.display()));
    }
    let modified = std::fs::metadata(path)
        .map_err(|e| format!("table {}: {e}", path.display()))?
        .modified()
        .ok();
    let bytes = std::fs::read(path).map_err(|e| format!("table {}: {e}", path.display()))?;
    let content_hash = {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        h.finish()
    };
    // The lock is held while building, so two configs naming one new file build it once.
    let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    tables.retain(|t| t.table.strong_count() > 0);
    let found = tables
        .iter()
        .find(|t| t.path == path && t.modified == modified && t.content_hash == content_hash);
    if let Some(table) = found.and_then(|t| t.table.upgrade()) {
        return Ok(table);
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| format!("table {}: not UTF-8: {e}", path.display()))?;
    let table = Arc::new(
        RouteTable::from_json(text)
            .map_err(|e| format!("table {}: invalid IR: {e}", path.display()))?,
    );
    tables.push(CachedTable {
        path: path.to_owned(),
        modified,
        content_hash,
        table: Arc::downgrade(&table),
    });
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `compile.py`'s empty IR (no services): the smallest table the core builds.
    const EMPTY_IR: &str = r#"{"version": 1, "virtual_services": [], "gateways": ["mesh"],
        "targets": [], "policies": ["{}"], "scopes": [{"clusters": []}], "routes": [],
        "views": [{"gateway": 0, "namespace": "default", "scope": 0, "ports": [],
                   "https_redirect_hosts": [], "unknown_host": "passthrough", "vhosts": []}],
        "mesh": {"namespaces": {"default": {"default_view": 0, "sidecars": []}}, "other_view": 0},
        "gateway_views": {},
        "default_extra": {"timeout_ms": null, "retries": {"attempts": 2,
            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "per_try_timeout_ms": null, "backoff_ms": 25, "retry_remote_localities": false,
            "retry_ignore_previous_hosts": null}, "mirrors": [], "cors": null}}"#;

    fn ir_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write IR");
        path
    }

    fn tmp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("meshroute-envoy-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        dir
    }

    fn config_json(table: &Path, extra: &str) -> Vec<u8> {
        format!(r#"{{"table": {:?}{extra}}}"#, table.display().to_string()).into_bytes()
    }

    #[test]
    fn rejects_bad_json_unknown_keys_and_relative_paths() {
        for (text, expect) in [
            ("not json", "expected JSON object"),
            (r#"{"table": "/x", "tabel": 1}"#, "unknown field"),
            (r#"{"table": "ir.json"}"#, "not an absolute path"),
            (
                r#"{"table": "/nonexistent/meshroute/ir.json"}"#,
                "/nonexistent/meshroute/ir.json",
            ),
            (r#"{"table": "/x", "seed": -1}"#, "expected JSON object"),
        ] {
            let err = FilterConfig::load(text.as_bytes()).expect_err(text);
            assert!(err.contains(expect), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_an_invalid_ir_with_the_path() {
        let dir = tmp_dir("invalid");
        let path = ir_file(&dir, "ir.json", r#"{"routes": 3}"#);
        let err = FilterConfig::load(&config_json(&path, "")).expect_err("invalid IR");
        assert!(
            err.contains("invalid IR") && err.contains("ir.json"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn configs_naming_one_file_share_the_table_until_it_changes() {
        let dir = tmp_dir("share");
        let path = ir_file(&dir, "ir.json", EMPTY_IR);
        let a = FilterConfig::load(&config_json(&path, "")).expect("first config");
        let b = FilterConfig::load(&config_json(
            &path,
            r#", "listener": {"gateway_port": 8080}"#,
        ))
        .expect("second config");
        assert!(Arc::ptr_eq(&a.table, &b.table));
        assert_eq!(b.listener.gateway_port, Some(8080));
        // New content: a new table, even if the modification time did not move.
        std::fs::write(&path, format!("{EMPTY_IR} ")).expect("rewrite");
        let c = FilterConfig::load(&config_json(&path, "")).expect("third config");
        assert!(!Arc::ptr_eq(&a.table, &c.table));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn panic_marker_only_in_panic_test_builds() {
        let dir = tmp_dir("marker");
        let path = ir_file(&dir, "ir.json", EMPTY_IR);
        let loaded = FilterConfig::load(&config_json(&path, r#", "panic_marker": "X-Boom""#));
        if cfg!(feature = "panic-test") {
            let cfg = loaded.expect("marker accepted");
            assert_eq!(cfg.panic_marker.as_deref(), Some("x-boom"));
        } else {
            let err = loaded.expect_err("marker rejected");
            assert!(err.contains("panic-test"), "{err}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
