//! ROUND_ROBIN: "each available upstream host is selected in round robin
//! order. If weights are assigned to endpoints …, then a weighted round robin
//! schedule is used" (Envoy load balancer docs).
//!
//! Equal weights use a plain rotation; unequal weights use the EDF schedule,
//! which Envoy uses so that a weight-3 host is spread across the cycle rather
//! than picked three times in a row.

use crate::edf::Edf;
use crate::endpoint_set::EndpointSet;

#[derive(Debug, Clone, Default)]
pub(crate) struct RoundRobin {
    // Survives rebuilds, as Envoy keeps `rr_indexes_` across host-set refreshes,
    // so a health change doesn't send the next request back to the first host.
    next: u64,
    schedule: Option<(Edf, Vec<f64>)>,
    len: usize,
}

impl RoundRobin {
    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize]) {
        self.len = candidates.len();
        let weights: Vec<u32> = candidates
            .iter()
            .map(|&i| set.endpoints()[i].effective_weight())
            .collect();
        self.schedule = if all_equal(&weights) {
            None
        } else {
            let w: Vec<f64> = weights.iter().map(|&w| f64::from(w)).collect();
            Some((Edf::new(w.iter().copied()), w))
        };
    }

    /// A position in the candidate list; the caller guarantees it is non-empty.
    pub(crate) fn pick(&mut self) -> usize {
        match &mut self.schedule {
            Some((edf, w)) => edf.pick(|i| w[i]).expect("non-empty schedule"),
            None => {
                let pos = (self.next % self.len as u64) as usize;
                self.next = self.next.wrapping_add(1);
                pos
            }
        }
    }
}

/// Envoy switches to the weighted schedule only when some weight differs.
pub(crate) fn all_equal(weights: &[u32]) -> bool {
    weights.windows(2).all(|w| w[0] == w[1])
}
