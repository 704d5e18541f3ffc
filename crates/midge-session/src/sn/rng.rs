//! A small deterministic pseudo-random generator (SplitMix64) for the MQTT-SN
//! machines' jitter, seeded from their configuration so they never read OS
//! randomness. Not cryptographic.

/// SplitMix64: one `u64` of state, good spread, never stuck at zero.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..=max`.
    pub(crate) fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(bound) => self.next_u64() % bound,
            None => self.next_u64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn same_seed_same_sequence_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let mut differs = false;
        for _ in 0..100 {
            let x = a.up_to(1000);
            assert_eq!(x, b.up_to(1000));
            assert!(x <= 1000);
            differs |= x != c.up_to(1000);
        }
        assert!(differs);
        assert_eq!(Rng::new(1).up_to(0), 0);
        let _ = Rng::new(1).up_to(u64::MAX);
    }
}
