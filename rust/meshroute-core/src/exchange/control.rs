//! Control headers: the `x-envoy-*` / `x-meshroute-*` headers Envoy acts on, which every
//! forwarded request gets set or removed (a client could forge any of them), and the values the
//! route's timeout and retries give them — computed once per route when the table is built.

use serde_json::Value;

use super::mirrors::MAX_MIRRORS;
use super::value::{get, get_truthy, py_int_str, py_str};

/// The header the catch-all route reads the cluster from (`cluster_header`).
pub const CLUSTER_HEADER: &str = "x-meshroute-cluster";
/// The consistent-hash key the route's first hash policy reads.
pub const HASH_HEADER: &str = "x-meshroute-hash";
/// Where Envoy's ORIGINAL_DST clusters (`PassthroughCluster`) take the destination address from.
pub const ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";
/// Mirror policy `i` of the catch-all route reads its cluster from `MIRROR_HEADERS[i]`.
pub const MIRROR_HEADERS: [&str; MAX_MIRRORS] = [
    "x-meshroute-mirror-0",
    "x-meshroute-mirror-1",
    "x-meshroute-mirror-2",
    "x-meshroute-mirror-3",
];

/// Every header Envoy acts on that a client could forge, in the order answers list them
/// (docs/envoy.md "Control headers").
pub const CONTROL_HEADERS: [&str; 18 + MAX_MIRRORS] = [
    CLUSTER_HEADER,
    HASH_HEADER,
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-on",
    "x-envoy-retry-grpc-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
    "x-envoy-fault-delay-request",
    "x-envoy-fault-abort-request",
    "x-envoy-fault-abort-grpc-request",
    "x-envoy-fault-delay-request-percentage",
    "x-envoy-fault-abort-request-percentage",
    "x-envoy-fault-throughput-response",
    ORIGINAL_DST_HEADER,
    MIRROR_HEADERS[0],
    MIRROR_HEADERS[1],
    MIRROR_HEADERS[2],
    MIRROR_HEADERS[3],
];

/// Positions in [`CONTROL_HEADERS`] of the headers with a value of their own.
pub(crate) mod at {
    pub(crate) const CLUSTER: usize = 0;
    pub(crate) const HASH: usize = 1;
    pub(crate) const TIMEOUT: usize = 2;
    pub(crate) const PER_TRY_TIMEOUT: usize = 3;
    pub(crate) const MAX_RETRIES: usize = 4;
    pub(crate) const RETRY_ON: usize = 5;
    pub(crate) const RETRY_GRPC_ON: usize = 6;
    pub(crate) const RETRIABLE_STATUS_CODES: usize = 7;
    pub(crate) const FAULT_DELAY: usize = 11;
    pub(crate) const FAULT_ABORT: usize = 12;
    pub(crate) const FAULT_ABORT_GRPC: usize = 13;
    pub(crate) const ORIGINAL_DST: usize = 17;
    /// `x-meshroute-mirror-0`; mirror `i` is `MIRROR + i`.
    pub(crate) const MIRROR: usize = 18;
}

/// Istio `retryOn` items Envoy only understands in `x-envoy-retry-grpc-on`.
const GRPC_RETRY_ON: [&str; 5] = [
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// Istio's default retry conditions (used when `retry_on` is empty).
const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// The numeric gRPC code of a status name or number (`UNKNOWN`, 2, for anything else).
pub(crate) fn grpc_code(status: &str) -> u32 {
    let text = super::input::strip(status);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().unwrap_or(2);
    }
    let upper = text.to_ascii_uppercase();
    crate::fault::GRPC_STATUSES
        .iter()
        .position(|&name| name == upper)
        .and_then(|i| u32::try_from(i).ok())
        .unwrap_or(2)
}

/// The control header values fixed by the route itself (timeout, retries), by position in
/// [`CONTROL_HEADERS`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RouteControl {
    values: Vec<(usize, Box<str>)>,
}

impl RouteControl {
    /// From the route's `extra` (`timeout_ms`, `retries`; docs/ir.md).
    pub(crate) fn from_extra(extra: &Value) -> Self {
        let mut values = Vec::new();
        if let Some(ms) = get(extra, "timeout_ms").and_then(py_int_str) {
            values.push((at::TIMEOUT, ms.into()));
        }
        if let Some(retries) = get(extra, "retries") {
            values.extend(retry_headers(retries));
        }
        values.sort_by_key(|(i, _)| *i);
        Self { values }
    }

    /// The value of control header `i`, when the route fixes one.
    pub(crate) fn get(&self, i: usize) -> Option<&str> {
        self.values
            .iter()
            .find(|(at, _)| *at == i)
            .map(|(_, v)| &**v)
    }
}

