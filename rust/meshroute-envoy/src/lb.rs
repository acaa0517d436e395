//! Load balancing inside Envoy: meshroute-lb as an Envoy load-balancing policy.
//!
//! A cluster whose `load_balancing_policy` is `envoy.load_balancing_policies.dynamic_modules`
//! with `lb_policy_name: meshroute` ([`LB_POLICY_NAME`]) lets this module choose its hosts. Envoy
//! keeps the cluster (hosts, health, connection pools, circuit breakers, outlier detection) and
//! asks the module, on the worker thread of each request, for a host: a priority and an index
//! into that priority's *healthy* hosts.
//!
//! `lb_policy_config` (a `google.protobuf.StringValue`; Envoy hands the module its bytes) is a
//! JSON object, the cluster's effective DestinationRule `loadBalancer`:
//!
//! | key | value |
//! |---|---|
//! | `cluster` | the Istio cluster name, for log lines |
//! | `policy` | `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST`, `RING_HASH`, `MAGLEV` or `PEAK_EWMA` |
//! | `minimum_ring_size`, `maximum_ring_size` | `RING_HASH` (defaults 1024 and 8M, Envoy's) |
//! | `table_size` | `MAGLEV`, a prime (default 65537) |
//! | `choice_count`, `active_request_bias` | `LEAST_REQUEST` (defaults 2 and 1.0, Envoy's) |
//! | `decay_ms` | `PEAK_EWMA`: the estimate's time constant τ (default 10 000) |
//! | `hash` | consistent hash: what the DestinationRule hashes, `{"header": name}`, `{"cookie": name}`, `{"query_parameter": name}` or `{"source_ip": true}` (informational: the HTTP filter turns it into the route's hash key) |
//! | `hash_header` | consistent hash, when Envoy's route computes no hash: the request header whose value is hashed (xxHash64, as Envoy hashes a header) |
//! | `seed` | `null` / absent: each worker's generator is seeded from the OS; an integer: every balancer of this cluster starts from `SplitMix64(seed)` (tests) |
//! | `locality_weighted` | `true`: within a priority, pick a locality first by its weight × min(1, 1.4 × healthy share), as Envoy's `locality_weighted_lb_config` (the cluster's endpoints carry the localities and their `load_balancing_weight`) |
//! | `warmup` | slow start (Istio `warmup`): `{"duration_ms": n, "aggression": 1.0, "min_weight_percent": 10}`; ROUND_ROBIN and LEAST_REQUEST only |
//!
//! Unknown keys are rejected, and so is a policy meshroute-lb would not build (a Maglev table
//! size that is not prime, for instance): Envoy then refuses the cluster.
//!
//! Hosts come from Envoy: on creation and on every host-membership update (EDS, health checks,
//! outlier ejection) the worker's balancer rebuilds its endpoint set — every host of every
//! priority, the unhealthy ones marked as such, with the healthy hosts' weights (and, with
//! `locality_weighted`, each host's locality and its locality's weight) — and the rings, Maglev
//! tables or EDF schedules over it; a pick that finds the healthy counts changed without an update
//! rebuilds too. Priorities are Envoy's: each takes the share its health allows (overprovisioning
//! factor 1.4), the rest spills to the next (meshroute-lb's `priority_load`). What the policy ABI
//! cannot express: panic mode (`choose_host` can only answer a healthy host, so the module runs
//! with panic threshold 0: with no healthy host anywhere, no host) and degraded hosts (counted by
//! Envoy, never chosen here).
//! The consistent-hash key is Envoy's own (`compute_hash_key`: the route's `hash_policy`, the
//! `x-meshroute-hash` header the HTTP filter sets, else the source IP), so a key lands on the ring
//! point Envoy's own ring hash would pick for the same hosts. LEAST_REQUEST reads Envoy's
//! `rq_active` of the hosts it samples. A retry that must avoid the previous hosts
//! (`should_select_another_host`) picks again, up to Envoy's `host_selection_retry_count`.
//!
//! PEAK_EWMA (the DestinationRule annotation `meshroute.io/load-balancer: PEAK_EWMA`) needs each
//! request's latency, and a load-balancing policy module is never told when a request ends:
//! Envoy 1.40's policy ABI has `choose_host` and `on_host_membership_update`, nothing on
//! completion, and no per-host latency statistic. What it can read is each host's counters,
//! shared by every worker: `rq_total` (requests started) and `rq_active` (in flight). From those
//! the balancer *estimates* latency with Little's law ([`LatencySampler`]): at most every
//! [`SAMPLE_EVERY`], at a pick, it samples both counters of every host, integrates `rq_active`
//! over time (the requests-in-flight × seconds spent) and counts completions (started − change
//! in flight); time in flight ÷ completions is the mean latency over that window, handed to
//! meshroute-lb's PEAK_EWMA as one observation per window (a window closes after
//! [`MIN_COMPLETIONS`] completions, or after [`MAX_WINDOW`] with at least one; a request this
//! worker sends counts in flight from that moment). A host that completed nothing in a window of
//! at least [`MAX_WINDOW`] while a request was in flight since its start is observed as taking at
//! least the window (that request's age so far); samples more than [`MAX_GAP`] apart with
//! completions in between (traffic paused) drop the window instead of guessing. What this
//! measures is coarser than the proxyless client's per-request latency: a mean over a window,
//! resolved no finer than the time between samples (so under light traffic, where picks are
//! rarer than the latencies, about the time between requests), and the upstream request's whole
//! life in Envoy (`rq_active` spans until the response ends), where the client measures each
//! request to its response headers.
//!
//! Stats, on the balancer configs (see [`stats`]): the counters `meshroute_lb_picks`,
//! `meshroute_lb_no_host`, `meshroute_lb_rebuilds` and `meshroute_lb_panics`, summed over the
//! clusters that use the module.
//!
//! Everything here is safe Rust behind two traits (`Hosts`, `Request`) that `ffi` implements
//! with Envoy's callbacks and the unit tests with plain values.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use meshroute_lb::{
    hash_key, Endpoint, EndpointSet, HashAlgorithm, HashSource, LbPolicy, LeastRequestConfig,
    LoadBalancer, Locality, LocalityGroup, PeakEwmaConfig, RandomConfig, SlowStart, SplitMix64,
    DEFAULT_MAXIMUM_RING_SIZE,
};
use serde::Deserialize;

use crate::ffi::{log, LbConfigHandle, LbCounterId, LbCounters, LogLevel};

/// `lb_policy_name` of the clusters this module balances.
pub const LB_POLICY_NAME: &str = "meshroute";

/// Names of the balancer stats (before Envoy's namespace).
pub mod stats {
    /// Counter: hosts chosen.
    pub const PICKS: &str = "meshroute_lb_picks";
    /// Counter: requests for which no host could be chosen (no healthy host: Envoy answers 503).
    pub const NO_HOST: &str = "meshroute_lb_no_host";
    /// Counter: endpoint sets (and rings, tables, schedules) rebuilt from Envoy's hosts.
    pub const REBUILDS: &str = "meshroute_lb_rebuilds";
    /// Counter: panics caught in a balancer hook (the request gets no host).
    pub const PANICS: &str = "meshroute_lb_panics";
}

