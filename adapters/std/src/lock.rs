//! The std lock for the core: a `Mutex` plus a `Condvar` for cross-thread `delete`.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rouse_core::Lock;

/// [`rouse_core::Lock`] over `std::sync::Mutex`; [`Lock::wait`] sleeps on a `Condvar` (a
/// cross-thread `delete` waiting for a running callback) instead of spinning.
#[derive(Debug)]
pub struct StdLock;

/// The cell of [`StdLock`].
#[derive(Debug, Default)]
pub struct StdCell<T> {
    value: Mutex<T>,
    cond: Condvar,
}

/// The base never panics while holding its lock (callbacks run unlocked), so poisoning can only
/// come from a bug in rouse itself; the state is still consistent at every unlock, so go on.
fn relock<'a, T>(
    r: Result<MutexGuard<'a, T>, PoisonError<MutexGuard<'a, T>>>,
) -> MutexGuard<'a, T> {
    r.unwrap_or_else(PoisonError::into_inner)
}

impl Lock for StdLock {
    type Cell<T> = StdCell<T>;

    fn new<T>(value: T) -> StdCell<T> {
        StdCell {
            value: Mutex::new(value),
            cond: Condvar::new(),
        }
    }

    #[inline]
    fn with<T, R>(cell: &StdCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut relock(cell.value.lock()))
    }

    fn wait<T>(cell: &StdCell<T>, mut done: impl FnMut(&mut T) -> bool) {
        let mut g = relock(cell.value.lock());
        while !done(&mut g) {
            g = relock(cell.cond.wait(g));
        }
    }

    fn wake_all<T>(cell: &StdCell<T>) {
        cell.cond.notify_all();
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
}
