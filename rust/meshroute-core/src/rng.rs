//! Injected randomness: the `Rng` trait and the `SplitMix64` generator.
//!
//! Randomness is a parameter of `route()` so that tests fix the seed and assert exact picks.

/// A source of uniformly distributed 64-bit values.
pub trait Rng {
    /// The next value; every bit equally likely.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for traffic splitting.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

// === impl SplitMix64 ===

impl SplitMix64 {
    /// A generator whose sequence is fully determined by `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 0, from the published reference implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }
}
