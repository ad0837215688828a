//! Monotonic time for the core: the clock `std::time::Instant` reads, and conversions to and
//! from `std::time::Instant`.

#[cfg(target_has_atomic = "64")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant as StdInstant};

use rouse_core::{Clock, Instant};

/// [`rouse_core::Clock`] over the clock `std::time::Instant` uses: nanoseconds since a
/// process-wide origin (the first use), so instants of every base in the process compare, and
/// convert to and from `std::time::Instant` never earlier than exact, and later by at most
/// [`conversion_bound`](MonotonicClock::conversion_bound) (tens of nanoseconds natively).
///
/// # Implementation notes
///
/// `clock_gettime(CLOCK_MONOTONIC)` (a vDSO call on Linux, no syscall), or
/// `clock_gettime(CLOCK_UPTIME_RAW)` on Apple systems (std's `Instant` clock there, which stops
/// while the machine sleeps), minus the origin. One clock: deadlines given as a std `Instant`
/// never fire early after a sleep. std's `Instant` cannot be built from a reading of that
/// clock, so the origin pairs a std instant with the raw readings just before and after it,
/// the tightest of several tries: the pair is exact up to that bracket, which
/// `conversion_bound` reports and the conversions round towards later.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

/// The clock std's `Instant` reads on this OS.
#[cfg(target_vendor = "apple")]
const CLOCK_ID: libc::clockid_t = libc::CLOCK_UPTIME_RAW;
#[cfg(not(target_vendor = "apple"))]
const CLOCK_ID: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// Nanoseconds on clock `id`.
#[inline]
fn read_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock always exists, so the call cannot
    // fail (it would leave `ts` zeroed, which only yields an early instant).
    unsafe { libc::clock_gettime(id, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds on [`CLOCK_ID`].
#[inline]
fn monotonic_ns() -> u64 {
    read_ns(CLOCK_ID)
}

/// The origin: a raw reading `raw` (ns on [`CLOCK_ID`], the core's zero), a std instant `std`
/// read after it, and `bound`: the std instant's own raw value lies in `raw..=raw + bound`.
#[derive(Clone, Copy)]
struct Origin {
    raw: u64,
    std: StdInstant,
    bound: Duration,
}

static ORIGIN: OnceLock<Origin> = OnceLock::new();

/// Tries at the tightest bracket: one is enough natively; under an emulator, where every
/// reading is a syscall, the best of a few avoids one that a preemption widened.
const TRIES: usize = 8;

#[inline]
fn origin() -> Origin {
    *ORIGIN.get_or_init(|| {
        let mut best: Option<Origin> = None;
        for _ in 0..TRIES {
            let raw = monotonic_ns();
            let std = StdInstant::now();
            let after = monotonic_ns();
            let bound = Duration::from_nanos(after.saturating_sub(raw));
            if best.is_none_or(|b| bound < b.bound) {
                best = Some(Origin { raw, std, bound });
            }
        }
        best.expect("TRIES > 0")
    })
}

impl MonotonicClock {
    /// The core instant of a std instant: never earlier than exact, later by at most
    /// [`conversion_bound`](MonotonicClock::conversion_bound), so a deadline given as a
    /// `std::time::Instant` never fires early. A std instant before the origin maps to (the
    /// bound after) the origin.
    pub fn instant(at: StdInstant) -> Instant {
        let o = origin();
        Instant::from_nanos(0)
            .saturating_add(at.saturating_duration_since(o.std))
            .saturating_add(o.bound)
    }

    /// The std instant of a core instant: never earlier than exact, later by at most
    /// [`conversion_bound`](MonotonicClock::conversion_bound); differences are preserved
    /// exactly (`to_std(a + d) - to_std(a) == d`).
    pub fn to_std(at: Instant) -> StdInstant {
        origin().std + Duration::from_nanos(at.as_nanos())
    }

    /// The reading of the OS clock (`CLOCK_MONOTONIC`; `CLOCK_UPTIME_RAW` on Apple systems)
    /// that a core instant stands for, as time since that clock's zero: exact, no bound
    /// (libevent's `ev_timeout` holds deadlines this way).
    #[inline]
    pub fn to_os(at: Instant) -> Duration {
        Duration::from_nanos(origin().raw.saturating_add(at.as_nanos()))
    }

    /// How much later than exact [`instant`](MonotonicClock::instant) and
    /// [`to_std`](MonotonicClock::to_std) may be: the bracket of the origin's std instant
    /// between two readings of the clock, measured once per process (tens of nanoseconds
    /// natively; under an emulator such as qemu-user, where each reading is an emulated
    /// syscall, microseconds).
    pub fn conversion_bound() -> Duration {
        origin().bound
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_nanos(monotonic_ns().saturating_sub(origin().raw))
    }
}

/// The coarse variant of [`CLOCK_ID`]: the same clock, read at the kernel tick's resolution
/// (1-10 ms) for a fraction of the cost; [`CLOCK_ID`] itself where the OS has none.
#[cfg(any(target_os = "linux", target_os = "android"))]
const COARSE_ID: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
#[cfg(target_os = "freebsd")]
const COARSE_ID: libc::clockid_t = libc::CLOCK_MONOTONIC_FAST;
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const COARSE_ID: libc::clockid_t = CLOCK_ID;

/// The clock of a rouse-std base: [`MonotonicClock`]'s readings; with
/// [`Builder::coarse_clock`](crate::Builder::coarse_clock), a timeout added outside the loop's
/// callbacks starts at a reading of the same clock at the kernel tick's resolution
/// (`CLOCK_MONOTONIC_COARSE` on Linux, `CLOCK_MONOTONIC_FAST` on FreeBSD; elsewhere the
/// precise clock), cheaper and a few milliseconds behind ([`Clock::now_coarse`]: a kernel
/// tick, more right after the CPU idled). The loop's own
/// readings stay precise. Instants of every base in the process compare, and
/// [`MonotonicClock`]'s conversions apply.
///
/// A coarse reading is never earlier (by more than 20 µs) than a precise reading that a
/// coarse base of this process took before it (its making, its loop's readings): the kernel
/// moves the coarse
/// clock only at its tick, and right after a wait it lags by up to several milliseconds (6
/// measured on a 250 Hz kernel), so a timeout added just after the loop woke would otherwise
/// start that much early, and fire that much early, the loop judging it on the precise clock.
#[derive(Clone, Copy, Debug)]
pub struct BaseClock {
    /// The origin's raw reading (kept here: a reading is then one subtraction from it).
    origin: u64,
    coarse: bool,
}

/// The latest precise reading (raw ns on [`CLOCK_ID`]) a coarse base took, to within
/// [`FLOOR_GRAIN`]: no coarse reading is earlier ([`BaseClock`]). Any value it holds is a past
/// reading, so a coarse reading raised to it is never later than the time it was taken.
#[cfg(target_has_atomic = "64")]
static FLOOR: AtomicU64 = AtomicU64::new(0);

/// How far [`FLOOR`] may fall behind the precise readings: it is written only when a reading
/// passes it by more, so the loops of several threads do not write its cache line at every
/// reading.
#[cfg(target_has_atomic = "64")]
const FLOOR_GRAIN: u64 = 20_000;

/// Raises [`FLOOR`] to `raw`, a precise reading just taken (a relaxed load, and a store when
/// it passed the floor by [`FLOOR_GRAIN`]; a race between two stores may leave the earlier
/// reading, still a past one).
#[inline]
fn raise_floor(raw: u64) {
    #[cfg(target_has_atomic = "64")]
    if raw > FLOOR.load(Ordering::Relaxed).saturating_add(FLOOR_GRAIN) {
        FLOOR.store(raw, Ordering::Relaxed);
    }
    #[cfg(not(target_has_atomic = "64"))]
    let _ = raw;
}

/// A coarse reading raised to [`FLOOR`].
#[inline]
fn floored(raw: u64) -> u64 {
    #[cfg(target_has_atomic = "64")]
    return raw.max(FLOOR.load(Ordering::Relaxed));
    #[cfg(not(target_has_atomic = "64"))]
    raw
}

impl BaseClock {
    /// The precise clock ([`MonotonicClock`]).
    pub fn precise() -> BaseClock {
        BaseClock {
            origin: origin().raw,
            coarse: false,
        }
    }

    /// The coarse clock.
    pub fn coarse() -> BaseClock {
        let clock = BaseClock {
            origin: origin().raw,
            coarse: true,
        };
        raise_floor(monotonic_ns());
        clock
    }

    /// Whether this is the coarse clock.
    pub fn is_coarse(&self) -> bool {
        self.coarse
    }
}

impl Default for BaseClock {
    /// The precise clock.
    fn default() -> BaseClock {
        BaseClock::precise()
    }
}

impl Clock for BaseClock {
    #[inline]
    fn now(&self) -> Instant {
        let raw = monotonic_ns();
        if self.coarse {
            raise_floor(raw);
        }
        Instant::from_nanos(raw.saturating_sub(self.origin))
    }

    #[inline]
    fn now_coarse(&self) -> Instant {
        let raw = if self.coarse {
            floored(read_ns(COARSE_ID))
        } else {
            monotonic_ns()
        };
        // A coarse reading right after the origin's may be earlier than it.
        Instant::from_nanos(raw.saturating_sub(self.origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_are_never_early_and_within_the_bound() {
        // The origin first: a std instant from before it maps to the origin itself.
        let _ = MonotonicClock.now();
        let bound = MonotonicClock::conversion_bound();
        if std::env::var_os("ROUSE_TEST_EMULATED").is_none() {
            assert!(
                bound < Duration::from_micros(20),
                "origin bracket {bound:?}"
            );
        }
        for i in 0..1000u64 {
            let s = StdInstant::now() + Duration::from_nanos(i * 7_919);
            let core = MonotonicClock::instant(s);
            let back = MonotonicClock::to_std(core);
            assert!(back >= s, "round trip made the deadline earlier");
            assert!(back - s <= bound * 2, "round trip off by {:?}", back - s);
            let d = MonotonicClock::to_std(core + Duration::from_millis(3)) - back;
            assert_eq!(d, Duration::from_millis(3), "differences are preserved");
        }
        let a = MonotonicClock.now();
        let b = MonotonicClock.now();
        assert!(b >= a);
    }

    #[test]
    fn os_readings_of_core_instants_are_exact() {
        for _ in 0..1000 {
            let before = monotonic_ns();
            let os = MonotonicClock::to_os(MonotonicClock.now());
            let after = monotonic_ns();
            assert!(os >= Duration::from_nanos(before) && os <= Duration::from_nanos(after));
        }
        let at = MonotonicClock.now();
        let d = Duration::from_millis(7);
        assert_eq!(MonotonicClock::to_os(at + d) - MonotonicClock::to_os(at), d);
    }

    #[test]
    fn the_coarse_clock_is_the_same_time_line_within_a_tick() {
        // A coarse reading lies between a precise one taken a tick (at most 10 ms at the
        // slowest common kernel rate, plus slack) before it and one taken after it.
        let tick = Duration::from_millis(20);
        for _ in 0..1000 {
            let before = MonotonicClock.now();
            let coarse = BaseClock::coarse().now_coarse();
            let after = MonotonicClock.now();
            assert!(coarse <= after, "coarse clock ahead of the precise one");
            assert!(
                before.saturating_duration_since(coarse) <= tick,
                "coarse clock behind by {:?}",
                before.saturating_duration_since(coarse)
            );
        }
        assert!(BaseClock::coarse().is_coarse() && !BaseClock::precise().is_coarse());
        // Never earlier than a precise reading of a coarse base taken before it (the kernel's
        // coarse clock alone lags by up to a tick, more after a wait).
        let clock = BaseClock::coarse();
        for i in 0..1000 {
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(1)); // a wait, as the loop's
            }
            let before = clock.now();
            let coarse = clock.now_coarse();
            assert!(
                before.saturating_duration_since(coarse) <= Duration::from_nanos(FLOOR_GRAIN),
                "coarse reading {:?} behind a precise one taken before it",
                before.saturating_duration_since(coarse)
            );
        }
        // Its `now` is the precise clock's.
        let before = MonotonicClock.now();
        let now = BaseClock::coarse().now();
        assert!(now >= before && now <= MonotonicClock.now());
    }

    #[test]
    fn the_clock_is_the_one_std_instant_reads() {
        // Within the stated bound and no more: a reading of the core clock, converted, lies
        // between the std readings around it, up to the bound later.
        let bound = MonotonicClock::conversion_bound();
        for _ in 0..1000 {
            let before = StdInstant::now();
            let core = MonotonicClock::to_std(MonotonicClock.now());
            let after = StdInstant::now();
            assert!(
                core >= before,
                "core clock behind std's by {:?}",
                before - core
            );
            assert!(
                core <= after + bound,
                "core clock ahead of std's by {:?} (bound {bound:?})",
                core - after
            );
        }
    }
}
