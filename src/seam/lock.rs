//! The lock that guards a base's state: a family of closure-scoped mutexes.

use core::cell::RefCell;
use core::fmt;
use core::marker::PhantomData;

/// A family of mutual-exclusion cells: `Self::Cell<T>` guards a `T`.
///
/// The base keeps all of its mutable state in one `Cell<BaseState>` and touches it only inside
/// [`Lock::with`], so a critical section cannot be left locked across a callback (the shape of
/// embassy-sync's `RawMutex::lock(&self, f)`). The implementor decides what "exclusive" means:
/// a spin lock ([`SpinLock`]), an OS mutex (`rouse-std`), an interrupt-free section on bare
/// metal, or nothing at all for a single thread ([`NoLock`]).
///
/// # Which lock to pick
///
/// | where the base is used | lock |
/// |---|---|
/// | one thread (or one core), no interrupt handler touches the base | [`NoLock`](crate::NoLock): costs nothing; the compiler keeps the base on its thread |
/// | bare metal, interrupt handlers (or another core, with a multi-core `critical-section` implementation) touch the base | `CriticalSectionLock` (feature `critical-section`) |
/// | several cores that are never preempted while they hold the lock, and no interrupt handler touches the base | [`SpinLock`](crate::SpinLock) |
/// | threads of an OS (which may be preempted while holding the lock) | an OS lock: `rouse-std`'s `StdLock` |
///
/// # Contract
///
/// - `with` gives `f` exclusive access to the value for the duration of the call, and makes
///   everything written inside one call visible to every later call (acquire/release).
/// - The base never calls `with` from inside `f` (no re-entrancy is needed).
/// - If `Cell<T>` is `Sync`, any thread may call `with`; the base is then `Sync` too. A lock
///   that is not `Sync` makes the base single-threaded, enforced by the compiler.
pub trait Lock {
    /// The cell that holds a `T` under this lock.
    type Cell<T>;

    /// Wraps `value` in a new, unlocked cell.
    fn new<T>(value: T) -> Self::Cell<T>;

    /// Runs `f` with exclusive access to the value in `cell`.
    fn with<T, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R;

    /// Blocks the calling thread until `done` returns `true`, evaluating it under the lock.
    ///
    /// The base calls this when another thread must wait for the loop (a cross-thread
    /// `delete` of an event whose callback is running); the loop calls [`Lock::wake_all`]
    /// after every change such a waiter may be waiting for. The default spins, re-taking the
    /// lock between checks; an OS lock overrides it with a condition variable.
    fn wait<T>(cell: &Self::Cell<T>, mut done: impl FnMut(&mut T) -> bool) {
        while !Self::with(cell, &mut done) {
            core::hint::spin_loop();
        }
    }

    /// Wakes every thread blocked in [`Lock::wait`] on `cell`. The default does nothing
    /// (spinning waiters need no wake-up).
    fn wake_all<T>(cell: &Self::Cell<T>) {
        let _ = cell;
    }
}

/// A spin lock (from the `spin` crate): for multi-core systems without an OS.
///
/// A thread that finds the lock taken spins. Use an OS lock (`rouse-std`'s `StdLock`) where
/// threads can be preempted while holding it, and `CriticalSectionLock` (feature
/// `critical-section`) where interrupt handlers use the base: a handler that interrupts the
/// holder and then takes the lock spins forever.
#[derive(Debug)]
pub struct SpinLock;

impl Lock for SpinLock {
    type Cell<T> = spin::Mutex<T>;

    fn new<T>(value: T) -> Self::Cell<T> {
        spin::Mutex::new(value)
    }

    #[inline]
    fn with<T, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut cell.lock())
    }
}

/// No lock at all, for a base used by one thread only.
///
/// Its cell is neither `Send` nor `Sync`, so a base built on it cannot leave the thread that
/// created it: the compiler refuses to move or share it.
///
/// ```compile_fail
/// use rouse_core::{mock, Base, Options};
/// static CLOCK: mock::ManualClock = mock::ManualClock::new();
/// static NOTIFIER: mock::Notifier = mock::Notifier::new();
/// fn needs_sync<T: Sync>(_: &T) {}
/// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
/// needs_sync(&base); // error: `NoLockCell` is not `Sync`
/// ```
///
/// (`tests/ui` checks the exact errors for `Send` and `Sync` with trybuild.)
#[derive(Debug)]
pub struct NoLock;

/// The cell of [`NoLock`]: a `RefCell` that is neither `Send` nor `Sync`.
pub struct NoLockCell<T> {
    value: RefCell<T>,
    _not_send: PhantomData<*mut ()>,
}

impl<T> fmt::Debug for NoLockCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NoLockCell")
    }
}

impl Lock for NoLock {
    type Cell<T> = NoLockCell<T>;

    fn new<T>(value: T) -> Self::Cell<T> {
        NoLockCell {
            value: RefCell::new(value),
            _not_send: PhantomData,
        }
    }

    #[inline]
    fn with<T, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        // The base never nests `with`, so this borrow cannot fail.
        f(&mut cell.value.borrow_mut())
    }

    fn wait<T>(cell: &Self::Cell<T>, mut done: impl FnMut(&mut T) -> bool) {
        // One thread: nobody else can make `done` true while we wait, so it must hold now.
        let ok = Self::with(cell, &mut done);
        debug_assert!(
            ok,
            "NoLock::wait: condition false on a single-threaded base"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_to<L: Lock>(n: u32) -> u32 {
        let cell = L::new(0u32);
        for _ in 0..n {
            L::with(&cell, |v| *v += 1);
        }
        L::wait(&cell, |v| *v == n);
        L::with(&cell, |v| *v)
    }

    #[test]
    fn spin_and_nolock_guard_their_value() {
        assert_eq!(count_to::<SpinLock>(10), 10);
        assert_eq!(count_to::<NoLock>(10), 10);
    }
}
