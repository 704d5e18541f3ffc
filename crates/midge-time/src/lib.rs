//! The monotonic instant that Midge's sans-IO protocol machines take as `now`.
//!
//! What it does: [`Instant`] is a count of microseconds since an epoch chosen by
//! whoever drives the machine. The machines compare instants, add
//! [`Duration`]s to them and report deadlines as instants; they never read a
//! clock. A tokio adapter maps `std::time::Instant` onto it, a test uses a
//! virtual clock that it advances by hand, firmware counts ticks.
//!
//! What it deliberately does not do: read any clock, know about wall time or
//! time zones, or panic on overflow (arithmetic saturates at the ends of the
//! range, 584,000 years apart).
//!
//! Key type: [`Instant`]. Durations are `core::time::Duration`.
//!
//! ```
//! use core::time::Duration;
//! use midge_time::Instant;
//!
//! let start = Instant::from_micros(1_000);
//! let deadline = start + Duration::from_secs(90);
//! assert_eq!(deadline.saturating_duration_since(start), Duration::from_secs(90));
//! assert!(deadline > start);
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
pub use core::time::Duration;

/// A point on a monotonic clock: microseconds since the driver's epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch itself.
    pub const ZERO: Self = Self(0);

    /// The latest representable instant; also a convenient "never".
    pub const MAX: Self = Self(u64::MAX);

    /// The instant `micros` microseconds after the epoch.
    #[inline]
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// The instant `millis` milliseconds after the epoch (saturating).
    #[inline]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// The instant `secs` seconds after the epoch (saturating).
    #[inline]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1_000_000))
    }

    /// Microseconds since the epoch.
    #[inline]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    #[inline]
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// The time from `earlier` to `self`, or `None` if `earlier` is later.
    #[inline]
    pub const fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(d) => Some(Duration::from_micros(d)),
            None => None,
        }
    }

    /// `self + duration`, or `None` past [`Instant::MAX`].
    #[inline]
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        let micros = u64::try_from(duration.as_micros()).ok()?;
        self.0.checked_add(micros).map(Self)
    }

    /// `self + duration`, stopping at [`Instant::MAX`].
    #[inline]
    pub fn saturating_add(self, duration: Duration) -> Self {
        self.checked_add(duration).unwrap_or(Self::MAX)
    }

    /// `self - duration`, stopping at [`Instant::ZERO`].
    #[inline]
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        Self(self.0.saturating_sub(micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    /// Saturating: never panics, stops at [`Instant::MAX`].
    #[inline]
    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl AddAssign<Duration> for Instant {
    #[inline]
    fn add_assign(&mut self, rhs: Duration) {
        *self = self.saturating_add(rhs);
    }
}

impl Sub<Self> for Instant {
    type Output = Duration;

    /// Saturating: zero when `rhs` is later.
    #[inline]
    fn sub(self, rhs: Self) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Instant({}.{:06}s)",
            self.0 / 1_000_000,
            self.0 % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_panicking() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(
            Instant::ZERO.saturating_sub(Duration::from_secs(1)),
            Instant::ZERO
        );
        assert_eq!(Instant::ZERO - Instant::from_secs(5), Duration::ZERO);
        assert_eq!(Instant::from_secs(1).checked_add(Duration::MAX), None);
        assert_eq!(
            Instant::from_secs(1).checked_duration_since(Instant::from_secs(2)),
            None
        );
    }

    #[test]
    fn units_agree() {
        assert_eq!(Instant::from_secs(2), Instant::from_millis(2_000));
        assert_eq!(Instant::from_millis(3), Instant::from_micros(3_000));
        let t = Instant::from_millis(1_500) + Duration::from_millis(500);
        assert_eq!(t, Instant::from_secs(2));
        assert_eq!(t - Instant::from_secs(1), Duration::from_secs(1));
        assert_eq!(format!("{t:?}"), "Instant(2.000000s)");
    }
}