/// `lb_policy_config` as written in the cluster (format in the module documentation).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster: Option<String>,
    policy: PolicyName,
    #[serde(default)]
    minimum_ring_size: Option<u64>,
    #[serde(default)]
    maximum_ring_size: Option<u64>,
    #[serde(default)]
    table_size: Option<u64>,
    #[serde(default)]
    choice_count: Option<u32>,
    #[serde(default)]
    active_request_bias: Option<f64>,
    #[serde(default)]
    decay_ms: Option<u64>,
    #[serde(default)]
    hash: Option<RawHash>,
    #[serde(default)]
    hash_header: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    locality_weighted: Option<bool>,
    #[serde(default)]
    warmup: Option<RawWarmup>,
}

/// `warmup` in `lb_policy_config`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWarmup {
    duration_ms: u64,
    #[serde(default)]
    aggression: Option<f64>,
    #[serde(default)]
    min_weight_percent: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum PolicyName {
    RoundRobin,
    Random,
    LeastRequest,
    RingHash,
    Maglev,
    PeakEwma,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum RawHash {
    Header(String),
    Cookie(String),
    QueryParameter(String),
    SourceIp(bool),
}

/// Counter ids of one balancer config; `None` when Envoy refused to define one.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StatIds {
    pub(crate) picks: Option<LbCounterId>,
    pub(crate) no_host: Option<LbCounterId>,
    pub(crate) rebuilds: Option<LbCounterId>,
    pub(crate) panics: Option<LbCounterId>,
}

/// One cluster's balancer config, shared (`Arc`) by the balancer of every worker.
#[derive(Debug)]
pub(crate) struct LbConfig {
    pub(crate) cluster: String,
    policy: LbPolicy,
    hash_header: Option<String>,
    seed: Option<u64>,
    locality_weighted: bool,
    slow_start: Option<SlowStart>,
    /// Where the stats go; `None` in unit tests.
    counters: Option<LbCounters>,
    pub(crate) ids: StatIds,
}

impl LbConfig {
    /// Parses `lb_policy_config` and checks that meshroute-lb builds the policy.
    ///
    /// # Errors
    /// A message naming the problem: JSON, unknown keys, a policy the balancer rejects.
    pub(crate) fn parse(config: &[u8]) -> Result<LbConfig, String> {
        let raw: RawConfig = serde_json::from_slice(config)
            .map_err(|e| format!("lb_policy_config is not the expected JSON object: {e}"))?;
        let hash_source = match raw.hash {
            Some(RawHash::Header(name)) => HashSource::HttpHeaderName(name),
            Some(RawHash::Cookie(name)) => HashSource::HttpCookie {
                name,
                path: None,
                ttl: None,
            },
            Some(RawHash::QueryParameter(name)) => HashSource::HttpQueryParameterName(name),
            Some(RawHash::SourceIp(true)) => HashSource::UseSourceIp,
            Some(RawHash::SourceIp(false)) => {
                return Err("lb_policy_config: hash.source_ip must be true".to_owned())
            }
            None => HashSource::HttpHeaderName(
                raw.hash_header
                    .clone()
                    .unwrap_or_else(|| "x-meshroute-hash".to_owned()),
            ),
        };
        let defaults = LeastRequestConfig::default();
        let policy = match raw.policy {
            PolicyName::RoundRobin => LbPolicy::RoundRobin,
            PolicyName::Random => LbPolicy::Random(RandomConfig::default()),
            PolicyName::LeastRequest => LbPolicy::LeastRequest(LeastRequestConfig {
                choice_count: raw.choice_count.unwrap_or(defaults.choice_count),
                active_request_bias: raw
                    .active_request_bias
                    .unwrap_or(defaults.active_request_bias),
            }),
            PolicyName::RingHash => LbPolicy::ConsistentHash {
                source: hash_source,
                algorithm: HashAlgorithm::RingHash {
                    // 0 means "the default", as in meshroute-lb.
                    minimum_ring_size: raw.minimum_ring_size.unwrap_or(0),
                    maximum_ring_size: raw.maximum_ring_size.unwrap_or(DEFAULT_MAXIMUM_RING_SIZE),
                },
            },
            PolicyName::Maglev => LbPolicy::ConsistentHash {
                source: hash_source,
                algorithm: HashAlgorithm::Maglev {
                    table_size: raw.table_size.unwrap_or(0),
                },
            },
            PolicyName::PeakEwma => {
                let defaults = PeakEwmaConfig::default();
                LbPolicy::PeakEwma(PeakEwmaConfig {
                    decay: raw.decay_ms.map_or(defaults.decay, Duration::from_millis),
                    ..defaults
                })
            }
        };
        // Build one now: a bad setting is refused with the cluster, never found at pick time.
        LoadBalancer::new(policy.clone()).map_err(|e| format!("lb_policy_config: {e}"))?;
        let slow_start = match raw.warmup {
            None => None,
            Some(w) => {
                if w.duration_ms == 0 {
                    return Err("lb_policy_config: warmup.duration_ms must be positive".to_owned());
                }
                let mut s = SlowStart::new(Duration::from_millis(w.duration_ms));
                if let Some(a) = w.aggression {
                    if !(a.is_finite() && a > 0.0) {
                        return Err(format!(
                            "lb_policy_config: warmup.aggression must be > 0, got {a}"
                        ));
                    }
                    s.aggression = a;
                }
                if let Some(m) = w.min_weight_percent {
                    if !(0.0..=100.0).contains(&m) {
                        return Err(format!(
                            "lb_policy_config: warmup.min_weight_percent must be 0-100, got {m}"
                        ));
                    }
                    s.min_weight_percent = m;
                }
                Some(s)
            }
        };
        Ok(LbConfig {
            cluster: raw.cluster.unwrap_or_default(),
            policy,
            hash_header: raw.hash_header.map(|h| h.to_ascii_lowercase()),
            seed: raw.seed,
            locality_weighted: raw.locality_weighted.unwrap_or(false),
            slow_start,
            counters: None,
            ids: StatIds::default(),
        })
    }

    /// Attaches the config's stats.
    pub(crate) fn with_counters(mut self, counters: LbCounters, ids: StatIds) -> Self {
        self.counters = Some(counters);
        self.ids = ids;
        self
    }

    /// The policy, as a log line shows it.
    pub(crate) fn describe(&self) -> String {
        match &self.policy {
            LbPolicy::ConsistentHash { source, algorithm } => {
                format!("consistent hash {algorithm:?} on {source:?}")
            }
            other => format!("{other:?}"),
        }
    }

    fn consistent_hash(&self) -> bool {
        matches!(self.policy, LbPolicy::ConsistentHash { .. })
    }

    pub(crate) fn count(&self, id: Option<LbCounterId>) {
        if let (Some(counters), Some(id)) = (&self.counters, id) {
            counters.increment(id, 1);
        }
    }
}