/// Istio retries → `x-envoy-max-retries`, `-retry-on` (HTTP conditions), `-retry-grpc-on`,
/// `-retriable-status-codes`, `-upstream-rq-per-try-timeout-ms`. Nothing for no retries.
fn retry_headers(retries: &Value) -> Vec<(usize, Box<str>)> {
    let mut out = Vec::new();
    let Some(attempts) = get_truthy(retries, "attempts") else {
        return out;
    };
    let Some(max) = py_int_str(attempts) else {
        return out;
    };
    let retry_on =
        get_truthy(retries, "retry_on").map_or_else(|| DEFAULT_RETRY_ON.to_owned(), py_str);
    let mut http: Vec<&str> = Vec::new();
    let mut grpc: Vec<&str> = Vec::new();
    let mut codes: Vec<&str> = Vec::new();
    for item in retry_on.split(',').map(super::input::strip) {
        if item.is_empty() {
            continue;
        }
        if item.bytes().all(|b| b.is_ascii_digit()) {
            if !codes.contains(&item) {
                codes.push(item);
            }
        } else if GRPC_RETRY_ON.contains(&item) {
            grpc.push(item);
        } else if !http.contains(&item) {
            http.push(item);
        }
    }
    if !codes.is_empty() && !http.contains(&"retriable-status-codes") {
        http.push("retriable-status-codes");
    }
    out.push((at::MAX_RETRIES, max.into()));
    if !http.is_empty() {
        out.push((at::RETRY_ON, http.join(",").into()));
    }
    if !grpc.is_empty() {
        out.push((at::RETRY_GRPC_ON, grpc.join(",").into()));
    }
    if !codes.is_empty() {
        out.push((at::RETRIABLE_STATUS_CODES, codes.join(",").into()));
    }
    if let Some(ms) = get(retries, "per_try_timeout_ms").and_then(py_int_str) {
        out.push((at::PER_TRY_TIMEOUT, ms.into()));
    }
    out
}

/// Whether a header name (any case) is a control header, which a route's header operations may
/// not touch.
pub(crate) fn is_control(name: &str) -> bool {
    let lowered = super::input::lower(name);
    CONTROL_HEADERS.contains(&&*lowered)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn control(extra: Value) -> Vec<(&'static str, String)> {
        let c = RouteControl::from_extra(&extra);
        CONTROL_HEADERS
            .iter()
            .enumerate()
            .filter_map(|(i, name)| c.get(i).map(|v| (*name, v.to_owned())))
            .collect()
    }

    #[test]
    fn retries_split_into_http_grpc_and_codes() {
        let got = control(json!({"timeout_ms": 2000, "retries": {
            "attempts": 3, "retry_on": "5xx, unavailable,503,gateway-error,503,5xx",
            "per_try_timeout_ms": 300}}));
        assert_eq!(
            got,
            vec![
                ("x-envoy-upstream-rq-timeout-ms", "2000".into()),
                ("x-envoy-upstream-rq-per-try-timeout-ms", "300".into()),
                ("x-envoy-max-retries", "3".into()),
                (
                    "x-envoy-retry-on",
                    "5xx,gateway-error,retriable-status-codes".into()
                ),
                ("x-envoy-retry-grpc-on", "unavailable".into()),
                ("x-envoy-retriable-status-codes", "503".into()),
            ]
        );
    }

    #[test]
    fn default_and_disabled_retries() {
        let got = control(json!({"timeout_ms": null, "retries": {"attempts": 2, "retry_on": ""}}));
        assert_eq!(
            got,
            vec![
                ("x-envoy-max-retries", "2".into()),
                (
                    "x-envoy-retry-on",
                    "connect-failure,refused-stream,retriable-status-codes".into()
                ),
                ("x-envoy-retry-grpc-on", "unavailable,cancelled".into()),
            ]
        );
        assert!(control(json!({"retries": {"attempts": 0}})).is_empty());
        assert!(control(json!({})).is_empty());
    }

    #[test]
    fn grpc_codes_and_control_names() {
        assert_eq!(grpc_code("UNAVAILABLE"), 14);
        assert_eq!(grpc_code("unavailable"), 14);
        assert_eq!(grpc_code("4"), 4);
        assert_eq!(grpc_code("nonsense"), 2);
        assert!(is_control("X-Envoy-Max-Retries"));
        assert!(!is_control("x-envoy-max-retries-not"));
        assert_eq!(CONTROL_HEADERS[at::MIRROR + 3], "x-meshroute-mirror-3");
        assert_eq!(CONTROL_HEADERS[at::MIRROR..], MIRROR_HEADERS);
        assert_eq!(CONTROL_HEADERS[at::CLUSTER], CLUSTER_HEADER);
        assert_eq!(CONTROL_HEADERS[at::HASH], HASH_HEADER);
        assert_eq!(
            CONTROL_HEADERS[at::ORIGINAL_DST],
            "x-envoy-original-dst-host"
        );
        assert_eq!(
            CONTROL_HEADERS[at::FAULT_ABORT_GRPC],
            "x-envoy-fault-abort-grpc-request"
        );
    }
}
