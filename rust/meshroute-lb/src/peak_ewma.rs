//! PEAK_EWMA: latency-aware balancing, meshroute's extension beyond Istio's policies (selected
//! per DestinationRule by the annotation `meshroute.io/load-balancer: PEAK_EWMA`). The idea is
//! the one Finagle and Linkerd balance with by default; the arithmetic below is ours.
//!
//! **The estimate.** Each endpoint keeps one number, its latency estimate, learnt from the
//! latencies the caller reports ([`crate::LoadBalancer::record_latency`]):
//! - a latency *above* the estimate replaces it at once (peak sensitivity: one slow answer is
//!   enough to stop favouring the endpoint);
//! - a latency *below* it pulls the estimate towards it by the share `1 − e^(−Δt/τ)` of the
//!   gap, where Δt is the time since the endpoint's previous observation and τ the decay time
//!   ([`crate::PeakEwmaConfig::decay`], 10 s by default): an exponentially weighted moving average
//!   whose weights depend on time, not on how many answers came back, so a busy and a quiet
//!   endpoint forget at the same rate;
//! - between observations, the estimate a pick sees decays towards zero as `e^(−Δt/τ)`: an
//!   endpoint that got nothing because it was slow is tried again after a while, and one probe
//!   tells whether it is still slow (peak) or fast again (its estimate then falls with τ).
//!
//! **The pick.** Power of two choices: two *different* candidates drawn at random, and the one
//! with the lower cost `estimate × (active requests + 1) / weight` wins (the first drawn on a
//! tie). The active requests make the cost grow while an endpoint's answers are outstanding, so
//! an endpoint that stalls stops getting traffic before any of its latencies is known.
//!
//! **A new endpoint** (no latency observed yet) costs nothing while idle, so it gets a first
//! request soon; while that request is in flight it costs [`PENALTY`] (plus its active count),
//! so it gets no second request until the first has answered — it is not flooded because it
//! looks unloaded. Estimates are kept by endpoint *address* when the endpoint set is replaced
//! (a membership change), so only the endpoints that are really new start over; ejection and
//! return (a health change on the same set) keep every estimate.

use std::collections::HashMap;
use std::time::Duration;

use crate::endpoint_set::EndpointSet;
use crate::policy::PeakEwmaConfig;
use crate::rng::{below, Rng};

/// The cost, in seconds of latency, of an endpoint with no latency observed yet and a request
/// in flight: far above any real estimate, so such an endpoint is chosen only against another
/// one in the same state (then the one with fewer requests in flight).
pub const PENALTY: f64 = 1.0e6;

/// One endpoint's latency estimate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Estimate {
    /// Seconds, as of `at`; meaningless until `observed`.
    seconds: f64,
    /// When the last latency was observed.
    at: Duration,
    observed: bool,
}

impl Estimate {
    /// Learn `latency` (seconds), observed at `now`.
    pub(crate) fn observe(&mut self, latency: f64, now: Duration, tau: f64) {
        let latency = if latency.is_finite() {
            latency.max(0.0)
        } else {
            PENALTY
        };
        if !self.observed || latency >= self.seconds {
            self.seconds = latency;
        } else {
            let kept = (-secs(now.saturating_sub(self.at)) / tau).exp();
            self.seconds = self.seconds * kept + latency * (1.0 - kept);
        }
        self.at = self.at.max(now);
        self.observed = true;
    }

    /// The estimate a pick sees at `now` (decayed since the last observation); `None` before the
    /// first observation.
    pub(crate) fn value(&self, now: Duration, tau: f64) -> Option<f64> {
        self.observed
            .then(|| self.seconds * (-secs(now.saturating_sub(self.at)) / tau).exp())
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[derive(Debug, Clone)]
pub(crate) struct PeakEwma {
    tau: f64,
    failure_latency: Duration,
    /// The endpoint set the estimates are indexed by (its id), and its addresses.
    set_id: Option<u64>,
    addresses: Vec<String>,
    estimates: Vec<Estimate>,
    /// Candidate position -> endpoint index and weight.
    hosts: Vec<(usize, f64)>,
    /// The latest time seen (a pick without a time uses it).
    clock: Duration,
}

impl PeakEwma {
    pub(crate) fn new(config: PeakEwmaConfig) -> Self {
        Self {
            tau: config.decay.as_secs_f64(),
            failure_latency: config.failure_latency,
            set_id: None,
            addresses: Vec::new(),
            estimates: Vec::new(),
            hosts: Vec::new(),
            clock: Duration::ZERO,
        }
    }

    pub(crate) fn failure_latency(&self) -> Duration {
        self.failure_latency
    }

    pub(crate) fn clock(&self) -> Duration {
        self.clock
    }

    /// Index the estimates by `set`'s endpoints, carrying them over by address from the set
    /// they were indexed by.
    fn sync(&mut self, set: &EndpointSet) {
        let id = set.version().0;
        if self.set_id == Some(id) {
            return;
        }
        let previous: HashMap<&str, Estimate> = self
            .addresses
            .iter()
            .map(String::as_str)
            .zip(self.estimates.iter().copied())
            .collect();
        let estimates = set
            .endpoints()
            .iter()
            .map(|e| {
                previous
                    .get(e.address.as_str())
                    .copied()
                    .unwrap_or_default()
            })
            .collect();
        self.estimates = estimates;
        self.addresses = set.endpoints().iter().map(|e| e.address.clone()).collect();
        self.set_id = Some(id);
    }

    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize]) {
        self.sync(set);
        self.hosts = candidates
            .iter()
            .map(|&i| (i, f64::from(set.endpoints()[i].effective_weight())))
            .collect();
    }

