//! Slow start as one pick sees it: the endpoints' join times against the current time.

use std::time::Duration;

use crate::endpoint_set::EndpointSet;
use crate::policy::SlowStart;

/// The weight factors of slow start at one moment (all 1.0 without slow start).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Warmup<'a> {
    pub(crate) slow_start: Option<&'a SlowStart>,
    pub(crate) set: &'a EndpointSet,
    pub(crate) now: Duration,
}

impl Warmup<'_> {
    /// The factor on endpoint `index`'s weight now.
    #[inline]
    pub(crate) fn factor(&self, index: usize) -> f64 {
        match (
            self.slow_start,
            self.set.get(index).and_then(|e| e.added_at),
        ) {
            (Some(s), Some(at)) => s.factor(self.now.saturating_sub(at)),
            _ => 1.0,
        }
    }

    /// Whether any of `candidates` is still warming up.
    pub(crate) fn any(&self, candidates: &[usize]) -> bool {
        self.slow_start.is_some() && candidates.iter().any(|&i| self.factor(i) < 1.0)
    }

    /// When the last endpoint of the set warming up now is warm; `None` if none is.
    pub(crate) fn until(&self) -> Option<Duration> {
        let s = self.slow_start?;
        self.set
            .endpoints()
            .iter()
            .filter_map(|e| e.added_at)
            .map(|at| at.saturating_add(s.window))
            .filter(|&end| end > self.now)
            .max()
    }
}
