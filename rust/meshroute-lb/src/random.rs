//! RANDOM: "The random load balancer selects a random available host"
//! (Envoy docs). Envoy's implementation ignores endpoint weights
//! (`hosts[random() % size]`); [`crate::RandomConfig::honor_weights`] opts in
//! to a weighted draw for callers that want one.

use crate::endpoint_set::EndpointSet;
use crate::rng::{below, Rng};

#[derive(Debug, Clone, Default)]
pub(crate) struct Random {
    honor_weights: bool,
    // Running sums of weights, for a binary-searched weighted draw; empty when
    // the draw is uniform.
    cumulative: Vec<u64>,
    len: usize,
}

impl Random {
    pub(crate) fn new(honor_weights: bool) -> Self {
        Self {
            honor_weights,
            ..Self::default()
        }
    }

    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize]) {
        self.len = candidates.len();
        self.cumulative.clear();
        let weights: Vec<u32> = candidates
            .iter()
            .map(|&i| set.endpoints()[i].effective_weight())
            .collect();
        if self.honor_weights && !crate::round_robin::all_equal(&weights) {
            let mut total = 0u64;
            self.cumulative = weights
                .iter()
                .map(|&w| {
                    total += u64::from(w);
                    total
                })
                .collect();
        }
    }

    pub(crate) fn pick(&self, rng: &mut impl Rng) -> usize {
        match self.cumulative.last() {
            None => below(rng, self.len),
            Some(&total) => {
                let x = rng.next_u64() % total;
                // First running sum strictly above x: weight w owns w values of x.
                self.cumulative.partition_point(|&c| c <= x)
            }
        }
    }
}
