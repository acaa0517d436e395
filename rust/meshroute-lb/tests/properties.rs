//! Property tests: invariants over generated endpoint sets and traffic.

mod common;

use std::time::Duration;

use common::{endpoints, histogram, pick_many};
use meshroute_lb::{
    EndpointSet, HashAlgorithm, HashSource, LbPolicy, LoadBalancer, Outcome, OutlierDetection,
    OutlierDetector, RandomConfig, Selection, SplitMix64,
};
use proptest::prelude::*;

fn policy(which: u8) -> LbPolicy {
    let hashed = |algorithm| LbPolicy::ConsistentHash {
        source: HashSource::UseSourceIp,
        algorithm,
    };
    match which % 6 {
        0 => LbPolicy::RoundRobin,
        1 => LbPolicy::Random(RandomConfig::default()),
        2 => LbPolicy::Random(RandomConfig {
            honor_weights: true,
        }),
        3 => LbPolicy::default(),
        4 => hashed(HashAlgorithm::default()),
        _ => hashed(HashAlgorithm::Maglev { table_size: 251 }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A pick is always a healthy endpoint when one exists, and there is no
    /// pick when none does (panic disabled, the Istio default).
    #[test]
    fn picks_are_healthy(
        hosts in prop::collection::vec((0u32..20, any::<bool>()), 0..12),
        which in any::<u8>(),
        seed in any::<u64>(),
        keys in prop::collection::vec(prop::option::of(any::<u64>()), 1..30),
    ) {
        let weights: Vec<u32> = hosts.iter().map(|h| h.0).collect();
        let mut set = EndpointSet::new(endpoints(&weights));
        for (i, &(_, ejected)) in hosts.iter().enumerate() {
            set.set_ejected(i, ejected);
        }
        let mut lb = LoadBalancer::new(policy(which)).unwrap();
        let mut rng = SplitMix64::new(seed);
        for key in keys {
            match lb.pick(&set, key, &mut rng) {
                Some(Selection::Endpoint { index, panic }) => {
                    prop_assert!(!panic);
                    prop_assert!(!set.is_ejected(index));
                }
                Some(Selection::Passthrough) => prop_assert!(false, "not passthrough"),
                None => prop_assert_eq!(set.healthy_count(), 0),
            }
        }
    }

    /// Ejections never exceed maxEjectionPercent, except that one host may
    /// always be ejected.
    #[test]
    fn ejections_respect_the_cap(
        n in 1usize..25,
        max_percent in 0u32..=100,
        steps in prop::collection::vec((any::<usize>(), 200u16..600, 0u64..20, any::<bool>()), 1..300),
    ) {
        let config = OutlierDetection {
            max_ejection_percent: max_percent,
            consecutive_5xx_errors: 2,
            consecutive_gateway_errors: 1,
            ..Default::default()
        };
        let cap = (max_percent as usize * n / 100).max(1);
        let mut set = EndpointSet::new(endpoints(&vec![1; n]));
        let mut d = OutlierDetector::new(config, n);
        let mut now = Duration::ZERO;
        for (host, status, advance, sweep) in steps {
            now += Duration::from_secs(advance);
            d.record(&mut set, host % n, Outcome::Http(status), now);
            if sweep {
                d.sweep(&mut set, now);
            }
            prop_assert!(set.ejected_count() <= cap, "{} > {}", set.ejected_count(), cap);
        }
    }

    /// Weighted round robin hands out each full cycle exactly in proportion.
    #[test]
    fn edf_is_proportional(weights in prop::collection::vec(1u32..10, 1..8), cycles in 1usize..20) {
        let set = EndpointSet::new(endpoints(&weights));
        let mut lb = LoadBalancer::new(LbPolicy::RoundRobin).unwrap();
        let total: u32 = weights.iter().sum();
        let picks = pick_many(&mut lb, &set, total as usize * cycles, &mut SplitMix64::new(0));
        for (count, &w) in histogram(&picks, weights.len()).iter().zip(&weights) {
            // Floating-point deadlines may reorder ties at a cycle boundary.
            prop_assert!(count.abs_diff(w as usize * cycles) <= 1);
        }
    }

    /// Consistent hashing is a function of the key.
    #[test]
    fn hashing_is_deterministic(n in 1usize..20, key in any::<u64>(), maglev in any::<bool>()) {
        let set = EndpointSet::new(endpoints(&vec![1; n]));
        let mut lb = LoadBalancer::new(policy(if maglev { 5 } else { 4 })).unwrap();
        let mut rng = SplitMix64::new(0);
        let a = lb.pick(&set, Some(key), &mut rng);
        let b = lb.pick(&set, Some(key), &mut rng);
        prop_assert_eq!(a, b);
    }
}
