//! The per-vhost candidate index: finds the first matching block without walking them all.
//!
//! Istio evaluates routes in order and the first match wins; Envoy walks them linearly
//! (~42 ns per route). Here every block is filed under one *necessary condition* — its exact
//! path, a path prefix (a regex contributes its literal prefix), or an exact header value — or
//! in the always-tried `unindexed` list. A request probes each structure once, and each probe
//! yields ascending block ids. Scanning every list only below the best id found so far returns
//! exactly the lowest matching id, i.e. what the linear walk returns.

use std::collections::HashMap;

use crate::keymap::{KeyMap, RollingHash};
use crate::matchers::{MatchBlock, MatchString, PathKey};
use crate::request::Prepared;

/// Below this many blocks a vhost is walked linearly: probing costs more than it saves.
pub(crate) const INDEX_THRESHOLD: usize = 16;

type Ids = Vec<u32>;

/// Candidate lists of one vhost; ids are block positions in the vhost.
pub(crate) struct RouteIndex {
    unindexed: Ids,
    exact: KeyMap<Ids>,
    exact_ci: KeyMap<Ids>,
    prefix: Prefixes,
    prefix_ci: Prefixes,
    headers: Vec<(Box<str>, KeyMap<Ids>)>,
}

/// Prefix keys plus the set of their lengths, so a probe hashes the path once.
struct Prefixes {
    keys: KeyMap<Ids>,
    /// `lens[n]`: some key is `n` bytes long.
    lens: Vec<bool>,
}

/// A necessary condition a block can be filed under.
#[derive(Clone, Copy)]
enum Key<'a> {
    Exact(&'a str, bool),
    Prefix(&'a str, bool),
    Header(&'a str, &'a str),
}

// === impl RouteIndex ===

impl RouteIndex {
    /// Files each `(id, block)` (ascending ids; `None` = catch-all route) under its rarest key.
    pub(crate) fn build<'m>(
        blocks: impl Iterator<Item = (u32, Option<&'m MatchBlock>)> + Clone,
    ) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, m) in blocks.clone() {
            for k in keys(m) {
                *counts.entry(k.ident()).or_default() += 1;
            }
        }
        let mut index = Self {
            unindexed: Vec::new(),
            exact: KeyMap::new(false),
            exact_ci: KeyMap::new(true),
            prefix: Prefixes::new(false),
            prefix_ci: Prefixes::new(true),
            headers: Vec::new(),
        };
        for (id, m) in blocks {
            match keys(m).min_by_key(|k| counts[&k.ident()]) {
                Some(k) => index.insert(k, id),
                None => index.unindexed.push(id),
            }
        }
        index
    }

    fn insert(&mut self, key: Key<'_>, id: u32) {
        let list = match key {
            Key::Exact(p, ci) => {
                let map = if ci {
                    &mut self.exact_ci
                } else {
                    &mut self.exact
                };
                map.entry(RollingHash::of(p.as_bytes(), ci), p.as_bytes(), Vec::new)
            }
            Key::Prefix(p, ci) => {
                let pre = if ci {
                    &mut self.prefix_ci
                } else {
                    &mut self.prefix
                };
                pre.entry(p)
            }
            Key::Header(name, value) => {
                let pos = match self.headers.iter().position(|(n, _)| &**n == name) {
                    Some(pos) => pos,
                    None => {
                        self.headers.push((name.into(), KeyMap::new(false)));
                        self.headers.len() - 1
                    }
                };
                self.headers[pos].1.entry(
                    RollingHash::of(value.as_bytes(), false),
                    value.as_bytes(),
                    Vec::new,
                )
            }
        };
        list.push(id);
    }

    /// The lowest id for which `eval` holds, among the candidates for `req`.
    #[inline]
    pub(crate) fn find(
        &self,
        req: &Prepared<'_>,
        mut eval: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        let mut best = u32::MAX;
        scan(&self.unindexed, &mut best, &mut eval);
        let only = req.path_only.as_bytes();
        for map in [&self.exact, &self.exact_ci] {
            if !map.is_empty() {
                let hash = RollingHash::of(only, map.fold_case());
                if let Some(ids) = map.get(hash, only) {
                    scan(ids, &mut best, &mut eval);
                }
            }
        }
        self.prefix
            .probe(req.req.path.as_bytes(), &mut best, &mut eval);
        self.prefix_ci
            .probe(req.req.path.as_bytes(), &mut best, &mut eval);
        for (name, map) in &self.headers {
            if let Some(v) = req.header(name) {
                if let Some(ids) = map.get(RollingHash::of(v.as_bytes(), false), v.as_bytes()) {
                    scan(ids, &mut best, &mut eval);
                }
            }
        }
        (best != u32::MAX).then_some(best)
    }
}

