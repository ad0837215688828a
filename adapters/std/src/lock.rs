//! The std lock for the core: on Linux a futex mutex that, like glibc's own, takes no atomic
//! read-modify-write while the process has a single thread; elsewhere a `Mutex` and a
//! `Condvar`. Either way a cross-thread `delete` waiting for a running callback sleeps.

use rouse_core::Lock;

/// [`rouse_core::Lock`] for rouse-std's thread-safe bases. [`Lock::wait`] sleeps (a
/// cross-thread `delete` waiting for a running callback) instead of spinning.
///
/// # Implementation notes
///
/// On Linux, a three-state futex mutex (free, locked, locked with sleepers) plus a wake-up
/// counter that [`Lock::wait`] sleeps on. While glibc reports the process single-threaded
/// (`__libc_single_threaded`, which `pthread_create` clears before the second thread exists),
/// lock and unlock are plain loads and stores: no other thread exists to contend. A thread
/// started while the lock is held (by code running under it, such as a `for_each_event`
/// closure) sees it held, as `pthread_create` orders the store before the new thread, and
/// the unlock, no longer single-threaded, then takes the atomic path and wakes it. The flag
/// never turns back on, so an atomically taken lock is never released with a plain store.
/// This is what glibc's `pthread_mutex_lock` does too, so a single-threaded program pays for
/// a thread-safe base no more than libevent's does. Elsewhere: `std::sync::Mutex` and
/// `Condvar`.
#[derive(Debug)]
pub struct StdLock;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::cell::UnsafeCell;
    use std::fmt;
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::sys::futex;

    const FREE: u32 = 0;
    const LOCKED: u32 = 1;
    const SLEEPERS: u32 = 2;

    /// The cell of [`StdLock`](super::StdLock).
    pub struct StdCell<T> {
        state: AtomicU32,
        /// Bumped by every `wake_all`: `wait` sleeps until it moves.
        wakes: AtomicU32,
        value: UnsafeCell<T>,
    }

    // SAFETY: the value is only reached through `with`, under the lock (one thread at a
    // time), so the cell may be shared and sent whenever the value may be sent.
    unsafe impl<T: Send> Sync for StdCell<T> {}
    // SAFETY: as above.
    unsafe impl<T: Send> Send for StdCell<T> {}

    impl<T> fmt::Debug for StdCell<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("StdCell")
                .field("state", &self.state.load(Ordering::Relaxed))
                .finish_non_exhaustive()
        }
    }

    impl<T: Default> Default for StdCell<T> {
        fn default() -> Self {
            StdCell::new(T::default())
        }
    }

    /// Unlocks when dropped (also if the closure under the lock panics).
    struct Held<'a>(&'a AtomicU32);

    impl Drop for Held<'_> {
        #[inline(always)]
        fn drop(&mut self) {
            if futex::single_threaded() {
                // Still the only thread: nobody can be sleeping on it.
                self.0.store(FREE, Ordering::Release);
            } else if self.0.swap(FREE, Ordering::Release) == SLEEPERS {
                futex::wake(self.0, 1);
            }
        }
    }

    impl<T> StdCell<T> {
        pub(super) fn new(value: T) -> Self {
            futex::look_up_flag();
            StdCell {
                state: AtomicU32::new(FREE),
                wakes: AtomicU32::new(0),
                value: UnsafeCell::new(value),
            }
        }

        #[inline(always)]
        fn lock(&self) -> Held<'_> {
            if futex::single_threaded() {
                // Alone: free means nobody holds it. Held means a nested `with` or a lock
                // inherited through `fork()` from a thread the child does not have: that
                // waits (forever, as a `Mutex` would), never a second `&mut`.
                if self.state.load(Ordering::Relaxed) == FREE {
                    self.state.store(LOCKED, Ordering::Relaxed);
                } else {
                    self.lock_contended();
                }
            } else if self
                .state
                .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                self.lock_contended();
            }
            Held(&self.state)
        }

        #[cold]
        #[inline(never)]
        fn lock_contended(&self) {
            // A short spin first: the base's critical sections are short.
            for _ in 0..100 {
                std::hint::spin_loop();
                if self.state.load(Ordering::Relaxed) == FREE
                    && self
                        .state
                        .compare_exchange(FREE, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                {
                    return;
                }
            }
            // Then sleep, marking the lock as having sleepers (so its unlock wakes one).
            while self.state.swap(SLEEPERS, Ordering::Acquire) != FREE {
                futex::wait(&self.state, SLEEPERS);
            }
        }

        #[inline(always)]
        pub(super) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            let _held = self.lock();
            // SAFETY: the lock is held until `_held` drops: no other reference to the value.
            f(unsafe { &mut *self.value.get() })
        }

        pub(super) fn wait(&self, mut done: impl FnMut(&mut T) -> bool) {
            loop {
                // Read before the check: a `wake_all` after it moves the counter, so the
                // sleep below returns at once instead of missing it.
                let seen = self.wakes.load(Ordering::Acquire);
                if self.with(&mut done) {
                    return;
                }
                futex::wait(&self.wakes, seen);
            }
        }

        pub(super) fn wake_all(&self) {
            self.wakes.fetch_add(1, Ordering::Release);
            futex::wake(&self.wakes, i32::MAX);
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

    /// The cell of [`StdLock`](super::StdLock).
    #[derive(Debug, Default)]
    pub struct StdCell<T> {
        value: Mutex<T>,
        cond: Condvar,
    }

    /// The base never panics while holding its lock (callbacks run unlocked), so poisoning can
    /// only come from a bug in rouse itself; the state is still consistent at every unlock, so
    /// go on.
    fn relock<'a, T>(
        r: Result<MutexGuard<'a, T>, PoisonError<MutexGuard<'a, T>>>,
    ) -> MutexGuard<'a, T> {
        r.unwrap_or_else(PoisonError::into_inner)
    }

    impl<T> StdCell<T> {
        pub(super) fn new(value: T) -> Self {
            StdCell {
                value: Mutex::new(value),
                cond: Condvar::new(),
            }
        }

        #[inline]
        pub(super) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
            f(&mut relock(self.value.lock()))
        }

        pub(super) fn wait(&self, mut done: impl FnMut(&mut T) -> bool) {
            let mut g = relock(self.value.lock());
            while !done(&mut g) {
                g = relock(self.cond.wait(g));
            }
        }

        pub(super) fn wake_all(&self) {
            self.cond.notify_all();
        }
    }
}

