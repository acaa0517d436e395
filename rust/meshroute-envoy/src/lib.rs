//! meshroute inside Envoy: a dynamic module for Envoy 1.40, an HTTP filter and a load-balancing
//! policy in one library.
//!
//! Envoy `dlopen`s the built library ([`LIBRARY_FILE_NAME`]) and calls it on its worker threads;
//! each request's headers go through [`meshroute_core::RouteTable::exchange`] — the same decision
//! `meshroute serve` answers over ext_proc — without leaving Envoy's process. A cluster whose
//! `load_balancing_policy` names the module has its endpoints picked by meshroute-lb (the [`lb`]
//! module: `meshroute envoy-config --lb rust`).
//!
//! The filter entry in an Envoy bootstrap:
//!
//! ```yaml
//! - name: meshroute
//!   typed_config:
//!     "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
//!     dynamic_module_config: {module: {local: {filename: /abs/path/libmeshroute_envoy.so}}}
//!     filter_name: meshroute
//!     filter_config:
//!       "@type": type.googleapis.com/google.protobuf.StringValue
//!       value: '{"table": "/abs/path/ir.json", "listener": {"gateway_port": null}}'
//! ```
//!
//! followed by the router, with a route whose `cluster_header` is `x-meshroute-cluster`.
//!
//! `filter_config` (a `StringValue`; Envoy hands the module its bytes) is a JSON object:
//!
//! | key | value |
//! |---|---|
//! | `table` | absolute path of the IR JSON file (`docs/ir.md`; `Mesh.analysis.ir` in Python) |
//! | `patches` | optional list of absolute paths of IR patch files (`docs/ir.md`, "Patch"): the table is `table`'s with each patch applied in order; absent = `[]` |
//! | `listener.gateway_port` | the Gateway server port for a gateway listener; `null` / absent for the mesh listener |
//! | `listener.source_namespace` | mesh listener: the client workload's namespace; gateway listener: its gateway proxy's (one workload's listeners), or `null` |
//! | `listener.source_labels` | mesh listener: the client workload's labels; gateway listener: its gateway proxy's, `{"k": "v"}` |
//! | `seed` | `null` / absent: one RNG per worker thread, seeded from the OS; an integer: the *i*-th request of this filter config uses `SplitMix64(seed + i)` (reproducible with one worker; for tests) |
//! | `panic_marker` | `panic-test` builds only: the header whose value `1` makes the hook panic (default `x-meshroute-test-panic`); other builds reject the key |
//!
//! Unknown keys are rejected. Filter configs naming the same table file and patch files (same
//! paths, modification times and contents, patches in the same order) share one built table, so
//! N listeners do not build N tables; a changed file is read again by the next filter config that
//! names it (an ECDS update, an Envoy restart). A config whose `patches` extend the list of a
//! live config's (`[p1, p2]` after `[p1]`, same table file) starts from that config's table and
//! applies only the patches that follow — a one-resource edit goes live in milliseconds instead
//! of a whole IR build; the files it names are still all read, to check they are the ones that
//! table was built from. A config the module cannot load (missing or invalid file, bad JSON, a
//! patch the table refuses) is rejected with an error line on Envoy's `dynamic_modules` logger:
//! Envoy refuses it at start-up or in `--mode validate`, and with ECDS keeps the last good one.
//! It never takes Envoy down.
//!
//! Per request: the request headers are copied out of Envoy, decided, and the answer
//! applied — header set / append / remove and a route-cache clear for `Forward`, a local reply for
//! `Reply` — with response-header operations kept for the response. Every hook runs under
//! `catch_unwind`: a panic becomes a 500 local reply and an error log line, never an Envoy abort.
//!
//! Stats (Envoy's own, on the admin `/stats` and `/stats/prometheus`, see [`stats`]): the counter
//! `meshroute_decisions` (label `outcome`), the counter `meshroute_panics` and the histogram
//! `meshroute_decision_us` (time spent in the request-headers hook, µs). Envoy puts them in the
//! module's metrics namespace, `dynamicmodulescustom` unless `dynamic_module_config.metrics_namespace`
//! says otherwise: `envoy_dynamicmodulescustom_meshroute_decisions{outcome="route"}` in Prometheus,
//! `dynamicmodulescustom.meshroute_decisions.outcome.route` on `/stats`. Histogram samples reach
//! the admin pages at Envoy's stats flush (`stats_flush_interval`, 5 s by default).
//!
//! All `unsafe` code lives in the private `ffi` module: the C ABI declarations and the hooks of
//! both extensions.

#![deny(unsafe_code)]

// A panic must unwind to the hook's `catch_unwind`; with `panic = "abort"` it would kill Envoy.
#[cfg(not(panic = "unwind"))]
compile_error!("meshroute-envoy must be built with panic = \"unwind\" (a panic would abort Envoy)");

mod config;
// The C ABI: `extern "C"` callbacks, `#[no_mangle]` hooks, raw pointers. The only module where
// `unsafe` is allowed; it hands the rest of the crate safe handles.
#[allow(unsafe_code)]
mod ffi;
mod filter;
mod headers;
pub mod lb;

/// File name of the built module (`target/{debug,release}/`), as Envoy's
/// `dynamic_module_config.module.local.filename` names it. With `dynamic_module_config.name:
/// meshroute_envoy`, Envoy looks for this file in `$ENVOY_DYNAMIC_MODULES_SEARCH_PATH`.
pub const LIBRARY_FILE_NAME: &str = "libmeshroute_envoy.so";

/// The dynamic-module ABI version this module is written against (Envoy 1.40), returned to Envoy
/// by `envoy_dynamic_module_on_program_init`.
pub const ABI_VERSION: &std::ffi::CStr = c"v0.2.0";

/// Names of the Envoy stats the module defines, before Envoy's namespace (see the crate docs).
pub mod stats {
    /// Counter, label [`OUTCOME_LABEL`]: requests decided, by the decision's outcome.
    pub const DECISIONS: &str = "meshroute_decisions";
    /// Label of [`DECISIONS`]: `route`, `abort`, `redirect`, `direct_response`, `no_route`, ...
    pub const OUTCOME_LABEL: &str = "outcome";
    /// Counter: panics caught in a hook (each answered 500).
    pub const PANICS: &str = "meshroute_panics";
    /// Histogram: microseconds spent in the request-headers hook (copy, decide, apply).
    pub const DECISION_US: &str = "meshroute_decision_us";
}

/// Request header that makes a `panic-test` build panic inside the request-headers hook (value
/// `1`; a config's `panic_marker` names another header), or inside the balancer's `choose_host`
/// (value `lb`). Absent from normal builds.
#[cfg(feature = "panic-test")]
pub const PANIC_TEST_HEADER: &str = "x-meshroute-test-panic";