/// What a balancer reads of the cluster's hosts (Envoy's priority set).
pub(crate) trait Hosts {
    /// Number of priorities.
    fn priorities(&self) -> usize;
    /// Healthy hosts at `priority`.
    fn healthy_count(&self, priority: u32) -> usize;
    /// Address (`ip:port`) and weight (1-128) of healthy host `index` at `priority`.
    fn healthy_host(&self, priority: u32, index: usize) -> Option<(String, u32)>;
    /// All hosts at `priority`, healthy or not.
    fn host_count(&self, priority: u32) -> usize;
    /// Address of host `index` of *all* hosts at `priority`.
    fn host_address(&self, priority: u32, index: usize) -> Option<String>;
    /// Requests in flight on host `index` of all hosts at `priority` (Envoy's `rq_active`).
    fn active_requests(&self, priority: u32, index: usize) -> u64;
    /// Requests ever started on host `index` of all hosts at `priority` (Envoy's `rq_total`).
    fn requests_total(&self, priority: u32, index: usize) -> u64;
    /// The locality of host `index` of all hosts at `priority`.
    fn host_locality(&self, priority: u32, index: usize) -> Option<Locality>;
    /// Envoy's localities at `priority` (its per-locality host lists).
    fn locality_count(&self, priority: u32) -> usize;
    /// Healthy hosts of locality `locality` at `priority`.
    fn locality_healthy_count(&self, priority: u32, locality: usize) -> usize;
    /// Address of healthy host `index` of locality `locality` at `priority`.
    fn locality_healthy_address(
        &self,
        priority: u32,
        locality: usize,
        index: usize,
    ) -> Option<String>;
    /// The `load_balancing_weight` of locality `locality` at `priority` (0: none).
    fn locality_weight(&self, priority: u32, locality: usize) -> u32;
}

/// What a balancer reads of the request being balanced (Envoy's load-balancer context).
pub(crate) trait Request {
    /// The route's hash of the request (`hash_policy`), if it computed one.
    fn hash_key(&self) -> Option<u64>;
    /// The first value of request header `name` (lower-case).
    fn header(&self, name: &str) -> Option<Vec<u8>>;
    /// How many times a host rejected by [`Request::reject`] may be picked again.
    fn retry_count(&self) -> u32;
    /// Whether the request must not go to host `index` of all hosts at `priority` (a retry
    /// avoiding the hosts it already tried).
    fn reject(&self, priority: u32, index: usize) -> bool;
}

/// Seeds handed to the balancers of one process when no config names a seed.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(0);

/// PEAK_EWMA in Envoy: how often at most a worker samples every host's counters (at a pick).
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(20);
/// A latency window closes once this many requests completed in it...
pub(crate) const MIN_COMPLETIONS: u64 = 4;
/// ... or once it is this long and at least one did.
pub(crate) const MAX_WINDOW: Duration = Duration::from_millis(250);
/// Samples further apart than this, with requests completed in between, say nothing of when
/// they completed: the window is dropped rather than guessed (traffic paused, then resumed).
pub(crate) const MAX_GAP: Duration = Duration::from_secs(1);

/// One host's counters at the last sample, and the window being measured.
#[derive(Debug, Clone, Copy, Default)]
struct HostWindow {
    /// When the counters were last read (or a request was sent), and what they said.
    at: Duration,
    total: u64,
    active: u64,
    /// When the window opened, and the requests in flight then.
    since: Duration,
    active_at_start: u64,
    /// Requests in flight × seconds, and completions, since the window opened.
    busy: f64,
    done: u64,
    started: bool,
}

impl HostWindow {
    fn open(&mut self, now: Duration, total: u64, active: u64) {
        *self = HostWindow {
            at: now,
            total,
            active,
            since: now,
            active_at_start: active,
            busy: 0.0,
            done: 0,
            started: true,
        };
    }

    /// This worker just sent a request to the host: count it in flight (and started) from now,
    /// as Envoy's counters are about to.
    fn sent(&mut self, now: Duration) {
        if !self.started || now < self.at {
            return;
        }
        self.busy += (now - self.at).as_secs_f64() * self.active as f64;
        self.at = now;
        self.active += 1;
        self.total += 1;
    }

    /// Take a sample; the latency (seconds) of a window it closes.
    fn sample(&mut self, now: Duration, total: u64, active: u64) -> Option<f64> {
        // Counters of a host Envoy re-created are lower than before (one less is a request this
        // worker sent that Envoy has not attached to a connection yet).
        if !self.started || total.saturating_add(1) < self.total || now < self.at {
            self.open(now, total, active);
            return None;
        }
        let dt = now - self.at;
        let started = total.saturating_sub(self.total);
        let completed = (started + self.active).saturating_sub(active);
        if dt > MAX_GAP && completed > 0 {
            self.open(now, total, active);
            return None;
        }
        // Trapezoid between the two samples: in flight then and now.
        self.busy += dt.as_secs_f64() * (self.active + active) as f64 / 2.0;
        self.done += completed;
        (self.at, self.total, self.active) = (now, total, active);
        let window = now - self.since;
        let latency = if self.done >= MIN_COMPLETIONS || (self.done > 0 && window >= MAX_WINDOW) {
            Some(self.busy / self.done as f64)
        } else if self.done == 0 && window >= MAX_WINDOW && self.active_at_start > 0 {
            // Nothing completed, yet a request was in flight when the window opened: it has
            // taken the whole window so far.
            Some(window.as_secs_f64())
        } else {
            None
        };
        if latency.is_some() || (self.done == 0 && window >= MAX_WINDOW) {
            // A window closed, or one with nothing to tell (idle) starts over.
            self.open(now, total, active);
        }
        latency
    }
}

/// PEAK_EWMA's latency observations in Envoy, from every host's `rq_total` and `rq_active` by
/// Little's law (see the module documentation). Windows are kept by host address.
#[derive(Debug, Default)]
pub(crate) struct LatencySampler {
    /// By index of the worker's endpoint set.
    windows: Vec<(String, HostWindow)>,
    last: Option<Duration>,
}

impl LatencySampler {
    /// Follow a rebuilt endpoint set, keeping the windows of the addresses it still has.
    fn follow(&mut self, set: &EndpointSet) {
        let mut old: HashMap<String, HostWindow> = self.windows.drain(..).collect();
        self.windows = set
            .endpoints()
            .iter()
            .map(|e| {
                let window = old.remove(&e.address).unwrap_or_default();
                (e.address.clone(), window)
            })
            .collect();
    }

    /// This worker sent a request to endpoint `index`.
    fn sent(&mut self, index: usize, now: Duration) {
        if let Some((_, window)) = self.windows.get_mut(index) {
            window.sent(now);
        }
    }

    /// Sample every host when [`SAMPLE_EVERY`] has passed; the latencies of the windows that
    /// closed, by endpoint index.
    fn sample(
        &mut self,
        now: Duration,
        counters: impl Fn(usize) -> (u64, u64),
        mut observe: impl FnMut(usize, Duration),
    ) {
        if self.last.is_some_and(|last| now < last + SAMPLE_EVERY) {
            return;
        }
        self.last = Some(now);
        for (index, (_, window)) in self.windows.iter_mut().enumerate() {
            let (total, active) = counters(index);
            if let Some(seconds) = window.sample(now, total, active) {
                if let Ok(latency) = Duration::try_from_secs_f64(seconds) {
                    observe(index, latency);
                }
            }
        }
    }
}

