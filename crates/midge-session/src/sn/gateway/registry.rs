//! The per-client topic registry (spec 6.5, 6.10, 7.3): topic names and the
//! normal topic ids the gateway assigned to them, for one SN client only.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// One registered name.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    /// The client learned this id (its own REGISTER, a SUBACK, or a REGACK
    /// to the gateway's REGISTER); otherwise a REGISTER must precede PUBLISH.
    known: bool,
    /// The client refused the gateway's REGISTER for this name (spec 6.10:
    /// like an unsubscribe): messages on it are not delivered.
    rejected: bool,
}

/// What a lookup for a delivery found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The client knows the id.
    Known(u16),
    /// The id exists but the client must be told first.
    NeedsRegister(u16),
    /// The client refused this name.
    Rejected,
    /// The registry is at its limit.
    Full,
}

/// Topic ids 0x0001..=0xFFFE of one client; never more than `limit` entries.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    by_id: BTreeMap<u16, Entry>,
    by_name: BTreeMap<String, u16>,
    next: u16,
    limit: usize,
}

impl Registry {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            by_id: BTreeMap::new(),
            by_name: BTreeMap::new(),
            next: 1,
            // Ids 0x0000 and 0xFFFF are reserved (spec 5.3.11).
            limit: limit.min(0xFFFE),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
        self.by_name.clear();
        self.next = 1;
    }

    /// After a reconnect without clean session the gateway announces every
    /// id again before using it (spec 6.10).
    pub(crate) fn forget_known(&mut self) {
        for e in self.by_id.values_mut() {
            e.known = false;
        }
    }

    pub(crate) fn name(&self, id: u16) -> Option<&str> {
        self.by_id.get(&id).map(|e| e.name.as_str())
    }

    /// The id of `name`, registering it when new; `known` says whether the
    /// client learns it from the answer it is about to get (REGACK, SUBACK).
    /// `None` at the limit.
    pub(crate) fn assign(&mut self, name: &str, known: bool) -> Option<u16> {
        if let Some(&id) = self.by_name.get(name) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.known |= known;
                e.rejected &= !known;
            }
            return Some(id);
        }
        if self.by_id.len() >= self.limit {
            return None;
        }
        let id = self.free_id()?;
        self.by_id.insert(
            id,
            Entry {
                name: String::from(name),
                known,
                rejected: false,
            },
        );
        self.by_name.insert(String::from(name), id);
        Some(id)
    }

    /// The id of `name` if the client knows it (and did not refuse it).
    pub(crate) fn known_id(&self, name: &str) -> Option<u16> {
        let id = *self.by_name.get(name)?;
        let e = self.by_id.get(&id)?;
        (e.known && !e.rejected).then_some(id)
    }

    /// How to address `name` in a PUBLISH to the client.
    pub(crate) fn lookup_for_delivery(&mut self, name: &str) -> Lookup {
        match self
            .by_name
            .get(name)
            .and_then(|id| Some((*id, self.by_id.get(id)?)))
        {
            Some((_, e)) if e.rejected => Lookup::Rejected,
            Some((id, e)) if e.known => Lookup::Known(id),
            Some((id, _)) => Lookup::NeedsRegister(id),
            None => match self.assign(name, false) {
                Some(id) => Lookup::NeedsRegister(id),
                None => Lookup::Full,
            },
        }
    }

    pub(crate) fn mark_known(&mut self, id: u16) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.known = true;
        }
    }

    pub(crate) fn mark_rejected(&mut self, id: u16) {
        if let Some(e) = self.by_id.get_mut(&id) {
            e.rejected = true;
            e.known = false;
        }
    }

    pub(crate) fn remove(&mut self, id: u16) {
        if let Some(e) = self.by_id.remove(&id) {
            self.by_name.remove(&e.name);
        }
    }

    /// Every entry, for a record kept across a restart.
    pub(crate) fn records(&self) -> Vec<super::TopicRecord> {
        self.by_id
            .iter()
            .map(|(id, e)| super::TopicRecord {
                id: *id,
                name: e.name.clone(),
                known: e.known,
                rejected: e.rejected,
            })
            .collect()
    }

    /// Puts back an entry of a record; `false` (and nothing changes) for a
    /// reserved id, an id or name already taken, or a full registry.
    pub(crate) fn restore(&mut self, id: u16, name: &str, known: bool, rejected: bool) -> bool {
        if id == 0
            || id == 0xFFFF
            || self.by_id.len() >= self.limit
            || self.by_id.contains_key(&id)
            || self.by_name.contains_key(name)
        {
            return false;
        }
        self.by_id.insert(
            id,
            Entry {
                name: String::from(name),
                known,
                rejected,
            },
        );
        self.by_name.insert(String::from(name), id);
        // New ids continue after the highest restored one.
        if id >= self.next {
            self.next = if id >= 0xFFFE { 1 } else { id + 1 };
        }
        true
    }

    fn free_id(&mut self) -> Option<u16> {
        // At most 0xFFFE probes; the limit guarantees a free id exists.
        for _ in 0..0xFFFEu32 {
            let id = self.next;
            self.next = if self.next >= 0xFFFE {
                1
            } else {
                self.next + 1
            };
            if !self.by_id.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sn_6_5_same_name_same_id_and_limit_holds() {
        let mut r = Registry::new(2);
        let a = r.assign("a/b", true);
        assert_eq!(a, Some(1));
        assert_eq!(r.assign("a/b", true), Some(1));
        assert_eq!(r.assign("c", true), Some(2));
        assert_eq!(r.assign("d", true), None);
        assert_eq!(r.len(), 2);
        assert_eq!(r.lookup_for_delivery("zz"), Lookup::Full);
        assert_eq!(r.name(2), Some("c"));
    }

    #[test]
    fn sn_6_10_unknown_names_need_register_until_known() {
        let mut r = Registry::new(8);
        assert_eq!(r.lookup_for_delivery("x/y"), Lookup::NeedsRegister(1));
        r.mark_known(1);
        assert_eq!(r.lookup_for_delivery("x/y"), Lookup::Known(1));
        assert_eq!(r.known_id("x/y"), Some(1));
        r.forget_known();
        assert_eq!(r.known_id("x/y"), None);
        assert_eq!(r.lookup_for_delivery("x/y"), Lookup::NeedsRegister(1));
        r.mark_rejected(1);
        assert_eq!(r.lookup_for_delivery("x/y"), Lookup::Rejected);
        r.remove(1);
        assert_eq!(r.name(1), None);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn ids_skip_reserved_values_and_wrap() {
        let mut r = Registry::new(4);
        r.next = 0xFFFE;
        assert_eq!(r.assign("a", true), Some(0xFFFE));
        assert_eq!(r.assign("b", true), Some(1));
    }
}
