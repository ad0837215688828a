//! OS mechanisms, one file per mechanism. Everything here only performs syscalls: the decision
//! of *when* to notify, what interest to apply and when to wait lives once, in the core.
//!
//! Each **notifier** (`notify/*.rs`) provides:
//! - `new(..) -> io::Result<Self>`: its fds non-blocking and close-on-exec;
//! - `notify(&self) -> io::Result<()>`: one write; `EINTR` retried, `EAGAIN` ("already
//!   readable") is success;
//! - `drain(&self)`: read until `EAGAIN`, for a level-triggered registration;
//! - `wake_source(&self) -> WakeSource`: how a poller must watch it;
//! - `reinit(&self, ..) -> io::Result<()>`: new OS objects after `fork()` (fds kept in atomics,
//!   so `&self` suffices: only one thread exists in a freshly forked child).
//!
//! Each **poller** (`poll/*.rs`) implements [`rouse_core::Poller`] and provides:
//! - `new() -> io::Result<Self>` and `watch_wake(&mut self, WakeSource) -> io::Result<()>`;
//! - `update`: one source's registration from `old` to `new` interest, healing a kernel that
//!   disagrees (`EEXIST` on add -> modify, `ENOENT` on modify -> add, `ENOENT`/`EBADF` on delete
//!   -> done);
//! - `watch_signal`: subscribe this poller's signal self-pipe to a signal (`signal.rs`);
//! - `wait`: block up to the timeout, rounded **up** to what the kernel can express, never early;
//!   `EINTR` is a wait that found nothing;
//! - `ready`: the readiness found, the notifier as `Readiness::Wake`, signals as
//!   `Readiness::Signal`;
//! - `inherited_fds`, `adopt_signals`: the fd numbers a forked child inherits from it (its
//!   kernel object if inherited, its signal pipe), which `AnyPoller` publishes in atomics, and
//!   taking over an adopted signal pipe: so that a child can replace a poller that a parent
//!   thread had in its hands at `fork()` without touching it.
//!
//! `signal.rs` is the process-wide signal registry: which signals can be watched
//! (`check_catchable`), and an async-signal-safe handler that writes the signal number to every
//! subscribed self-pipe and chains to the disposition it replaced, which is restored when the
//! last subscriber leaves if rouse's handler is still the installed one.

#![allow(dead_code)] // each mechanism is compiled on every Unix; not all are used everywhere

pub(crate) mod fd;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) mod futex;
pub(crate) mod notify;
pub(crate) mod poll;
pub(crate) mod signal;

use std::os::fd::RawFd;

/// Calls a libc function, turning `-1` into the thread's `io::Error` (mio's `syscall!`).
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: every use passes arguments the libc function documents as valid: fds the
        // caller owns, pointers to live, correctly sized buffers.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// How a poller must watch a notifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeSource {
    /// Readability of `fd`; `edge`: the notifier needs no drain if registered edge-triggered.
    Fd { fd: RawFd, edge_ok: bool },
    /// A kqueue `EVFILT_USER` event with this ident, on the poller's own kqueue.
    KqueueUser { ident: usize },
}
