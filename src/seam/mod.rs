//! The seams: everything a runtime supplies to get the whole loop.
//!
//! - [`Lock`]: guards the base's state ([`SpinLock`], [`NoLock`], `CriticalSectionLock`
//!   (feature `critical-section`), or your own).
//! - [`Notify`]: wakes the loop thread from another thread (an eventfd, a flag + interrupt).
//! - [`Poller`]: what the loop blocks in and learns readiness from (epoll, kqueue, a mock).
//! - [`Clock`]: monotonic time for deadlines.
//! - [`Storage`]: fixed capacity ([`Fixed`]) or growable ([`Growable`], feature `alloc`).
//!
//! A [`Config`] names one of each, plus the callback type. The base owns its poller (given to
//! [`Base::new`](crate::Base::new)); only the loop thread uses it, for the length of a run.

mod clock;
#[cfg(feature = "critical-section")]
mod critical_section;
mod lock;
mod notify;
mod poll;
mod storage;

pub(crate) use clock::duration_nanos;
pub use clock::{Clock, Instant};
#[cfg(feature = "critical-section")]
pub use critical_section::CriticalSectionLock;
pub use lock::{Lock, NoLock, NoLockCell, SpinLock};
pub use notify::{NoNotifier, Notify};
pub use poll::{Interest, Poller, Readiness, Ready, Source};
#[cfg(feature = "alloc")]
pub use storage::Growable;
pub use storage::{Buf, Fixed, Storage, Tags, Words};

use crate::{Base, Fired};

/// The seams one base is built from, named at the type level.
///
/// ```
/// use rouse_core::{mock, Base, Config, Fired, Fixed, SpinLock};
///
/// struct MyRuntime;
/// impl Config for MyRuntime {
///     type Lock = SpinLock;
///     type Notifier = mock::Notifier;
///     type Poller = mock::Poller;
///     type Clock = &'static mock::ManualClock;
///     type Storage = Fixed<32>;
///     type Callback = fn(&Base<MyRuntime>, Fired);
///     fn thread_id() -> usize {
///         0 // one core: every caller is the loop thread
///     }
/// }
/// ```
pub trait Config: Sized {
    /// Guards the base's state.
    type Lock: Lock;
    /// Wakes the loop from other threads.
    type Notifier: Notify;
    /// What the loop blocks in. The base owns it; a run takes it for its whole length.
    type Poller: Poller;
    /// The time source for deadlines.
    type Clock: Clock;
    /// Where events live.
    type Storage: Storage;
    /// What an event runs when it fires.
    type Callback: Callback<Self>;

    /// An id of the calling thread, equal for calls from the same thread and different for
    /// threads that run at the same time. The base compares it with the loop thread's id to
    /// decide whether a `delete` must wait for a running callback (only another thread
    /// waits). A single-threaded runtime returns a constant; so does a single-core one whose
    /// interrupt handlers use the base: a handler must count as the loop's thread, since the
    /// callback it interrupted cannot finish while the handler waits for it.
    fn thread_id() -> usize;
}

/// An event's callback: called on the loop thread, with the base lock released, so it may add,
/// delete and activate any event (itself included) through `base`.
pub trait Callback<C: Config> {
    /// Runs the callback.
    fn call(&mut self, base: &Base<C>, fired: Fired);
}

impl<C: Config, F: FnMut(&Base<C>, Fired)> Callback<C> for F {
    #[inline]
    fn call(&mut self, base: &Base<C>, fired: Fired) {
        self(base, fired)
    }
}
