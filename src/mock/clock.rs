//! A clock that moves only when told to.

use core::time::Duration;

use crate::seam::{Clock, Instant};

/// A manual, monotonic clock: starts at zero, moves by [`advance`](ManualClock::advance).
/// `const`-constructible, so a test can keep one in a `static`. It can also play a coarse
/// clock ([`set_coarse_lag`](ManualClock::set_coarse_lag)).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: spin::Mutex<u64>,
    coarse_lag: spin::Mutex<u64>,
}

impl ManualClock {
    /// A clock at zero.
    pub const fn new() -> ManualClock {
        ManualClock {
            now: spin::Mutex::new(0),
            coarse_lag: spin::Mutex::new(0),
        }
    }

    /// Makes [`Clock::now_coarse`] lag [`Clock::now`] by `lag` (as a coarse clock does, up to
    /// its tick); zero (the default) makes them equal.
    pub fn set_coarse_lag(&self, lag: Duration) {
        *self.coarse_lag.lock() = crate::seam::duration_nanos(lag);
    }

    /// Moves the clock forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock();
        *now = Instant::from_nanos(*now).saturating_add(d).as_nanos();
    }

    /// Moves the clock to `t`, if that is not in the past.
    pub fn advance_to(&self, t: Instant) {
        let mut now = self.now.lock();
        *now = (*now).max(t.as_nanos());
    }

    /// Nanoseconds since zero.
    pub fn now_nanos(&self) -> u64 {
        *self.now.lock()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(*self.now.lock())
    }

    fn now_coarse(&self) -> Instant {
        Instant::from_nanos(self.now.lock().saturating_sub(*self.coarse_lag.lock()))
    }
}
