//! Monotonic time for the core, from `std::time::Instant` (`CLOCK_MONOTONIC`).

use std::sync::OnceLock;
use std::time::Instant as StdInstant;

use rouse::{Clock, Instant};

static ORIGIN: OnceLock<StdInstant> = OnceLock::new();

/// [`rouse::Clock`] over `CLOCK_MONOTONIC`: nanoseconds since a process-wide origin (the
/// first use), so instants of every base in the process compare, and convert to and from
/// `std::time::Instant` (which reads the same clock).
///
/// # Implementation notes
///
/// `clock_gettime(CLOCK_MONOTONIC)` (a vDSO call on Linux, no syscall), minus the origin.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    /// The core instant of a std instant (saturating at the origin).
    pub fn instant(at: StdInstant) -> Instant {
        origin_ns();
        let origin = *ORIGIN.get_or_init(StdInstant::now);
        let ns = at.saturating_duration_since(origin).as_nanos();
        Instant::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The std instant of a core instant.
    pub fn to_std(at: Instant) -> StdInstant {
        origin_ns();
        let origin = *ORIGIN.get_or_init(StdInstant::now);
        origin + std::time::Duration::from_nanos(at.as_nanos())
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC`.
#[inline]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists, so the call
    // cannot fail (it would leave `ts` zeroed, which only yields an early instant).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` at the origin, in ns (read together with `ORIGIN`).
static ORIGIN_NS: OnceLock<u64> = OnceLock::new();

fn origin_ns() -> u64 {
    *ORIGIN_NS.get_or_init(|| {
        // Tie the two origins together: the raw origin is read after the std one, so a std
        // instant converted through `instant()` is never earlier than the raw reading of the
        // same moment (a deadline given as a std instant never fires early).
        ORIGIN.get_or_init(StdInstant::now);
        monotonic_ns()
    })
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(monotonic_ns().saturating_sub(origin_ns()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_reading_agrees_with_std_instant() {
        let before = MonotonicClock::instant(StdInstant::now());
        let raw = MonotonicClock.now();
        let after = MonotonicClock::instant(StdInstant::now());
        // The two origins differ by the few ns between their readings.
        let slack = std::time::Duration::from_micros(50);
        assert!(raw + slack >= before && raw <= after + slack, "{before:?} {raw:?} {after:?}");
    }

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
