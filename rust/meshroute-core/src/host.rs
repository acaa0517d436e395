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
        Self::build_at((first..).zip(vhosts))
    }

    /// Each item: a vhost's position and its domain list, in ascending positions.
    pub(crate) fn build_at<'a>(vhosts: impl Iterator<Item = (u32, &'a [String])>) -> Self {
        let mut index = Self {
            exact: KeyMap::new(true),
            suffixes: KeyMap::new(true),
            suffix_lens: Vec::new(),
            star: None,
        };
        for (v, domains) in vhosts {
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
    #[inline]
    fn longest_suffix(&self, host: &[u8]) -> Option<(usize, HostHit)> {
        self.longest_suffix_where(host, |_| true)
    }

    /// The longest wildcard suffix matching `host` whose hit `keep` accepts.
    #[inline]
    fn longest_suffix_where(
        &self,
        host: &[u8],
        keep: impl Fn(HostHit) -> bool,
    ) -> Option<(usize, HostHit)> {
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
                    if keep(*hit) {
                        best = Some((n, *hit));
                    }
                }
            }
        }
        best
    }
}

/// The vhosts of a view that a shared base index does not describe: the positions whose base
/// entries it must skip, and an index over the view's own vhosts at those positions.
pub(crate) struct Own {
    /// Bit `p`: the base's entries for position `p` are not this view's.
    masked: Box<[u64]>,
    index: HostIndex,
}

// === impl Own ===

impl Own {
    #[inline]
    fn masks(&self, hit: HostHit) -> bool {
        let p = hit.vhost as usize;
        self.masked
            .get(p / 64)
            .is_some_and(|word| word >> (p % 64) & 1 == 1)
    }
}

/// A view's host index: the one built over its vhosts — or over another view's list that
/// mostly coincides with this one, shared by every such view, with `own` describing the
/// positions where this view's vhosts differ — plus, once patches appended vhosts to the view,
/// a small one over those. Appending a service to every view of a 10 000-service mesh then
/// indexes its few domains instead of re-indexing every view's tens of thousands.
#[derive(Clone)]
pub(crate) struct ViewHosts {
    pub(crate) base: Arc<HostIndex>,
    /// How many of the view's vhosts (from position 0) `base` indexes.
    pub(crate) base_len: u32,
    /// The positions below `base_len` where the view differs from the list `base` indexes.
    pub(crate) own: Option<Arc<Own>>,
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
            own: None,
            appended: None,
        }
    }

    /// A view of `len` vhosts sharing `base`, an index over another list of `len` vhosts: `own`
    /// lists (ascending) the positions where this view's vhosts differ, with their domains.
    ///
    /// The caller guarantees that no domain of the base list's vhost at such a position is
    /// claimed by another vhost of that list (once skipped, the base would not know the next
    /// claimant).
    pub(crate) fn shared(base: Arc<HostIndex>, len: usize, own: &[(u32, &[String])]) -> Self {
        let own = (!own.is_empty()).then(|| {
            let mut masked = vec![0u64; len.div_ceil(64)];
            for &(p, _) in own {
                masked[p as usize / 64] |= 1 << (p % 64);
            }
            Arc::new(Own {
                masked: masked.into(),
                index: HostIndex::build_at(own.iter().copied()),
            })
        });
        Self {
            base,
            base_len: u32::try_from(len).unwrap_or(u32::MAX),
            own,
            appended: None,
        }
    }

    /// The same base, with `appended` (the domains of positions `base_len..`) indexed apart.
    pub(crate) fn with_appended<'a>(&self, appended: impl Iterator<Item = &'a [String]>) -> Self {
        Self {
            base: Arc::clone(&self.base),
            base_len: self.base_len,
            own: self.own.clone(),
            appended: Some(Arc::new(HostIndex::build_from(self.base_len, appended))),
        }
    }

    /// The vhost for `host` (already port-stripped, any case), as one index over all of them.
    #[inline]
    pub(crate) fn lookup(&self, host: &str) -> Option<HostHit> {
        if self.own.is_none() && self.appended.is_none() {
            self.base.lookup(host)
        } else {
            self.lookup_layered(host)
        }
    }

    /// Exact, then longest wildcard, then `*`, across the base (without its masked positions),
    /// the view's own vhosts and the appended ones. Each index keeps the first claim of its
    /// positions, so of two hits for the same rank the earlier position wins.
    #[inline(never)]
    fn lookup_layered(&self, host: &str) -> Option<HostHit> {
        let bytes = host.as_bytes();
        let own = self.own.as_deref();
        let more = self.appended.as_deref();
        let kept = |hit: &HostHit| own.map_or(true, |o| !o.masks(*hit));
        let hash = RollingHash::of(bytes, true);
        let mut exact = self.base.exact.get(hash, bytes).copied().filter(kept);
        for layer in [own.map(|o| &o.index), more].into_iter().flatten() {
            exact = earliest(exact, layer.exact.get(hash, bytes).copied());
        }
        if exact.is_some() {
            return exact;
        }
        let mut best = self.base.longest_suffix_where(bytes, |h| kept(&h));
        for layer in [own.map(|o| &o.index), more].into_iter().flatten() {
            best = match (best, layer.longest_suffix(bytes)) {
                (Some((n, a)), Some((m, b))) => Some(if m > n || (m == n && b.vhost < a.vhost) {
                    (m, b)
                } else {
                    (n, a)
                }),
                (a, b) => a.or(b),
            };
        }
        if let Some((_, hit)) = best {
            return Some(hit);
        }
        let mut star = self.base.star.filter(kept);
        for layer in [own.map(|o| &o.index), more].into_iter().flatten() {
            star = earliest(star, layer.star);
        }
        star
    }
}

