//! A sorted map that is a plain vector while small and a B-tree once large.
//!
//! Most trie nodes have one child and most filters have one subscriber, where a
//! `BTreeMap` would allocate a whole B-tree leaf (eleven slots) for a single entry.
//! A vector sized to its contents costs one slot per entry, and binary search over a
//! handful of entries is as fast as a tree lookup. Past [`SMALL_MAX`] entries the
//! map turns into a `BTreeMap`, so inserts stay logarithmic for a level with many
//! thousands of children; it turns back at [`SMALL_BACK`] entries, and an emptied map
//! holds no allocation at all.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::borrow::Borrow;

/// Largest number of entries kept in the vector form.
pub(crate) const SMALL_MAX: usize = 8;
/// A tree that shrinks to this many entries goes back to the vector form.
pub(crate) const SMALL_BACK: usize = 4;

pub(crate) enum SmallMap<K, V> {
    /// Entries sorted by key, no duplicates, at most [`SMALL_MAX`] of them.
    Small(Vec<(K, V)>),
    /// More than [`SMALL_BACK`] entries.
    Large(BTreeMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> SmallMap<K, V> {
    pub(crate) const fn new() -> Self {
        Self::Small(Vec::new())
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(entries) => entries.len(),
            Self::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        let (small, large) = match self {
            Self::Small(entries) => (Some(entries.iter().map(|(k, v)| (k, v))), None),
            Self::Large(map) => (None, Some(map.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub(crate) fn into_values(self) -> impl Iterator<Item = V> {
        let (small, large) = match self {
            Self::Small(entries) => (Some(entries.into_iter().map(|(_, v)| v)), None),
            Self::Large(map) => (None, Some(map.into_values())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Position of `key` in the vector form (`Err` = where it would go).
    fn search<Q>(entries: &[(K, V)], key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                entries.get(at).map(|(_, v)| v)
            }
            Self::Large(map) => map.get(key),
        }
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                entries.get_mut(at).map(|(_, v)| v)
            }
            Self::Large(map) => map.get_mut(key),
        }
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the replaced value.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let entries = match self {
            Self::Large(map) => return map.insert(key, value),
            Self::Small(entries) => entries,
        };
        match Self::search(entries, &key) {
            Ok(at) => entries
                .get_mut(at)
                .map(|(_, old)| core::mem::replace(old, value)),
            Err(at) if entries.len() < SMALL_MAX => {
                // Grow one slot at a time: the vector never exceeds SMALL_MAX.
                entries.reserve_exact(1);
                // `at` comes from a binary search, so `at <= len`: no panic.
                entries.insert(at, (key, value));
                None
            }
            Err(_) => {
                let mut map: BTreeMap<K, V> = core::mem::take(entries).into_iter().collect();
                map.insert(key, value);
                *self = Self::Large(map);
                None
            }
        }
    }

    /// Removes `key`; returns its value. Releases memory as the map shrinks.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        match self {
            Self::Small(entries) => {
                let at = Self::search(entries, key).ok()?;
                // `at` was just found, so it is in bounds: no panic.
                let (_, value) = entries.remove(at);
                if entries.len() <= entries.capacity() / 2 {
                    entries.shrink_to_fit();
                }
                Some(value)
            }
            Self::Large(map) => {
                let value = map.remove(key)?;
                if map.len() <= SMALL_BACK {
                    let entries: Vec<(K, V)> = core::mem::take(map).into_iter().collect();
                    *self = Self::Small(entries);
                }
                Some(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_btreemap_across_both_forms() {
        let mut small: SmallMap<u32, u32> = SmallMap::new();
        let mut model = BTreeMap::new();
        // Grow well past SMALL_MAX, shrink back to nothing, in a scrambled order.
        let keys: Vec<u32> = (0..40).map(|i| (i * 17) % 41).collect();
        for (n, &k) in (0u32..).zip(keys.iter()) {
            assert_eq!(small.insert(k, n), model.insert(k, n));
            assert_eq!(small.insert(k, n + 1), model.insert(k, n + 1));
            assert_eq!(small.len(), model.len());
            assert!(small.iter().eq(model.iter()));
        }
        assert!(matches!(small, SmallMap::Large(_)));
        for &k in keys.iter().rev() {
            assert_eq!(small.get(&k), model.get(&k));
            assert_eq!(small.remove(&k), model.remove(&k));
            assert_eq!(small.remove(&k), None);
            assert!(small.iter().eq(model.iter()));
        }
        assert!(small.is_empty());
        match small {
            SmallMap::Small(entries) => assert_eq!(entries.capacity(), 0),
            SmallMap::Large(_) => panic!("an empty map is back in vector form"),
        }
    }
}
