//! The client's table of normal topic ids and their names (spec 6.5, 6.10),
//! bounded by `max_topics`.

use alloc::string::String;
use alloc::vec::Vec;

/// Normal topic ids ↔ names, for one connection's gateway.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    entries: Vec<(u16, String)>,
    max: usize,
}

impl Registry {
    pub(crate) const fn new(max: usize) -> Self {
        Self {
            entries: Vec::new(),
            max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn id_of(&self, name: &str) -> Option<u16> {
        self.entries
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| *id)
    }

    pub(crate) fn name_of(&self, id: u16) -> Option<&str> {
        self.entries
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.as_str())
    }

    /// Maps `id` to `name`: the gateway's latest word wins, so an older entry
    /// for either the id or the name is replaced. At the limit the oldest
    /// entry is forgotten; returns `true` if one was.
    pub(crate) fn insert(&mut self, id: u16, name: &str) -> bool {
        self.entries.retain(|(i, n)| *i != id && n != name);
        let mut evicted = false;
        while self.entries.len() >= self.max.max(1) {
            self.entries.remove(0);
            evicted = true;
        }
        self.entries.push((id, String::from(name)));
        evicted
    }

    pub(crate) fn remove_id(&mut self, id: u16) {
        self.entries.retain(|(i, _)| *i != id);
    }
}

#[cfg(test)]
mod tests {
    use super::Registry;

    #[test]
    fn replaces_by_id_and_name_and_forgets_the_oldest_at_the_limit() {
        let mut r = Registry::new(2);
        assert!(!r.insert(1, "a"));
        assert!(!r.insert(2, "b"));
        assert!(r.insert(3, "c"));
        assert_eq!(r.len(), 2);
        assert_eq!(r.name_of(1), None);
        assert_eq!(r.name_of(3), Some("c"));
        // Same id, new name: replaced, not added.
        assert!(!r.insert(3, "z"));
        assert_eq!(r.name_of(3), Some("z"));
        assert_eq!(r.id_of("c"), None);
        // Same name, new id.
        assert!(!r.insert(9, "b"));
        assert_eq!(r.id_of("b"), Some(9));
        assert_eq!(r.name_of(2), None);
        r.remove_id(9);
        assert_eq!(r.len(), 1);
        r.clear();
        assert_eq!(r.len(), 0);
    }
}
