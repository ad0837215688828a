//! The adaptive spin before blocking: spin only while wake-ups arrive within the window.
//!
//! A spin before blocking pays off when another thread makes a request shortly after the loop
//! went idle (a worker answering at once): the loop sees it with no notification write, no
//! sleep and no wake-up. It only burns CPU when requests come later than the window. The gate
//! learns which case holds from what the loop does anyway, with times passed in (no clock of
//! its own), so it is tested deterministically:
//!
//! - a blocking wait that a notification ended within [`EVIDENCE_WINDOWS`] windows of its start
//!   (the request came within `window`, plus the kernel's wake-up latency) means a spin would
//!   likely have caught that request: the spin turns **on**;
//! - a spin that saw a request is a hit; a spin that saw none, or a notification after a
//!   longer sleep, is a miss; [`MISS_STREAK`] misses in a row turn it **off**;
//! - missed spins (CPU burnt for nothing) draw on a budget that grows with wall time at
//!   1/2^[`BUDGET_SHIFT`] of it (about 3 %) and banks at most [`BANK_WINDOWS`] windows: however
//!   requests are timed, wasted spinning stays under that share of the loop thread's time.
//!   Hits cost no budget: each replaced a write, a sleep and a wake-up.
//!
//! Waits that end by I/O or a timeout say nothing (a spin watches requests only). While the
//! spin is off, only one blocking wait in [`SAMPLE`] is timed ([`SpinGate::sample`]): a loop
//! whose wakes come from I/O alone, or far apart (W6: 500 µs), never spins, and what it pays
//! is one clock reading before and one after every `SAMPLE`-th blocking wait (the one after
//! only if a notification ended it); a run of quick wakes still turns the spin on within
//! `SAMPLE` waits.

/// Misses in a row that turn the spin off.
pub(crate) const MISS_STREAK: u8 = 4;
/// Missed spins may use at most 2^-BUDGET_SHIFT of the wall time (1/32).
pub(crate) const BUDGET_SHIFT: u32 = 5;
/// The budget banks at most this many windows of spinning.
pub(crate) const BANK_WINDOWS: u64 = 8;
/// A notification that ended a blocking wait within this many windows of its start counts as
/// one a spin could have caught: the sleep also holds the kernel's wake-up latency (several
/// microseconds on a VM), so the request itself came earlier than the loop saw it.
pub(crate) const EVIDENCE_WINDOWS: u64 = 8;

/// While the spin is off, one blocking wait in this many is timed.
pub(crate) const SAMPLE: u8 = 8;

const NOT_BLOCKED: u64 = u64::MAX;

/// The adaptive spin's state (plain state under the base lock; times in clock nanoseconds).
#[derive(Debug)]
pub(crate) struct SpinGate {
    /// The window in ns; 0: the adaptive spin is off (no clock readings either).
    window: u64,
    on: bool,
    misses: u8,
    /// Missed spinning still allowed, in ns.
    credit: u64,
    /// When the budget last grew.
    accrued_at: u64,
    /// When the current blocking wait began, or `NOT_BLOCKED`.
    blocked_at: u64,
    /// Blocking waits not timed since the last timed one (while off).
    skipped: u8,
}

impl SpinGate {
    pub fn new(window_ns: u64) -> SpinGate {
        SpinGate {
            window: window_ns,
            on: false,
            misses: 0,
            credit: 0,
            accrued_at: 0,
            blocked_at: NOT_BLOCKED,
            // The first blocking wait is timed.
            skipped: SAMPLE - 1,
        }
    }

    /// Whether the gate is in use (and the loop must pass it times).
    #[inline]
    pub fn adaptive(&self) -> bool {
        self.window != 0
    }

