//! A DestinationRule traffic policy as JSON with Istio's field names — the effective policy of one
//! cluster, as meshroute's route table reports it (`Decision.traffic_policy`,
//! `RouteTable.cluster_policy`) — read into this crate's settings.
//!
//! The policy was validated when the config was loaded, so reading is lenient: a value of the
//! wrong type counts as unset (Istio's default). Only text that is not a JSON object is an error.
//! Settings this crate does not model are named in [`TrafficPolicy::unsupported`].
//!
//! One key is meshroute's, not Istio's: `loadBalancer["meshroute.io/load-balancer"]`
//! ([`LOAD_BALANCER_KEY`]), which meshroute's compiler copies from the DestinationRule annotation
//! of that name. `"PEAK_EWMA"` there selects [`LbPolicy::PeakEwma`] in place of `simple` (a
//! `consistentHash` or a `simple: PASSTHROUGH` in force for the cluster wins over it); any
//! other value is ignored (validation rejects it).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::circuit_limits::CircuitLimits;
use crate::hash::HashSource;
use crate::locality::{Distribute, Failover, LocalityLbSetting};
use crate::outlier_config::OutlierDetection;
use crate::policy::{
    HashAlgorithm, LbPolicy, PeakEwmaConfig, SimpleLb, SlowStart, DEFAULT_MAGLEV_TABLE_SIZE,
    DEFAULT_MAXIMUM_RING_SIZE, DEFAULT_MINIMUM_RING_SIZE,
};

/// The DestinationRule annotation (and `loadBalancer` key of the compiled policy) selecting a
/// load balancer Istio does not have.
pub const LOAD_BALANCER_KEY: &str = "meshroute.io/load-balancer";

/// The value of [`LOAD_BALANCER_KEY`] selecting [`LbPolicy::PeakEwma`].
pub const PEAK_EWMA: &str = "PEAK_EWMA";

/// Istio's mesh-wide `connectTimeout` default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The settings of one cluster's traffic policy this crate acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPolicy {
    /// `loadBalancer` (`simple` or `consistentHash`); LEAST_REQUEST when unset.
    pub lb: LbPolicy,
    /// `connectionPool` limits.
    pub limits: CircuitLimits,
    /// `outlierDetection`, when the block is present.
    pub outlier: Option<OutlierDetection>,
    /// `connectionPool.tcp.connectTimeout` (10 s by default).
    pub connect_timeout: Duration,
    /// `loadBalancer.localityLbSetting` as the rule gives it (`None`: absent, the mesh default
    /// applies: [`LocalityLbSetting::effective`]).
    pub locality_lb: Option<LocalityLbSetting>,
    /// `loadBalancer.warmup` (or the deprecated `warmupDurationSecs`): slow start.
    pub slow_start: Option<SlowStart>,
    /// Fields present in the policy that this crate does not apply, as Istio paths
    /// (`tls`, `retryBudget`, …).
    pub unsupported: Vec<&'static str>,
}

impl Default for TrafficPolicy {
    fn default() -> Self {
        Self {
            lb: LbPolicy::default(),
            limits: CircuitLimits::default(),
            outlier: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            locality_lb: None,
            slow_start: None,
            unsupported: Vec::new(),
        }
    }
}

/// Policy text that is not a JSON object (or `null`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traffic policy is not a JSON object: {0}")]
pub struct PolicyError(String);

