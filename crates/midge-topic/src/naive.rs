//! Deliberately simple reference versions of matching and validation, used as test
//! oracles by this crate's property tests and by the `topic` fuzz target. Not part
//! of the supported API: slow (they allocate) and written for obviousness, level by
//! level, independently of the fast code they check.

use alloc::string::String;
use alloc::vec::Vec;

/// Reference matcher: splits both strings into level lists and compares them
/// position by position.
#[must_use]
pub fn matches(filter: &str, name: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    let first_is_wildcard = matches!(f.first(), Some(&"+") | Some(&"#"));
    if first_is_wildcard && name.starts_with('$') {
        return false;
    }
    for (i, level) in f.iter().enumerate() {
        if *level == "#" {
            // Everything from here down, including nothing at all.
            return true;
        }
        match n.get(i) {
            None => return false,
            Some(name_level) => {
                if *level != "+" && level != name_level {
                    return false;
                }
            }
        }
    }
    f.len() == n.len()
}

/// Reference filter validation, level by level.
#[must_use]
pub fn filter_is_valid(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > 65_535 || filter.contains('\u{0}') {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    let count = levels.len();
    levels.iter().enumerate().all(|(i, level)| {
        let hash_ok = !level.contains('#') || (*level == "#" && i + 1 == count);
        let plus_ok = !level.contains('+') || *level == "+";
        hash_ok && plus_ok
    })
}

/// Reference name validation.
#[must_use]
pub fn name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 65_535
        && !name.chars().any(|c| c == '\u{0}' || c == '+' || c == '#')
}

/// A linear list of subscriptions, checked one by one with [`matches`].
#[derive(Debug, Clone, Default)]
pub struct NaiveIndex<K, V> {
    /// (filter, subscriber, value), at most one entry per (filter, subscriber).
    pub entries: Vec<(String, K, V)>,
}

impl<K: PartialEq, V> NaiveIndex<K, V> {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// Adds or replaces the subscription of `key` to `filter`.
    pub fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        for entry in &mut self.entries {
            if entry.0 == filter && entry.1 == key {
                return Some(core::mem::replace(&mut entry.2, value));
            }
        }
        self.entries.push((filter.into(), key, value));
        None
    }

    /// Removes the subscription of `key` to `filter`.
    pub fn remove(&mut self, filter: &str, key: &K) -> Option<V> {
        let pos = self
            .entries
            .iter()
            .position(|e| e.0 == filter && e.1 == *key)?;
        Some(self.entries.swap_remove(pos).2)
    }

    /// Every (filter, subscriber, value) whose filter matches `name`.
    pub fn matching<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a (String, K, V)> + 'a {
        self.entries.iter().filter(move |e| matches(&e.0, name))
    }
}
