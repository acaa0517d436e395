//! The per-cluster load balancer: priorities, localities, health filtering, panic mode, and
//! dispatch to the configured algorithm.
//!
//! Envoy balances over the *healthy* hosts of a cluster, priority by priority: each priority
//! takes the share of the traffic its health allows (overprovisioning factor 1.4), the rest
//! spills to the next ([`crate::priority_load`]). If a priority's healthy share falls below
//! `healthy_panic_threshold` while the cluster is short of healthy hosts, it "will disregard host
//! health status and balance across all hosts" (panic mode). Istio sets that threshold from
//! `outlierDetection.minHealthPercent`, default 0 — panic disabled — so with every host ejected
//! there is no pick: 503 `UH` "no healthy upstream". With locality-weighted balancing a pick
//! first chooses a locality of the priority by weight.
//!
//! State (rotation counters, EDF schedules, rings) is per `LoadBalancer`, one per host source
//! (a priority, or a locality), as Envoy keeps it per source and per worker thread; a meshroute
//! process has one balancer per cluster. It is rebuilt lazily when the endpoint set or its
//! health changes.

use std::time::Duration;

use crate::edf::Edf;
use crate::endpoint_set::EndpointSet;
use crate::least_request::LeastRequest;
use crate::maglev::{is_prime, Maglev};
use crate::peak_ewma::PeakEwma;
use crate::policy::{
    HashAlgorithm, LbConfigError, LbPolicy, SlowStart, DEFAULT_MAGLEV_TABLE_SIZE,
    DEFAULT_MINIMUM_RING_SIZE, MAX_MAGLEV_TABLE_SIZE,
};
use crate::priority::{choose_priority, priority_load, PriorityLoad, OVERPROVISIONING_FACTOR};
use crate::random::Random;
use crate::ring_hash::RingHash;
use crate::rng::Rng;
use crate::round_robin::RoundRobin;
use crate::warmup::Warmup;

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

impl Algorithm {
    fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize], warm: &Warmup<'_>) {
        match self {
            Algorithm::RoundRobin(a) => a.rebuild(set, candidates, warm),
            Algorithm::Random(a) => a.rebuild(set, candidates),
            Algorithm::LeastRequest(a) => a.rebuild(set, candidates, warm),
            Algorithm::RingHash(a) => a.rebuild(set, candidates),
            Algorithm::Maglev(a) => a.rebuild(set, candidates),
            Algorithm::PeakEwma(a) => a.rebuild(set, candidates),
            Algorithm::Passthrough => {}
        }
    }
}

/// Which hosts a pick draws from: a priority's (healthy, or all of them in panic), or one
/// locality group's healthy hosts (locality-weighted balancing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceKey {
    Priority(u32),
    Locality(usize),
}

/// One source's algorithm and the candidates it was built over.
#[derive(Debug, Clone)]
struct Source {
    key: SourceKey,
    algorithm: Algorithm,
    candidates: Vec<usize>,
    /// The plan generation and panic state it was built for.
    built_for: Option<(u64, bool)>,
}

/// One priority as the plan sees it.
#[derive(Debug, Clone, Default)]
struct PriorityHosts {
    all: Vec<usize>,
    healthy: Vec<usize>,
    /// Locality-weighted balancing: (group, effective weight) of the groups with any weight
    /// left, and the EDF schedule over them.
    localities: Vec<(usize, f64)>,
    schedule: Option<Edf>,
}

/// What the current endpoint set and health give: loads, panic, hosts per priority.
#[derive(Debug, Clone, Default)]
struct Plan {
    load: PriorityLoad,
    priorities: Vec<PriorityHosts>,
    /// More than one priority takes traffic: a pick draws its priority.
    spread: bool,
    /// The first priority taking traffic (when not `spread`).
    first: u32,
}

