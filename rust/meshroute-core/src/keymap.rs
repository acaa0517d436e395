//! Byte-string keys found by an incremental hash.
//!
//! The hash of every prefix (or, fed backwards, every suffix) of a request string falls out of
//! one pass over its bytes, so the route index can probe all prefix lengths and the host index
//! all wildcard suffixes without slicing, lower-casing into a buffer, or allocating.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

/// Running FNV-1a state over bytes, optionally ASCII-lower-cased on the way in.
#[derive(Clone, Copy)]
pub(crate) struct RollingHash {
    state: u64,
    fold_case: bool,
}

impl RollingHash {
    pub(crate) fn new(fold_case: bool) -> Self {
        Self {
            state: FNV_OFFSET,
            fold_case,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, b: u8) {
        let b = if self.fold_case {
            b.to_ascii_lowercase()
        } else {
            b
        };
        self.state = (self.state ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }

    /// The hash of the bytes pushed so far; FNV's low bits are weak, so mix them in.
    #[inline]
    pub(crate) fn finish(&self) -> u64 {
        let mut z = self.state;
        z = (z ^ (z >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        z ^ (z >> 33)
    }

    pub(crate) fn of(bytes: &[u8], fold_case: bool) -> u64 {
        let mut h = Self::new(fold_case);
        bytes.iter().for_each(|&b| h.push(b));
        h.finish()
    }

    pub(crate) fn of_reversed(bytes: &[u8], fold_case: bool) -> u64 {
        let mut h = Self::new(fold_case);
        bytes.iter().rev().for_each(|&b| h.push(b));
        h.finish()
    }
}

/// The keys are already hashes: pass them through.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in for completeness.
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type Buckets<V> = HashMap<u64, Vec<(Box<[u8]>, V)>, BuildHasherDefault<PassThrough>>;

/// Byte-string key → value, probed with a precomputed `RollingHash`; collisions are verified.
pub(crate) struct KeyMap<V> {
    buckets: Buckets<V>,
    fold_case: bool,
}

// === impl KeyMap ===

impl<V> KeyMap<V> {
    pub(crate) fn new(fold_case: bool) -> Self {
        Self {
            buckets: HashMap::default(),
            fold_case,
        }
    }

    pub(crate) fn fold_case(&self) -> bool {
        self.fold_case
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The value for `key` (whose hash is `hash`), inserting `make()` when absent.
    pub(crate) fn entry(&mut self, hash: u64, key: &[u8], make: impl FnOnce() -> V) -> &mut V {
        let fold = self.fold_case;
        let bucket = self.buckets.entry(hash).or_default();
        let pos = match bucket.iter().position(|(k, _)| eq(k, key, fold)) {
            Some(pos) => pos,
            None => {
                bucket.push((key.into(), make()));
                bucket.len() - 1
            }
        };
        &mut bucket[pos].1
    }

    #[inline]
    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<&V> {
        let bucket = self.buckets.get(&hash)?;
        bucket
            .iter()
            .find(|(k, _)| eq(k, key, self.fold_case))
            .map(|(_, v)| v)
    }
}

#[inline]
fn eq(a: &[u8], b: &[u8], fold_case: bool) -> bool {
    if fold_case {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_prefix_hash_equals_whole_hash() {
        let s = b"/api/v1/users";
        let mut h = RollingHash::new(false);
        for (i, &b) in s.iter().enumerate() {
            h.push(b);
            assert_eq!(h.finish(), RollingHash::of(&s[..=i], false));
        }
    }

    #[test]
    fn fold_case_is_case_insensitive() {
        let mut m = KeyMap::new(true);
        *m.entry(RollingHash::of(b"/Foo", true), b"/Foo", || 0) = 7;
        assert_eq!(m.get(RollingHash::of(b"/fOO", true), b"/fOO"), Some(&7));
        assert_eq!(m.get(RollingHash::of(b"/foo2", true), b"/foo2"), None);
    }

    #[test]
    fn collisions_are_verified() {
        let mut m = KeyMap::new(false);
        *m.entry(1, b"a", || 0) = 1;
        *m.entry(1, b"b", || 0) = 2;
        assert_eq!(m.get(1, b"a"), Some(&1));
        assert_eq!(m.get(1, b"b"), Some(&2));
        assert_eq!(m.get(1, b"c"), None);
    }
}
