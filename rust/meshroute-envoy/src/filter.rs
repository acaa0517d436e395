//! What the hooks do, in safe Rust: create a filter config, decide a request and apply the
//! answer, apply the response operations, turn a panic into a 500.

use std::sync::Arc;
use std::time::Instant;

use meshroute_core::{Exchange, Forward, LocalReply, ResponseOps};

use crate::config::{FilterConfig, Stats};
use crate::ffi::{log, ConfigHandle, HeaderMap, HeadersStatus, HttpFilter, LogLevel};
use crate::stats;

/// Per-HTTP-stream state (one per request).
pub(crate) struct Stream {
    config: Arc<FilterConfig>,
    /// Response-header operations of the decision, applied in the response-headers hook.
    response: Option<ResponseOps>,
}

impl Stream {
    pub(crate) fn new(config: Arc<FilterConfig>) -> Self {
        Self {
            config,
            response: None,
        }
    }
}

/// `http_filter_config_new`: loads the config and defines its stats; `None` rejects it (the
/// reason is logged).
pub(crate) fn new_filter_config(
    envoy: &mut ConfigHandle<'_>,
    filter_name: &[u8],
    filter_config: &[u8],
) -> Option<Arc<FilterConfig>> {
    let name = String::from_utf8_lossy(filter_name);
    let mut config = match FilterConfig::load(filter_config) {
        Ok(config) => config,
        Err(reason) => {
            log(
                LogLevel::Error,
                &format!("meshroute: filter {name:?}: config rejected: {reason}"),
            );
            return None;
        }
    };
    config.stats = define_stats(envoy, &name);
    log(
        LogLevel::Info,
        &format!(
            "meshroute: filter {name:?}: table {} ({} routes), listener {:?}",
            config.table_path.display(),
            config.table.route_count(),
            config.listener,
        ),
    );
    Some(Arc::new(config))
}

fn define_stats(envoy: &mut ConfigHandle<'_>, filter: &str) -> Stats {
    let warn = |what: &str, code: u32| {
        log(
            LogLevel::Warn,
            &format!("meshroute: filter {filter:?}: stat {what} not defined (Envoy error {code})"),
        );
    };
    let decisions = envoy
        .define_counter(stats::DECISIONS, &[stats::OUTCOME_LABEL])
        .map_err(|code| warn(stats::DECISIONS, code))
        .ok();
    let panics = envoy
        .define_counter(stats::PANICS, &[])
        .map_err(|code| warn(stats::PANICS, code))
        .ok();
    let decision_us = envoy
        .define_histogram(stats::DECISION_US, &[])
        .map_err(|code| warn(stats::DECISION_US, code))
        .ok();
    Stats {
        decisions,
        panics,
        decision_us,
    }
}

/// `request_headers`: copy the headers, decide, apply.
pub(crate) fn request_headers(envoy: &mut HttpFilter<'_>, stream: &mut Stream) -> HeadersStatus {
    let started = Instant::now();
    let config = &*stream.config;
    let headers = envoy.request_headers();
    #[cfg(feature = "panic-test")]
    if let Some(marker) = &config.panic_marker {
        if headers.get(marker) == Some(&b"1"[..]) {
            panic!("panic-test: request carries {marker}: 1");
        }
    }
    let (outcome, status) = match config.decide(&headers.pairs()) {
        Exchange::Forward(forward) => {
            let outcome = forward.outcome;
            stream.response = apply_forward(envoy, forward, |name| headers.get(name).is_some());
            (outcome, HeadersStatus::Continue)
        }
        Exchange::Reply(reply) => {
            send_reply(envoy, &reply);
            (reply.outcome, HeadersStatus::StopIteration)
        }
    };
    let stats = &stream.config.stats;
    if let Some(id) = stats.decisions {
        envoy.increment_counter(id, &[outcome], 1);
    }
    if let Some(id) = stats.decision_us {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        envoy.record_histogram(id, &[], micros);
    }
    status
}