/// Of two hits, the one at the earlier position (the first claim).
#[inline]
fn earliest(a: Option<HostHit>, b: Option<HostHit>) -> Option<HostHit> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.vhost < x.vhost { y } else { x }),
        (x, y) => x.or(y),
    }
}

/// How specific a domain pattern is, in Envoy's virtual-host order: any exact name beats any
/// wildcard, a longer `*suffix` beats a shorter one, and `*` comes last.
#[inline]
pub(crate) fn specificity(domain: &str) -> usize {
    match domain.strip_prefix('*') {
        None => usize::MAX,
        Some(suffix) => suffix.len(),
    }
}

/// A set of host patterns (exact names, `*suffix` wildcards, `*`) with the same matching rules
/// as [`HostIndex`]: the hosts of a view's `tls.httpsRedirect` servers, each standing for a
/// virtual host of its own that requires TLS (docs/ir.md "View").
///
/// The empty set, by far the common case, costs one branch; `*` alone costs no hashing.
#[derive(Clone)]
pub(crate) struct HostSet {
    star: bool,
    /// Shared by the patched copies of a view.
    index: Option<Arc<HostIndex>>,
    /// The patterns other than `*`, lower-cased (`HostHit::domain` indexes them).
    patterns: Arc<[String]>,
}

// === impl HostSet ===

impl HostSet {
    pub(crate) fn build(patterns: &[String]) -> Self {
        let mut seen = std::collections::HashSet::new();
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| seen.insert(p.clone()))
            .collect();
        let star = patterns.iter().any(|p| p == "*");
        let patterns: Vec<String> = patterns.into_iter().filter(|p| p != "*").collect();
        let index = (!patterns.is_empty())
            .then(|| Arc::new(HostIndex::build(std::iter::once(patterns.as_slice()))));
        Self {
            star,
            index,
            patterns: patterns.into(),
        }
    }

    /// Whether `host` (already port-stripped, any case) matches some pattern.
    #[cfg(test)]
    pub(crate) fn matches(&self, host: &str) -> bool {
        self.best(host).is_some()
    }

    /// The [`specificity`] of the most specific pattern `host` (already port-stripped, any
    /// case) matches, or `None` when it matches none.
    #[inline]
    pub(crate) fn best(&self, host: &str) -> Option<usize> {
        let hit = self.index.as_ref().and_then(|i| i.lookup(host));
        match hit {
            Some(h) => Some(specificity(&self.patterns[h.domain as usize])),
            None => self.star.then_some(0),
        }
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

    #[test]
    fn shared_base_with_own_positions_decides_as_one_index() {
        let to = |l: &[&[&str]]| -> Vec<Vec<String>> {
            l.iter()
                .map(|d| d.iter().map(|s| (*s).to_owned()).collect())
                .collect()
        };
        // The base list; positions 1, 3 and 5 claim nothing another position claims.
        let base = to(&[
            &["a", "*.example.com", "*.b.com"],
            &["*", "only1"],
            &["x", "*.example.com", "a"],
            &["*.long.b.com", "only3"],
            &["*.com", "x"],
            &["*.q.example.com", "d"],
        ]);
        let replacements = to(&[
            &["a", "*.example.com"],
            &["y", "*.b.com", "*"],
            &["*.long.b.com", "d", "x"],
            &[],
        ]);
        let hosts = [
            "a",
            "x",
            "y",
            "d",
            "only1",
            "only3",
            "q.example.com",
            "z.q.example.com",
            "z.long.b.com",
            "z.b.com",
            "q.com",
            "nope",
            "",
        ];
        let shared = Arc::new(HostIndex::build(base.iter().map(Vec::as_slice)));
        for mask in 0u32..64 {
            let positions: Vec<u32> = [1u32, 3, 5]
                .into_iter()
                .filter(|p| mask & (1 << p) != 0)
                .collect();
            let mut view = base.clone();
            for (i, &p) in positions.iter().enumerate() {
                view[p as usize] = replacements[(i + mask as usize) % replacements.len()].clone();
            }
            let own: Vec<(u32, &[String])> = positions
                .iter()
                .map(|&p| (p, view[p as usize].as_slice()))
                .collect();
            let layered = ViewHosts::shared(Arc::clone(&shared), view.len(), &own);
            let whole = HostIndex::build(view.iter().map(Vec::as_slice));
            for host in hosts {
                assert_eq!(layered.lookup(host), whole.lookup(host), "{mask} {host}");
            }
            let extra = to(&[&["nope", "a"], &["*.com", "*"]]);
            let appended = layered.with_appended(extra.iter().map(Vec::as_slice));
            view.extend(extra.iter().cloned());
            let whole = HostIndex::build(view.iter().map(Vec::as_slice));
            for host in hosts {
                assert_eq!(appended.lookup(host), whole.lookup(host), "{mask} +{host}");
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

    #[test]
    fn host_set_best_is_the_most_specific_pattern() {
        let s = set(&["*", "*.example.com", "*.a.example.com", "b.a.example.com"]);
        assert_eq!(s.best("B.a.example.com"), Some(usize::MAX));
        assert_eq!(s.best("c.a.example.com"), Some(".a.example.com".len()));
        assert_eq!(s.best("x.example.com"), Some(".example.com".len()));
        assert_eq!(s.best("example.org"), Some(0));
        assert_eq!(set(&["*.example.com"]).best("example.org"), None);
        assert_eq!(set(&[]).best("a"), None);
        // Same order as a view's vhost lookup: exact > longer suffix > shorter suffix > `*`.
        assert!(specificity("a.example.com") > specificity("*.a.example.com"));
        assert!(specificity("*.a.example.com") > specificity("*.example.com"));
        assert!(specificity("*.example.com") > specificity("*"));
    }
}
