//! One upstream cluster as one client sees it: endpoints, balancer, circuit
//! breaker and outlier detector wired together the way Envoy wires them.

use std::time::Duration;

use crate::balancer::{LoadBalancer, Selection};
use crate::circuit::CircuitBreaker;
use crate::circuit_limits::CircuitLimits;
use crate::endpoint::Endpoint;
use crate::endpoint_set::EndpointSet;
use crate::istio::TrafficPolicy;
use crate::locality::{self, LocalityLbSetting, Placement};
use crate::outlier::{Ejection, OutlierDetector};
use crate::outlier_config::{Outcome, OutlierDetection};
use crate::policy::{LbConfigError, LbPolicy};
use crate::rng::Rng;

/// A cluster (service host + subset + port) for one client.
#[derive(Debug)]
pub struct Cluster {
    endpoints: EndpointSet,
    balancer: LoadBalancer,
    breaker: CircuitBreaker,
    outlier: Option<OutlierDetector>,
}

impl Cluster {
    /// Build a cluster. `outlier` is `None` when the DestinationRule has no
    /// `outlierDetection` block (no ejection at all). Its `minHealthPercent`
    /// becomes the balancer's panic threshold, as Istio programs Envoy's
    /// `healthy_panic_threshold` from it.
    pub fn new(
        endpoints: Vec<Endpoint>,
        policy: LbPolicy,
        limits: CircuitLimits,
        outlier: Option<OutlierDetection>,
    ) -> Result<Self, LbConfigError> {
        Self::with_set(EndpointSet::new(endpoints), policy, limits, outlier)
    }

    /// [`Cluster::new`] over a set already placed in priorities and localities.
    pub fn with_set(
        endpoints: EndpointSet,
        policy: LbPolicy,
        limits: CircuitLimits,
        outlier: Option<OutlierDetection>,
    ) -> Result<Self, LbConfigError> {
        let panic_threshold = outlier.map_or(0, |o| o.min_health_percent);
        let n = endpoints.len();
        Ok(Self {
            endpoints,
            balancer: LoadBalancer::new(policy)?.with_panic_threshold(panic_threshold),
            breaker: CircuitBreaker::new(limits),
            outlier: outlier.map(|o| OutlierDetector::new(o, n)),
        })
    }

    /// The cluster as Istio programs it for a proxy at `client` with the effective traffic
    /// `policy`: the endpoints grouped by locality and placed in priorities by the
    /// `localityLbSetting` in force ([`crate::locality`]; failover only with outlier detection,
    /// as Istio), slow start from `warmup`, and the rest as [`Cluster::new`].
    ///
    /// `failoverPriority` compares the endpoints' and the client's labels, each with the
    /// topology labels of its locality added ([`locality::with_topology_labels`]).
    pub fn for_client(
        endpoints: Vec<Endpoint>,
        policy: &TrafficPolicy,
        client: &Placement,
    ) -> Result<Self, LbConfigError> {
        let set = match LocalityLbSetting::effective(policy.locality_lb.as_ref()) {
            None => EndpointSet::new(endpoints),
            Some(setting) => {
                let failover = policy.outlier.is_some();
                let labelled: Vec<Endpoint> = endpoints
                    .iter()
                    .map(|e| Endpoint {
                        labels: locality::with_topology_labels(&e.labels, &e.locality),
                        ..e.clone()
                    })
                    .collect();
                let client = Placement {
                    locality: client.locality.clone(),
                    labels: locality::with_topology_labels(&client.labels, &client.locality),
                };
                let groups = locality::apply(
                    locality::group_by_locality(&labelled),
                    &labelled,
                    &client,
                    &setting,
                    failover,
                );
                EndpointSet::with_localities(endpoints, groups, setting.locality_weighted(failover))
            }
        };
        let mut cluster = Self::with_set(set, policy.lb.clone(), policy.limits, policy.outlier)?;
        cluster.balancer = cluster.balancer.with_slow_start(policy.slow_start);
        Ok(cluster)
    }

    /// Pick an endpoint; `None` means 503 `UH` "no healthy upstream".
    /// See [`LoadBalancer::pick`] for `hash`.
    pub fn pick(&mut self, hash: Option<u64>, rng: &mut impl Rng) -> Option<Selection> {
        self.balancer.pick(&self.endpoints, hash, rng)
    }

    /// [`Cluster::pick`] at time `now` (PEAK_EWMA decays its estimates to it).
    pub fn pick_at(
        &mut self,
        hash: Option<u64>,
        rng: &mut impl Rng,
        now: Duration,
    ) -> Option<Selection> {
        self.balancer.pick_at(&self.endpoints, hash, rng, now)
    }

    /// Feed one attempt's latency — sent until its response, or until it failed — to the
    /// balancer (PEAK_EWMA learns from it; other policies ignore it). An attempt that ended
    /// without a response (`outcome` a local-origin failure: connect failure, reset, timeout)
    /// counts as at least [`crate::PeakEwmaConfig::failure_latency`].
    pub fn record_latency(
        &mut self,
        endpoint: usize,
        outcome: Outcome,
        latency: Duration,
        now: Duration,
    ) {
        let latency = match (outcome.is_local_failure(), self.balancer.failure_latency()) {
            (true, Some(floor)) => latency.max(floor),
            _ => latency,
        };
        self.balancer
            .record_latency(&self.endpoints, endpoint, latency, now);
    }

    /// Feed a request outcome to outlier detection (no-op without it).
    pub fn record(&mut self, endpoint: usize, outcome: Outcome, now: Duration) -> Option<Ejection> {
        self.outlier
            .as_mut()?
            .record(&mut self.endpoints, endpoint, outcome, now)
    }

    /// Run the outlier sweep; returns endpoints brought back.
    pub fn sweep(&mut self, now: Duration) -> Vec<usize> {
        match self.outlier.as_mut() {
            Some(o) => o.sweep(&mut self.endpoints, now),
            None => Vec::new(),
        }
    }

    /// The endpoints and their health.
    pub fn endpoints(&self) -> &EndpointSet {
        &self.endpoints
    }

    /// The circuit breaker (clone it to share with request tasks).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The balancer.
    pub fn balancer(&self) -> &LoadBalancer {
        &self.balancer
    }

    /// The outlier detector, if configured.
    pub fn outlier(&self) -> Option<&OutlierDetector> {
        self.outlier.as_ref()
    }
}