impl TrafficPolicy {
    /// Read a policy. `""`, `"null"` and `"{}"` are the Istio defaults.
    ///
    /// ```
    /// use meshroute_lb::{istio::TrafficPolicy, LbPolicy};
    /// let p = TrafficPolicy::from_json(
    ///     r#"{"loadBalancer": {"simple": "ROUND_ROBIN"},
    ///         "connectionPool": {"tcp": {"maxConnections": 1}},
    ///         "outlierDetection": {"consecutive5xxErrors": 2, "baseEjectionTime": "3m"}}"#,
    /// ).unwrap();
    /// assert_eq!(p.lb, LbPolicy::RoundRobin);
    /// assert_eq!(p.limits.max_connections, 1);
    /// assert_eq!(p.outlier.unwrap().base_ejection_time.as_secs(), 180);
    /// ```
    ///
    /// # Errors
    /// [`PolicyError`] when `text` is not JSON, or is JSON but not an object.
    pub fn from_json(text: &str) -> Result<Self, PolicyError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        match value {
            Value::Null => Ok(Self::default()),
            Value::Object(map) => Ok(Self::from_map(&map)),
            other => Err(PolicyError(format!("got {other}"))),
        }
    }

    fn from_map(policy: &Map<String, Value>) -> Self {
        let mut out = Self::default();
        let lb = object(policy, "loadBalancer");
        out.lb = load_balancer(lb);
        if let Some(lb) = lb {
            out.locality_lb = object(lb, "localityLbSetting").map(locality_lb_setting);
            out.slow_start = slow_start(lb);
        }
        if let Some(pool) = object(policy, "connectionPool") {
            let (tcp, http) = (object(pool, "tcp"), object(pool, "http"));
            let num = |block: Option<&Map<String, Value>>, key| block.and_then(|b| uint(b, key));
            let limits = CircuitLimits::default()
                .with_max_connections(num(tcp, "maxConnections").unwrap_or(0))
                .with_http1_max_pending_requests(num(http, "http1MaxPendingRequests").unwrap_or(0))
                .with_http2_max_requests(num(http, "http2MaxRequests").unwrap_or(0))
                .with_max_retries(num(http, "maxRetries").unwrap_or(0))
                .with_max_requests_per_connection(
                    num(http, "maxRequestsPerConnection").unwrap_or(0),
                );
            out.limits = limits;
            if let Some(t) = tcp.and_then(|t| t.get("connectTimeout")).and_then(duration) {
                out.connect_timeout = t;
            }
        }
        if let Some(od) = object(policy, "outlierDetection") {
            out.outlier = Some(outlier_detection(od));
        }
        for (key, path) in [
            ("tls", "tls"),
            ("retryBudget", "retryBudget"),
            ("tunnel", "tunnel"),
            ("proxyProtocol", "proxyProtocol"),
        ] {
            if present(policy, key) {
                out.unsupported.push(path);
            }
        }
        out
    }
}

fn load_balancer(lb: Option<&Map<String, Value>>) -> LbPolicy {
    let Some(lb) = lb else {
        return LbPolicy::default();
    };
    if let Some(ch) = object(lb, "consistentHash") {
        return LbPolicy::ConsistentHash {
            source: hash_source(ch),
            algorithm: hash_algorithm(ch),
        };
    }
    let simple = lb.get("simple").and_then(Value::as_str).unwrap_or("");
    if simple != "PASSTHROUGH" && text(lb, LOAD_BALANCER_KEY) == Some(PEAK_EWMA) {
        return LbPolicy::PeakEwma(PeakEwmaConfig::default());
    }
    let simple = match simple {
        "ROUND_ROBIN" => SimpleLb::RoundRobin,
        "RANDOM" => SimpleLb::Random,
        "PASSTHROUGH" => SimpleLb::Passthrough,
        "LEAST_CONN" => SimpleLb::LeastConn,
        "LEAST_REQUEST" => SimpleLb::LeastRequest,
        _ => SimpleLb::Unspecified,
    };
    simple.into()
}