pub use imp::StdCell;

/// Whether this process has a single thread now: glibc's `__libc_single_threaded` (2.32 and
/// later), `false` elsewhere or where it cannot tell. `pthread_create` clears the flag on
/// the creating thread before the new thread exists, so a thread that reads `true` is alone:
/// nothing races it until it starts a thread itself, and `pthread_create` orders what it
/// did before for the new one. State that only threads share may then be updated with plain
/// loads and stores, as [`StdLock`] does (and glibc's own `pthread_mutex_lock`).
#[inline(always)]
pub fn single_threaded() -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        crate::sys::futex::single_threaded_looked_up()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        false
    }
}

impl Lock for StdLock {
    type Cell<T> = StdCell<T>;

    fn new<T>(value: T) -> StdCell<T> {
        StdCell::new(value)
    }

    #[inline]
    fn with<T, R>(cell: &StdCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        cell.with(f)
    }

    fn wait<T>(cell: &StdCell<T>, done: impl FnMut(&mut T) -> bool) {
        cell.wait(done)
    }

    fn wake_all<T>(cell: &StdCell<T>) {
        cell.wake_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_sleeps_until_a_change_and_wake() {
        let cell = Arc::new(StdLock::new(0u32));
        let c = cell.clone();
        let t = std::thread::spawn(move || {
            StdLock::wait(&c, |v| *v == 3);
        });
        for _ in 0..3 {
            StdLock::with(&cell, |v| *v += 1);
            StdLock::wake_all(&cell);
        }
        t.join().unwrap();
    }

    #[test]
    fn threads_exclude_each_other() {
        // A non-atomic read-modify-write under the lock: any overlap loses increments.
        let cell = Arc::new(StdLock::new((0u64, 0u64)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = cell.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        StdLock::with(&c, |v| {
                            let x = v.0;
                            std::hint::black_box(&x);
                            v.0 = x + 1;
                            v.1 += 1;
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(StdLock::with(&cell, |v| *v), (80_000, 80_000));
    }

    #[test]
    fn a_panic_under_the_lock_releases_it() {
        let cell = Arc::new(StdLock::new(1u32));
        let c = cell.clone();
        let r = std::thread::spawn(move || StdLock::with(&c, |_| panic!("under the lock"))).join();
        assert!(r.is_err());
        assert_eq!(StdLock::with(&cell, |v| *v), 1, "the lock is free again");
    }
}
