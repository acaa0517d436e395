//! Load-balancer configuration: DestinationRule `trafficPolicy.loadBalancer`
//! as plain Rust values. `Default` impls are the Istio defaults.

use std::time::Duration;

use crate::hash::HashSource;

/// `LoadBalancerSettings.simple`, spelled as in the Istio enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimpleLb {
    /// "No load balancing algorithm has been specified by the user. Istio
    /// will select an appropriate default" — LEAST_REQUEST since Istio 1.14.
    #[default]
    Unspecified,
    /// Deprecated alias of `LEAST_REQUEST`.
    LeastConn,
    /// "The random load balancer selects a random healthy host."
    Random,
    /// "This option will forward the connection to the original IP address
    /// requested by the caller without doing any form of load balancing."
    Passthrough,
    /// "A basic round robin load balancing policy."
    RoundRobin,
    /// "The least request load balancer spreads load across endpoints,
    /// favoring those with the least outstanding requests."
    LeastRequest,
}

/// `ConsistentHashLB` algorithm oneof. Neither set ⇒ ring hash with
/// `minimumRingSize` 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `ringHash`: ketama ring; see [`crate::LoadBalancer`].
    RingHash {
        /// `minimumRingSize`: "The minimum number of virtual nodes to use
        /// for the hash ring. Defaults to 1024." 0 means unset (1024).
        minimum_ring_size: u64,
        /// Envoy `maximum_ring_size` (Istio doesn't expose it): 8M points.
        maximum_ring_size: u64,
    },
    /// `maglev`: lookup table of prime size.
    Maglev {
        /// `tableSize`: "The table size for Maglev hashing … should be a
        /// prime number" (Istio rejects non-primes). Default 65537; 0 means
        /// unset. At most 5_000_011 (Envoy's limit).
        table_size: u64,
    },
}

/// Envoy's default ring bounds.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
/// Envoy `maximum_ring_size` default (8M).
pub const DEFAULT_MAXIMUM_RING_SIZE: u64 = 8 * 1024 * 1024;
/// Envoy/Istio Maglev default table size.
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65537;
/// Largest Maglev table Envoy accepts.
pub const MAX_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

impl Default for HashAlgorithm {
    fn default() -> Self {
        Self::RingHash {
            minimum_ring_size: DEFAULT_MINIMUM_RING_SIZE,
            maximum_ring_size: DEFAULT_MAXIMUM_RING_SIZE,
        }
    }
}

/// Envoy `LeastRequest` settings; Istio leaves them at Envoy's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeastRequestConfig {
    /// `choice_count`: hosts sampled per pick when weights are equal. Default 2.
    pub choice_count: u32,
    /// `active_request_bias`: exponent in `weight / (active + 1)^bias` when
    /// weights differ. Default 1.0; 0.0 degenerates to weighted round robin.
    pub active_request_bias: f64,
}

impl Default for LeastRequestConfig {
    fn default() -> Self {
        Self {
            choice_count: 2,
            active_request_bias: 1.0,
        }
    }
}

/// RANDOM settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RandomConfig {
    /// Draw in proportion to endpoint weights. Default `false`: Envoy's
    /// random balancer picks uniformly and ignores weights.
    pub honor_weights: bool,
}

/// PEAK_EWMA settings (meshroute's own policy, not Istio's: see [`crate::LoadBalancer`] and the
/// `peak_ewma` module notes). `Default` is what the `meshroute.io/load-balancer: PEAK_EWMA`
/// annotation selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakEwmaConfig {
    /// The time constant τ of the latency estimate: a faster latency pulls the estimate down by
    /// `1 − e^(−Δt/τ)` of the gap (Δt since the previous observation), and the estimate an
    /// endpoint shows while nothing is observed decays towards zero as `e^(−Δt/τ)`. Default 10 s
    /// (Finagle's and Linkerd's default decay time).
    pub decay: Duration,
    /// The least latency counted for an attempt that ended without a response (connect failure,
    /// reset, timeout), so that an endpoint failing fast does not look fast. Default 1 s.
    pub failure_latency: Duration,
}

/// [`PeakEwmaConfig::decay`] by default.
pub const DEFAULT_PEAK_EWMA_DECAY: Duration = Duration::from_secs(10);

impl Default for PeakEwmaConfig {
    fn default() -> Self {
        Self {
            decay: DEFAULT_PEAK_EWMA_DECAY,
            failure_latency: Duration::from_secs(1),
        }
    }
}

/// Slow start: Istio's `warmup` (`warmupDurationSecs`, deprecated, is the same with the
/// defaults), Envoy's `slow_start_config`. An endpoint that joined the cluster less than `window`
/// ago weighs `weight × max(min_weight_percent / 100, time_factor^(1 / aggression))`, with
/// `time_factor = max(elapsed, 1 ms) / window`. ROUND_ROBIN and LEAST_REQUEST only (Istio does
/// not program it for the other policies).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowStart {
    /// `warmup.duration`: how long an endpoint ramps up.
    pub window: Duration,
    /// `warmup.aggression` (default 1.0: linear); above 1 ramps up faster early on.
    pub aggression: f64,
    /// `warmup.minimumPercent` (default 10): the least share of its weight an endpoint gets.
    pub min_weight_percent: f64,
}

