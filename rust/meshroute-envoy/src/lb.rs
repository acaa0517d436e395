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
//! | `policy` | `ROUND_ROBIN`, `RANDOM`, `LEAST_REQUEST`, `RING_HASH` or `MAGLEV` |
//! | `minimum_ring_size`, `maximum_ring_size` | `RING_HASH` (defaults 1024 and 8M, Envoy's) |
//! | `table_size` | `MAGLEV`, a prime (default 65537) |
//! | `choice_count`, `active_request_bias` | `LEAST_REQUEST` (defaults 2 and 1.0, Envoy's) |
//! | `hash` | consistent hash: what the DestinationRule hashes, `{"header": name}`, `{"cookie": name}`, `{"query_parameter": name}` or `{"source_ip": true}` (informational: the HTTP filter turns it into the route's hash key) |
//! | `hash_header` | consistent hash, when Envoy's route computes no hash: the request header whose value is hashed (xxHash64, as Envoy hashes a header) |
//! | `seed` | `null` / absent: each worker's generator is seeded from the OS; an integer: every balancer of this cluster starts from `SplitMix64(seed)` (tests) |
//!
//! Unknown keys are rejected, and so is a policy meshroute-lb would not build (a Maglev table
//! size that is not prime, for instance): Envoy then refuses the cluster.
//!
//! Hosts come from Envoy: on creation and on every host-membership update (EDS, health checks,
//! outlier ejection) the worker's balancer rebuilds its endpoint set — addresses and weights of
//! the healthy hosts of the first priority that has any — and the ring, Maglev table or EDF
//! schedule with it; a pick that finds the healthy counts changed without an update rebuilds too.
//! The consistent-hash key is Envoy's own (`compute_hash_key`: the route's `hash_policy`, the
//! `x-meshroute-hash` header the HTTP filter sets, else the source IP), so a key lands on the ring
//! point Envoy's own ring hash would pick for the same hosts. LEAST_REQUEST reads Envoy's
//! `rq_active` of the hosts it samples. A retry that must avoid the previous hosts
//! (`should_select_another_host`) picks again, up to Envoy's `host_selection_retry_count`.
//!
//! Stats, on the balancer configs (see [`stats`]): the counters `meshroute_lb_picks`,
//! `meshroute_lb_no_host`, `meshroute_lb_rebuilds` and `meshroute_lb_panics`, summed over the
//! clusters that use the module.
//!
//! Everything here is safe Rust behind two traits (`Hosts`, `Request`) that `ffi` implements
//! with Envoy's callbacks and the unit tests with plain values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use meshroute_lb::{
    hash_key, Endpoint, EndpointSet, HashAlgorithm, HashSource, LbPolicy, LeastRequestConfig,
    LoadBalancer, RandomConfig, SplitMix64, DEFAULT_MAXIMUM_RING_SIZE,
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
    hash: Option<RawHash>,
    #[serde(default)]
    hash_header: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum PolicyName {
    RoundRobin,
    Random,
    LeastRequest,
    RingHash,
    Maglev,
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
        };
        // Build one now: a bad setting is refused with the cluster, never found at pick time.
        LoadBalancer::new(policy.clone()).map_err(|e| format!("lb_policy_config: {e}"))?;
        Ok(LbConfig {
            cluster: raw.cluster.unwrap_or_default(),
            policy,
            hash_header: raw.hash_header.map(|h| h.to_ascii_lowercase()),
            seed: raw.seed,
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

/// One worker's balancer for one cluster.
pub(crate) struct WorkerLb {
    config: Arc<LbConfig>,
    balancer: LoadBalancer,
    /// The healthy hosts of `priority`, in Envoy's order (index = Envoy's healthy-host index).
    set: EndpointSet,
    priority: u32,
    /// Healthy-host index → index among all hosts at `priority` (for `rq_active` and retries).
    all_index: Vec<usize>,
    /// Healthy counts per priority when `set` was built.
    seen: Vec<usize>,
    built: bool,
    rng: SplitMix64,
}

impl WorkerLb {
    pub(crate) fn new(config: Arc<LbConfig>) -> WorkerLb {
        let balancer = LoadBalancer::new(config.policy.clone())
            // LbConfig::parse built this policy once already.
            .unwrap_or_else(|_| unreachable_policy());
        let seed = config.seed.unwrap_or_else(|| {
            crate::config::os_seed() ^ NEXT_STREAM.fetch_add(1, Ordering::Relaxed)
        });
        WorkerLb {
            config,
            balancer,
            set: EndpointSet::new(Vec::new()),
            priority: 0,
            all_index: Vec::new(),
            seen: Vec::new(),
            built: false,
            rng: SplitMix64::new(seed),
        }
    }

    pub(crate) fn config(&self) -> &LbConfig {
        &self.config
    }

    /// Rebuilds the endpoint set from Envoy's healthy hosts (the first priority with any).
    pub(crate) fn rebuild(&mut self, hosts: &impl Hosts) {
        let priorities = hosts.priorities();
        self.seen = (0..priorities)
            .map(|p| hosts.healthy_count(priority_u32(p)))
            .collect();
        let first = self.seen.iter().position(|&n| n > 0).unwrap_or(0);
        self.priority = priority_u32(first);
        let healthy = self.seen.get(first).copied().unwrap_or(0);
        let endpoints: Vec<Endpoint> = (0..healthy)
            .map(|i| match hosts.healthy_host(self.priority, i) {
                Some((address, weight)) => Endpoint::new(address).with_weight(weight),
                // Keeps the indices aligned with Envoy's list; never seen in practice.
                None => Endpoint::new(format!("#unknown-{i}")),
            })
            .collect();
        let everyone: std::collections::HashMap<String, usize> = (0..hosts
            .host_count(self.priority))
            .filter_map(|j| hosts.host_address(self.priority, j).map(|a| (a, j)))
            .collect();
        self.all_index = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| everyone.get(&e.address).copied().unwrap_or(i))
            .collect();
        self.set = EndpointSet::new(endpoints);
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

    /// The host for one request: (priority, index into that priority's healthy hosts).
    pub(crate) fn choose(
        &mut self,
        hosts: &impl Hosts,
        request: Option<&impl Request>,
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
            self.rebuild(hosts);
        }
        let chosen = self.pick(hosts, request);
        let ids = self.config.ids;
        self.config.count(if chosen.is_some() {
            ids.picks
        } else {
            ids.no_host
        });
        chosen
    }

    fn pick(&mut self, hosts: &impl Hosts, request: Option<&impl Request>) -> Option<(u32, u32)> {
        if self.set.is_empty() {
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
            priority,
            all_index,
            rng,
            ..
        } = self;
        let priority = *priority;
        let active = |i: usize| {
            let all = all_index.get(i).copied().unwrap_or(i);
            u32::try_from(hosts.active_requests(priority, all)).unwrap_or(u32::MAX)
        };
        let mut attempt = 0u32;
        loop {
            // A retry over a consistent hash looks a little further along the ring or table
            // (Envoy does the same, with its own offsets): the same key would find the same host.
            let key = hash.map(|h| if attempt == 0 { h } else { rehash(h, attempt) });
            let index = balancer
                .pick_with_active(set, key, rng, active)?
                .endpoint()?;
            let all = all_index.get(index).copied().unwrap_or(index);
            let rejected = request.is_some_and(|r| r.reject(priority, all));
            if !rejected || attempt >= attempts {
                return Some((priority, u32::try_from(index).ok()?));
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

/// `lb_new`: a worker's balancer, built from the hosts Envoy has now.
pub(crate) fn new_balancer(config: Arc<LbConfig>, hosts: &impl Hosts) -> WorkerLb {
    let mut lb = WorkerLb::new(config);
    lb.rebuild(hosts);
    lb
}

/// `lb_on_host_membership_update`: hosts were added or removed (or their health changed):
/// rebuild the endpoint set and the ring, table or schedule over it.
pub(crate) fn membership_update(
    lb: &mut WorkerLb,
    hosts: &impl Hosts,
    _added: usize,
    _removed: usize,
) {
    lb.rebuild(hosts);
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

    /// Hosts as plain values: (address, weight, healthy, active requests) per priority.
    #[derive(Default)]
    struct FakeHosts {
        priorities: Vec<Vec<(String, u32, bool, u64)>>,
    }

    impl FakeHosts {
        fn ports(ports: &[u16]) -> Self {
            FakeHosts {
                priorities: vec![ports
                    .iter()
                    .map(|p| (format!("127.0.0.1:{p}"), 1, true, 0))
                    .collect()],
            }
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
            .map(|_| lb.choose(&hosts, NO_REQUEST).expect("pick").1)
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_health_change_without_update_rebuilds_and_indexes_stay_healthy() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "ROUND_ROBIN"}"#);
        assert_eq!(lb.choose(&hosts, NO_REQUEST), Some((0, 0)));
        hosts.priorities[0][0].2 = false; // host 1 unhealthy: healthy list is [2, 3]
        for _ in 0..4 {
            let (_, index) = lb.choose(&hosts, NO_REQUEST).expect("pick");
            assert!(index < 2, "index {index} beyond the 2 healthy hosts");
        }
        for h in &mut hosts.priorities[0] {
            h.2 = false;
        }
        assert_eq!(lb.choose(&hosts, NO_REQUEST), None, "no healthy host");
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
        assert_eq!(lb.choose(&hosts, NO_REQUEST), Some((1, 0)));
    }

    #[test]
    fn least_request_reads_envoys_active_counts_through_the_all_hosts_index() {
        let mut hosts = FakeHosts::ports(&[1, 2, 3]);
        hosts.priorities[0][0].2 = false; // healthy [2, 3] = all-hosts indexes 1, 2
        hosts.priorities[0][2].3 = 50; // port 3 is busy
        let mut lb = worker(r#"{"policy": "LEAST_REQUEST", "seed": 7}"#);
        let busy = (0..200)
            .filter(|_| lb.choose(&hosts, NO_REQUEST) == Some((0, 1)))
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
            lb.choose(&hosts, Some(&request))
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
        assert_eq!(lb.choose(&hosts, Some(&header)), expected);
    }

    #[test]
    fn a_retry_picks_another_host_when_the_previous_one_is_rejected() {
        let hosts = FakeHosts::ports(&[1, 2, 3]);
        let mut lb = worker(r#"{"policy": "RING_HASH"}"#);
        let key = FakeRequest {
            hash: Some(12345),
            ..FakeRequest::default()
        };
        let (_, first) = lb.choose(&hosts, Some(&key)).expect("pick");
        let retry = FakeRequest {
            hash: Some(12345),
            retries: 5,
            rejected: vec![first as usize],
            ..FakeRequest::default()
        };
        let (_, second) = lb.choose(&hosts, Some(&retry)).expect("pick");
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
                    let (p, i) = lb.choose(hosts, Some(&r)).expect("pick");
                    hosts.healthy_host(p, i as usize).expect("host").0
                })
                .collect()
        };
        let three = FakeHosts::ports(&[1, 2, 3]);
        let before = map(&mut lb, &three);
        let four = FakeHosts::ports(&[1, 2, 3, 4]);
        lb.rebuild(&four); // as on_host_membership_update does
        let after = map(&mut lb, &four);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let to_new = after.iter().filter(|a| a.ends_with(":4")).count();
        assert!((800..=1250).contains(&moved), "{moved} of 4000 keys moved");
        assert!(
            to_new * 10 >= moved * 9,
            "{to_new} of {moved} moves went to the new host"
        );
    }
}
