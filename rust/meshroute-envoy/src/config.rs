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
    /// IR patches applied in order to `table`'s table (docs/ir.md, "Patch").
    #[serde(default)]
    patches: Vec<PathBuf>,
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
    pub(crate) patch_paths: Vec<PathBuf>,
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
            .field("patch_paths", &self.patch_paths)
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
    /// A message naming the problem: JSON, a relative or unreadable table or patch path, an IR
    /// or patch the core rejects, `panic_marker` in a build without the `panic-test` feature.
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
        let table = shared_table(&raw.table, &raw.patches)?;
        Ok(FilterConfig {
            table,
            table_path: raw.table,
            patch_paths: raw.patches,
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

/// One file a table was built from, as it was read: same path, modification time and content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileKey {
    path: PathBuf,
    modified: Option<SystemTime>,
    content_hash: u64,
}

/// A file read for a table: its key, and its text for building.
struct ReadFile {
    key: FileKey,
    bytes: Vec<u8>,
}

/// A built table, keyed by the files it came from: the IR, then each patch applied to it.
struct CachedTable {
    chain: Vec<FileKey>,
    table: Weak<RouteTable>,
}

/// Tables currently in use by some filter config; entries die with their last config.
static TABLES: Mutex<Vec<CachedTable>> = Mutex::new(Vec::new());

/// The table built from the IR file `path` with the patch files `patches` applied in order:
/// shared with the live filter configs that loaded the same files (same paths, modification
/// times and contents). Otherwise it starts from the live table of the longest such chain that
/// this one extends — the previous config's table, when `meshroute run` adds one patch to the
/// list — and applies only the patches that follow; with none alive, it builds the IR.
fn shared_table(path: &Path, patches: &[PathBuf]) -> Result<Arc<RouteTable>, String> {
    let base = read_file("table", path)?;
    let patches = patches
        .iter()
        .map(|p| read_file("patch", p))
        .collect::<Result<Vec<_>, _>>()?;
    let chain: Vec<FileKey> = std::iter::once(&base)
        .chain(&patches)
        .map(|f| f.key.clone())
        .collect();
    // The lock is held while building, so two configs naming one new chain build it once.
    let mut tables = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    tables.retain(|t| t.table.strong_count() > 0);
    // The live table of the longest cached prefix of `chain` (all of it: the very same table).
    let start = tables
        .iter()
        .filter(|t| t.chain.len() <= chain.len() && chain.starts_with(&t.chain))
        .filter_map(|t| Some((t.chain.len(), t.table.upgrade()?)))
        .max_by_key(|(len, _)| *len);
    let (done, mut table) = match start {
        Some((len, table)) if len == chain.len() => return Ok(table),
        Some((len, table)) => (len - 1, table),
        None => {
            let text = utf8("table", &base)?;
            let table = RouteTable::from_json(text)
                .map_err(|e| format!("table {}: invalid IR: {e}", path.display()))?;
            #[cfg(test)]
            tests::WORK.with(|w| w.set((w.get().0 + 1, w.get().1)));
            (0, Arc::new(table))
        }
    };
    for patch in &patches[done..] {
        #[cfg(test)]
        tests::WORK.with(|w| w.set((w.get().0, w.get().1 + 1)));
        let text = utf8("patch", patch)?;
        let next = table
            .patched(text)
            .map_err(|e| format!("patch {}: invalid patch: {e}", patch.key.path.display()))?;
        table = Arc::new(next);
    }
    tables.push(CachedTable {
        chain,
        table: Arc::downgrade(&table),
    });
    Ok(table)
}

/// Reads `path` (the `what` file of a config: `table`, `patch`), keying it by path, modification
/// time and content.
fn read_file(what: &str, path: &Path) -> Result<ReadFile, String> {
    if !path.is_absolute() {
        return Err(format!("{what} {}: not an absolute path", path.display()));
    }
    let modified = std::fs::metadata(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .modified()
        .ok();
    let bytes = std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let content_hash = {
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        h.finish()
    };
    Ok(ReadFile {
        key: FileKey {
            path: path.to_owned(),
            modified,
            content_hash,
        },
        bytes,
    })
}

fn utf8<'a>(what: &str, file: &'a ReadFile) -> Result<&'a str, String> {
    std::str::from_utf8(&file.bytes)
        .map_err(|e| format!("{what} {}: not UTF-8: {e}", file.key.path.display()))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use meshroute_core::{Exchange, CLUSTER_HEADER};

    use super::*;

    thread_local! {
        /// (IR builds, patches applied) by `shared_table` on this test's thread.
        pub(super) static WORK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
    }

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
    fn a_gateway_listener_may_name_its_gateway_proxy() {
        // envoy-config for one gateway workload: the proxy's namespace and labels.
        let dir = tmp_dir("proxy");
        let path = ir_file(&dir, "ir.json", EMPTY_IR);
        let config = FilterConfig::load(&config_json(
            &path,
            r#", "listener": {"gateway_port": 8080, "source_namespace": "istio-system",
                "source_labels": {"istio": "ingressgateway", "app": "gw"}}"#,
        ))
        .expect("config");
        let labels = [
            ("app".to_owned(), "gw".to_owned()),
            ("istio".to_owned(), "ingressgateway".to_owned()),
        ];
        assert_eq!(
            config.listener.gateway_proxy(),
            Some(("istio-system", &labels[..]))
        );
        let every = FilterConfig::load(&config_json(
            &path,
            r#", "listener": {"gateway_port": 8080, "source_namespace": null, "source_labels": {}}"#,
        ))
        .expect("config");
        assert_eq!(every.listener.gateway_proxy(), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// For `EMPTY_IR`: service `a.test` (target 0) on port 80.
    const PATCH_A: &str = r#"{"patch": 1,
        "base": {"routes": 0, "targets": 0, "policies": 1, "scopes": 1, "views": 1},
        "targets": [{"host": "a.test", "subset": null, "port": 80}],
        "scopes": [[0, {"clusters": [[0, 80, 0]]}]],
        "vhosts": [{"domains": ["a.test"], "routes": [], "default_target": 0}],
        "placements": [[0, 0, 0]]}"#;
    /// After `PATCH_A`: `a.test` now goes to `b.test`.
    const PATCH_B: &str = r#"{"patch": 1,
        "base": {"routes": 0, "targets": 1, "policies": 1, "scopes": 1, "views": 1},
        "targets": [{"host": "b.test", "subset": null, "port": 80}],
        "scopes": [[0, {"clusters": [[0, 80, 0], [1, 80, 0]]}]],
        "vhosts": [{"domains": ["a.test"], "routes": [], "default_target": 1}],
        "placements": [[0, 0, 0]]}"#;

    fn with_patches(table: &Path, patches: &[&Path]) -> Vec<u8> {
        let list: Vec<String> = patches.iter().map(|p| p.display().to_string()).collect();
        let extra = format!(
            r#", "patches": {}"#,
            serde_json::to_string(&list).expect("JSON")
        );
        config_json(table, &extra)
    }

    /// The cluster `a.test` is routed to.
    fn cluster(cfg: &FilterConfig) -> Option<String> {
        let headers: [(&[u8], &[u8]); 3] = [
            (b":authority", b"a.test"),
            (b":path", b"/"),
            (b":method", b"GET"),
        ];
        match cfg.decide(&headers) {
            Exchange::Forward(f) => f
                .set
                .into_iter()
                .find(|(k, _)| k == CLUSTER_HEADER)
                .map(|(_, v)| v),
            Exchange::Reply(_) => None,
        }
    }

    #[test]
    fn a_longer_patch_chain_starts_from_the_live_table_of_its_prefix() {
        let dir = tmp_dir("patches");
        let ir = ir_file(&dir, "ir.json", EMPTY_IR);
        let (a, b) = (
            ir_file(&dir, "patch-1.json", PATCH_A),
            ir_file(&dir, "patch-2.json", PATCH_B),
        );
        let load = |patches: &[&Path]| FilterConfig::load(&with_patches(&ir, patches));
        WORK.with(|w| w.set((0, 0)));
        let none = load(&[]).expect("no patches");
        let one = load(&[&a]).expect("one patch");
        assert_eq!(WORK.with(Cell::get), (1, 1), "the IR built once");
        assert_eq!(cluster(&one).as_deref(), Some("outbound|80||a.test"));
        assert_eq!(cluster(&none).as_deref(), Some("PassthroughCluster"));
        let two = load(&[&a, &b]).expect("two patches");
        assert_eq!(WORK.with(Cell::get), (1, 2), "only the new patch applied");
        assert_eq!(cluster(&two).as_deref(), Some("outbound|80||b.test"));
        assert_eq!(two.patch_paths, [a.clone(), b.clone()]);
        let same = load(&[&a, &b]).expect("same chain");
        assert!(Arc::ptr_eq(&same.table, &two.table));
        assert_eq!(WORK.with(Cell::get), (1, 2));
        // A patch file with new content is a new chain, even under the same name.
        std::fs::write(&a, PATCH_A.replace("a.test", "c.test")).expect("rewrite");
        let changed = load(&[&a]).expect("changed patch");
        // Its domain is `c.test` too now: `a.test` is an unknown host again.
        assert_eq!(cluster(&changed).as_deref(), Some("PassthroughCluster"));
        assert_eq!(WORK.with(Cell::get), (1, 3), "from the live IR table");
        // Nothing alive: built again from the IR.
        drop((none, one, two, same, changed));
        let again = load(&[&a, &b]).expect("rebuilt");
        assert_eq!(cluster(&again).as_deref(), Some("outbound|80||b.test"));
        assert_eq!(WORK.with(Cell::get), (2, 5));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rejects_missing_relative_and_invalid_patches() {
        let dir = tmp_dir("bad-patches");
        let ir = ir_file(&dir, "ir.json", EMPTY_IR);
        let b = ir_file(&dir, "patch-2.json", PATCH_B);
        let junk = ir_file(&dir, "junk.json", "{\"patch\": 1}");
        let missing = dir.join("missing.json");
        for (config, expect) in [
            (
                with_patches(&ir, &[&missing]),
                vec!["patch", "missing.json"],
            ),
            (
                config_json(&ir, r#", "patches": ["patch-1.json"]"#),
                vec!["patch patch-1.json: not an absolute path"],
            ),
            (
                with_patches(&ir, &[&b]),
                vec!["patch-2.json: invalid patch", "patch.base.targets"],
            ),
            (
                with_patches(&ir, &[&junk]),
                vec!["junk.json: invalid patch", "missing field `base`"],
            ),
            (
                config_json(&ir, r#", "patches": "x""#),
                vec!["expected JSON object"],
            ),
        ] {
            let err = FilterConfig::load(&config).expect_err("rejected");
            for part in expect {
                assert!(err.contains(part), "{err}");
            }
        }
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
