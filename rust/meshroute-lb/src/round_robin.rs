//! ROUND_ROBIN: "each available upstream host is selected in round robin
//! order. If weights are assigned to endpoints …, then a weighted round robin
//! schedule is used" (Envoy load balancer docs).
//!
//! Equal weights use a plain rotation; unequal weights use the EDF schedule,
//! which Envoy uses so that a weight-3 host is spread across the cycle rather
//! than picked three times in a row. Endpoints warming up (slow start) also switch to the
//! schedule, their weight scaled by the slow-start factor each time they are re-added.

use crate::edf::Edf;
use crate::endpoint_set::EndpointSet;
use crate::warmup::Warmup;

#[derive(Debug, Clone, Default)]
pub(crate) struct RoundRobin {
    // Survives rebuilds, as Envoy keeps `rr_indexes_` across host-set refreshes,
    // so a health change doesn't send the next request back to the first host.
    next: u64,
    // The schedule, and per candidate position: endpoint index and static weight.
    schedule: Option<(Edf, Vec<(usize, f64)>)>,
    len: usize,
}

impl RoundRobin {
    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize], warm: &Warmup<'_>) {
        self.len = candidates.len();
        let weights: Vec<u32> = candidates
            .iter()
            .map(|&i| set.endpoints()[i].effective_weight())
            .collect();
        self.schedule = if all_equal(&weights) && !warm.any(candidates) {
            None
        } else {
            let hosts: Vec<(usize, f64)> = candidates
                .iter()
                .zip(&weights)
                .map(|(&i, &w)| (i, f64::from(w)))
                .collect();
            let edf = Edf::new(hosts.iter().map(|&(i, w)| w * warm.factor(i)));
            Some((edf, hosts))
        };
    }

    /// A position in the candidate list; the caller guarantees it is non-empty.
    pub(crate) fn pick(&mut self, warm: &Warmup<'_>) -> usize {
        match &mut self.schedule {
            Some((edf, hosts)) => edf
                .pick(|pos| {
                    let (i, w) = hosts[pos];
                    w * warm.factor(i)
                })
                .expect("non-empty schedule"),
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