/// A load balancer for one cluster.
#[derive(Debug, Clone)]
pub struct LoadBalancer {
    policy: LbPolicy,
    panic_threshold: u32,
    slow_start: Option<SlowStart>,
    /// A fresh algorithm for the policy, cloned for each new source.
    template: Algorithm,
    sources: Vec<Source>,
    plan: Plan,
    /// Bumped on every plan rebuild; sources compare it to know when to rebuild.
    plan_generation: u64,
    // The set version the plan was built for, and until when endpoints warm up.
    built_for: Option<(u64, u64)>,
    warm_until: Option<Duration>,
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
            slow_start: None,
            template: algorithm,
            sources: Vec::new(),
            plan: Plan::default(),
            plan_generation: 0,
            built_for: None,
            warm_until: None,
        })
    }

    /// Set Envoy's `healthy_panic_threshold` (Istio `minHealthPercent`,
    /// 0–100, clamped): a priority whose healthy share is below it, while the priorities
    /// together are short of hosts, is balanced over all its hosts. 0 (the Istio default)
    /// disables panic mode.
    #[must_use]
    pub fn with_panic_threshold(mut self, percent: u32) -> Self {
        self.panic_threshold = percent.min(100);
        self.built_for = None;
        self
    }

    /// Slow start (Istio `warmup`): endpoints that joined the cluster recently
    /// ([`crate::Endpoint::added_at`]) ramp up their weight. Applied by ROUND_ROBIN and
    /// LEAST_REQUEST; the other policies ignore it, as Istio does not program it for them.
    #[must_use]
    pub fn with_slow_start(mut self, slow_start: Option<SlowStart>) -> Self {
        self.slow_start = match self.policy {
            LbPolicy::RoundRobin | LbPolicy::LeastRequest(_) => slow_start,
            _ => None,
        };
        self.built_for = None;
        self
    }

    /// The configured policy.
    pub fn policy(&self) -> &LbPolicy {
        &self.policy
    }

    /// The slow start in force (`None` without, or for a policy that ignores it).
    pub fn slow_start(&self) -> Option<&SlowStart> {
        self.slow_start.as_ref()
    }

    /// Whether `set` has a priority in panic (see [`crate::priority_load`]).
    pub fn in_panic(&self, set: &EndpointSet) -> bool {
        priority_load(&priority_counts(set), self.panic_threshold)
            .panic
            .into_iter()
            .any(|p| p)
    }

    /// The share of requests (percent) each priority of `set` gets now, Envoy's priority load
    /// with the overprovisioning factor 1.4.
    pub fn priority_load(&self, set: &EndpointSet) -> PriorityLoad {
        priority_load(&priority_counts(set), self.panic_threshold)
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
    /// PEAK_EWMA decays its estimates, and slow start ramps weights, to the latest time it was
    /// given (by [`LoadBalancer::pick_at`] or [`LoadBalancer::record_latency`]); give the time
    /// with `pick_at`.
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
    /// [`LoadBalancer::record_latency`] is given): PEAK_EWMA and slow start read it.
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
    ///
    /// The priority comes first: with more than one priority taking traffic, a draw (the hash
    /// key for a consistent hash, else a random number) against the priority loads, as Envoy's
    /// `choosePriority`. Then, within it: all its hosts in panic; else, with locality-weighted
    /// balancing, one locality by an EDF schedule over `weight × min(1, 1.4 × healthy share)`;
    /// else its healthy hosts. The policy's algorithm picks among those.
    pub fn pick_with_active_at(
        &mut self,
        set: &EndpointSet,
        hash: Option<u64>,
        rng: &mut impl Rng,
        now: Duration,
        active: impl Fn(usize) -> u32,
    ) -> Option<Selection> {
        if matches!(self.template, Algorithm::Passthrough) {
            return Some(Selection::Passthrough);
        }
        let version = set.version();
        let warmed = self.warm_until.is_some_and(|until| now >= until);
        if self.built_for != Some(version) || warmed {
            self.rebuild(set, now);
        }
        let priority = if self.plan.spread {
            let consistent = matches!(self.policy, LbPolicy::ConsistentHash { .. });
            let draw = match hash {
                Some(h) if consistent => h,
                _ => rng.next_u64(),
            };
            choose_priority(&self.plan.load.load, draw)
        } else {
            self.plan.first as usize
        };
        let panic = self.plan.load.panic.get(priority).copied().unwrap_or(false);
        let hosts = self.plan.priorities.get_mut(priority)?;
        let locality = if panic {
            None
        } else {
            hosts.schedule.as_mut().and_then(|edf| {
                let localities = &hosts.localities;
                edf.pick(|pos| localities[pos].1)
                    .map(|pos| localities[pos].0)
            })
        };
        let key = match locality {
            Some(group) => SourceKey::Locality(group),
            None => SourceKey::Priority(priority as u32),
        };
        let warm = Warmup {
            slow_start: self.slow_start.as_ref(),
            set,
            now,
        };
        let at = match self.sources.iter().position(|s| s.key == key) {
            Some(at) => at,
            None => {
                let algorithm = self.template.clone();
                self.sources.push(Source {
                    key,
                    algorithm,
                    candidates: Vec::new(),
                    built_for: None,
                });
                self.sources.len() - 1
            }
        };
        let state = (self.plan_generation, panic);
        let hosts = &self.plan.priorities[priority];
        let source = &mut self.sources[at];
        if source.built_for != Some(state) {
            source.candidates.clear();
            match key {
                SourceKey::Locality(group) => source.candidates.extend(
                    set.groups()[group]
                        .members
                        .iter()
                        .copied()
                        .filter(|&i| !set.is_ejected(i)),
                ),
                SourceKey::Priority(_) if panic => source.candidates.extend_from_slice(&hosts.all),
                SourceKey::Priority(_) => source.candidates.extend_from_slice(&hosts.healthy),
            }
            source.built_for = Some(state);
            if !source.candidates.is_empty() {
                source.algorithm.rebuild(set, &source.candidates, &warm);
            }
        }
        if source.candidates.is_empty() {
            return None;
        }
        let pos = match &mut source.algorithm {
            Algorithm::RoundRobin(a) => a.pick(&warm),
            Algorithm::Random(a) => a.pick(rng),
            Algorithm::LeastRequest(a) => a.pick(active, rng, &warm),
            Algorithm::RingHash(a) => a.pick(hash.unwrap_or_else(|| rng.next_u64())),
            Algorithm::Maglev(a) => a.pick(hash.unwrap_or_else(|| rng.next_u64())),
            Algorithm::PeakEwma(a) => a.pick(active, rng, now),
            Algorithm::Passthrough => unreachable!("handled above"),
        };
        Some(Selection::Endpoint {
            index: source.candidates[pos],
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
        let algorithms = std::iter::once(&mut self.template)
            .chain(self.sources.iter_mut().map(|s| &mut s.algorithm));
        for algorithm in algorithms {
            if let Algorithm::PeakEwma(a) = algorithm {
                a.record(set, index, latency, now);
            }
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
        match &self.template {
            Algorithm::PeakEwma(a) => a.estimate(set, index, now),
            _ => None,
        }
    }

    /// PEAK_EWMA: the least latency counted for an attempt that ended without a response.
    pub(crate) fn failure_latency(&self) -> Option<Duration> {
        match &self.template {
            Algorithm::PeakEwma(a) => Some(a.failure_latency()),
            _ => None,
        }
    }

    /// The latest time the balancer was given (PEAK_EWMA; zero for the others).
    fn clock(&self) -> Duration {
        std::iter::once(&self.template)
            .chain(self.sources.iter().map(|s| &s.algorithm))
            .filter_map(|a| match a {
                Algorithm::PeakEwma(a) => Some(a.clock()),
                _ => None,
            })
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Recompute the plan (priority loads, panic, hosts per priority and locality) for `set`.
    fn rebuild(&mut self, set: &EndpointSet, now: Duration) {
        let warm = Warmup {
            slow_start: self.slow_start.as_ref(),
            set,
            now,
        };
        self.warm_until = warm.until();
        self.built_for = Some(set.version());
        // Sources keep their state across rebuilds (a rotation's position, PEAK_EWMA's
        // estimates by address), and rebuild their candidates when they see the new generation.
        self.plan_generation += 1;
        let n = set.priorities();
        let mut priorities = vec![PriorityHosts::default(); n];
        for i in 0..set.len() {
            if let Some(p) = set.priority(i) {
                let hosts = &mut priorities[p as usize];
                hosts.all.push(i);
                if !set.is_ejected(i) {
                    hosts.healthy.push(i);
                }
            }
        }
        let counts: Vec<(usize, usize)> = priorities
            .iter()
            .map(|h| (h.healthy.len(), h.all.len()))
            .collect();
        let load = priority_load(&counts, self.panic_threshold);
        if set.locality_weighted() {
            for (g, group) in set.groups().iter().enumerate() {
                let total = group.members.len();
                let healthy = group
                    .members
                    .iter()
                    .filter(|&&i| !set.is_ejected(i))
                    .count();
                let share = (OVERPROVISIONING_FACTOR as f64 / 100.0 * healthy as f64
                    / total.max(1) as f64)
                    .min(1.0);
                let weight = f64::from(group.weight.unwrap_or(0)) * share;
                if weight > 0.0 {
                    priorities[group.priority as usize]
                        .localities
                        .push((g, weight));
                }
            }
            for hosts in &mut priorities {
                if !hosts.localities.is_empty() {
                    hosts.schedule = Some(Edf::new(hosts.localities.iter().map(|&(_, w)| w)));
                }
            }
        }
        let taking: Vec<usize> = (0..n).filter(|&p| load.load[p] > 0).collect();
        self.plan = Plan {
            spread: taking.len() > 1,
            first: taking.first().map_or(0, |&p| p as u32),
            load,
            priorities,
        };
    }
}

/// `(healthy, total)` hosts of each priority of `set`.
fn priority_counts(set: &EndpointSet) -> Vec<(usize, usize)> {
    let mut counts = vec![(0, 0); set.priorities()];
    for i in 0..set.len() {
        if let Some(p) = set.priority(i) {
            let c = &mut counts[p as usize];
            c.1 += 1;
            if !set.is_ejected(i) {
                c.0 += 1;
            }
        }
    }
    counts
}

/// Istio can't tell 0 from unset for these sizes, so 0 means the default.
fn nonzero_or(value: u64, default: u64) -> u64 {
    if value == 0 {
        default
    } else {
        value
    }
}
