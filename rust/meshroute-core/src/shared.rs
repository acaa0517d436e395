//! `SharedVec`: an append-only list that a patched table shares with the table it came from.
//!
//! A table built by `from_json` holds its routes (targets, policies, ...) in one contiguous
//! `Arc<[T]>`, so `route()` indexes them exactly as it would a `Vec`: the only extra work is one
//! well-predicted comparison against the base length. A patch appends: the new table clones the
//! base `Arc` (one pointer) and the short list of items appended since the last full build
//! (`Arc<T>` each), so its cost follows the patches, not the table.

use std::ops::Index;
use std::sync::Arc;

pub(crate) struct SharedVec<T> {
    /// Everything the full build compiled, contiguous.
    base: Arc<[T]>,
    /// Items appended by patches since, in id order (`base.len()`, `base.len() + 1`, ...).
    more: Vec<Arc<T>>,
}

// === impl SharedVec ===

impl<T> SharedVec<T> {
    pub(crate) fn new(items: Vec<T>) -> Self {
        Self {
            base: items.into(),
            more: Vec::new(),
        }
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.base.len() + self.more.len()
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        match self.base.get(i) {
            Some(item) => Some(item),
            None => self.more_get(i),
        }
    }

    /// Out of line: `route()` inlines only the base lookup.
    #[cold]
    #[inline(never)]
    fn more_get(&self, i: usize) -> Option<&T> {
        self.more.get(i - self.base.len()).map(|a| &**a)
    }

    /// A list sharing every item of `self`, followed by `items`.
    pub(crate) fn appended(&self, items: impl IntoIterator<Item = T>) -> Self {
        let mut more = self.more.clone();
        more.extend(items.into_iter().map(Arc::new));
        Self {
            base: Arc::clone(&self.base),
            more,
        }
    }

    /// Whether both lists hold the same full build's items (not copies of them).
    #[cfg(test)]
    pub(crate) fn shares_base_with(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.base.iter().chain(self.more.iter().map(|a| &**a))
    }
}

impl<T> Index<usize> for SharedVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        match self.base.get(i) {
            Some(item) => item,
            None => self.more_index(i),
        }
    }
}

impl<T> SharedVec<T> {
    #[cold]
    #[inline(never)]
    fn more_index(&self, i: usize) -> &T {
        &self.more[i - self.base.len()]
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

// Not derived: cloning shares the items, so `T` need not be `Clone`.
impl<T> Clone for SharedVec<T> {
    fn clone(&self) -> Self {
        Self {
            base: Arc::clone(&self.base),
            more: self.more.clone(),
        }
    }
}

impl<T> Default for SharedVec<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn appended_shares_and_indexes_on() {
        let a = SharedVec::new(vec![0, 1, 2]);
        let b = a.appended([3, 4]);
        let c = b.appended([5]);
        assert_eq!(a.len(), 3);
        assert_eq!(c.len(), 6);
        assert!(Arc::ptr_eq(&a.base, &c.base));
        assert!(Arc::ptr_eq(&b.more[0], &c.more[0]));
        assert_eq!((0..6).map(|i| c[i]).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert_eq!(c.iter().copied().collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
        assert_eq!((c.get(4), c.get(6), a.get(3)), (Some(&4), None, None));
    }
}
