//! An interrupt-safe lock over the `critical-section` crate (feature `critical-section`).

use core::cell::RefCell;

use super::Lock;

/// A lock that holds a critical section (the `critical-section` crate's) while the base's state
/// is touched: on a single-core microcontroller, interrupts are masked for that time.
///
/// This is the lock for a base that interrupt handlers use (one that calls
/// [`Base::activate`](crate::Base::activate) from an ISR). With [`SpinLock`](crate::SpinLock),
/// an interrupt that arrives while the interrupted code holds the lock, and whose handler then
/// takes the lock (an activation's slow path: the event was not queued yet), spins forever:
/// the holder cannot run until the handler returns. Here the handler cannot start while the
/// lock is held, and the lock is held only for the base's own bookkeeping (never across a
/// callback), so interrupt latency grows by that much at most.
///
/// What "critical section" means is decided by the one implementation linked into the program
/// (`cortex-m`'s `critical-section-single-core` masks interrupts with `cpsid i`; a multi-core
/// chip's HAL takes a hardware spinlock too; `critical-section`'s `std` feature takes a global
/// mutex, for host tests). Its cell is `Sync` (for `T: Send`), so the base is shareable
/// between the main code and interrupt handlers (in a `static`).
///
/// [`Lock`]'s docs say which lock to pick where.
///
/// A spinning [`Lock::wait`] (the default, used by a cross-thread `delete` of an event whose
/// callback runs) must not be reached from an interrupt handler: on one core the loop cannot
/// finish its callback while the handler spins. A runtime whose [`Config::thread_id`](crate::Config::thread_id)
/// returns one id for the main code and its handlers never waits there.
///
/// ```
/// use rouse_core::{CriticalSectionLock, Lock};
/// let cell = CriticalSectionLock::new(0u32);
/// CriticalSectionLock::with(&cell, |n| *n += 1);
/// assert_eq!(CriticalSectionLock::with(&cell, |n| *n), 1);
/// ```
#[derive(Debug)]
pub struct CriticalSectionLock;

impl Lock for CriticalSectionLock {
    type Cell<T> = critical_section::Mutex<RefCell<T>>;

    fn new<T>(value: T) -> Self::Cell<T> {
        critical_section::Mutex::new(RefCell::new(value))
    }

    #[inline]
    fn with<T, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        // The base never nests `with` on one cell, so this borrow cannot fail; a critical
        // section entered by the caller around it (to read the clock and add timers at one
        // instant, say) nests fine.
        critical_section::with(|cs| f(&mut cell.borrow_ref_mut(cs)))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::time::Duration;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::thread;

    use super::*;
    use crate::{mock, Base, Event, Exit, Options, Ready};

    #[test]
    fn threads_never_overlap_inside_with() {
        let cell = CriticalSectionLock::new((0u64, false));
        thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        CriticalSectionLock::with(&cell, |(n, inside)| {
                            assert!(!*inside, "two threads inside one critical section");
                            *inside = true;
                            *n += 1;
                            *inside = false;
                        });
                    }
                });
            }
        });
        assert_eq!(CriticalSectionLock::with(&cell, |(n, _)| *n), 40_000);
        // The default `wait` returns once the condition holds (here: at once).
        CriticalSectionLock::wait(&cell, |(n, _)| *n == 40_000);
    }

    #[test]
    fn nests_inside_a_callers_critical_section() {
        let cell = CriticalSectionLock::new(1u32);
        let v = critical_section::with(|_| CriticalSectionLock::with(&cell, |v| *v * 2));
        assert_eq!(v, 2);
    }

    static CLOCK: mock::ManualClock = mock::ManualClock::new();
    static NOTIFIER: mock::Notifier = mock::Notifier::new();
    static RUNS: AtomicU32 = AtomicU32::new(0);

    #[test]
    fn a_shared_base_runs_with_it() {
        type Cs = mock::Mock<CriticalSectionLock>;
        fn needs_sync<T: Sync>(_: &T) {}
        let base: Base<Cs> =
            Base::new_mock(&NOTIFIER, &CLOCK, Options::new().priorities(2)).unwrap();
        needs_sync(&base); // shareable with interrupt handlers (or threads)
        let user = base
            .new_event(Event::user().priority(0), |_, f| {
                assert_eq!(f.ready, Ready::USER);
                RUNS.fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        let t = base
            .new_event(Event::timer().priority(1), |b, _| {
                RUNS.fetch_add(10, Ordering::Relaxed);
                b.loop_break().unwrap();
            })
            .unwrap();
        base.add(t, Some(Duration::from_millis(3))).unwrap();
        // "Interrupt handlers": other threads activate the user event before the run.
        thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| base.activate(user, Ready::USER).unwrap());
            }
        });
        let mut poller = base.mock_poller();
        assert_eq!(poller.run(), Ok(Exit::Break));
        // Two activations of a queued event coalesce into one run, then the timer.
        assert_eq!(RUNS.load(Ordering::Relaxed), 11);
    }
}