impl SlowStart {
    /// Istio's defaults for `window`: aggression 1.0, minimum 10 %.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            aggression: 1.0,
            min_weight_percent: 10.0,
        }
    }

    /// Whether an endpoint that joined `elapsed` ago is still warming up.
    pub fn warming(&self, elapsed: Duration) -> bool {
        elapsed < self.window
    }

    /// The factor on the weight of an endpoint that joined `elapsed` ago (1.0 once warm).
    ///
    /// ```
    /// use std::time::Duration;
    /// use meshroute_lb::SlowStart;
    /// let s = SlowStart::new(Duration::from_secs(10));
    /// assert_eq!(s.factor(Duration::from_secs(5)), 0.5);
    /// assert_eq!(s.factor(Duration::ZERO), 0.1, "the minimum weight, 10 %");
    /// assert_eq!(s.factor(Duration::from_secs(10)), 1.0);
    /// ```
    pub fn factor(&self, elapsed: Duration) -> f64 {
        if !self.warming(elapsed) {
            return 1.0;
        }
        let window_ms = self.window.as_millis().max(1) as f64;
        let time_factor = elapsed.as_millis().max(1) as f64 / window_ms;
        let aggression = if self.aggression.is_finite() && self.aggression > 0.0 {
            self.aggression
        } else {
            1.0
        };
        let ramp = if aggression == 1.0 {
            time_factor
        } else {
            time_factor.powf(1.0 / aggression)
        };
        ramp.max(self.min_weight_percent / 100.0)
    }
}

/// The balancing policy of a cluster: `simple` or `consistentHash`.
#[derive(Debug, Clone, PartialEq)]
pub enum LbPolicy {
    /// ROUND_ROBIN.
    RoundRobin,
    /// RANDOM.
    Random(RandomConfig),
    /// LEAST_REQUEST (also `LEAST_CONN` and `UNSPECIFIED`). The default.
    LeastRequest(LeastRequestConfig),
    /// `consistentHash`: the caller hashes `source` with [`crate::hash_key`].
    ConsistentHash {
        /// Which request attribute to hash.
        source: HashSource,
        /// Ring hash (default) or Maglev.
        algorithm: HashAlgorithm,
    },
    /// PASSTHROUGH: no endpoint selection; the connection goes to the
    /// original destination address.
    Passthrough,
    /// PEAK_EWMA (meshroute's extension, selected by the DestinationRule annotation
    /// `meshroute.io/load-balancer: PEAK_EWMA`): power of two choices on latency estimate ×
    /// (active requests + 1).
    PeakEwma(PeakEwmaConfig),
}

impl Default for LbPolicy {
    fn default() -> Self {
        Self::LeastRequest(LeastRequestConfig::default())
    }
}

impl From<SimpleLb> for LbPolicy {
    fn from(simple: SimpleLb) -> Self {
        match simple {
            SimpleLb::Unspecified | SimpleLb::LeastConn | SimpleLb::LeastRequest => {
                Self::LeastRequest(LeastRequestConfig::default())
            }
            SimpleLb::Random => Self::Random(RandomConfig::default()),
            SimpleLb::RoundRobin => Self::RoundRobin,
            SimpleLb::Passthrough => Self::Passthrough,
        }
    }
}

/// A policy that can't be built; found at construction, never at pick time.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LbConfigError {
    /// Maglev needs a prime table size (Istio validation rejects others).
    #[error("maglev tableSize {0} is not a prime number")]
    MaglevTableNotPrime(u64),
    /// Maglev table larger than Envoy accepts.
    #[error("maglev tableSize {0} exceeds the maximum of 5000011")]
    MaglevTableTooLarge(u64),
    /// Ring bounds inverted.
    #[error("ring hash minimumRingSize {minimum} exceeds maximum {maximum}")]
    RingSizeInverted {
        /// Effective minimum ring size.
        minimum: u64,
        /// Maximum ring size.
        maximum: u64,
    },
    /// `choice_count` below 2 makes least-request a random pick.
    #[error("least request choice_count must be at least 2, got {0}")]
    ChoiceCountTooSmall(u32),
    /// Bias must be a finite, non-negative number.
    #[error("least request active_request_bias must be finite and >= 0, got {0}")]
    InvalidBias(f64),
    /// PEAK_EWMA needs a positive decay time.
    #[error("peak EWMA decay time must be positive, got {0:?}")]
    ZeroDecay(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_enum_mapping() {
        let lr = LbPolicy::LeastRequest(LeastRequestConfig::default());
        assert_eq!(LbPolicy::from(SimpleLb::Unspecified), lr);
        assert_eq!(LbPolicy::from(SimpleLb::LeastConn), lr);
        assert_eq!(LbPolicy::default(), lr);
        assert_eq!(LbPolicy::from(SimpleLb::RoundRobin), LbPolicy::RoundRobin);
        assert_eq!(LbPolicy::from(SimpleLb::Passthrough), LbPolicy::Passthrough);
    }
}
