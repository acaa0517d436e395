//! The endpoints of one cluster, with their health (ejection) state.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::active::{ActiveRequest, ActiveRequests};
use crate::endpoint::Endpoint;

/// Each set gets a process-unique id so a [`crate::LoadBalancer`] notices
/// when it is handed a different set and rebuilds its schedule.
static NEXT_SET_ID: AtomicU64 = AtomicU64::new(1);

/// The endpoints of one cluster (host + subset + port) as one client sees
/// them: membership is fixed at construction (a membership change builds a
/// new set, as Envoy rebuilds its host set), health changes in place.
///
/// An endpoint is *healthy* unless outlier detection ejected it. Envoy's
/// balancers use only healthy hosts unless the cluster is in panic mode (see
/// [`crate::LoadBalancer`]).
#[derive(Debug)]
pub struct EndpointSet {
    id: u64,
    endpoints: Vec<Endpoint>,
    ejected: Vec<bool>,
    ejected_count: usize,
    // Bumped on every health change so cached schedules know they are stale.
    generation: u64,
    active: ActiveRequests,
}

impl EndpointSet {
    /// A set where every endpoint is healthy and idle.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        let n = endpoints.len();
        Self {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            endpoints,
            ejected: vec![false; n],
            ejected_count: 0,
            generation: 0,
            active: ActiveRequests::new(n),
        }
    }

    /// Number of endpoints (healthy or not).
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// `true` when the set has no endpoints at all.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Endpoint `index`.
    pub fn get(&self, index: usize) -> Option<&Endpoint> {
        self.endpoints.get(index)
    }

    /// All endpoints, in construction order (indices are positions here).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The index of the endpoint with `address`, if any.
    pub fn position(&self, address: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| e.address == address)
    }

    /// Whether endpoint `index` is currently ejected.
    pub fn is_ejected(&self, index: usize) -> bool {
        self.ejected[index]
    }

    /// Number of ejected endpoints.
    pub fn ejected_count(&self) -> usize {
        self.ejected_count
    }

    /// Number of healthy (not ejected) endpoints.
    pub fn healthy_count(&self) -> usize {
        self.len() - self.ejected_count
    }

    /// Mark endpoint `index` ejected or returned. Returns whether it changed.
    /// Usually driven by [`crate::OutlierDetector`].
    pub fn set_ejected(&mut self, index: usize, ejected: bool) -> bool {
        if self.ejected[index] == ejected {
            return false;
        }
        self.ejected[index] = ejected;
        if ejected {
            self.ejected_count += 1;
        } else {
            self.ejected_count -= 1;
        }
        self.generation += 1;
        true
    }

    /// Indices of the healthy endpoints, in order.
    pub fn healthy_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.ejected
            .iter()
            .enumerate()
            .filter_map(|(i, &e)| (!e).then_some(i))
    }

    /// The active-request gauges (shared; clone freely).
    pub fn active_requests(&self) -> &ActiveRequests {
        &self.active
    }

    /// Start a request on `index`; it finishes when the guard drops.
    pub fn start_request(&self, index: usize) -> ActiveRequest {
        self.active.guard(index)
    }

    /// (set id, health generation): changes whenever a cached schedule built
    /// from this set may be stale.
    pub(crate) fn version(&self) -> (u64, u64) {
        (self.id, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejection_bookkeeping() {
        let mut s = EndpointSet::new(vec![Endpoint::new("a"), Endpoint::new("b")]);
        let v0 = s.version();
        assert!(s.set_ejected(1, true));
        assert!(!s.set_ejected(1, true), "no change, no new generation");
        assert_ne!(s.version(), v0);
        assert_eq!((s.healthy_count(), s.ejected_count()), (1, 1));
        assert_eq!(s.healthy_indices().collect::<Vec<_>>(), vec![0]);
        assert_eq!(s.position("b"), Some(1));
    }

    #[test]
    fn distinct_sets_have_distinct_versions() {
        let a = EndpointSet::new(vec![Endpoint::new("a")]);
        let b = EndpointSet::new(vec![Endpoint::new("a")]);
        assert_ne!(a.version(), b.version());
    }
}