    /// Whether it would spin now (given budget).
    #[cfg(test)]
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// Whether the loop consults the gate before this blocking wait: reads the clock, asks
    /// [`plan`](SpinGate::plan) and times the wait ([`blocking`](SpinGate::blocking),
    /// [`woke`](SpinGate::woke)). Always while the spin is on; while it is off, one wait in
    /// [`SAMPLE`]. Never for a gate that is not adaptive.
    #[inline]
    pub fn sample(&mut self) -> bool {
        if self.window == 0 {
            return false;
        }
        if self.on {
            return true;
        }
        self.skipped += 1;
        if self.skipped < SAMPLE {
            return false;
        }
        self.skipped = 0;
        true
    }

    /// The loop is about to block at `now`: how long to spin first, in ns (0: block at once).
    pub fn plan(&mut self, now: u64) -> u64 {
        let grown = now.saturating_sub(self.accrued_at) >> BUDGET_SHIFT;
        self.credit = self
            .credit
            .saturating_add(grown)
            .min(self.window.saturating_mul(BANK_WINDOWS));
        self.accrued_at = now;
        if self.on && self.credit >= self.window {
            self.window
        } else {
            0
        }
    }

    /// A spin of `spent` ns ended; `hit`: a request arrived during it.
    pub fn spun(&mut self, hit: bool, spent: u64) {
        if hit {
            self.misses = 0;
        } else {
            self.credit = self.credit.saturating_sub(spent);
            self.miss();
        }
    }

    /// The loop blocks from `now`.
    #[inline]
    pub fn blocking(&mut self, now: u64) {
        self.blocked_at = now;
    }

    /// Whether a blocking wait is being timed (the loop reads the clock after it).
    #[inline]
    pub fn timing(&self) -> bool {
        self.blocked_at != NOT_BLOCKED
    }

    /// The blocking wait ended at `now`; `notified`: a notification was among what it found.
    pub fn woke(&mut self, now: u64, notified: bool) {
        let slept = now.saturating_sub(self.blocked_at);
        self.blocked_at = NOT_BLOCKED;
        if !notified {
            return;
        }
        if slept <= self.window.saturating_mul(EVIDENCE_WINDOWS) {
            self.on = true;
            self.misses = 0;
        } else {
            self.miss();
        }
    }

    fn miss(&mut self) {
        self.misses += 1;
        if self.misses >= MISS_STREAK {
            self.on = false;
            self.misses = 0;
        }
    }

    /// The timed wait ended with no notification among what it found: no evidence either
    /// way, and no clock reading needed.
    #[inline]
    pub fn woke_unnotified(&mut self) {
        self.blocked_at = NOT_BLOCKED;
    }

