//! The per-cluster load balancer: health filtering, panic mode, and dispatch
//! to the configured algorithm.
//!
//! Envoy balances over the *healthy* hosts of a cluster. If the healthy
//! share falls below `healthy_panic_threshold` it "will disregard host health
//! status and balance across all hosts" (panic mode). Istio sets that
//! threshold from `outlierDetection.minHealthPercent`, default 0 — panic
//! disabled — so with every host ejected there is no pick: 503 `UH`
//! "no healthy upstream".
//!
//! State (rotation counters, EDF schedules, rings) is per `LoadBalancer`.
//! Envoy keeps it per worker thread; a meshroute process has one per cluster.
//! It is rebuilt lazily when the endpoint set or its health changes.

use std::time::Duration;

use crate::endpoint_set::EndpointSet;
use crate::least_request::LeastRequest;
use crate::maglev::{is_prime, Maglev};
use crate::peak_ewma::PeakEwma;
use crate::policy::{
    HashAlgorithm, LbConfigError, LbPolicy, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MINIMUM_RING_SIZE,
    MAX_MAGLEV_TABLE_SIZE,
};
use crate::random::Random;
use crate::ring_hash::RingHash;
use crate::rng::Rng;
use crate::round_robin::RoundRobin;

/// The outcome of a successful pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Send to endpoint `index` of the set.
    Endpoint {
        /// Position in [`EndpointSet::endpoints`].
        index: usize,
        /// `true` when picked in panic mode (health ignored).
        panic: bool,
    },
    /// PASSTHROUGH: no endpoint selection; use the original destination.
    Passthrough,
}

