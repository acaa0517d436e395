//! One upstream endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::locality::Locality;

/// An upstream endpoint (Envoy "host"): an address, a load-balancing weight
/// and the labels subsets select on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ip:port` (or any stable string). Consistent hashing hashes this
    /// string, as Envoy hashes `host->address()->asString()`, so keep it
    /// identical across rebuilds for keys to stay on their host.
    pub address: String,
    /// Relative load-balancing weight. 0 is treated as 1: Envoy's
    /// `load_balancing_weight` has a minimum of 1, and Istio's
    /// `WorkloadEntry.weight` of 0 means "unset".
    pub weight: u32,
    /// Workload labels (subsets select on them; `failoverPriority` compares them).
    pub labels: BTreeMap<String, String>,
    /// Where the endpoint runs (locality load balancing); empty when unknown.
    pub locality: Locality,
    /// When the endpoint joined the cluster, on the clock picks are given (slow start,
    /// [`crate::SlowStart`]); `None`: long ago, never warming up.
    pub added_at: Option<Duration>,
}

impl Endpoint {
    /// An endpoint with weight 1 and no labels.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            weight: 1,
            labels: BTreeMap::new(),
            locality: Locality::default(),
            added_at: None,
        }
    }

    /// The same endpoint with `weight` (0 is read as 1, see [`Endpoint::weight`]).
    #[must_use]
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same endpoint with one more label.
    #[must_use]
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The same endpoint in `locality`.
    #[must_use]
    pub fn with_locality(mut self, locality: Locality) -> Self {
        self.locality = locality;
        self
    }

    /// The same endpoint, joined the cluster at `at` (slow start).
    #[must_use]
    pub fn added_at(mut self, at: Duration) -> Self {
        self.added_at = Some(at);
        self
    }

    /// The weight the balancers use: `weight`, with 0 read as 1.
    #[inline]
    pub fn effective_weight(&self) -> u32 {
        self.weight.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_weight_reads_as_one() {
        assert_eq!(Endpoint::new("a").with_weight(0).effective_weight(), 1);
        assert_eq!(Endpoint::new("a").with_weight(7).effective_weight(), 7);
    }
}