/// One worker's balancer for one cluster.
pub(crate) struct WorkerLb {
    config: Arc<LbConfig>,
    balancer: LoadBalancer,
    /// Every host of every priority, in Envoy's order (priority by priority), the unhealthy ones
    /// marked ejected.
    set: EndpointSet,
    /// Endpoint index → (priority, index among all hosts of that priority).
    hosts_of: Vec<(u32, usize)>,
    /// Endpoint index → index among the healthy hosts of its priority (what `choose_host`
    /// answers); `None` for an unhealthy host.
    healthy_index: Vec<Option<u32>>,
    /// Healthy counts per priority when `set` was built.
    seen: Vec<usize>,
    built: bool,
    rng: SplitMix64,
    /// PEAK_EWMA only: latencies estimated from the hosts' counters.
    sampler: Option<LatencySampler>,
    /// Slow start: when each current host (by address) joined; `None` for the hosts the
    /// balancer started with (Envoy's initial hosts are not in slow start).
    joined: HashMap<String, Option<Duration>>,
}

impl WorkerLb {
    pub(crate) fn new(config: Arc<LbConfig>) -> WorkerLb {
        let balancer = LoadBalancer::new(config.policy.clone())
            // LbConfig::parse built this policy once already.
            .unwrap_or_else(|_| unreachable_policy())
            .with_slow_start(config.slow_start);
        let seed = config.seed.unwrap_or_else(|| {
            crate::config::os_seed() ^ NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
        });
        WorkerLb {
            balancer,
            set: EndpointSet::new(Vec::new()),
            hosts_of: Vec::new(),
            healthy_index: Vec::new(),
            seen: Vec::new(),
            built: false,
            rng: SplitMix64::new(seed),
            sampler: matches!(config.policy, LbPolicy::PeakEwma(_)).then(LatencySampler::default),
            joined: HashMap::new(),
            config,
        }
    }

    pub(crate) fn config(&self) -> &LbConfig {
        &self.config
    }

    /// Rebuilds the endpoint set from Envoy's hosts, every priority, at time `now` (a host not
    /// seen before, after the first build, joined now: slow start).
    pub(crate) fn rebuild(&mut self, hosts: &impl Hosts, now: Duration) {
        let priorities = hosts.priorities();
        let initial = !self.built;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        let mut unhealthy: Vec<usize> = Vec::new();
        let mut groups: Vec<LocalityGroup> = Vec::new();
        let mut joined = HashMap::new();
        self.hosts_of.clear();
        self.healthy_index.clear();
        self.seen.clear();
        for p in 0..priorities {
            let priority = priority_u32(p);
            let all: Vec<String> = (0..hosts.host_count(priority))
                .map(|j| {
                    hosts
                        .host_address(priority, j)
                        // Keeps the indices aligned with Envoy's list; never seen in practice.
                        .unwrap_or_else(|| format!("#unknown-{p}-{j}"))
                })
                .collect();
            let index_of: HashMap<&str, usize> = all
                .iter()
                .enumerate()
                .rev()
                .map(|(j, a)| (a.as_str(), j))
                .collect();
            let mut weight = vec![1u32; all.len()];
            let mut healthy_at: Vec<Option<u32>> = vec![None; all.len()];
            let healthy_count = hosts.healthy_count(priority);
            self.seen.push(healthy_count);
            for i in 0..healthy_count {
                let Some((address, w)) = hosts.healthy_host(priority, i) else {
                    continue;
                };
                if let Some(&j) = index_of.get(address.as_str()) {
                    weight[j] = w;
                    healthy_at[j] = u32::try_from(i).ok();
                }
            }
            let base = endpoints.len();
            let localities = if self.config.locality_weighted {
                locality_groups(hosts, priority, &all, &index_of, base)
            } else {
                vec![LocalityGroup {
                    priority,
                    members: (base..base + all.len()).collect(),
                    ..LocalityGroup::default()
                }]
            };
            groups.extend(localities);
            for (j, address) in all.into_iter().enumerate() {
                let added_at = if initial {
                    None
                } else {
                    self.joined.get(&address).copied().unwrap_or(Some(now))
                };
                joined.insert(address.clone(), added_at);
                let mut e = Endpoint::new(address).with_weight(weight[j]);
                e.added_at = added_at;
                if healthy_at[j].is_none() {
                    unhealthy.push(endpoints.len());
                }
                endpoints.push(e);
                self.hosts_of.push((priority, j));
                self.healthy_index.push(healthy_at[j]);
            }
        }
        let mut set =
            EndpointSet::with_localities(endpoints, groups, self.config.locality_weighted);
        for i in unhealthy {
            set.set_ejected(i, true);
        }
        self.set = set;
        self.joined = joined;
        if let Some(sampler) = &mut self.sampler {
            sampler.follow(&self.set);
        }
        self.built = true;
        self.config.count(self.config.ids.rebuilds);
    }

    /// Whether Envoy's healthy hosts changed since the set was built (without a membership
    /// update: a health flag that moved).
    fn stale(&self, hosts: &impl Hosts) -> bool {
        !self.built
            || hosts.priorities() != self.seen.len()
            || self
                .seen
                .iter()
                .enumerate()
                .any(|(p, &n)| hosts.healthy_count(priority_u32(p)) != n)
    }

    /// The host for one request: (priority, index into that priority's healthy hosts). `now` is
    /// the time on any monotonic clock (PEAK_EWMA's estimates decay with it, slow start ramps
    /// with it).
    pub(crate) fn choose(
        &mut self,
        hosts: &impl Hosts,
        request: Option<&impl Request>,
        now: Duration,
    ) -> Option<(u32, u32)> {
        #[cfg(feature = "panic-test")]
        if request
            .and_then(|r| r.header(crate::PANIC_TEST_HEADER))
            .as_deref()
            == Some(&b"lb"[..])
        {
            panic!(
                "panic-test: the request carries {}: lb",
                crate::PANIC_TEST_HEADER
            );
        }
        if self.stale(hosts) {
            self.rebuild(hosts, now);
        }
        self.sample_latencies(hosts, now);
        let chosen = self.pick(hosts, request, now);
        if let (Some(sampler), Some(index)) = (&mut self.sampler, chosen) {
            sampler.sent(index, now);
        }
        let answer = chosen.and_then(|index| {
            let (priority, _) = *self.hosts_of.get(index)?;
            Some((priority, (*self.healthy_index.get(index)?)?))
        });
        let ids = self.config.ids;
        self.config.count(if answer.is_some() {
            ids.picks
        } else {
            ids.no_host
        });
        answer
    }

    /// PEAK_EWMA: feed the latencies of the windows that closed to the balancer.
    fn sample_latencies(&mut self, hosts: &impl Hosts, now: Duration) {
        let WorkerLb {
            balancer,
            set,
            hosts_of,
            sampler,
            ..
        } = self;
        let Some(sampler) = sampler else {
            return;
        };
        let counters = |i: usize| match hosts_of.get(i) {
            Some(&(priority, j)) => (
                hosts.requests_total(priority, j),
                hosts.active_requests(priority, j),
            ),
            None => (0, 0),
        };
        sampler.sample(now, counters, |index, latency| {
            balancer.record_latency(set, index, latency, now);
        });
    }

    /// PEAK_EWMA: endpoint `index`'s latency estimate at `now` (tests and logs).
    #[cfg(test)]
    fn estimate(&self, index: usize, now: Duration) -> Option<Duration> {
        self.balancer.latency_estimate(&self.set, index, now)
    }

