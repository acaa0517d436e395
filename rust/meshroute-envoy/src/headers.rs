//! A copy of an Envoy header map: Envoy's header views point into its map and are only valid
//! until the map changes, so the request headers are copied into one buffer before the decision
//! and before any header is set.

/// Header names and values copied out of Envoy, in Envoy's order (pseudo-headers first).
#[derive(Debug, Default)]
pub(crate) struct HeaderBlock {
    bytes: Vec<u8>,
    /// Per header: end of the name, end of the value (offsets into `bytes`).
    ends: Vec<(usize, usize)>,
}

impl HeaderBlock {
    pub(crate) fn with_capacity(headers: usize, bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(headers),
        }
    }

    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.ends.push((name_end, self.bytes.len()));
    }

    /// `(name, value)` pairs as `RouteTable::exchange` takes them.
    pub(crate) fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        self.iter().collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let name = self.bytes.get(start..name_end).unwrap_or_default();
            let value = self.bytes.get(name_end..value_end).unwrap_or_default();
            start = value_end;
            (name, value)
        })
    }

    /// The first value of header `name` (Envoy's names are lower-case).
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| *k == name.as_bytes())
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_pairs_in_order_including_empty_values() {
        let mut block = HeaderBlock::with_capacity(3, 0);
        block.push(b":authority", b"reviews:9080");
        block.push(b"x-empty", b"");
        block.push(b"end-user", b"jason");
        assert_eq!(
            block.pairs(),
            vec![
                (&b":authority"[..], &b"reviews:9080"[..]),
                (&b"x-empty"[..], &b""[..]),
                (&b"end-user"[..], &b"jason"[..]),
            ]
        );
        assert_eq!(block.get("end-user"), Some(&b"jason"[..]));
        assert_eq!(block.get("x-empty"), Some(&b""[..]));
        assert_eq!(block.get("missing"), None);
    }
}