/// Tries ids below `best` in order; the first that matches becomes the new best.
#[inline]
fn scan(ids: &[u32], best: &mut u32, eval: &mut impl FnMut(u32) -> bool) {
    for &id in ids {
        if id >= *best {
            return;
        }
        if eval(id) {
            *best = id;
            return;
        }
    }
}

// === impl Prefixes ===

impl Prefixes {
    fn new(fold_case: bool) -> Self {
        Self {
            keys: KeyMap::new(fold_case),
            lens: Vec::new(),
        }
    }

    fn entry(&mut self, prefix: &str) -> &mut Ids {
        if self.lens.len() <= prefix.len() {
            self.lens.resize(prefix.len() + 1, false);
        }
        self.lens[prefix.len()] = true;
        let hash = RollingHash::of(prefix.as_bytes(), self.fold_case());
        self.keys.entry(hash, prefix.as_bytes(), Vec::new)
    }

    fn fold_case(&self) -> bool {
        self.keys.fold_case()
    }

    /// Looks up every prefix of `path` whose length is a key length, in one hashing pass.
    #[inline]
    fn probe(&self, path: &[u8], best: &mut u32, eval: &mut impl FnMut(u32) -> bool) {
        if self.lens.is_empty() {
            return;
        }
        let mut h = RollingHash::new(self.fold_case());
        let end = path.len().min(self.lens.len() - 1);
        for (i, &b) in path[..end].iter().enumerate() {
            h.push(b);
            if self.lens[i + 1] {
                if let Some(ids) = self.keys.get(h.finish(), &path[..=i]) {
                    scan(ids, best, eval);
                }
            }
        }
    }
}

/// Every key a block could be filed under: its uri key and its exact header values.
fn keys(m: Option<&MatchBlock>) -> impl Iterator<Item = Key<'_>> + '_ {
    let path = m.and_then(|m| match m.uri.as_ref()?.key() {
        PathKey::Exact { path, ignore_case } => Some(Key::Exact(path, ignore_case)),
        PathKey::Prefix {
            prefix,
            ignore_case,
        } => Some(Key::Prefix(prefix, ignore_case)),
        PathKey::None => None,
    });
    let headers = m.into_iter().flat_map(|m| {
        m.headers
            .iter()
            .filter(|h| !h.negated)
            .filter_map(|h| match &h.value {
                MatchString::Exact(v) => Some(Key::Header(&h.name, v)),
                _ => None,
            })
    });
    path.into_iter().chain(headers)
}

impl Key<'_> {
    /// Identity for counting how many blocks share a key (case folded where matching folds).
    fn ident(&self) -> String {
        match *self {
            Key::Exact(p, true) => format!("e\0{}", p.to_ascii_lowercase()),
            Key::Exact(p, false) => format!("E\0{p}"),
            Key::Prefix(p, true) => format!("p\0{}", p.to_ascii_lowercase()),
            Key::Prefix(p, false) => format!("P\0{p}"),
            Key::Header(n, v) => format!("H\0{n}\0{v}"),
        }
    }
}
