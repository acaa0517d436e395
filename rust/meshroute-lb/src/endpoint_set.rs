//! The endpoints of one cluster, with their health (ejection) state.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::active::{ActiveRequest, ActiveRequests};
use crate::endpoint::Endpoint;
use crate::locality::LocalityGroup;

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
///
/// The endpoints sit in Envoy's priority set: each in one locality group
/// ([`LocalityGroup`]: a locality at a priority, with its weight), as
/// [`EndpointSet::with_localities`] places them — [`EndpointSet::new`] puts them all in one group
/// at priority 0. An endpoint in no group is left out of balancing (a locality `distribute`
/// sends nothing to).
#[derive(Debug)]
pub struct EndpointSet {
    id: u64,
    endpoints: Vec<Endpoint>,
    ejected: Vec<bool>,
    ejected_count: usize,
    // Bumped on every health change so cached schedules know they are stale.
    generation: u64,
    active: ActiveRequests,
    groups: Vec<LocalityGroup>,
    // Endpoint -> its group (index into `groups`); `None`: left out.
    group_of: Vec<Option<usize>>,
    priorities: usize,
    locality_weighted: bool,
}

impl EndpointSet {
    /// A set where every endpoint is healthy and idle, all in one group at priority 0.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        let n = endpoints.len();
        let group = LocalityGroup {
            members: (0..n).collect(),
            ..LocalityGroup::default()
        };
        Self::with_localities(endpoints, vec![group], false)
    }

    /// A set whose endpoints are placed in `groups` (Envoy's `LocalityLbEndpoints`: a locality
    /// at a priority, with its weight; [`crate::locality`] computes Istio's), balanced across
    /// localities by weight within a priority when `locality_weighted` (Envoy's
    /// `locality_weighted_lb_config`). Members out of range, and second appearances of an
    /// endpoint, are ignored; groups left without members are dropped.
    pub fn with_localities(
        endpoints: Vec<Endpoint>,
        groups: Vec<LocalityGroup>,
        locality_weighted: bool,
    ) -> Self {
        let n = endpoints.len();
        let mut group_of = vec![None; n];
        let mut kept = Vec::with_capacity(groups.len());
        for mut group in groups {
            group.members.retain(|&m| {
                let free = m < n && group_of[m].is_none();
                if free {
                    group_of[m] = Some(kept.len());
                }
                free
            });
            if !group.members.is_empty() {
                kept.push(group);
            }
        }
        let priorities = kept
            .iter()
            .map(|g| g.priority as usize + 1)
            .max()
            .unwrap_or(1);
        Self {
            id: NEXT_SET_ID.fetch_add(1, Ordering::Relaxed),
            endpoints,
            ejected: vec![false; n],
            ejected_count: 0,
            generation: 0,
            active: ActiveRequests::new(n),
            groups: kept,
            group_of,
            priorities,
            locality_weighted,
        }
    }

    /// The locality groups (non-empty), as placed.
    pub fn groups(&self) -> &[LocalityGroup] {
        &self.groups
    }

    /// The priority of endpoint `index`; `None` when it is left out of balancing.
    pub fn priority(&self, index: usize) -> Option<u32> {
        let group = (*self.group_of.get(index)?)?;
        Some(self.groups[group].priority)
    }

    /// The group (index into [`EndpointSet::groups`]) of endpoint `index`, if any.
    pub fn group(&self, index: usize) -> Option<usize> {
        self.group_of.get(index).copied().flatten()
    }

    /// Number of priority levels (1 + the highest priority; at least 1).
    pub fn priorities(&self) -> usize {
        self.priorities
    }

    /// Whether localities are balanced by weight within a priority.
    pub fn locality_weighted(&self) -> bool {
        self.locality_weighted
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

    #[test]
    fn groups_place_endpoints_once_and_drop_empty_ones() {
        let group = |priority, members: Vec<usize>| LocalityGroup {
            priority,
            members,
            ..LocalityGroup::default()
        };
        let s = EndpointSet::with_localities(
            vec![Endpoint::new("a"), Endpoint::new("b"), Endpoint::new("c")],
            vec![group(2, vec![1, 7]), group(0, vec![]), group(1, vec![1, 0])],
            true,
        );
        assert_eq!(s.groups().len(), 2);
        assert_eq!(
            (s.priority(0), s.priority(1), s.priority(2)),
            (Some(1), Some(2), None)
        );
        assert_eq!(s.priorities(), 3);
        assert!(s.locality_weighted());
        let flat = EndpointSet::new(vec![Endpoint::new("a"), Endpoint::new("b")]);
        assert_eq!(
            (flat.groups().len(), flat.priority(1), flat.priorities()),
            (1, Some(0), 1)
        );
    }
}
