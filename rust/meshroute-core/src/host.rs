//! `HostIndex`: virtual-host choice for one view — exact domain, then longest wildcard, then `*`.

use std::sync::Arc;

use crate::keymap::{KeyMap, RollingHash};

/// Which vhost (and which of its domain entries) a request host selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostHit {
    pub(crate) vhost: u32,
    pub(crate) domain: u32,
}

/// Domain lookup for a view's vhosts.
///
/// Envoy virtual-host choice: "exact domain > longest `*.suffix` > `*`", compared
/// case-insensitively with the port stripped. Istio wildcards are suffix matches on the text
/// after `*` (`*.foo.com` matches `a.b.foo.com` but not `foo.com`): a wildcard must match at least
/// one character. The first vhost claiming a domain keeps it (Envoy rejects duplicates).
pub(crate) struct HostIndex {
    exact: KeyMap<HostHit>,
    /// Keyed by suffix (the text after `*`), hashed from its last byte backwards.
    suffixes: KeyMap<HostHit>,
    /// `suffix_lens[n]`: some suffix is `n` bytes long.
    suffix_lens: Vec<bool>,
    star: Option<HostHit>,
}

// === impl HostIndex ===

impl HostIndex {
    /// `vhosts[i]` is the domain list of vhost `i`.
    pub(crate) fn build<'a>(vhosts: impl Iterator<Item = &'a [String]>) -> Self {
        Self::build_from(0, vhosts)
    }

    /// `vhosts[i]` is the domain list of vhost `first + i`.
    pub(crate) fn build_from<'a>(first: u32, vhosts: impl Iterator<Item = &'a [String]>) -> Self {
        let mut index = Self {
            exact: KeyMap::new(true),
            suffixes: KeyMap::new(true),
            suffix_lens: Vec::new(),
            star: None,
        };
        for (v, domains) in (first..).zip(vhosts) {
            for (d, domain) in (0u32..).zip(domains) {
                index.insert(
                    domain,
                    HostHit {
                        vhost: v,
                        domain: d,
                    },
                );
            }
        }
        index
    }

    fn insert(&mut self, domain: &str, hit: HostHit) {
        if domain == "*" {
            self.star.get_or_insert(hit);
        } else if let Some(suffix) = domain.strip_prefix('*') {
            if self.suffix_lens.len() <= suffix.len() {
                self.suffix_lens.resize(suffix.len() + 1, false);
            }
            self.suffix_lens[suffix.len()] = true;
            let hash = RollingHash::of_reversed(suffix.as_bytes(), true);
            self.suffixes.entry(hash, suffix.as_bytes(), || hit);
        } else {
            let hash = RollingHash::of(domain.as_bytes(), true);
            self.exact.entry(hash, domain.as_bytes(), || hit);
        }
    }

    /// The vhost for `host` (already port-stripped, any case).
    pub(crate) fn lookup(&self, host: &str) -> Option<HostHit> {
        let bytes = host.as_bytes();
        if let Some(hit) = self.exact_hit(bytes) {
            return Some(hit);
        }
        self.longest_suffix(bytes).map(|(_, hit)| hit).or(self.star)
    }

    #[inline]
    fn exact_hit(&self, host: &[u8]) -> Option<HostHit> {
        self.exact.get(RollingHash::of(host, true), host).copied()
    }

    /// The longest wildcard suffix matching `host`: its length and hit.
    fn longest_suffix(&self, host: &[u8]) -> Option<(usize, HostHit)> {
        // Strictly shorter than the host: the `*` must cover at least one character.
        let max = host
            .len()
            .saturating_sub(1)
            .min(self.suffix_lens.len().saturating_sub(1));
        let mut h = RollingHash::new(true);
        let mut best = None;
        for n in 1..=max {
            h.push(host[host.len() - n]);
            if self.suffix_lens[n] {
                if let Some(hit) = self.suffixes.get(h.finish(), &host[host.len() - n..]) {
                    best = Some((n, *hit));
                }
            }
        }
        best
    }
}