    /// An endpoint index of the set (a healthy host), or none.
    fn pick(
        &mut self,
        hosts: &impl Hosts,
        request: Option<&impl Request>,
        now: Duration,
    ) -> Option<usize> {
        if self.set.healthy_count() == 0 {
            return None;
        }
        let hash = if self.config.consistent_hash() {
            request.and_then(|r| self.request_hash(r))
        } else {
            None
        };
        let attempts = request.map_or(0, Request::retry_count);
        let WorkerLb {
            balancer,
            set,
            hosts_of,
            rng,
            ..
        } = self;
        let active = |i: usize| match hosts_of.get(i) {
            Some(&(priority, j)) => {
                u32::try_from(hosts.active_requests(priority, j)).unwrap_or(u32::MAX)
            }
            None => 0,
        };
        let mut attempt = 0u32;
        loop {
            // A retry over a consistent hash looks a little further along the ring or table
            // (Envoy does the same, with its own offsets): the same key would find the same host.
            let key = hash.map(|h| if attempt == 0 { h } else { rehash(h, attempt) });
            let index = balancer
                .pick_with_active_at(set, key, rng, now, active)?
                .endpoint()?;
            let rejected = match (request, hosts_of.get(index)) {
                (Some(r), Some(&(priority, j))) => r.reject(priority, j),
                _ => false,
            };
            if !rejected || attempt >= attempts {
                return Some(index);
            }
            attempt += 1;
        }
    }

    /// Envoy's hash of the request, else the configured header's value hashed as Envoy hashes
    /// a header; `None` makes the balancer pick a random host, as Envoy does.
    fn request_hash(&self, request: &impl Request) -> Option<u64> {
        request.hash_key().or_else(|| {
            let header = self.config.hash_header.as_deref()?;
            request.header(header).map(|value| hash_key(&value))
        })
    }
}

/// The locality groups of priority `priority` for locality-weighted balancing: the hosts grouped
/// by their locality (endpoint indices from `base`), each weighing its Envoy locality's
/// `load_balancing_weight` — found through the locality's first healthy host (a locality without
/// a healthy host weighs nothing, as its effective weight would be 0 anyway).
fn locality_groups(
    hosts: &impl Hosts,
    priority: u32,
    all: &[String],
    index_of: &HashMap<&str, usize>,
    base: usize,
) -> Vec<LocalityGroup> {
    let localities: Vec<Locality> = (0..all.len())
        .map(|j| hosts.host_locality(priority, j).unwrap_or_default())
        .collect();
    let mut weights: HashMap<&Locality, u32> = HashMap::new();
    for l in 0..hosts.locality_count(priority) {
        if hosts.locality_healthy_count(priority, l) == 0 {
            continue;
        }
        let first = hosts.locality_healthy_address(priority, l, 0);
        if let Some(&j) = first.as_deref().and_then(|a| index_of.get(a)) {
            weights.insert(&localities[j], hosts.locality_weight(priority, l));
        }
    }
    let mut groups: Vec<LocalityGroup> = Vec::new();
    for (j, locality) in localities.iter().enumerate() {
        match groups.iter_mut().find(|g| &g.locality == locality) {
            Some(group) => group.members.push(base + j),
            None => groups.push(LocalityGroup {
                locality: locality.clone(),
                priority,
                weight: Some(weights.get(locality).copied().unwrap_or(0)),
                members: vec![base + j],
            }),
        }
    }
    groups
}

/// `lb_config_new`: a config for `lb_policy_name` [`LB_POLICY_NAME`], with its stats; `None`
/// rejects it (the reason is logged, and Envoy refuses the cluster).
pub(crate) fn new_config(
    envoy: &mut LbConfigHandle<'_>,
    name: &[u8],
    config: &[u8],
) -> Option<Arc<LbConfig>> {
    let name = String::from_utf8_lossy(name);
    if name != LB_POLICY_NAME {
        log(
            LogLevel::Error,
            &format!("meshroute: load balancer {name:?}: unknown lb_policy_name (the module has {LB_POLICY_NAME:?})"),
        );
        return None;
    }
    let parsed = match LbConfig::parse(config) {
        Ok(parsed) => parsed,
        Err(reason) => {
            log(
                LogLevel::Error,
                &format!("meshroute: load balancer config rejected: {reason}"),
            );
            return None;
        }
    };
    let mut define = |stat: &str| {
        envoy
            .define_counter(stat)
            .map_err(|code| {
                log(
                    LogLevel::Warn,
                    &format!(
                        "meshroute: load balancer stat {stat} not defined (Envoy error {code})"
                    ),
                );
            })
            .ok()
    };
    let ids = StatIds {
        picks: define(stats::PICKS),
        no_host: define(stats::NO_HOST),
        rebuilds: define(stats::REBUILDS),
        panics: define(stats::PANICS),
    };
    let config = parsed.with_counters(envoy.counters(), ids);
    log(
        LogLevel::Info,
        &format!(
            "meshroute: load balancer for cluster {:?}: {}",
            config.cluster,
            config.describe()
        ),
    );
    Some(Arc::new(config))
}

/// `lb_new`: a worker's balancer, built from the hosts Envoy has now (its initial hosts, which
/// slow start leaves alone, as Envoy does).
pub(crate) fn new_balancer(config: Arc<LbConfig>, hosts: &impl Hosts, now: Duration) -> WorkerLb {
    let mut lb = WorkerLb::new(config);
    lb.rebuild(hosts, now);
    lb
}

/// `lb_on_host_membership_update`: hosts were added or removed (or their health changed) at
/// `now`: rebuild the endpoint set and the rings, tables or schedules over it.
pub(crate) fn membership_update(
    lb: &mut WorkerLb,
    hosts: &impl Hosts,
    _added: usize,
    _removed: usize,
    now: Duration,
) {
    lb.rebuild(hosts, now);
}

/// A balancer hook panicked: log it and count it (the request, if any, gets no host).
pub(crate) fn on_panic(lb: &WorkerLb, hook: &str, message: &str) {
    log(
        LogLevel::Error,
        &format!(
            "meshroute: panic in {hook} (cluster {:?}): {message}",
            lb.config().cluster
        ),
    );
    let config = lb.config();
    config.count(config.ids.panics);
}

