//! One upstream endpoint.

use std::collections::BTreeMap;

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
    /// Workload labels (for subsets and locality); not used for picking.
    pub labels: BTreeMap<String, String>,
}

impl Endpoint {
    /// An endpoint with weight 1 and no labels.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            weight: 1,
            labels: BTreeMap::new(),
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
