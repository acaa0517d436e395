//! Circuit-breaker limits (DestinationRule `connectionPool`) and the
//! overflow a request gets when one is hit.

/// Resolved limits (Envoy `circuit_breakers.thresholds`). `Default` is what
/// Istio programs when a field is unset or 0: 2^32−1 for the four limits
/// ("effectively unlimited") and no per-connection request limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitLimits {
    /// Envoy `max_connections` (Istio `tcp.maxConnections`).
    pub max_connections: u32,
    /// Envoy `max_pending_requests` (Istio `http.http1MaxPendingRequests`,
    /// which applies to HTTP/2 as well).
    pub max_pending_requests: u32,
    /// Envoy `max_requests` (Istio `http.http2MaxRequests`, which applies to
    /// HTTP/1.1 as well).
    pub max_requests: u32,
    /// Envoy `max_retries` (Istio `http.maxRetries`): concurrent retries
    /// across the cluster. Istio overrides Envoy's own default of 3.
    pub max_retries: u32,
    /// Istio `http.maxRequestsPerConnection`; 0 = unlimited, 1 = no keep-alive.
    pub max_requests_per_connection: u32,
}

/// The value Istio substitutes for 0/unset limits.
pub const UNLIMITED: u32 = u32::MAX;

impl Default for CircuitLimits {
    fn default() -> Self {
        Self {
            max_connections: UNLIMITED,
            max_pending_requests: UNLIMITED,
            max_requests: UNLIMITED,
            max_retries: UNLIMITED,
            max_requests_per_connection: 0,
        }
    }
}

/// Istio can't tell 0 from unset, so 0 means "Istio default" (unlimited).
fn istio_limit(n: u32) -> u32 {
    if n == 0 {
        UNLIMITED
    } else {
        n
    }
}

impl CircuitLimits {
    /// `tcp.maxConnections` (0 ⇒ unlimited).
    #[must_use]
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = istio_limit(n);
        self
    }
    /// `http.http1MaxPendingRequests` (0 ⇒ unlimited).
    #[must_use]
    pub fn with_http1_max_pending_requests(mut self, n: u32) -> Self {
        self.max_pending_requests = istio_limit(n);
        self
    }
    /// `http.http2MaxRequests` (0 ⇒ unlimited).
    #[must_use]
    pub fn with_http2_max_requests(mut self, n: u32) -> Self {
        self.max_requests = istio_limit(n);
        self
    }
    /// `http.maxRetries` (0 ⇒ unlimited).
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = istio_limit(n);
        self
    }
    /// `http.maxRequestsPerConnection` (0 ⇒ unlimited).
    #[must_use]
    pub fn with_max_requests_per_connection(mut self, n: u32) -> Self {
        self.max_requests_per_connection = n;
        self
    }
}

/// Why a request, connection or retry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overflow {
    /// No connection available and the pending queue is full.
    #[error("pending request queue full (upstream_rq_pending_overflow)")]
    PendingRequests,
    /// `max_requests` requests already active.
    #[error("max requests reached (upstream_rq_pending_overflow)")]
    MaxRequests,
    /// A TCP connection needed while `max_connections` are open.
    #[error("max connections reached (upstream_cx_overflow)")]
    Connections,
    /// `max_retries` retries already in flight: the retry is not attempted
    /// and the original response stands.
    #[error("max retries reached (upstream_rq_retry_overflow)")]
    Retries,
}

impl Overflow {
    /// HTTP status of a request rejected for overflow.
    pub const STATUS: u16 = 503;
    /// Envoy response flag for upstream overflow.
    pub const RESPONSE_FLAG: &'static str = "UO";
    /// Header Envoy adds to a locally rejected request; a downstream Envoy
    /// seeing it does not retry.
    pub const OVERLOADED_HEADER: (&'static str, &'static str) = ("x-envoy-overloaded", "true");
    /// Envoy's response body for an overflowed request.
    pub const BODY: &'static str =
        "upstream connect error or disconnect/reset before headers. reset reason: overflow";

    /// The Envoy cluster counter this overflow increments.
    pub fn counter(self) -> &'static str {
        match self {
            Self::PendingRequests | Self::MaxRequests => "upstream_rq_pending_overflow",
            Self::Connections => "upstream_cx_overflow",
            Self::Retries => "upstream_rq_retry_overflow",
        }
    }
}