/// Request mutations in order — set, append, remove — then a route-cache clear so the router
/// reads the cluster header the module set, not one cached from the client's headers.
///
/// A removal is sent only for a header the request carries (`present`, read from the copy taken
/// before any change): the exchange removes every control header it does not set, ~20 names of
/// which a normal request has none, and each would otherwise be one more callback into Envoy.
fn apply_forward(
    envoy: &mut HttpFilter<'_>,
    forward: Forward,
    present: impl Fn(&str) -> bool,
) -> Option<ResponseOps> {
    let Forward {
        set,
        append,
        mut remove,
        response,
        ..
    } = forward;
    remove.retain(|name| present(name));
    apply_ops(envoy, HeaderMap::RequestHeaders, &set, &append, &remove);
    envoy.clear_route_cache();
    response.filter(|ops| !(ops.set.is_empty() && ops.append.is_empty() && ops.remove.is_empty()))
}

fn apply_ops(
    envoy: &mut HttpFilter<'_>,
    map: HeaderMap,
    set: &[(String, String)],
    append: &[(String, String)],
    remove: &[String],
) {
    let mut failed: Vec<&str> = Vec::new();
    for (name, value) in set {
        if !envoy.set_header(map, name, value.as_bytes()) {
            failed.push(name);
        }
    }
    for (name, value) in append {
        if !envoy.add_header(map, name, value.as_bytes()) {
            failed.push(name);
        }
    }
    for name in remove {
        if !envoy.remove_header(map, name) {
            failed.push(name);
        }
    }
    if !failed.is_empty() {
        log(
            LogLevel::Warn,
            &format!("meshroute: Envoy refused header operations on {map:?}: {failed:?}"),
        );
    }
}

/// Envoy adds every header given to `http_send_response` to the reply (`addCopy`), so the
/// `headers` to set are deduplicated (the last value of a name wins), then `append` follows.
fn send_reply(envoy: &mut HttpFilter<'_>, reply: &LocalReply) {
    let mut headers: Vec<(&str, &str)> =
        Vec::with_capacity(reply.headers.len() + reply.append.len());
    for (name, value) in &reply.headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name, value));
    }
    headers.extend(reply.append.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    envoy.send_response(reply.status, &headers, &reply.body, reply.details);
}

/// `response_headers`: the decision's response operations, if any.
pub(crate) fn response_headers(envoy: &mut HttpFilter<'_>, stream: &mut Stream) -> HeadersStatus {
    if let Some(ops) = stream.response.take() {
        apply_ops(
            envoy,
            HeaderMap::ResponseHeaders,
            &ops.set,
            &ops.append,
            &ops.remove,
        );
    }
    HeadersStatus::Continue
}

/// A hook panicked: log it, count it, answer 500.
pub(crate) fn on_panic(
    envoy: &mut HttpFilter<'_>,
    stream: &mut Stream,
    hook: &str,
    message: &str,
) -> HeadersStatus {
    log(
        LogLevel::Error,
        &format!("meshroute: panic in {hook}: {message}; answered 500"),
    );
    if let Some(id) = stream.config.stats.panics {
        envoy.increment_counter(id, &[], 1);
    }
    stream.response = None;
    internal_error(envoy, "meshroute_panic")
}

/// A stream hook without a stream (`http_filter_new` failed): never let the request through
/// undecided.
pub(crate) fn on_missing_stream(envoy: &mut HttpFilter<'_>, hook: &str) -> HeadersStatus {
    log(
        LogLevel::Error,
        &format!("meshroute: {hook} without stream state; answered 500"),
    );
    internal_error(envoy, "meshroute_no_stream")
}

fn internal_error(envoy: &mut HttpFilter<'_>, details: &str) -> HeadersStatus {
    envoy.send_response(
        500,
        &[("content-type", "text/plain")],
        b"meshroute: internal error\n",
        details,
    );
    HeadersStatus::StopIteration
}
