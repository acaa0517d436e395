//! Injected randomness: the `Rng` trait and the `SplitMix64` generator.
//!
//! Randomness is a parameter of `route()` so that tests fix the seed and assert exact picks. The
//! trait and generator are those of `meshroute-lb`, so one seeded stream can drive both the route
//! pick and the endpoint pick.

pub use meshroute_lb::{Rng, SplitMix64};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
