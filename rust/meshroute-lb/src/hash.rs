//! Hash keys for consistent hashing.
//!
//! Istio's `ConsistentHashLB` names *what* to hash (a header, a cookie, the
//! source IP or a query parameter); the caller extracts those bytes and turns
//! them into a `u64` with [`hash_key`]. Envoy hashes them with xxHash64, seed 0
//! (`HashUtil::xxHash64`), and so do we, so a key lands on the same ring point
//! as it would in Envoy for the same host set.

use std::time::Duration;

/// xxHash64 of `bytes` with seed 0, Envoy's default `hash_function: XX_HASH`.
#[inline]
pub fn hash_key(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, 0)
}

/// xxHash64 with an explicit seed; Maglev uses seeds 0 and 1 for a host's
/// offset and skip.
#[inline]
pub(crate) fn hash_seeded(bytes: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(bytes, seed)
}

/// Which request attribute is hashed (`ConsistentHashLB.hash_key` oneof).
///
/// Informational for the caller, which computes the key: a request *lacking*
/// the attribute is passed as `None` and gets a random host, as in Envoy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashSource {
    /// `httpHeaderName`: "Hash based on a specific HTTP header."
    HttpHeaderName(String),
    /// `httpCookie`: "Hash based on HTTP cookie." With `ttl` set, the proxy
    /// generates the cookie when it is missing (`ttl` 0 ⇒ session cookie).
    HttpCookie {
        /// Cookie name (required).
        name: String,
        /// Path to set for a generated cookie.
        path: Option<String>,
        /// Lifetime of a generated cookie; `None` ⇒ never generated.
        ttl: Option<Duration>,
    },
    /// `useSourceIp`: "Hash based on the source IP address." Works for TCP too.
    UseSourceIp,
    /// `httpQueryParameterName`: "Hash based on a specific HTTP query parameter."
    HttpQueryParameterName(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxh64_reference_vectors() {
        // Reference xxHash64 values (seed 0) from the xxHash specification's
        // test suite: empty input and "a".
        assert_eq!(hash_key(b""), 0xEF46_DB37_51D8_E999);
        assert_eq!(hash_key(b"a"), 0xD24E_C4F1_A98C_6E5B);
    }
}