/// The hashed attribute; a block naming none (validation forbids it) hashes a header no request
/// has, so every request gets a random host, as Envoy does for a missing attribute.
fn hash_source(ch: &Map<String, Value>) -> HashSource {
    if let Some(name) = text(ch, "httpHeaderName") {
        return HashSource::HttpHeaderName(name.to_ascii_lowercase());
    }
    if let Some(cookie) = object(ch, "httpCookie") {
        return HashSource::HttpCookie {
            name: text(cookie, "name").unwrap_or_default().to_owned(),
            path: text(cookie, "path").map(str::to_owned),
            ttl: cookie.get("ttl").and_then(duration),
        };
    }
    if ch.get("useSourceIp").and_then(Value::as_bool) == Some(true) {
        return HashSource::UseSourceIp;
    }
    if let Some(name) = text(ch, "httpQueryParameterName") {
        return HashSource::HttpQueryParameterName(name.to_owned());
    }
    HashSource::HttpHeaderName(String::new())
}

fn hash_algorithm(ch: &Map<String, Value>) -> HashAlgorithm {
    if let Some(maglev) = object(ch, "maglev") {
        return HashAlgorithm::Maglev {
            table_size: uint64(maglev, "tableSize").unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE),
        };
    }
    let minimum = object(ch, "ringHash")
        .and_then(|r| uint64(r, "minimumRingSize"))
        .or_else(|| uint64(ch, "minimumRingSize"))
        .unwrap_or(DEFAULT_MINIMUM_RING_SIZE);
    HashAlgorithm::RingHash {
        minimum_ring_size: minimum,
        maximum_ring_size: DEFAULT_MAXIMUM_RING_SIZE,
    }
}

fn locality_lb_setting(setting: &Map<String, Value>) -> LocalityLbSetting {
    let list = |key| {
        setting
            .get(key)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    };
    let distribute = list("distribute")
        .iter()
        .filter_map(Value::as_object)
        .map(|d| Distribute {
            from: text(d, "from").unwrap_or_default().to_owned(),
            to: object(d, "to").map_or_else(Vec::new, |to| {
                to.iter()
                    .map(|(locality, weight)| {
                        let weight = match weight {
                            Value::Number(n) => n.as_u64(),
                            Value::String(s) => s.trim().parse().ok(),
                            _ => None,
                        };
                        (
                            locality.clone(),
                            weight.map_or(0, |w| u32::try_from(w).unwrap_or(u32::MAX)),
                        )
                    })
                    .collect()
            }),
        })
        .collect();
    let failover = list("failover")
        .iter()
        .filter_map(Value::as_object)
        .map(|f| Failover {
            from: text(f, "from").unwrap_or_default().to_owned(),
            to: text(f, "to").unwrap_or_default().to_owned(),
        })
        .collect();
    let failover_priority = list("failoverPriority")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let enabled = match setting.get("enabled") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Object(o)) => o.get("value").and_then(Value::as_bool),
        _ => None,
    };
    LocalityLbSetting {
        distribute,
        failover,
        failover_priority,
        enabled,
    }
}

/// `warmup` (`duration`, `minimumPercent`, `aggression`), else `warmupDurationSecs`.
fn slow_start(lb: &Map<String, Value>) -> Option<SlowStart> {
    let number = |block: &Map<String, Value>, key: &str| -> Option<f64> {
        match block.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Object(o) => o.get("value").and_then(Value::as_f64),
            _ => None,
        }
    };
    if let Some(warmup) = object(lb, "warmup") {
        let mut out = SlowStart::new(warmup.get("duration").and_then(duration)?);
        if let Some(a) = number(warmup, "aggression").filter(|a| *a > 0.0) {
            out.aggression = a;
        }
        if let Some(m) = number(warmup, "minimumPercent") {
            out.min_weight_percent = m.clamp(0.0, 100.0);
        }
        return Some(out);
    }
    let window = lb.get("warmupDurationSecs").and_then(duration)?;
    Some(SlowStart::new(window))
}

