//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), selected with
//! `consistentHash.maglev`.
//!
//! A lookup table of prime size M (default 65537) is filled by letting each
//! host claim slots along its own permutation `(offset + j * skip) mod M`,
//! where offset and skip come from xxHash64 of the address with seeds 0 and 1.
//! Lookup is one modulo and one index, O(1), and on a host change most slots
//! keep their owner. Weights follow Envoy's approach: a host with weight w
//! claims a slot in w out of every `max_weight` rounds.

use crate::endpoint_set::EndpointSet;
use crate::hash::hash_seeded;

#[derive(Debug, Clone, Default)]
pub(crate) struct Maglev {
    table_size: u64,
    table: Vec<u32>,
}

impl Maglev {
    /// `table_size` must be prime (checked by [`crate::LoadBalancer::new`]).
    pub(crate) fn new(table_size: u64) -> Self {
        Self {
            table_size,
            table: Vec::new(),
        }
    }

    pub(crate) fn rebuild(&mut self, set: &EndpointSet, candidates: &[usize]) {
        let m = self.table_size;
        struct Walker {
            offset: u64,
            skip: u64,
            next: u64,
            weight: u64,
            credit: u64,
        }
        let mut walkers: Vec<Walker> = candidates
            .iter()
            .map(|&i| {
                let e = &set.endpoints()[i];
                let a = e.address.as_bytes();
                Walker {
                    offset: hash_seeded(a, 0) % m,
                    skip: hash_seeded(a, 1) % (m - 1) + 1,
                    next: 0,
                    weight: u64::from(e.effective_weight()),
                    credit: 0,
                }
            })
            .collect();
        let max_weight = walkers.iter().map(|w| w.weight).max().unwrap_or(1);

        const EMPTY: u32 = u32::MAX;
        self.table.clear();
        self.table.resize(m as usize, EMPTY);
        let mut filled = 0u64;
        // Every round, the heaviest hosts claim a slot; lighter ones bank
        // credit and claim when it reaches max_weight. Integer credit keeps
        // the fill exactly proportional and reproducible.
        'fill: loop {
            for (pos, w) in walkers.iter_mut().enumerate() {
                w.credit += w.weight;
                if w.credit < max_weight {
                    continue;
                }
                w.credit -= max_weight;
                // Walk this host's permutation to its next unclaimed slot;
                // skip < m and m is prime, so the walk visits every slot.
                let slot = loop {
                    let s = ((w.offset + w.skip * w.next) % m) as usize;
                    w.next += 1;
                    if self.table[s] == EMPTY {
                        break s;
                    }
                };
                self.table[slot] = pos as u32;
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
    }

    pub(crate) fn pick(&self, hash: u64) -> usize {
        self.table[(hash % self.table_size) as usize] as usize
    }
}

/// Trial division; table sizes are at most ~5M so this is instant.
pub(crate) fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n % 2 == 0 {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 2;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Endpoint;

    #[test]
    fn primes() {
        assert!(is_prime(65537) && is_prime(5_000_011) && is_prime(2) && is_prime(13));
        assert!(!is_prime(65536) && !is_prime(1) && !is_prime(0) && !is_prime(9));
    }

    #[test]
    fn weights_share_the_table() {
        let set = EndpointSet::new(vec![
            Endpoint::new("a:1").with_weight(1),
            Endpoint::new("b:1").with_weight(3),
        ]);
        let mut m = Maglev::new(65537);
        m.rebuild(&set, &[0, 1]);
        let a = m.table.iter().filter(|&&p| p == 0).count();
        // One claim per three rounds for a, every round for b: a gets 1/4.
        assert!((a as i64 - 65537 / 4).abs() <= 2, "a owns {a}");
    }
}
