//! Monotonic time for the core: the clock `std::time::Instant` reads, and conversions to and
//! from `std::time::Instant`.

use std::sync::OnceLock;
use std::time::{Duration, Instant as StdInstant};

use rouse_core::{Clock, Instant};

/// [`rouse_core::Clock`] over the clock `std::time::Instant` uses: nanoseconds since a
/// process-wide origin (the first use), so instants of every base in the process compare, and
/// convert to and from `std::time::Instant` exactly.
///
/// # Implementation notes
///
/// `clock_gettime(CLOCK_MONOTONIC)` (a vDSO call on Linux, no syscall), or
/// `clock_gettime(CLOCK_UPTIME_RAW)` on Apple systems (std's `Instant` clock there, which stops
/// while the machine sleeps), minus the origin. One clock: deadlines given as a std `Instant`
/// never fire early after a sleep.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

/// The clock std's `Instant` reads on this OS.
#[cfg(target_vendor = "apple")]
const CLOCK_ID: libc::clockid_t = libc::CLOCK_UPTIME_RAW;
#[cfg(not(target_vendor = "apple"))]
const CLOCK_ID: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// Nanoseconds on [`CLOCK_ID`].
#[inline]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock always exists, so the call cannot
    // fail (it would leave `ts` zeroed, which only yields an early instant).
    unsafe { libc::clock_gettime(CLOCK_ID, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The origin: [`CLOCK_ID`] in ns, and a `std::time::Instant` read right after it.
static ORIGIN: OnceLock<(u64, StdInstant)> = OnceLock::new();

/// Covers the gap between the two origin readings in [`MonotonicClock::instant`].
const MARGIN: Duration = Duration::from_micros(1);

fn origin() -> (u64, StdInstant) {
    *ORIGIN.get_or_init(|| {
        let raw = monotonic_ns();
        (raw, StdInstant::now())
    })
}

impl MonotonicClock {
    /// The core instant of a std instant, at most a microsecond later (never earlier): a
    /// deadline given as a `std::time::Instant` never fires early.
    pub fn instant(at: StdInstant) -> Instant {
        let (_, std0) = origin();
        let ns = u64::try_from(at.saturating_duration_since(std0).as_nanos()).unwrap_or(u64::MAX);
        Instant::from_nanos(ns).saturating_add(MARGIN)
    }

    /// The std instant of a core instant: exact up to a constant offset of a few nanoseconds
    /// (later, never earlier), so differences are preserved.
    pub fn to_std(at: Instant) -> StdInstant {
        origin().1 + Duration::from_nanos(at.as_nanos())
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(monotonic_ns().saturating_sub(origin().0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_never_make_a_deadline_earlier() {
        // The origin first: a std instant from before it maps to the origin itself (seen under
        // a loaded qemu-aarch64, where setting it up took more than the 5 ms below).
        let _ = MonotonicClock.now();
        for _ in 0..1000 {
            let s = StdInstant::now() + Duration::from_millis(5);
            let core = MonotonicClock::instant(s);
            let back = MonotonicClock::to_std(core);
            assert!(back >= s, "round trip made the deadline earlier");
            assert!(back - s < Duration::from_millis(1));
            let d = MonotonicClock::to_std(core + Duration::from_millis(3)) - back;
            assert_eq!(d, Duration::from_millis(3), "differences are preserved");
        }
        let a = MonotonicClock.now();
        let b = MonotonicClock.now();
        assert!(b >= a);
    }

    #[test]
    fn the_clock_is_the_one_std_instant_reads() {
        // Over a real wait, the two clocks advance alike (a different clock, such as
        // CLOCK_MONOTONIC against macOS's CLOCK_UPTIME_RAW, drifts apart after a sleep).
        for _ in 0..100 {
            let before = StdInstant::now();
            let core = MonotonicClock::to_std(MonotonicClock.now());
            let after = StdInstant::now();
            assert!(
                core + Duration::from_micros(2) >= before,
                "core clock behind std's"
            );
            assert!(
                core <= after + Duration::from_micros(2),
                "core clock ahead of std's"
            );
        }
    }
}