/// A different key for retry `attempt` of key `hash` (SplitMix64's finaliser).
fn rehash(hash: u64, attempt: u32) -> u64 {
    let mut z = hash.wrapping_add(u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn priority_u32(p: usize) -> u32 {
    u32::try_from(p).unwrap_or(u32::MAX)
}

#[cold]
fn unreachable_policy() -> LoadBalancer {
    log(
        LogLevel::Error,
        "meshroute: a balancer policy that parsed could not be built; using round robin",
    );
    LoadBalancer::new(LbPolicy::RoundRobin).unwrap_or_else(|_| unreachable!("round robin builds"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const T0: Duration = Duration::ZERO;

    /// Hosts as plain values: (address, weight, healthy, active requests) per priority, and the
    /// requests ever started per host (`rq_total`; absent: 0).
    #[derive(Default)]
    struct FakeHosts {
        priorities: Vec<Vec<(String, u32, bool, u64)>>,
        totals: HashMap<(u32, usize), u64>,
        /// Host locality by address ("" when absent), and locality weights by locality label.
        localities: HashMap<String, String>,
        weights: HashMap<String, u32>,
    }

    impl FakeHosts {
        fn ports(ports: &[u16]) -> Self {
            FakeHosts {
                priorities: vec![ports
                    .iter()
                    .map(|p| (format!("127.0.0.1:{p}"), 1, true, 0))
                    .collect()],
                ..FakeHosts::default()
            }
        }

        /// Envoy's per-locality lists at `p`: distinct localities in host order, healthy hosts.
        fn locality_lists(&self, p: u32) -> Vec<(String, Vec<String>)> {
            let mut out: Vec<(String, Vec<String>)> = Vec::new();
            for h in &self.priorities[p as usize] {
                let l = self.localities.get(&h.0).cloned().unwrap_or_default();
                let at = match out.iter().position(|(k, _)| *k == l) {
                    Some(at) => at,
                    None => {
                        out.push((l, Vec::new()));
                        out.len() - 1
                    }
                };
                if h.2 {
                    out[at].1.push(h.0.clone());
                }
            }
            out
        }

        /// A request starts on host `i` of priority 0.
        fn start(&mut self, i: usize) {
            self.priorities[0][i].3 += 1;
            *self.totals.entry((0, i)).or_default() += 1;
        }

        /// A request of host `i` of priority 0 ends.
        fn end(&mut self, i: usize) {
            self.priorities[0][i].3 -= 1;
        }

        fn healthy(&self, p: u32) -> Vec<&(String, u32, bool, u64)> {
            self.priorities[p as usize].iter().filter(|h| h.2).collect()
        }
    }

    impl Hosts for FakeHosts {
        fn priorities(&self) -> usize {
            self.priorities.len()
        }
        fn healthy_count(&self, p: u32) -> usize {
            self.healthy(p).len()
        }
        fn healthy_host(&self, p: u32, i: usize) -> Option<(String, u32)> {
            self.healthy(p).get(i).map(|h| (h.0.clone(), h.1))
        }
        fn host_count(&self, p: u32) -> usize {
            self.priorities[p as usize].len()
        }
        fn host_address(&self, p: u32, i: usize) -> Option<String> {
            self.priorities[p as usize].get(i).map(|h| h.0.clone())
        }
        fn active_requests(&self, p: u32, i: usize) -> u64 {
            self.priorities[p as usize][i].3
        }
        fn requests_total(&self, p: u32, i: usize) -> u64 {
            self.totals.get(&(p, i)).copied().unwrap_or(0)
        }
        fn host_locality(&self, p: u32, i: usize) -> Option<Locality> {
            let address = &self.priorities[p as usize].get(i)?.0;
            Some(Locality::parse(
                self.localities.get(address).map_or("", String::as_str),
            ))
        }
        fn locality_count(&self, p: u32) -> usize {
            self.locality_lists(p).len()
        }
        fn locality_healthy_count(&self, p: u32, l: usize) -> usize {
            self.locality_lists(p).get(l).map_or(0, |(_, h)| h.len())
        }
        fn locality_healthy_address(&self, p: u32, l: usize, i: usize) -> Option<String> {
            self.locality_lists(p).get(l)?.1.get(i).cloned()
        }
        fn locality_weight(&self, p: u32, l: usize) -> u32 {
            let lists = self.locality_lists(p);
            lists
                .get(l)
                .and_then(|(k, _)| self.weights.get(k).copied())
                .unwrap_or(0)
        }
    }

    #[derive(Default)]
    struct FakeRequest {
        hash: Option<u64>,
        headers: Vec<(String, Vec<u8>)>,
        retries: u32,
        rejected: Vec<usize>,
        asked: RefCell<Vec<usize>>,
    }

    impl Request for FakeRequest {
        fn hash_key(&self) -> Option<u64> {
            self.hash
        }
        fn header(&self, name: &str) -> Option<Vec<u8>> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
        fn retry_count(&self) -> u32 {
            self.retries
        }
        fn reject(&self, _priority: u32, index: usize) -> bool {
            self.asked.borrow_mut().push(index);
            self.rejected.contains(&index)
        }
    }

    fn worker(json: &str) -> WorkerLb {
        WorkerLb::new(Arc::new(LbConfig::parse(json.as_bytes()).expect("config")))
    }

    const NO_REQUEST: Option<&FakeRequest> = None;

    #[test]
    fn rejects_bad_configs() {
        for (text, expect) in [
            ("not json", "expected JSON object"),
            (r#"{"policy": "ROUND_ROBIN", "polcy": 1}"#, "unknown field"),
            (r#"{"policy": "LEAST_CONN"}"#, "unknown variant"),
            (
                r#"{"policy": "MAGLEV", "table_size": 65536}"#,
                "not a prime",
            ),
            (
                r#"{"policy": "LEAST_REQUEST", "choice_count": 1}"#,
                "choice_count",
            ),
            (
                r#"{"policy": "RING_HASH", "hash": {"body": "x"}}"#,
                "unknown variant",
            ),
        ] {
            let err = LbConfig::parse(text.as_bytes()).expect_err(text);
            assert!(err.contains(expect), "{text}: {err}");
        }
        let ok = LbConfig::parse(
            br#"{"cluster": "c", "policy": "RING_HASH", "minimum_ring_size": 2048,
                 "hash": {"header": "end-user"}, "hash_header": "X-Meshroute-Hash", "seed": 3}"#,
        )
        .expect("valid");
        assert_eq!(ok.hash_header.as_deref(), Some("x-meshroute-hash"));
        assert!(ok.describe().contains("RingHash"), "{}", ok.describe());
    }

    #[test]
    fn round_robin_cycles_over_the_healthy_hosts_in_envoy_order() {
        let hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "ROUND_ROBIN"}"#);
        let picks: Vec<u32> = (0..6)
            .map(|_| lb.choose(&hosts, NO_REQUEST, T0).expect("pick").1)
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_health_change_without_update_rebuilds_and_indexes_stay_healthy() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "ROUND_ROBIN"}"#);
        assert_eq!(lb.choose(&hosts, NO_REQUEST, T0), Some((0, 0)));
        hosts.priorities[0][0].2 = false; // host 1 unhealthy: healthy list is [2, 3]
        for _ in 0..4 {
            let (_, index) = lb.choose(&hosts, NO_REQUEST, T0).expect("pick");
            assert!(index < 2, "index {index} beyond the 2 healthy hosts");
        }
        for h in &mut hosts.priorities[0] {
            h.2 = false;
        }
        assert_eq!(lb.choose(&hosts, NO_REQUEST, T0), None, "no healthy host");
    }

    #[test]
    fn fails_over_to_the_first_priority_with_healthy_hosts() {
        let mut hosts = FakeHosts::ports(&[1, 2]);
        hosts
            .priorities
            .push(vec![("127.0.0.1:9".into(), 1, true, 0)]);
        hosts.priorities[0][0].2 = false;
        hosts.priorities[0][1].2 = false;
        let mut lb = worker(r#"{"policy": "RANDOM", "seed": 1}"#);
        assert_eq!(lb.choose(&hosts, NO_REQUEST, T0), Some((1, 0)));
    }

    #[test]
    fn least_request_reads_envoys_active_counts_through_the_all_hosts_index() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3]);
        hosts.priorities[0][0].2 = false; // healthy [2, 3] = all-hosts indexes 1, 2
        hosts.priorities[0][2].3 = 50; // port 3 is busy
        let mut lb = worker(r#"{"policy": "LEAST_REQUEST", "seed": 7}"#);
        let busy = (0..200)
            .filter(|_| lb.choose(&hosts, NO_REQUEST, T0) == Some((0, 1)))
            .count();
        // P2C over two hosts picks the busy one only when both samples are it: ~1/4.
        assert!((20..=80).contains(&busy), "busy host picked {busy} times");
    }

    #[test]
    fn consistent_hash_uses_envoys_hash_then_the_header() {
        let hosts = FakeHosts::ports(&[1, 2, 3, 4]);
        let mut lb = worker(r#"{"policy": "RING_HASH", "hash_header": "x-meshroute-hash"}"#);
        let by_hash = |h: u64, lb: &mut WorkerLb| {
            let request = FakeRequest {
                hash: Some(h),
                ..FakeRequest::default()
            };
            lb.choose(&hosts, Some(&request), T0)
        };
        for h in [1u64, 99, u64::MAX / 3] {
            let first = by_hash(h, &mut lb);
            assert!(
                (0..5).all(|_| by_hash(h, &mut lb) == first),
                "key {h} moved"
            );
        }
        // No hash from Envoy: the header is hashed as Envoy hashes a header.
        let header = FakeRequest {
            headers: vec![("x-meshroute-hash".into(), b"jason".to_vec())],
            ..FakeRequest::default()
        };
        let expected = by_hash(hash_key(b"jason"), &mut lb);
        assert_eq!(lb.choose(&hosts, Some(&header), T0), expected);
    }

    #[test]
    fn a_retry_picks_another_host_when_the_previous_one_is_rejected() {
        let hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "RING_HASH"}"#);
        let key = FakeRequest {
            hash: Some(12345),
            ..FakeRequest::default()
        };
        let (_, first) = lb.choose(&hosts, Some(&key), T0).expect("pick");
        let retry = FakeRequest {
            hash: Some(12345),
            retries: 5,
            rejected: vec![first as usize],
            ..FakeRequest::default()
        };
        let (_, second) = lb.choose(&hosts, Some(&retry), T0).expect("pick");
        assert_ne!(first, second);
        assert!(retry.asked.borrow().len() >= 2);
    }

    #[test]
    fn adding_a_host_moves_about_a_quarter_of_the_keys_to_it_with_maglev() {
        let mut lb = worker(r#"{"policy": "MAGLEV"}"#);
        let keys: Vec<u64> = (0..4000u64).map(|k| hash_key(&k.to_le_bytes())).collect();
        let map = |lb: &mut WorkerLb, hosts: &FakeHosts| -> Vec<String> {
            keys.iter()
                .map(|&h| {
                    let r = FakeRequest {
                        hash: Some(h),
                        ..FakeRequest::default()
                    };
                    let (p, i) = lb.choose(hosts, Some(&r), T0).expect("pick");
                    hosts.healthy_host(p, i as usize).expect("host").0
                })
                .collect()
        };
        let three = FakeHosts::ports(&[1, 2, 3]);
        let before = map(&mut lb, &three);
        let four = FakeHosts::ports(&[1, 2, 3, 4]);
        lb.rebuild(&four, T0); // as on_host_membership_update does
        let after = map(&mut lb, &four);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let to_new = after.iter().filter(|a| a.ends_with(":4")).count();
        assert!((800..=1250).contains(&moved), "{moved} of 4000 keys moved");
        assert!(
            to_new * 10 >= moved * 9,
            "{to_new} of {moved} moves went to the new host"
        );
    }

    #[test]
    fn peak_ewma_config() {
        let lb = LbConfig::parse(br#"{"policy": "PEAK_EWMA", "decay_ms": 5000}"#).expect("valid");
        assert!(lb.describe().contains("PeakEwma"), "{}", lb.describe());
        assert!(matches!(
            lb.policy,
            LbPolicy::PeakEwma(PeakEwmaConfig { decay, .. }) if decay == Duration::from_secs(5)
        ));
        let zero = LbConfig::parse(br#"{"policy": "PEAK_EWMA", "decay_ms": 0}"#).expect_err("0");
        assert!(zero.contains("decay"), "{zero}");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn littles_law_gives_the_mean_latency_of_a_window() {
        let mut w = HostWindow::default();
        assert_eq!(
            w.sample(ms(0), 100, 2),
            None,
            "the first sample opens the window"
        );
        // Two requests always in flight, one completing (and one starting) every 10 ms: each
        // takes 20 ms. Sampled every 20 ms: 2 completions per sample.
        let mut got = None;
        for k in 1..=2u64 {
            got = w.sample(ms(20 * k), 100 + 2 * k, 2);
        }
        let latency = got.expect("4 completions close the window");
        assert!((latency - 0.020).abs() < 1e-9, "{latency}");
        // Two requests in flight since the window opened and nothing completed: each has taken
        // at least the window.
        let stuck = w
            .sample(ms(40) + MAX_WINDOW, 104, 2)
            .expect("stuck requests");
        assert!((stuck - MAX_WINDOW.as_secs_f64()).abs() < 1e-9, "{stuck}");
        // A pause: they completed sometime in 10 s; no guess.
        assert_eq!(w.sample(Duration::from_secs(10), 104, 0), None);
        // One request this worker sends, answered 80 ms later (seen at the next sample, 100 ms
        // later: the trapezoid puts its end half-way, as likely as anywhere in between).
        w.sent(Duration::from_secs(10));
        assert_eq!(w.sample(Duration::from_secs(10) + ms(100), 105, 0), None);
        let one = w
            .sample(Duration::from_secs(10) + ms(400), 105, 0)
            .expect("1 completion, 400 ms");
        assert!((one - 0.050).abs() < 1e-9, "{one}");
        // Counters of a re-created host (lower than before) start over.
        assert_eq!(w.sample(Duration::from_secs(21), 3, 0), None);
        assert_eq!(w.total, 3);
    }

    /// Closed-loop clients through a worker balancer over `hosts` (priority 0) whose counters
    /// (`rq_active`, `rq_total`) move as Envoy's would, host `i` answering after `latencies[i]`
    /// ms; picks per host in `[from, until)`.
    fn run_envoy_clients(
        lb: &mut WorkerLb,
        hosts: &mut FakeHosts,
        latencies: &[u64],
        clients: usize,
        from: Duration,
        until: Duration,
    ) -> Vec<usize> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut picks = vec![0; latencies.len()];
        let mut answers: BinaryHeap<Reverse<(Duration, usize)>> = BinaryHeap::new();
        let mut pick = |now: Duration, hosts: &mut FakeHosts, lb: &mut WorkerLb| {
            let (_, i) = lb.choose(&*hosts, NO_REQUEST, now).expect("pick");
            let i = i as usize;
            hosts.start(i);
            if now >= from {
                picks[i] += 1;
            }
            Reverse((now + ms(latencies[i]), i))
        };
        for c in 0..clients {
            answers.push(pick(from + ms(c as u64), hosts, lb));
        }
        while let Some(Reverse((now, i))) = answers.pop() {
            hosts.end(i);
            if now >= until {
                continue; // drain: every request ends
            }
            answers.push(pick(now, hosts, lb));
        }
        picks
    }

    #[test]
    fn peak_ewma_keeps_off_a_slow_host_from_envoys_counters_alone() {
        let (from, until) = (Duration::from_secs(2), Duration::from_secs(20));
        let latencies = [10, 10, 10, 200];
        let share = |json: &str| {
            let mut hosts = FakeHosts::ports(&[1, 2, 3, 4]);
            let mut lb = worker(json);
            run_envoy_clients(&mut lb, &mut hosts, &latencies, 6, T0, from);
            let picks = run_envoy_clients(&mut lb, &mut hosts, &latencies, 6, from, until);
            (picks[3] as f64 / picks.iter().sum::<usize>() as f64, picks)
        };
        let (ewma, ewma_picks) = share(r#"{"policy": "PEAK_EWMA", "seed": 5}"#);
        let (lr, lr_picks) = share(r#"{"policy": "LEAST_REQUEST", "seed": 5}"#);
        eprintln!(
            "slow host: PEAK_EWMA {ewma_picks:?} ({ewma:.4}), LEAST_REQUEST {lr_picks:?} ({lr:.4})"
        );
        assert!(ewma < 0.01, "{ewma_picks:?}");
        assert!(ewma * 4.0 < lr, "{ewma_picks:?} vs {lr_picks:?}");
    }

    #[test]
    fn peak_ewma_estimates_follow_the_hosts_across_a_membership_update() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "PEAK_EWMA", "seed": 1}"#);
        let latencies = [10, 10, 200];
        let until = Duration::from_secs(5);
        run_envoy_clients(&mut lb, &mut hosts, &latencies, 4, T0, until);
        let slow = lb
            .estimate(2, until)
            .expect("an estimate for the slow host");
        let fast = lb.estimate(0, until).expect("an estimate for a fast host");
        assert!(slow > fast * 5, "{slow:?} vs {fast:?}");
        // A new host in front: indexes shift, the estimates stay with their addresses.
        hosts.priorities[0].insert(0, ("127.0.0.1:9".into(), 1, true, 0));
        hosts.totals = hosts
            .totals
            .drain()
            .map(|((p, i), n)| ((p, i + 1), n))
            .collect();
        lb.rebuild(&hosts, until);
        assert_eq!(lb.estimate(3, until), Some(slow));
        assert_eq!(lb.estimate(0, until), None, "the new host has none yet");
        // It gets one request while unknown, not a flood.
        let mut held = 0;
        for k in 0..20 {
            let (_, i) = lb.choose(&hosts, NO_REQUEST, until + ms(k)).expect("pick");
            hosts.start(i as usize); // nothing ends
            held += usize::from(i == 0);
        }
        assert_eq!(held, 1, "the new host got {held} of 20 requests in flight");
    }

    /// Picks per (priority, healthy index) over `n` requests.
    fn tally(
        lb: &mut WorkerLb,
        hosts: &FakeHosts,
        n: usize,
        now: Duration,
    ) -> HashMap<(u32, u32), usize> {
        let mut out = HashMap::new();
        for _ in 0..n {
            let pick = lb.choose(hosts, NO_REQUEST, now).expect("pick");
            *out.entry(pick).or_default() += 1;
        }
        out
    }

    #[test]
    fn priorities_spill_over_by_the_overprovisioning_factor() {
        let mut hosts = FakeHosts::ports(&[1, 2]);
        hosts.priorities.push(vec![
            ("127.0.0.1:8".into(), 1, true, 0),
            ("127.0.0.1:9".into(), 1, true, 0),
        ]);
        let mut lb = worker(r#"{"policy": "ROUND_ROBIN", "seed": 3}"#);
        let all_p0 = tally(&mut lb, &hosts, 100, T0);
        assert_eq!(
            all_p0.keys().filter(|(p, _)| *p == 1).count(),
            0,
            "{all_p0:?}"
        );
        // Half of priority 0 unhealthy: health 1.4 × 50 % = 70 %, the rest to priority 1.
        hosts.priorities[0][0].2 = false;
        let got = tally(&mut lb, &hosts, 4000, T0);
        let p1: usize = got
            .iter()
            .filter(|((p, _), _)| *p == 1)
            .map(|(_, n)| n)
            .sum();
        assert!(
            (1080..=1320).contains(&p1),
            "priority 1 got {p1} of 4000 (30 % ± 3)"
        );
        assert_eq!(got.get(&(0, 0)).copied().unwrap_or(0) + p1, 4000, "{got:?}");
        assert!(
            got.keys().all(|&(p, i)| (p == 0 && i == 0) || p == 1),
            "{got:?}"
        );
    }

    #[test]
    fn locality_weights_within_a_priority_when_configured() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3, 4]);
        for (port, l) in [(1, "us/a"), (2, "us/b"), (3, "us/b"), (4, "us/b")] {
            hosts
                .localities
                .insert(format!("127.0.0.1:{port}"), l.into());
        }
        hosts.weights.insert("us/a".into(), 3);
        hosts.weights.insert("us/b".into(), 1);
        let mut weighted = worker(r#"{"policy": "ROUND_ROBIN", "locality_weighted": true}"#);
        let got = tally(&mut weighted, &hosts, 400, T0);
        assert_eq!(got.get(&(0, 0)), Some(&300), "us/a weighs 3 of 4: {got:?}");
        // One of us/b's three hosts down: 1 × min(1, 1.4 × 2/3) = 0.93 against 3.
        hosts.priorities[0][3].2 = false;
        let got = tally(&mut weighted, &hosts, 3930, T0);
        let a = got.get(&(0, 0)).copied().unwrap_or(0);
        assert!((2990..=3010).contains(&a), "us/a got {a} of 3930");
        // Without the setting Envoy ignores locality weights: one host in four.
        hosts.priorities[0][3].2 = true;
        let mut plain = worker(r#"{"policy": "ROUND_ROBIN"}"#);
        assert_eq!(tally(&mut plain, &hosts, 400, T0).get(&(0, 0)), Some(&100));
    }

    #[test]
    fn a_host_added_later_warms_up() {
        let config = r#"{"policy": "ROUND_ROBIN", "warmup": {"duration_ms": 10000}}"#;
        let mut hosts = FakeHosts::ports(&[1, 2]);
        let mut lb = new_balancer(
            Arc::new(LbConfig::parse(config.as_bytes()).expect("config")),
            &hosts,
            T0,
        );
        // The initial hosts are not warming up.
        assert_eq!(tally(&mut lb, &hosts, 10, T0).len(), 2);
        hosts.priorities[0].push(("127.0.0.1:3".into(), 1, true, 0));
        let t = Duration::from_secs(100);
        membership_update(&mut lb, &hosts, 1, 0, t);
        // 5 s into a 10 s window: weight 0.5, 0.5 / 2.5 of the picks.
        let got = tally(&mut lb, &hosts, 2500, t + Duration::from_secs(5));
        let new = got.get(&(0, 2)).copied().unwrap_or(0);
        assert!((490..=510).contains(&new), "the new host got {new} of 2500");
        // Another update keeps its join time: warm 10 s after joining.
        membership_update(&mut lb, &hosts, 0, 0, t + Duration::from_secs(6));
        let warm = tally(&mut lb, &hosts, 30, t + Duration::from_secs(10));
        assert_eq!(warm.get(&(0, 2)), Some(&10), "{warm:?}");
        for bad in [
            r#"{"policy": "ROUND_ROBIN", "warmup": {"duration_ms": 0}}"#,
            r#"{"policy": "ROUND_ROBIN", "warmup": {"duration_ms": 5, "aggression": 0}}"#,
            r#"{"policy": "ROUND_ROBIN", "warmup": {"duration_ms": 5, "min_weight_percent": 101}}"#,
        ] {
            assert!(LbConfig::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