/// A view's host index: the one built over its vhosts, plus, once patches appended vhosts to the
/// view, a small one over those. Appending a service to every view of a 10 000-service mesh then
/// indexes its few domains instead of re-indexing every view's tens of thousands.
#[derive(Clone)]
pub(crate) struct ViewHosts {
    pub(crate) base: Arc<HostIndex>,
    /// How many of the view's vhosts (from position 0) `base` indexes.
    pub(crate) base_len: u32,
    /// The vhosts at positions `base_len..` (hits carry their positions in the view).
    pub(crate) appended: Option<Arc<HostIndex>>,
}

// === impl ViewHosts ===

impl ViewHosts {
    /// One index over every vhost of the view (`vhosts[i]`: the domains of position `i`).
    pub(crate) fn build<'a>(vhosts: impl ExactSizeIterator<Item = &'a [String]>) -> Self {
        let base_len = u32::try_from(vhosts.len()).unwrap_or(u32::MAX);
        Self {
            base: Arc::new(HostIndex::build(vhosts)),
            base_len,
            appended: None,
        }
    }

    /// The same base, with `appended` (the domains of positions `base_len..`) indexed apart.
    pub(crate) fn with_appended<'a>(&self, appended: impl Iterator<Item = &'a [String]>) -> Self {
        Self {
            base: Arc::clone(&self.base),
            base_len: self.base_len,
            appended: Some(Arc::new(HostIndex::build_from(self.base_len, appended))),
        }
    }

    /// The vhost for `host` (already port-stripped, any case), as one index over all of them.
    #[inline]
    pub(crate) fn lookup(&self, host: &str) -> Option<HostHit> {
        match &self.appended {
            None => self.base.lookup(host),
            Some(more) => self.lookup_layered(more, host),
        }
    }

    /// Exact, then longest wildcard, then `*`, across both indexes. The base's vhosts come first
    /// in the view, so they claimed any domain both have: the base wins every tie.
    #[inline(never)]
    fn lookup_layered(&self, more: &HostIndex, host: &str) -> Option<HostHit> {
        let bytes = host.as_bytes();
        if let Some(hit) = self.base.exact_hit(bytes).or_else(|| more.exact_hit(bytes)) {
            return Some(hit);
        }
        match (self.base.longest_suffix(bytes), more.longest_suffix(bytes)) {
            (Some((n, hit)), Some((m, later))) => Some(if m > n { later } else { hit }),
            (Some((_, hit)), None) | (None, Some((_, hit))) => Some(hit),
            (None, None) => self.base.star.or(more.star),
        }
    }
}

/// A set of host patterns (exact names, `*suffix` wildcards, `*`) that only answers "does any
/// pattern match?", with the same rules as [`HostIndex`]: used for the hosts of a view's
/// `tls.httpsRedirect` servers.
///
/// The empty set, by far the common case, costs one branch; `*` costs no hashing.
#[derive(Clone)]
pub(crate) struct HostSet {
    star: bool,
    /// Shared by the patched copies of a view.
    index: Option<Arc<HostIndex>>,
}

// === impl HostSet ===

impl HostSet {
    pub(crate) fn build(patterns: &[String]) -> Self {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
        let star = patterns.iter().any(|p| p == "*");
        let index = (!star && !patterns.is_empty())
            .then(|| Arc::new(HostIndex::build(std::iter::once(patterns.as_slice()))));
        Self { star, index }
    }