impl Selection {
    /// The endpoint index, if an endpoint was selected.
    pub fn endpoint(self) -> Option<usize> {
        match self {
            Self::Endpoint { index, .. } => Some(index),
            Self::Passthrough => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Algorithm {
    RoundRobin(RoundRobin),
    Random(Random),
    LeastRequest(LeastRequest),
    RingHash(RingHash),
    Maglev(Maglev),
    PeakEwma(PeakEwma),
    Passthrough,
}

/// A load balancer for one cluster.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    policy: LbPolicy,
    panic_threshold: u32,
    algorithm: Algorithm,
    // Endpoint indices the algorithm was built over, and for which set
    // version / panic state, so we rebuild only when those change.
    candidates: Vec<usize>,
    built_for: Option<((u64, u64), bool)>,
}

impl LoadBalancer {
    /// A balancer for `policy`, panic threshold 0 (Istio's default).
    /// Fails on settings Istio or Envoy would reject.
    pub fn new(policy: LbPolicy) -> Result<Self, LbConfigError> {
        let algorithm = match &policy {
            LbPolicy::RoundRobin => Algorithm::RoundRobin(RoundRobin::default()),
            LbPolicy::Random(c) => Algorithm::Random(Random::new(c.honor_weights)),
            LbPolicy::LeastRequest(c) => {
                if c.choice_count < 2 {
                    return Err(LbConfigError::ChoiceCountTooSmall(c.choice_count));
                }
                if !c.active_request_bias.is_finite() || c.active_request_bias < 0.0 {
                    return Err(LbConfigError::InvalidBias(c.active_request_bias));
                }
                Algorithm::LeastRequest(LeastRequest::new(*c))
            }
            LbPolicy::ConsistentHash { algorithm, .. } => match *algorithm {
                HashAlgorithm::RingHash {
                    minimum_ring_size,
                    maximum_ring_size,
                } => {
                    let minimum = nonzero_or(minimum_ring_size, DEFAULT_MINIMUM_RING_SIZE);
                    if minimum > maximum_ring_size {
                        return Err(LbConfigError::RingSizeInverted {
                            minimum,
                            maximum: maximum_ring_size,
                        });
                    }
                    Algorithm::RingHash(RingHash::new(minimum, maximum_ring_size))
                }
                HashAlgorithm::Maglev { table_size } => {
                    let size = nonzero_or(table_size, DEFAULT_MAGLEV_TABLE_SIZE);
                    if size > MAX_MAGLEV_TABLE_SIZE {
                        return Err(LbConfigError::MaglevTableTooLarge(size));
                    }
                    if !is_prime(size) {
                        return Err(LbConfigError::MaglevTableNotPrime(size));
                    }
                    Algorithm::Maglev(Maglev::new(size))
                }
            },
            LbPolicy::Passthrough => Algorithm::Passthrough,
            LbPolicy::PeakEwma(c) => {
                if c.decay.is_zero() {
                    return Err(LbConfigError::ZeroDecay(c.decay));
                }
                Algorithm::PeakEwma(PeakEwma::new(*c))
            }
        };
        Ok(Self {
            policy,
            panic_threshold: 0,
            algorithm,
            candidates: Vec::new(),
            built_for: None,
        })
    }

    /// Set Envoy's `healthy_panic_threshold` (Istio `minHealthPercent`,
    /// 0–100, clamped): below this percentage of healthy endpoints, balance
    /// over all endpoints. 0 (the Istio default) disables panic mode.
    #[must_use]
    pub fn with_panic_threshold(mut self, percent: u32) -> Self {
        self.panic_threshold = percent.min(100);
        self.built_for = None;
        self
    }

    /// The configured policy.
    pub fn policy(&self) -> &LbPolicy {
        &self.policy
    }

    /// Whether `set` is in panic mode: healthy % strictly below the threshold.
    pub fn in_panic(&self, set: &EndpointSet) -> bool {
        // Integer form of Envoy's `100.0 * healthy / total < threshold`.
        !set.is_empty()
            && (set.healthy_count() as u64) * 100
                < u64::from(self.panic_threshold) * set.len() as u64
    }

    /// Pick an endpoint of `set`.
    ///
    /// `hash` is the request's consistent-hash key ([`crate::hash_key`] of the
    /// hashed attribute); `None` when the request lacks the attribute, which
    /// picks a random host as Envoy does. Other policies ignore it.
    ///
    /// Returns `None` when no endpoint can be used (empty set, or all
    /// ejected without panic): the proxy answers 503 `UH` "no healthy
    /// upstream".
    ///
    /// PEAK_EWMA decays its estimates to the latest time it was given (by [`LoadBalancer::pick_at`]
    /// or [`LoadBalancer::record_latency`]); give the time with `pick_at`.
    pub fn pick(
        &mut self,
        set: &EndpointSet,
        hash: Option<u64>,
        rng: &mut impl Rng,
    ) -> Option<Selection> {
        let now = self.clock();
        self.pick_at(set, hash, rng, now)
    }

    /// [`LoadBalancer::pick`] at time `now` (any monotonic clock, the one
    /// [`LoadBalancer::record_latency`] is given): only PEAK_EWMA reads it.
    pub fn pick_at(
        &mut self,
        set: &EndpointSet,
        hash: Option<u64>,
        rng: &mut impl Rng,
        now: Duration,
    ) -> Option<Selection> {
        let active = set.active_requests();
        self.pick_with_active_at(set, hash, rng, now, |index| active.get(index))
    }

    /// [`LoadBalancer::pick`] with the requests in flight per endpoint read from `active`
    /// (an endpoint index of `set` → its active requests) instead of the set's own gauges.
    ///
    /// For a caller whose proxy already counts them, as Envoy does per host (`rq_active`): a
    /// balancer running inside Envoy asks Envoy for the two hosts LEAST_REQUEST samples rather
    /// than mirroring every host's count. Only LEAST_REQUEST and PEAK_EWMA read it.
    pub fn pick_with_active(
        &mut self,
        set: &EndpointSet,
        hash: Option<u64>,
        rng: &mut impl Rng,
        active: impl Fn(usize) -> u32,
    ) -> Option<Selection> {
        let now = self.clock();
        self.pick_with_active_at(set, hash, rng, now, active)
    }

    /// [`LoadBalancer::pick_with_active`] at time `now` (see [`LoadBalancer::pick_at`]).
    pub fn pick_with_active_at(
        &mut self,
        set: &EndpointSet,
        hash: Option<u64>,
        rng: &mut impl Rng,
        now: Duration,
        active: impl Fn(usize) -> u32,
    ) -> Option<Selection> {
        if matches!(self.algorithm, Algorithm::Passthrough) {
            return Some(Selection::Passthrough);
        }
        let panic = self.in_panic(set);
        if self.built_for != Some((set.version(), panic)) {
            self.rebuild(set, panic);
        }
        if self.candidates.is_empty() {
            return None;
        }
        let pos = match &mut self.algorithm {
            Algorithm::RoundRobin(a) => a.pick(),
            Algorithm::Random(a) => a.pick(rng),
            Algorithm::LeastRequest(a) => a.pick(active, rng),
            Algorithm::RingHash(a) => a.pick(hash.unwrap_or_else(|| rng.next_u64())),
            Algorithm::Maglev(a) => a.pick(hash.unwrap_or_else(|| rng.next_u64())),
            Algorithm::PeakEwma(a) => a.pick(active, rng, now),
            Algorithm::Passthrough => unreachable!("handled above"),
        };
        Some(Selection::Endpoint {
            index: self.candidates[pos],
            panic,
        })
    }

    /// Learn that a request to endpoint `index` of `set` took `latency` (sent until its
    /// response, as the caller measures it), reported at `now`. Only PEAK_EWMA learns from it;
    /// other policies ignore it. An index outside `set` is ignored.
    pub fn record_latency(
        &mut self,
        set: &EndpointSet,
        index: usize,
        latency: Duration,
        now: Duration,
    ) {
        if let Algorithm::PeakEwma(a) = &mut self.algorithm {
            a.record(set, index, latency, now);
        }
    }

    /// PEAK_EWMA: endpoint `index`'s latency estimate at `now`, as a pick would see it; `None`
    /// before its first observation, and for other policies.
    pub fn latency_estimate(
        &self,
        set: &EndpointSet,
        index: usize,
        now: Duration,
    ) -> Option<Duration> {
        match &self.algorithm {
            Algorithm::PeakEwma(a) => a.estimate(set, index, now),
            _ => None,
        }
    }

    /// PEAK_EWMA: the least latency counted for an attempt that ended without a response.
    pub(crate) fn failure_latency(&self) -> Option<Duration> {
        match &self.algorithm {
            Algorithm::PeakEwma(a) => Some(a.failure_latency()),
            _ => None,
        }
    }

    /// The latest time the balancer was given (PEAK_EWMA; zero for the others).
    fn clock(&self) -> Duration {
        match &self.algorithm {
            Algorithm::PeakEwma(a) => a.clock(),
            _ => Duration::ZERO,
        }
    }

    fn rebuild(&mut self, set: &EndpointSet, panic: bool) {
        self.candidates.clear();
        if panic {
            self.candidates.extend(0..set.len());
        } else {
            self.candidates.extend(set.healthy_indices());
        }
        self.built_for = Some((set.version(), panic));
        if self.candidates.is_empty() {
            return;
        }
        let c = &self.candidates;
        match &mut self.algorithm {
            Algorithm::RoundRobin(a) => a.rebuild(set, c),
            Algorithm::Random(a) => a.rebuild(set, c),
            Algorithm::LeastRequest(a) => a.rebuild(set, c),
            Algorithm::RingHash(a) => a.rebuild(set, c),
            Algorithm::Maglev(a) => a.rebuild(set, c),
            Algorithm::PeakEwma(a) => a.rebuild(set, c),
            Algorithm::Passthrough => {}
        }
    }
}

/// Istio can't tell 0 from unset for these sizes, so 0 means the default.
fn nonzero_or(value: u64, default: u64) -> u64 {
    if value == 0 {
        default
    } else {
        value
    }
}
