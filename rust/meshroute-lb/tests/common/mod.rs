//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use meshroute_lb::{Endpoint, EndpointSet, LoadBalancer, Rng, SplitMix64};

/// Endpoints `10.0.0.<i>:8080` with the given weights.
pub fn endpoints(weights: &[u32]) -> Vec<Endpoint> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Endpoint::new(format!("10.0.{}.{}:8080", i / 250, i % 250)).with_weight(w))
        .collect()
}

/// A set of `n` equal-weight endpoints.
pub fn equal_set(n: usize) -> EndpointSet {
    EndpointSet::new(endpoints(&vec![1; n]))
}

/// `picks` endpoint indices (panics on a non-endpoint selection).
pub fn pick_many(
    lb: &mut LoadBalancer,
    set: &EndpointSet,
    picks: usize,
    rng: &mut SplitMix64,
) -> Vec<usize> {
    (0..picks)
        .map(|_| {
            lb.pick(set, None, rng)
                .and_then(|s| s.endpoint())
                .expect("an endpoint")
        })
        .collect()
}

/// How many times each index in `0..n` occurs.
pub fn histogram(picks: &[usize], n: usize) -> Vec<usize> {
    let mut h = vec![0; n];
    for &p in picks {
        h[p] += 1;
    }
    h
}

/// The stream of `SplitMix64(seed)` reduced modulo `n`: what a uniform pick
/// must produce, computed independently of the balancer.
pub fn expected_uniform(seed: u64, n: u64, count: usize) -> Vec<usize> {
    let mut r = SplitMix64::new(seed);
    (0..count).map(|_| (r.next_u64() % n) as usize).collect()
}
