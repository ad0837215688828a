//! The notifier: how another thread wakes a loop that sleeps in its poller.

use crate::SeamError;

/// Wakes a loop thread blocked in [`Poller::wait`](crate::Poller::wait).
///
/// This is libevent's notification fd: an eventfd, a pipe, a socketpair or a kqueue
/// `EVFILT_USER` event in `rouse-std`, a flag plus an interrupt on bare metal, a counter in a
/// test. The base decides *when* to notify (the notify protocol lives once, in the core); the
/// notifier only performs the write and, on the loop side, consumes it.
///
/// # Contract
///
/// - After [`notify`](Notify::notify) returns `Ok`, the next or current `Poller::wait` of the
///   loop reports [`Readiness::Wake`](crate::Readiness::Wake) (or returns for another reason
///   first; the notification then stays readable until it is consumed).
/// - The base calls `notify` at most once per consumed notification: it never needs to buffer
///   more than one. "Already signalled" (a full pipe, `EAGAIN`) is success.
/// - [`consume`](Notify::consume) runs on the loop thread, under the base lock, when the
///   poller reported `Wake`, *before* the base clears its pending flag. It must leave the
///   notifier able to report the next `notify` (drain a level-triggered fd; nothing to do for
///   an edge-triggered one or for `EVFILT_USER` with `EV_CLEAR`).
pub trait Notify {
    /// Writes the notification. On failure the base clears its pending flag (so a later
    /// request tries again) and reports [`Error::Notify`](crate::Error::Notify) with this error.
    fn notify(&self) -> Result<(), SeamError>;

    /// Consumes a notification the poller reported. The default does nothing.
    fn consume(&self) {}
}

/// A notifier that writes nothing: for a base that only its loop thread changes.
///
/// The loop never notifies itself (changes made on the loop thread, callbacks included, are
/// seen before it blocks again), so a base whose events are changed only from the loop thread
/// — a timers-only runtime, a single-threaded program — never needs a wake-up. Do not use it
/// where another thread or an interrupt handler adds, deletes or activates events while the
/// loop may be blocked: the loop would sleep through the change until its next deadline.
///
/// ```
/// use rouse_core::{Notify, NoNotifier};
/// assert_eq!(NoNotifier.notify(), Ok(()));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNotifier;

impl Notify for NoNotifier {
    #[inline]
    fn notify(&self) -> Result<(), SeamError> {
        Ok(())
    }
}

impl<N: Notify + ?Sized> Notify for &N {
    #[inline]
    fn notify(&self) -> Result<(), SeamError> {
        (**self).notify()
    }

    #[inline]
    fn consume(&self) {
        (**self).consume()
    }
}

#[cfg(feature = "alloc")]
impl<N: Notify + ?Sized> Notify for alloc::sync::Arc<N> {
    #[inline]
    fn notify(&self) -> Result<(), SeamError> {
        (**self).notify()
    }

    #[inline]
    fn consume(&self) {
        (**self).consume()
    }
}