    /// Whether `host` (already port-stripped, any case) matches some pattern.
    #[inline]
    pub(crate) fn matches(&self, host: &str) -> bool {
        self.star
            || self
                .index
                .as_ref()
                .is_some_and(|i| i.lookup(host).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(vhosts: &[&[&str]]) -> HostIndex {
        let owned: Vec<Vec<String>> = vhosts
            .iter()
            .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        HostIndex::build(owned.iter().map(Vec::as_slice))
    }

    fn vh(i: &HostIndex, host: &str) -> Option<(u32, u32)> {
        i.lookup(host).map(|h| (h.vhost, h.domain))
    }

    #[test]
    fn exact_beats_wildcard_beats_star() {
        let i = index(&[&["*"], &["*.example.com"], &["api.example.com", "api"]]);
        assert_eq!(vh(&i, "api.example.com"), Some((2, 0)));
        assert_eq!(vh(&i, "api"), Some((2, 1)));
        assert_eq!(vh(&i, "www.example.com"), Some((1, 0)));
        assert_eq!(vh(&i, "other.org"), Some((0, 0)));
    }

    #[test]
    fn longest_wildcard_wins() {
        let i = index(&[&["*.com"], &["*.example.com"], &["*le.com"]]);
        assert_eq!(vh(&i, "a.example.com"), Some((1, 0)));
        assert_eq!(vh(&i, "a.sample.com"), Some((2, 0)));
        assert_eq!(vh(&i, "x.org.com"), Some((0, 0)));
    }

    #[test]
    fn wildcard_needs_one_character() {
        let i = index(&[&["*.foo.com"]]);
        assert_eq!(vh(&i, ".foo.com"), None);
        assert_eq!(vh(&i, "x.foo.com"), Some((0, 0)));
        assert_eq!(vh(&i, "foo.com"), None);
        assert_eq!(vh(&i, "a.b.foo.com"), Some((0, 0)));
        let j = index(&[&["*foo.com"]]);
        assert_eq!(vh(&j, "foo.com"), None);
        assert_eq!(vh(&j, "xfoo.com"), Some((0, 0)));
    }

    #[test]
    fn case_insensitive() {
        let i = index(&[&["reviews.default.svc.cluster.local"], &["*.Example.com"]]);
        assert_eq!(vh(&i, "Reviews.DEFAULT.svc.cluster.local"), Some((0, 0)));
        assert_eq!(vh(&i, "WWW.EXAMPLE.COM"), Some((1, 0)));
    }

    #[test]
    fn no_match_and_first_claim_wins() {
        let i = index(&[&["a"], &["a", "b"]]);
        assert_eq!(vh(&i, "a"), Some((0, 0)));
        assert_eq!(vh(&i, "b"), Some((1, 1)));
        assert_eq!(vh(&i, "c"), None);
        assert_eq!(vh(&i, ""), None);
    }

    #[test]
    fn appended_vhosts_decide_as_one_index() {
        let lists: [&[&str]; 6] = [
            &["a", "*.example.com", "*.b.com"],
            &["*"],
            &["x", "*.example.com"],
            &["c", "a", "*.long.b.com", "*"],
            &["*.com"],
            &["*.b.com", "d"],
        ];
        let owned: Vec<Vec<String>> = lists
            .iter()
            .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let hosts = [
            "a",
            "x",
            "c",
            "d",
            "q.example.com",
            "z.long.b.com",
            "z.b.com",
            "q.com",
            "nope",
            "",
        ];
        let whole = HostIndex::build(owned.iter().map(Vec::as_slice));
        for split in 0..=owned.len() {
            let base = ViewHosts::build(owned[..split].iter().map(Vec::as_slice));
            let layered = base.with_appended(owned[split..].iter().map(Vec::as_slice));
            for host in hosts {
                assert_eq!(layered.lookup(host), whole.lookup(host), "{split} {host}");
            }
        }
    }

    fn set(patterns: &[&str]) -> HostSet {
        HostSet::build(&patterns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn host_set_exact_wildcard_star() {
        let empty = set(&[]);
        assert!(!empty.matches("a.example.com") && !empty.matches(""));
        let s = set(&["Secure.example.com", "*.admin.example.com"]);
        assert!(s.matches("secure.example.com") && s.matches("SECURE.Example.COM"));
        assert!(s.matches("x.admin.example.com") && s.matches("a.b.admin.example.com"));
        assert!(!s.matches("admin.example.com") && !s.matches("plain.example.com"));
        assert!(!s.matches("secure.example.com.evil") && !s.matches(""));
        let all = set(&["plain.example.com", "*"]);
        assert!(all.matches("anything") && all.matches(""));
    }
}
