//! Monotonic time: the instant type the core computes deadlines with, and its source.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on a monotonic clock, in nanoseconds since the clock's own origin.
///
/// The core never reads a wall clock; every deadline is an `Instant` of the base's [`Clock`].
/// Arithmetic saturates: a deadline past `u64::MAX` ns (584 years) is "never".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);
    /// The latest representable instant; a deadline here never fires in practice.
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the origin.
    #[inline]
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    #[inline]
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at [`Instant::MAX`].
    #[inline]
    pub fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    #[inline]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Whole nanoseconds of `d`, saturating at `u64::MAX` (584 years), in 64-bit arithmetic
/// (`Duration::as_nanos` is a 128-bit product).
#[inline]
pub(crate) fn duration_nanos(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX)
}

impl Add<Duration> for Instant {
    type Output = Instant;
    #[inline]
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

impl Sub for Instant {
    type Output = Duration;
    #[inline]
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

/// A monotonic time source.
///
/// # Contract (the loop's timers rely on every point)
///
/// - **Monotonic**: a later call never returns an earlier instant, on any thread.
/// - **Never fails, never overflows** within the life of the base.
/// - **Cheap**: the loop reads it once per iteration (when a timer is armed), and adding a
///   timer outside the loop's callbacks reads it once (an add from a callback reads none: its
///   timeout starts at the loop's next reading).
/// - **Lock-free with respect to the base**: the base reads it with its lock held (adding a
///   timer, planning a wait), so it must not call into the base; under `CriticalSectionLock`
///   it runs with interrupts masked (read a counter, do not wait for a tick).
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;

    /// The start of a timeout set by a call rather than by the loop (an add outside the
    /// loop's callbacks, a `loop_exit`; the only places the base uses it): a cheaper reading that may lag [`now`](Clock::now) by the clock's
    /// granularity. It is never later than `now` at the same moment and never goes back
    /// among its own readings. A timeout started on it may fire up to that lag early; the
    /// loop decides what is due with `now`, so nothing fires late for it. The default is
    /// `now`.
    #[inline]
    fn now_coarse(&self) -> Instant {
        self.now()
    }
}

impl<K: Clock + ?Sized> Clock for &K {
    #[inline]
    fn now(&self) -> Instant {
        (**self).now()
    }

    #[inline]
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
}

#[cfg(feature = "alloc")]
impl<K: Clock + ?Sized> Clock for alloc::sync::Arc<K> {
    #[inline]
    fn now(&self) -> Instant {
        (**self).now()
    }

    #[inline]
    fn now_coarse(&self) -> Instant {
        (**self).now_coarse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_nanos_is_as_nanos_saturated() {
        for d in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::new(1, 999_999_999),
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX) + Duration::from_nanos(1),
            Duration::new(u64::MAX / 1_000_000_000, 999_999_999),
            Duration::MAX,
        ] {
            let want = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            assert_eq!(duration_nanos(d), want, "{d:?}");
        }
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_nanos(u64::MAX - 5);
        assert_eq!(t + Duration::MAX, Instant::MAX);
        assert_eq!(t + Duration::from_nanos(5), Instant::MAX);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_nanos(u64::MAX - 5));
    }
}