fn outlier_detection(od: &Map<String, Value>) -> OutlierDetection {
    let mut out = OutlierDetection::default();
    if let Some(n) = uint(od, "consecutive5xxErrors") {
        out.consecutive_5xx_errors = n;
    }
    if let Some(n) = uint(od, "consecutiveGatewayErrors") {
        out.consecutive_gateway_errors = n;
    }
    if let Some(b) = od
        .get("splitExternalLocalOriginErrors")
        .and_then(Value::as_bool)
    {
        out.split_external_local_origin_errors = b;
    }
    if let Some(n) = uint(od, "consecutiveLocalOriginFailures") {
        out.consecutive_local_origin_failures = n;
    }
    if let Some(d) = od.get("interval").and_then(duration) {
        out.interval = d;
    }
    if let Some(d) = od.get("baseEjectionTime").and_then(duration) {
        out.base_ejection_time = d;
    }
    if let Some(n) = uint(od, "maxEjectionPercent") {
        out.max_ejection_percent = n.min(100);
    }
    if let Some(n) = uint(od, "minHealthPercent") {
        out.min_health_percent = n.min(100);
    }
    out
}

fn object<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    map.get(key).and_then(Value::as_object)
}

fn present(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|v| !v.is_null())
}

fn text<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    map.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A non-negative integer: a JSON number, a digit string (uint64 wrappers) or `{"value": n}`.
fn uint64(map: &Map<String, Value>, key: &str) -> Option<u64> {
    fn of(v: &Value) -> Option<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Object(o) => o.get("value").and_then(of),
            _ => None,
        }
    }
    map.get(key).and_then(of)
}

/// [`uint64`], saturated to `u32`.
fn uint(map: &Map<String, Value>, key: &str) -> Option<u32> {
    uint64(map, key).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// An Istio duration: Go syntax (`"1m30s"`, `"100ms"`, `"1.5h"`), proto-JSON (`"3.000s"`),
/// `{"seconds": s, "nanos": n}`, or a number of seconds. Negative or malformed → `None`.
///
/// ```
/// use std::time::Duration;
/// use meshroute_lb::istio::duration_of;
/// assert_eq!(duration_of("1m30s"), Some(Duration::from_secs(90)));
/// assert_eq!(duration_of("0.250s"), Some(Duration::from_millis(250)));
/// assert_eq!(duration_of("3"), None);
/// ```
pub fn duration_of(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).ok()
}

