//! Earliest-deadline-first scheduling, Envoy's weighted round robin core.
//!
//! Each entry gets a deadline `now + 1/weight`; a pick pops the earliest
//! deadline and re-adds the entry one period (`1/weight`) later, with `now`
//! advanced to the popped deadline. Over any window an entry is picked in
//! proportion to its weight, and picks of heavy entries are interleaved with
//! light ones instead of bunched. Equal deadlines are served in insertion
//! order (Envoy's `order_offset_`), which keeps the schedule deterministic.
//!
//! O(log n) per pick. Envoy additionally pre-picks a random number of times
//! when it builds a scheduler so that workers don't all start on the same
//! host; our state is per process, so we start at the beginning.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone)]
struct Entry {
    deadline: f64,
    seq: u64,
    item: usize,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest deadline,
    // then the oldest insertion, on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .total_cmp(&self.deadline)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// An EDF schedule over items `0..n` (positions in a candidate list).
#[derive(Debug, Clone, Default)]
pub(crate) struct Edf {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Edf {
    /// A schedule with every item added at time 0 with its weight.
    /// Weights must be positive and finite.
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut edf = Self::default();
        for (item, w) in weights.into_iter().enumerate() {
            edf.push(item, 0.0, w);
        }
        edf
    }

    fn push(&mut self, item: usize, now: f64, weight: f64) {
        debug_assert!(weight > 0.0 && weight.is_finite(), "EDF weight {weight}");
        self.heap.push(Entry {
            deadline: now + 1.0 / weight,
            seq: self.seq,
            item,
        });
        self.seq += 1;
    }

    /// Pop the earliest deadline and re-add that item with the weight
    /// `reweigh(item)` returns now. Static weights pass a constant; LEAST_REQUEST
    /// passes the load-adjusted weight, so only the picked host's weight is
    /// refreshed per pick, exactly as in Envoy.
    pub(crate) fn pick(&mut self, reweigh: impl FnOnce(usize) -> f64) -> Option<usize> {
        let top = self.heap.pop()?;
        self.push(top.item, top.deadline, reweigh(top.item));
        Some(top.item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaves_by_weight() {
        let weights = [1.0, 2.0, 3.0];
        let mut edf = Edf::new(weights);
        let order: Vec<usize> = (0..6).map(|_| edf.pick(|i| weights[i]).unwrap()).collect();
        // Deadlines: c 1/3, b 1/2, c 2/3, then a, b, c tie at 1 (insertion order).
        assert_eq!(order, vec![2, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn empty_schedule_picks_nothing() {
        assert_eq!(Edf::new([]).pick(|_| 1.0), None);
    }
}
