//! The list of known gateways (spec 6.1), bounded by `max_gateways`.

use alloc::vec::Vec;

use midge_time::{Duration, Instant};

/// One known gateway.
#[derive(Debug, Clone)]
pub(crate) struct Gateway<A> {
    pub(crate) gw_id: u8,
    pub(crate) address: A,
    /// When it leaves the list unless a new ADVERTISE comes; `None` for
    /// configured gateways and those only heard through GWINFO.
    pub(crate) expires: Option<Instant>,
    /// Configured in advance: never expires.
    pub(crate) permanent: bool,
}

/// Known gateways, in the order they became known.
#[derive(Debug, Clone)]
pub(crate) struct GatewayList<A> {
    list: Vec<Gateway<A>>,
    max: usize,
}

impl<A: Clone + Eq> GatewayList<A> {
    pub(crate) fn new(configured: &[(u8, A)], max: usize) -> Self {
        let list = configured
            .iter()
            .take(max)
            .map(|(gw_id, address)| Gateway {
                gw_id: *gw_id,
                address: address.clone(),
                expires: None,
                permanent: true,
            })
            .collect();
        Self { list, max }
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Gateway<A>> {
        self.list.iter()
    }

    pub(crate) fn first(&self) -> Option<&A> {
        self.list.first().map(|g| &g.address)
    }

    /// Records a gateway heard at `address`; `expires` is set for ADVERTISE.
    /// Returns `true` if it is new to the list. A full list ignores new ones.
    pub(crate) fn heard(&mut self, gw_id: u8, address: &A, expires: Option<Instant>) -> bool {
        if let Some(known) = self.list.iter_mut().find(|g| g.gw_id == gw_id) {
            if !known.permanent {
                known.address = address.clone();
                if expires.is_some() {
                    known.expires = expires;
                }
            }
            return false;
        }
        if self.list.len() >= self.max {
            return false;
        }
        self.list.push(Gateway {
            gw_id,
            address: address.clone(),
            expires,
            permanent: false,
        });
        true
    }

    /// Removes and returns every gateway whose expiry has come.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Gateway<A>> {
        let mut gone = Vec::new();
        let mut i = 0;
        while let Some(g) = self.list.get(i) {
            if g.expires.is_some_and(|at| at <= now) {
                gone.push(self.list.remove(i));
            } else {
                i += 1;
            }
        }
        gone
    }

    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.list.iter().filter_map(|g| g.expires).min()
    }

    /// The gateway after `current` in list order (wrapping), never `current`
    /// itself.
    pub(crate) fn next_after(&self, current: &A) -> Option<A> {
        let start = self
            .list
            .iter()
            .position(|g| &g.address == current)
            .map_or(0, |i| i + 1);
        let n = self.list.len();
        (0..n)
            .filter_map(|k| self.list.get((start + k) % n))
            .find(|g| &g.address != current)
            .map(|g| g.address.clone())
    }
}

/// When a gateway that sent ADVERTISE with `duration` seconds leaves the list:
/// after `n_adv` periods without one (spec 6.1). A zero duration never expires.
pub(crate) fn advertise_expiry(now: Instant, duration: u16, n_adv: u8) -> Option<Instant> {
    if duration == 0 {
        return None;
    }
    let period = Duration::from_secs(u64::from(duration));
    Some(now.saturating_add(period.saturating_mul(u32::from(n_adv.max(1)))))
}

#[cfg(test)]
mod tests {
    use super::{advertise_expiry, GatewayList};
    use midge_time::Instant;

    #[test]
    fn sn_6_1_list_is_bounded_and_advertised_entries_expire() {
        let mut l = GatewayList::new(&[(1, 10u32)], 3);
        assert!(!l.heard(1, &99, None), "configured entry is not replaced");
        assert_eq!(l.first(), Some(&10));
        let exp = advertise_expiry(Instant::ZERO, 60, 2);
        assert_eq!(exp, Some(Instant::from_secs(120)));
        assert!(l.heard(2, &20, exp));
        assert!(l.heard(3, &30, None));
        assert!(!l.heard(4, &40, None), "full list ignores newcomers");
        assert_eq!(l.len(), 3);
        assert_eq!(l.next_expiry(), Some(Instant::from_secs(120)));
        assert!(l.expire(Instant::from_secs(119)).is_empty());
        let gone = l.expire(Instant::from_secs(120));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone.first().map(|g| g.gw_id), Some(2));
        assert_eq!(l.next_after(&10), Some(30));
        assert_eq!(l.next_after(&30), Some(10));
        assert_eq!(advertise_expiry(Instant::ZERO, 0, 2), None);
        let single = GatewayList::new(&[(1, 10u32)], 3);
        assert_eq!(single.next_after(&10), None);
    }
}
