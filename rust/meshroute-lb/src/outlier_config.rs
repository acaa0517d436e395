//! Outlier-detection settings (DestinationRule `trafficPolicy.outlierDetection`)
//! and the per-request outcomes it learns from.

use std::time::Duration;

/// `OutlierDetection`, with Istio's defaults in `Default`. Detection runs
/// only when a DestinationRule has the block; `Default` is the block present
/// with every field unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// `consecutive5xxErrors`: "Number of 5xx errors before a host is ejected
    /// from the connection pool." Locally originated failures count as 5xx
    /// unless split. Default 5; 0 disables.
    pub consecutive_5xx_errors: u32,
    /// `consecutiveGatewayErrors`: "Number of gateway errors (502, 503, 504)
    /// before a host is ejected." Default 0 = disabled; ineffective when ≥
    /// `consecutive_5xx_errors`.
    pub consecutive_gateway_errors: u32,
    /// `splitExternalLocalOriginErrors`: count locally originated failures
    /// (connect failure, timeout, reset) separately. Default false.
    pub split_external_local_origin_errors: bool,
    /// `consecutiveLocalOriginFailures`: threshold for local-origin failures,
    /// used only when split. Default 5; 0 disables.
    pub consecutive_local_origin_failures: u32,
    /// `interval`: "Time interval between ejection sweep analysis." Default 10s.
    pub interval: Duration,
    /// `baseEjectionTime`: "Minimum ejection duration. A host will remain
    /// ejected for a period equal to the product of minimum ejection duration
    /// and the number of times the host has been ejected." Default 30s; the
    /// product is capped at max(300s, base) (Envoy `max_ejection_time`).
    pub base_ejection_time: Duration,
    /// `maxEjectionPercent`: "Maximum % of hosts in the load balancing pool
    /// … that can be ejected." Default 10; Envoy ejects at least one host
    /// regardless.
    pub max_ejection_percent: u32,
    /// `minHealthPercent`: Envoy `healthy_panic_threshold`. Default 0 (panic
    /// mode disabled; Envoy's own default would be 50).
    pub min_health_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        Self {
            consecutive_5xx_errors: 5,
            consecutive_gateway_errors: 0,
            split_external_local_origin_errors: false,
            consecutive_local_origin_failures: 5,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }
}

impl OutlierDetection {
    /// Envoy's default `max_ejection_time`.
    pub const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

    /// The cap on one ejection: max(300s, base), since Envoy requires
    /// `base_ejection_time <= max_ejection_time` and Istio only sets the base.
    pub fn max_ejection_time(&self) -> Duration {
        self.base_ejection_time.max(Self::DEFAULT_MAX_EJECTION_TIME)
    }
}

/// A failure (or success) noticed by the proxy itself rather than answered by
/// the upstream (Envoy "local origin" results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOrigin {
    /// TCP connection established. Resets the local-origin counter when
    /// split; ignored otherwise (the response outcome follows).
    ConnectSuccess,
    /// Connection refused or failed; counts as a 503 when not split.
    ConnectFailed,
    /// Upstream timed out; counts as a 504 when not split.
    Timeout,
    /// Connection reset mid-request; counts as a 503 when not split.
    Reset,
}

/// What happened to one request on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this HTTP status. Any non-5xx status
    /// (including 4xx) is a success for outlier detection.
    Http(u16),
    /// A locally originated event.
    LocalOrigin(LocalOrigin),
}

impl Outcome {
    /// A locally originated failure: the attempt ended without a response.
    pub fn is_local_failure(self) -> bool {
        matches!(
            self,
            Self::LocalOrigin(
                LocalOrigin::ConnectFailed | LocalOrigin::Timeout | LocalOrigin::Reset
            )
        )
    }

    /// The status a local-origin failure stands for when errors aren't split.
    pub(crate) fn as_status(self) -> Option<u16> {
        match self {
            Self::Http(status) => Some(status),
            Self::LocalOrigin(LocalOrigin::ConnectFailed | LocalOrigin::Reset) => Some(503),
            Self::LocalOrigin(LocalOrigin::Timeout) => Some(504),
            Self::LocalOrigin(LocalOrigin::ConnectSuccess) => None,
        }
    }
}

/// 502, 503 and 504: Envoy's "gateway errors".
pub(crate) fn is_gateway_error(status: u16) -> bool {
    matches!(status, 502..=504)
}
