//! LEAST_REQUEST, Istio's default since 1.14 (`UNSPECIFIED` and the
//! deprecated `LEAST_CONN` map here).
//!
//! Envoy: "*all weights equal*: An O(1) algorithm which selects N random
//! available hosts … (2 by default) and picks the host which has the fewest
//! active requests" (power of two choices). "*not all weights equal*: … uses
//! the same EDF schedule as weighted round robin, except the weight is
//! dynamically adjusted: `weight / (active_requests + 1)^active_request_bias`"
//! (bias 1.0 by default), recomputed for a host each time it is picked. While an endpoint warms
//! up (slow start) the schedule is used too, the weight also scaled by its slow-start factor.

use crate::edf::Edf;
use crate::endpoint_set::EndpointSet;
use crate::rng::{below, Rng};
use crate::warmup::Warmup;
use crate::LeastRequestConfig;

#[derive(Debug, Clone, Default)]
pub(crate) struct LeastRequest {
    config: LeastRequestConfig,
    // Candidate position -> endpoint index and static weight.
    hosts: Vec<(usize, f64)>,
    schedule: Option<Edf>,
}

impl LeastRequest {
    pub(crate) fn new(config: LeastRequestConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize], warm: &Warmup<'_>) {
        let weights: Vec<u32> = candidates
            .iter()
            .map(|&i| set.endpoints()[i].effective_weight())
            .collect();
        self.hosts = candidates
            .iter()
            .zip(&weights)
            .map(|(&i, &w)| (i, f64::from(w)))
            .collect();
        self.schedule = if crate::round_robin::all_equal(&weights) && !warm.any(candidates) {
            None
        } else {
            let active = set.active_requests();
            let bias = self.config.active_request_bias;
            let initial: Vec<f64> = self
                .hosts
                .iter()
                .map(|&(i, w)| effective_weight(bias, w, active.get(i)) * warm.factor(i))
                .collect();
            Some(Edf::new(initial))
        };
    }

    /// A candidate position; `active` gives the requests in flight of an endpoint index.
    pub(crate) fn pick(
        &mut self,
        active: impl Fn(usize) -> u32,
        rng: &mut impl Rng,
        warm: &Warmup<'_>,
    ) -> usize {
        let bias = self.config.active_request_bias;
        let hosts = &self.hosts;
        if let Some(edf) = &mut self.schedule {
            return edf
                .pick(|pos| {
                    let (i, w) = hosts[pos];
                    effective_weight(bias, w, active(i)) * warm.factor(i)
                })
                .expect("non-empty schedule");
        }
        // Sample with replacement, keep the first of equally loaded samples:
        // Envoy's loop only switches on a strictly smaller active count.
        let n = self.hosts.len();
        let mut best = below(rng, n);
        for _ in 1..self.config.choice_count.max(1) {
            let other = below(rng, n);
            if active(self.hosts[other].0) < active(self.hosts[best].0) {
                best = other;
            }
        }
        best
    }
}

/// `weight / (active + 1)^bias`, with the two common biases computed without
/// `powf` (Envoy special-cases them the same way).
fn effective_weight(bias: f64, weight: f64, active: u32) -> f64 {
    let load = f64::from(active) + 1.0;
    if bias == 1.0 {
        weight / load
    } else if bias == 0.0 {
        weight
    } else {
        weight / load.powf(bias)
    }
}
