//! Monotonic time for the core, from `std::time::Instant` (`CLOCK_MONOTONIC`).

use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use rouse::{Clock, Instant};

static ORIGIN: OnceLock<StdInstant> = OnceLock::new();

/// [`rouse::Clock`] over `std::time::Instant`: nanoseconds since a process-wide origin (the
/// first use), so instants of every base in the process compare.
///
/// # Implementation notes
///
/// `clock_gettime(CLOCK_MONOTONIC)` through `std::time::Instant` (a vDSO call on Linux).
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// The core instant of a std instant (saturating at the origin).
    pub fn instant(at: StdInstant) -> Instant {
        let origin = *ORIGIN.get_or_init(StdInstant::now);
        let ns = at.saturating_duration_since(origin).as_nanos();
        Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The std instant of a core instant.
    pub fn to_std(at: Instant) -> StdInstant {
        let origin = *ORIGIN.get_or_init(StdInstant::now);
        origin + std::time::Duration::from_nanos(at.as_nanos())
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        MonotonicClock::instant(StdInstant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_monotonic() {
        let a = MonotonicClock.now();
        let b = MonotonicClock.now();
        assert!(b >= a);
        let s = StdInstant::now();
        let back = MonotonicClock::to_std(MonotonicClock::instant(s));
        assert!(back.max(s) - back.min(s) < std::time::Duration::from_micros(1));
    }
}
