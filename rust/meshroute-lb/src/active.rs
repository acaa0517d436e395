//! Active-request accounting, the input of LEAST_REQUEST.
//!
//! Envoy reads each host's `rq_active` gauge when it picks. Here the gauges
//! are atomics shared between the endpoint set and the guards, so a request
//! can finish on another thread, and a forgotten `finish` can't happen with
//! the RAII guard.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// Per-endpoint counts of requests in flight.
#[derive(Debug, Clone)]
pub struct ActiveRequests {
    counts: Arc<[AtomicU32]>,
}

impl ActiveRequests {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            counts: (0..len).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Requests in flight on endpoint `index`.
    #[inline]
    pub fn get(&self, index: usize) -> u32 {
        self.counts[index].load(Ordering::Relaxed)
    }

    /// Count one more request on `index`; pair with [`ActiveRequests::finish`].
    pub fn start(&self, index: usize) {
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Count one request fewer on `index`. Saturates at 0 so an unmatched
    /// `finish` can't wrap the gauge to 4 billion and starve the host.
    pub fn finish(&self, index: usize) {
        let _ = self.counts[index].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(1))
        });
    }

    /// Start a request on `index` and finish it when the guard drops.
    pub fn guard(&self, index: usize) -> ActiveRequest {
        self.start(index);
        ActiveRequest {
            counts: self.clone(),
            index,
        }
    }
}

/// A request in flight; dropping it decrements the endpoint's active count.
#[derive(Debug)]
#[must_use = "the request counts as finished as soon as the guard is dropped"]
pub struct ActiveRequest {
    counts: ActiveRequests,
    index: usize,
}

impl ActiveRequest {
    /// The endpoint this request runs on.
    pub fn endpoint(&self) -> usize {
        self.index
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.counts.finish(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_and_releases() {
        let a = ActiveRequests::new(2);
        let g1 = a.guard(1);
        let g2 = a.guard(1);
        assert_eq!((a.get(0), a.get(1)), (0, 2));
        drop(g1);
        assert_eq!(a.get(1), 1);
        assert_eq!(g2.endpoint(), 1);
        drop(g2);
        a.finish(1);
        assert_eq!(a.get(1), 0, "finish saturates at zero");
    }
}