fn duration(v: &Value) -> Option<Duration> {
    match v {
        Value::String(s) => duration_of(s),
        Value::Number(n) => n.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok()),
        Value::Object(o) => {
            let secs = o.get("seconds").map_or(Some(0), |s| match s {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })?;
            let nanos = o.get("nanos").and_then(Value::as_u64).unwrap_or(0);
            Some(Duration::from_secs(secs) + Duration::from_nanos(nanos))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{LeastRequestConfig, RandomConfig};
    use crate::UNLIMITED;

    fn read(text: &str) -> TrafficPolicy {
        TrafficPolicy::from_json(text).unwrap()
    }

    #[test]
    fn defaults() {
        for text in ["", "null", "{}", " { } "] {
            let p = read(text);
            assert_eq!(p, TrafficPolicy::default(), "{text:?}");
        }
        assert_eq!(
            read("{}").lb,
            LbPolicy::LeastRequest(LeastRequestConfig::default())
        );
        assert_eq!(read("{}").limits.max_connections, UNLIMITED);
        assert!(TrafficPolicy::from_json("[1]").is_err());
        assert!(TrafficPolicy::from_json("{").is_err());
    }

    #[test]
    fn simple_and_hash() {
        assert_eq!(
            read(r#"{"loadBalancer":{"simple":"RANDOM"}}"#).lb,
            LbPolicy::Random(RandomConfig::default())
        );
        assert_eq!(
            read(r#"{"loadBalancer":{"simple":"PASSTHROUGH"}}"#).lb,
            LbPolicy::Passthrough
        );
        assert_eq!(
            read(r#"{"loadBalancer":{"consistentHash":{"httpHeaderName":"End-User"}}}"#).lb,
            LbPolicy::ConsistentHash {
                source: HashSource::HttpHeaderName("end-user".into()),
                algorithm: HashAlgorithm::default(),
            }
        );
        let cookie = read(
            r#"{"loadBalancer":{"consistentHash":{"httpCookie":{"name":"s","path":"/","ttl":"0s"},
                "maglev":{"tableSize":"1009"}}}}"#,
        );
        assert_eq!(
            cookie.lb,
            LbPolicy::ConsistentHash {
                source: HashSource::HttpCookie {
                    name: "s".into(),
                    path: Some("/".into()),
                    ttl: Some(Duration::ZERO),
                },
                algorithm: HashAlgorithm::Maglev { table_size: 1009 },
            }
        );
        let ring = read(
            r#"{"loadBalancer":{"consistentHash":{"useSourceIp":true,"ringHash":{"minimumRingSize":64}}}}"#,
        );
        assert_eq!(
            ring.lb,
            LbPolicy::ConsistentHash {
                source: HashSource::UseSourceIp,
                algorithm: HashAlgorithm::RingHash {
                    minimum_ring_size: 64,
                    maximum_ring_size: DEFAULT_MAXIMUM_RING_SIZE
                },
            }
        );
        let legacy = read(
            r#"{"loadBalancer":{"consistentHash":{"httpQueryParameterName":"u","minimumRingSize":99},
                "localityLbSetting":{"enabled":true},"warmupDurationSecs":"10s"}}"#,
        );
        assert!(matches!(
            legacy.lb,
            LbPolicy::ConsistentHash {
                source: HashSource::HttpQueryParameterName(_),
                algorithm: HashAlgorithm::RingHash {
                    minimum_ring_size: 99,
                    ..
                },
            }
        ));
        assert!(legacy.unsupported.is_empty(), "{:?}", legacy.unsupported);
        assert_eq!(
            legacy.locality_lb,
            Some(LocalityLbSetting {
                enabled: Some(true),
                ..LocalityLbSetting::default()
            })
        );
        assert_eq!(
            legacy.slow_start,
            Some(SlowStart::new(Duration::from_secs(10)))
        );
    }

    #[test]
    fn locality_lb_setting_and_warmup() {
        let p = read(
            r#"{"loadBalancer":{"simple":"ROUND_ROBIN",
                "localityLbSetting":{
                  "distribute":[{"from":"us/*","to":{"us/a/*":70,"eu/*":"30"}}],
                  "failover":[{"from":"us","to":"eu"}],
                  "failoverPriority":["topology.istio.io/network","k=v"],
                  "enabled":{"value":false}},
                "warmup":{"duration":"30s","minimumPercent":5,"aggression":2.5}}}"#,
        );
        let setting = p.locality_lb.expect("localityLbSetting");
        assert_eq!(
            setting.distribute,
            vec![Distribute {
                from: "us/*".into(),
                to: vec![("eu/*".into(), 30), ("us/a/*".into(), 70)],
            }]
        );
        assert_eq!(
            setting.failover,
            vec![Failover {
                from: "us".into(),
                to: "eu".into()
            }]
        );
        assert_eq!(
            setting.failover_priority,
            vec!["topology.istio.io/network", "k=v"]
        );
        assert_eq!(setting.enabled, Some(false));
        assert_eq!(
            p.slow_start,
            Some(SlowStart {
                window: Duration::from_secs(30),
                aggression: 2.5,
                min_weight_percent: 5.0
            })
        );
        assert_eq!(read("{}").locality_lb, None);
        assert_eq!(read(r#"{"loadBalancer":{"warmup":{}}}"#).slow_start, None);
    }

    #[test]
    fn the_meshroute_annotation_key_selects_peak_ewma_where_no_hash_or_passthrough_is_in_force() {
        let peak = LbPolicy::PeakEwma(PeakEwmaConfig::default());
        for text in [
            r#"{"loadBalancer":{"meshroute.io/load-balancer":"PEAK_EWMA"}}"#,
            r#"{"loadBalancer":{"simple":"ROUND_ROBIN","meshroute.io/load-balancer":"PEAK_EWMA"}}"#,
            r#"{"loadBalancer":{"simple":"LEAST_REQUEST","meshroute.io/load-balancer":"PEAK_EWMA",
                "warmupDurationSecs":"10s"}}"#,
        ] {
            assert_eq!(read(text).lb, peak, "{text}");
        }
        assert!(matches!(
            read(
                r#"{"loadBalancer":{"consistentHash":{"useSourceIp":true},
                    "meshroute.io/load-balancer":"PEAK_EWMA"}}"#
            )
            .lb,
            LbPolicy::ConsistentHash { .. }
        ));
        assert_eq!(
            read(r#"{"loadBalancer":{"simple":"PASSTHROUGH","meshroute.io/load-balancer":"PEAK_EWMA"}}"#).lb,
            LbPolicy::Passthrough
        );
        for other in [r#""peak_ewma""#, r#""P2C""#, "1", "null"] {
            let text = format!(
                r#"{{"loadBalancer":{{"simple":"RANDOM","meshroute.io/load-balancer":{other}}}}}"#
            );
            assert_eq!(
                read(&text).lb,
                LbPolicy::Random(RandomConfig::default()),
                "{text}"
            );
        }
    }

    #[test]
    fn pool_and_outlier() {
        // Istio's circuit-breaking task.
        let p = read(
            r#"{"connectionPool":{"tcp":{"maxConnections":1,"connectTimeout":"250ms"},
                 "http":{"http1MaxPendingRequests":1,"maxRequestsPerConnection":1,"maxRetries":"3"}},
                "outlierDetection":{"consecutive5xxErrors":1,"interval":"1s","baseEjectionTime":"3m",
                 "maxEjectionPercent":100}}"#,
        );
        assert_eq!(
            p.limits,
            CircuitLimits::default()
                .with_max_connections(1)
                .with_http1_max_pending_requests(1)
                .with_max_requests_per_connection(1)
                .with_max_retries(3)
        );
        assert_eq!(p.connect_timeout, Duration::from_millis(250));
        let od = p.outlier.unwrap();
        assert_eq!(od.consecutive_5xx_errors, 1);
        assert_eq!(od.interval, Duration::from_secs(1));
        assert_eq!(od.base_ejection_time, Duration::from_secs(180));
        assert_eq!(od.max_ejection_percent, 100);
        assert_eq!(od.min_health_percent, 0);
        assert_eq!(
            read(r#"{"outlierDetection":{}}"#).outlier,
            Some(OutlierDetection::default())
        );
        let odd = read(
            r#"{"outlierDetection":{"consecutive5xxErrors":{"value":0},"consecutiveGatewayErrors":3,
                "splitExternalLocalOriginErrors":true,"consecutiveLocalOriginFailures":2,
                "minHealthPercent":150,"interval":{"seconds":"2","nanos":500000000}},"tls":{"mode":"SIMPLE"}}"#,
        )
        .outlier
        .unwrap();
        assert_eq!(
            (
                odd.consecutive_5xx_errors,
                odd.consecutive_gateway_errors,
                odd.consecutive_local_origin_failures
            ),
            (0, 3, 2)
        );
        assert!(odd.split_external_local_origin_errors);
        assert_eq!(odd.min_health_percent, 100);
        assert_eq!(odd.interval, Duration::from_millis(2500));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_of("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(duration_of("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(duration_of("10us"), Some(Duration::from_micros(10)));
        assert_eq!(duration_of("0"), Some(Duration::ZERO));
        for bad in ["", "s", "1x", "-1s", "1..2s", "1s2"] {
            assert_eq!(duration_of(bad), None, "{bad:?}");
        }
    }
}