    /// After fork: no wait in progress.
    pub fn reset(&mut self) {
        self.blocked_at = NOT_BLOCKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 3_000;

    /// A gate with a full bank, at time `t`.
    fn warm(t: u64) -> SpinGate {
        let mut g = SpinGate::new(W);
        assert_eq!(g.plan(t), 0, "off until a short sleep is seen");
        g
    }

    #[test]
    fn a_wake_within_the_window_turns_it_on_and_hits_keep_it_on() {
        let mut g = warm(1_000_000);
        g.blocking(1_000_000);
        g.woke(1_002_000, true); // slept 2 µs: a spin would have caught it
        assert!(g.is_on());
        let mut t = 1_010_000;
        for _ in 0..1000 {
            assert_eq!(g.plan(t), W, "on, with budget");
            g.spun(true, 400);
            t += 1_000; // back-to-back requests
        }
    }

    #[test]
    fn wakes_after_the_window_never_turn_it_on() {
        // W6's shape: every wake 500 µs after the loop blocked.
        let mut g = warm(0);
        let mut t = 0;
        for _ in 0..100 {
            assert_eq!(g.plan(t), 0);
            g.blocking(t);
            t += 500_000;
            g.woke(t, true);
            t += 2_000;
        }
        assert!(!g.is_on());
    }

    #[test]
    fn waits_ended_by_io_or_timeouts_say_nothing() {
        let mut g = warm(1_000_000);
        g.blocking(1_000_000);
        g.woke(1_000_100, false);
        assert!(!g.is_on(), "no notification: no evidence");
        g.blocking(1_000_200);
        g.woke(1_001_000, true);
        assert!(g.is_on());
        g.blocking(1_001_000);
        g.woke(9_000_000, false);
        assert!(g.is_on(), "a long I/O wait is no miss");
    }

    #[test]
    fn a_streak_of_misses_turns_it_off() {
        let mut g = warm(10_000_000);
        g.blocking(10_000_000);
        g.woke(10_001_000, true);
        let mut t = 10_100_000;
        for i in 0..MISS_STREAK {
            assert_eq!(g.plan(t), W, "still on after {i} misses");
            g.spun(false, W);
            t += 100_000;
        }
        assert_eq!(g.plan(t), 0, "off after {MISS_STREAK} misses in a row");
        assert!(!g.is_on());
    }

    #[test]
    fn a_hit_resets_the_streak() {
        let mut g = warm(10_000_000);
        g.blocking(10_000_000);
        g.woke(10_001_000, true);
        let mut t = 10_100_000;
        for _ in 0..20 {
            for _ in 0..MISS_STREAK - 1 {
                assert_eq!(g.plan(t), W);
                g.spun(false, W);
                t += 1_000_000;
            }
            assert_eq!(g.plan(t), W);
            g.spun(true, 100);
            t += 1_000_000;
        }
        assert!(g.is_on());
    }

    #[test]
    fn missed_spinning_stays_within_its_share_of_wall_time() {
        // Adversarial timing: each request comes just after a spin would have given up, so
        // every spin misses, and the sleep after it is short enough to turn the spin back on.
        let mut g = warm(0);
        g.blocking(0);
        g.woke(1_000, true);
        let (mut t, mut burnt, start) = (1_000u64, 0u64, 1_000u64);
        let rounds = if cfg!(miri) { 2_000 } else { 100_000 };
        for _ in 0..rounds {
            let spin = g.plan(t);
            if spin > 0 {
                g.spun(false, spin);
                burnt += spin;
                t += spin;
            }
            g.blocking(t);
            t += 500;
            g.woke(t, true);
            t += 200; // the callback
        }
        let wall = t - start;
        let cap = wall / (1 << BUDGET_SHIFT) + W * BANK_WINDOWS;
        assert!(burnt > 0, "it did try");
        assert!(burnt <= cap, "burnt {burnt} ns of {wall} ns, cap {cap}");
    }

    #[test]
    fn while_off_one_wait_in_sample_is_timed_and_quick_wakes_still_turn_it_on() {
        let mut g = warm(0);
        let mut t = 0;
        // Late wakes (W6): only every SAMPLE-th wait is timed.
        let mut timed = 0;
        for _ in 0..SAMPLE as u32 * 10 {
            if g.sample() {
                timed += 1;
                assert_eq!(g.plan(t), 0);
                g.blocking(t);
                t += 500_000;
                g.woke(t, true);
            } else {
                t += 500_000;
            }
        }
        assert_eq!(timed, 10, "one wait in {SAMPLE}");
        assert!(!g.is_on());
        // Quick wakes from now on: on within SAMPLE waits, then every wait is timed.
        let mut waits = 0;
        while !g.is_on() {
            waits += 1;
            assert!(waits <= SAMPLE, "still off after {waits} quick wakes");
            if g.sample() {
                g.plan(t);
                g.blocking(t);
                g.woke(t + 1_000, true);
            }
            t += 2_000;
        }
        for _ in 0..100 {
            assert!(g.sample(), "on: every wait is timed");
        }
    }

    #[test]
    fn off_costs_nothing_and_never_spins() {
        let mut g = SpinGate::new(0);
        assert!(!g.adaptive());
        assert!(!g.sample(), "not adaptive: never consulted");
        g.blocking(0);
        g.woke(1, true);
        assert_eq!(g.plan(1_000_000_000), 0);
    }
}