    /// Learn that a request to endpoint `index` of `set` took `latency`, as of `now`.
    pub(crate) fn record(
        &mut self,
        set: &EndpointSet,
        index: usize,
        latency: Duration,
        now: Duration,
    ) {
        self.sync(set);
        self.clock = self.clock.max(now);
        if let Some(estimate) = self.estimates.get_mut(index) {
            estimate.observe(latency.as_secs_f64(), now, self.tau);
        }
    }

    /// Endpoint `index` of `set`'s estimate at `now`, once it has answered at least once.
    pub(crate) fn estimate(
        &self,
        set: &EndpointSet,
        index: usize,
        now: Duration,
    ) -> Option<Duration> {
        let estimate = if self.set_id == Some(set.version().0) {
            self.estimates.get(index)?
        } else {
            // Not synced to `set` yet: the estimate of the same address.
            let address = &set.get(index)?.address;
            let at = self.addresses.iter().position(|a| a == address)?;
            &self.estimates[at]
        };
        Duration::try_from_secs_f64(estimate.value(now, self.tau)?).ok()
    }

    /// What choosing the candidate at `pos` costs at `now`.
    fn cost(&self, pos: usize, active: &impl Fn(usize) -> u32, now: Duration) -> f64 {
        let (index, weight) = self.hosts[pos];
        let in_flight = f64::from(active(index));
        match self.estimates[index].value(now, self.tau) {
            Some(latency) => latency * (in_flight + 1.0) / weight,
            None if in_flight == 0.0 => 0.0,
            None => PENALTY + in_flight,
        }
    }

    /// A candidate position (the candidate list is not empty); `active` gives the requests in
    /// flight of an endpoint index.
    pub(crate) fn pick(
        &mut self,
        active: impl Fn(usize) -> u32,
        rng: &mut impl Rng,
        now: Duration,
    ) -> usize {
        self.clock = self.clock.max(now);
        let n = self.hosts.len();
        if n < 2 {
            return 0;
        }
        let first = below(rng, n);
        let mut second = below(rng, n - 1);
        if second >= first {
            second += 1;
        }
        if self.cost(second, &active, now) < self.cost(first, &active, now) {
            second
        } else {
            first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAU: f64 = 10.0;

    fn at(seconds: f64) -> Duration {
        Duration::from_secs_f64(seconds)
    }

    #[test]
    fn a_slower_latency_replaces_the_estimate_a_faster_one_is_blended_in_by_time() {
        let mut e = Estimate::default();
        assert_eq!(e.value(at(0.0), TAU), None);
        e.observe(0.010, at(1.0), TAU);
        assert_eq!(e.value(at(1.0), TAU), Some(0.010));
        e.observe(0.200, at(1.001), TAU);
        assert_eq!(e.value(at(1.001), TAU), Some(0.200), "peak: at once");
        // 10 s (one τ) later, a 10 ms answer: e^-1 of the old estimate is kept.
        e.observe(0.010, at(11.001), TAU);
        let expected = 0.200 * (-1f64).exp() + 0.010 * (1.0 - (-1f64).exp());
        assert!((e.value(at(11.001), TAU).unwrap() - expected).abs() < 1e-12);
        // Answers close together move it little: the weights are by time, not by count.
        let before = e.value(at(11.001), TAU).unwrap();
        e.observe(0.010, at(11.002), TAU);
        assert!(before - e.value(at(11.002), TAU).unwrap() < 1e-5);
    }

    #[test]
    fn the_estimate_a_pick_sees_decays_towards_zero_between_observations() {
        let mut e = Estimate::default();
        e.observe(1.0, at(5.0), TAU);
        let later = e.value(at(25.0), TAU).unwrap();
        assert!((later - (-2f64).exp()).abs() < 1e-12, "{later}");
        assert_eq!(
            e.value(at(4.0), TAU),
            Some(1.0),
            "an earlier time never grows it"
        );
    }

    #[test]
    fn odd_latencies_are_safe() {
        let mut e = Estimate::default();
        e.observe(f64::NAN, at(0.0), TAU);
        assert_eq!(e.value(at(0.0), TAU), Some(PENALTY));
        e.observe(-1.0, at(100_000.0), TAU);
        assert_eq!(e.value(at(100_000.0), TAU), Some(0.0));
    }
}
