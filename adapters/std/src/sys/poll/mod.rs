//! Pollers: epoll (Linux), kqueue (FreeBSD, macOS) and poll(2) (every Unix), behind one
//! [`AnyPoller`].
//!
//! Each backend implements [`rouse_core::Poller`] with the syscalls of its mechanism and nothing
//! else (the contract is in `sys/mod.rs`). What they share lives here: the error and fd
//! conversions, timeout rounding, the grow-on-full event buffer, and the signal self-pipe type.

#[cfg(rouse_epoll)]
mod epoll;
#[cfg(rouse_kqueue)]
mod kqueue;
#[allow(clippy::module_inception)] // `sys/poll/poll.rs`: one file per mechanism, named by it
mod poll;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use rouse_core::{Interest, Poller, Readiness, SeamError, Source};

#[cfg(rouse_epoll)]
pub(crate) use epoll::EpollPoller;
#[cfg(rouse_kqueue)]
pub(crate) use kqueue::KqueuePoller;
pub(crate) use poll::PollPoller;

use super::{fd, WakeSource};

// The per-poller signal self-pipe.
use super::signal::SignalPipe;

/// A polling mechanism `rouse-std` can wait in (non-exhaustive: more may come).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PollerKind {
    /// Linux `epoll(7)`: O(1) per ready source, level- or edge-triggered, peer-close reports
    /// (`EPOLLRDHUP`), nanosecond timeouts through `epoll_pwait2` (Linux 5.11+; whole
    /// milliseconds, rounded up, before that). The default on Linux.
    Epoll,
    /// BSD `kqueue(2)`: O(1) per ready source, level- or edge-triggered (`EV_CLEAR`),
    /// nanosecond timeouts, and `EVFILT_USER` for the notifier. The default on FreeBSD and
    /// macOS.
    Kqueue,
    /// POSIX `poll(2)`: the portable fallback, O(registered sources) per wait, level-triggered
    /// only (an edge-triggered interest is reported level). Nanosecond timeouts through
    /// `ppoll` on Linux and FreeBSD, whole milliseconds (rounded up) elsewhere.
    Poll,
    /// The scripted [`rouse_core::mock::Poller`] of a [`MockBase`](crate::testing::MockBase):
    /// no OS mechanism, never [`available`](PollerKind::available) to a real base (forcing it
    /// on one is `Unsupported`).
    Mock,
}

impl PollerKind {
    /// The mechanism's name: `"epoll"`, `"kqueue"`, `"poll"` or `"mock"`.
    pub const fn name(self) -> &'static str {
        match self {
            PollerKind::Epoll => "epoll",
            PollerKind::Kqueue => "kqueue",
            PollerKind::Poll => "poll",
            PollerKind::Mock => "mock",
        }
    }

    /// The mechanism named `name` (as [`name`](PollerKind::name) spells it), if any.
    pub fn from_name(name: &str) -> Option<PollerKind> {
        match name {
            "epoll" => Some(PollerKind::Epoll),
            "kqueue" => Some(PollerKind::Kqueue),
            "poll" => Some(PollerKind::Poll),
            "mock" => Some(PollerKind::Mock),
            _ => None,
        }
    }

    /// The mechanisms this OS offers, the default first.
    pub const fn available() -> &'static [PollerKind] {
        #[cfg(rouse_epoll)]
        const KINDS: &[PollerKind] = &[PollerKind::Epoll, PollerKind::Poll];
        #[cfg(rouse_kqueue)]
        const KINDS: &[PollerKind] = &[PollerKind::Kqueue, PollerKind::Poll];
        #[cfg(not(any(rouse_epoll, rouse_kqueue)))]
        const KINDS: &[PollerKind] = &[PollerKind::Poll];
        KINDS
    }

    /// Whether this OS offers the mechanism.
    pub fn is_available(self) -> bool {
        PollerKind::available().contains(&self)
    }
}

impl fmt::Display for PollerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the pollers compiled for this OS, chosen at run time, and the fds a forked child
/// must take over if this poller is in the hands of a thread that did not survive the fork.
#[derive(Debug)]
pub(crate) struct AnyPoller {
    backend: Backend,
    inherited: Arc<InheritedFds>,
}

#[derive(Debug)]
enum Backend {
    #[cfg(rouse_epoll)]
    Epoll(EpollPoller),
    #[cfg(rouse_kqueue)]
    Kqueue(KqueuePoller),
    Poll(PollPoller),
}

/// The fd numbers of a poller that a forked child inherits, kept in atomics outside the poller
/// (its owner publishes them whenever they change) so that a child can close or adopt them
/// without touching the poller itself: if the poller was in the hands of a parent thread at
/// `fork()` (a loop blocked in `wait`), that thread does not exist in the child and the poller
/// may be in any state.
#[derive(Debug)]
pub(crate) struct InheritedFds {
    /// The kernel poller's fd if the child inherits it (epoll; a kqueue is not inherited), or -1.
    kernel: AtomicI32,
    /// The signal self-pipe's read and write ends, or -1.
    sig_read: AtomicI32,
    sig_write: AtomicI32,
}

impl InheritedFds {
    fn new() -> InheritedFds {
        InheritedFds {
            kernel: AtomicI32::new(-1),
            sig_read: AtomicI32::new(-1),
            sig_write: AtomicI32::new(-1),
        }
    }
}

// A base and its poller may be made on one thread and run on another.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<AnyPoller>();
};

/// Runs `$e` on the backend inside `$any`, bound to `$p`.
macro_rules! dispatch {
    ($any:expr, $p:ident => $e:expr) => {
        match $any {
            #[cfg(rouse_epoll)]
            Backend::Epoll($p) => $e,
            #[cfg(rouse_kqueue)]
            Backend::Kqueue($p) => $e,
            Backend::Poll($p) => $e,
        }
    };
}

impl AnyPoller {
    /// A poller of kind `forced`, or of this OS's default kind (the first of
    /// [`PollerKind::available`]).
    ///
    /// # Errors
    ///
    /// `Unsupported` if `forced` is not available on this OS; the OS error of creating a
    /// forced poller. An unforced default that fails with `EMFILE`, `ENFILE`, `ENOMEM` or
    /// `ENOSYS` falls back to `poll`, which needs no fd ([`kind`](AnyPoller::kind) tells).
    pub(crate) fn new(forced: Option<PollerKind>) -> io::Result<AnyPoller> {
        let backend = match forced {
            Some(kind) => Backend::of_kind(kind),
            None => match Backend::of_kind(PollerKind::available()[0]) {
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOSYS)
                    ) =>
                {
                    Backend::of_kind(PollerKind::Poll)
                }
                res => res,
            },
        }?;
        let p = AnyPoller {
            backend,
            inherited: Arc::new(InheritedFds::new()),
        };
        p.publish();
        Ok(p)
    }

    /// The fd numbers a forked child would inherit from this poller, kept up to date by it.
    pub(crate) fn inherited(&self) -> Arc<InheritedFds> {
        self.inherited.clone()
    }

    /// Stores the fds a child would inherit in [`InheritedFds`].
    fn publish(&self) {
        let (kernel, pipe) = dispatch!(&self.backend, p => p.inherited_fds());
        let (r, w) = pipe.map_or((-1, -1), |p| (p.read_fd(), p.write_fd()));
        self.inherited.kernel.store(kernel, SeqCst);
        self.inherited.sig_read.store(r, SeqCst);
        self.inherited.sig_write.store(w, SeqCst);
    }

    /// In a forked child, for a poller that a parent thread had in its hands at `fork()` and
    /// that is therefore never touched again: a new poller of `kind` that takes over what the
    /// old one's [`InheritedFds`] name. The inherited epoll fd is closed; the signal pipe is
    /// replaced by a new one that takes over its registry slots in place (so every signal
    /// subscription, refcount and disposition stays, with no window for the default action),
    /// and the inherited pipe is closed. Registrations and the notifier are forgotten, as by
    /// [`reinit_after_fork`](AnyPoller::reinit_after_fork). The old poller's memory is not
    /// freed (it lives in the parent thread's hands).
    ///
    /// Takes no lock: call it while the child is single-threaded.
    ///
    /// # Errors
    ///
    /// The OS error of creating the new objects. What was not taken over yet stays named in
    /// `inherited`, so a later call can try again.
    pub(crate) fn take_over(
        kind: PollerKind,
        inherited: Arc<InheritedFds>,
    ) -> io::Result<AnyPoller> {
        let mut p = AnyPoller {
            backend: Backend::of_kind(kind)?,
            inherited,
        };
        let kernel = p.inherited.kernel.swap(-1, SeqCst);
        fd::close(kernel);
        let (r, w) = (
            p.inherited.sig_read.load(SeqCst),
            p.inherited.sig_write.load(SeqCst),
        );
        if r >= 0 && w >= 0 {
            let pipe = SignalPipe::adopt(r, w)?;
            // The inherited pipe is closed and its slots are the new pipe's now.
            p.inherited.sig_read.store(-1, SeqCst);
            p.inherited.sig_write.store(-1, SeqCst);
            dispatch!(&mut p.backend, b => b.adopt_signals(pipe))?;
        }
        p.publish();
        Ok(p)
    }

    /// The fds this poller owns (`-1`: none); see the backends' `own_fds`.
    pub(crate) fn own_fds(&self) -> [RawFd; 3] {
        dispatch!(&self.backend, p => p.own_fds())
    }

    /// Which mechanism this is.
    pub(crate) fn kind(&self) -> PollerKind {
        match self.backend {
            #[cfg(rouse_epoll)]
            Backend::Epoll(_) => PollerKind::Epoll,
            #[cfg(rouse_kqueue)]
            Backend::Kqueue(_) => PollerKind::Kqueue,
            Backend::Poll(_) => PollerKind::Poll,
        }
    }

    /// The kqueue fd, on which an `EVFILT_USER` notifier registers its event.
    pub(crate) fn kqueue_fd(&self) -> Option<RawFd> {
        match &self.backend {
            #[cfg(rouse_kqueue)]
            Backend::Kqueue(k) => Some(k.kqueue_fd()),
            _ => None,
        }
    }

    /// Watches the notifier; returns whether it was registered edge-triggered, in which case
    /// the notifier need not drain. Once per poller, and again after
    /// [`reinit_after_fork`](AnyPoller::reinit_after_fork): a notifier watched before is
    /// forgotten but not deregistered (its fd number may name another source by now), so it
    /// must be closed.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a [`WakeSource::KqueueUser`] on a poller other than kqueue; the OS
    /// error of the registration.
    pub(crate) fn watch_wake(&mut self, src: WakeSource) -> io::Result<bool> {
        dispatch!(&mut self.backend, p => p.watch_wake(src))
    }

    /// Interest-change syscalls issued so far (`epoll_ctl` calls, `kevent` change calls; always
    /// 0 for poll(2), whose set lives in user space), including those registering the notifier
    /// and the signal pipe and the second call of a heal.
    pub(crate) fn syscalls(&self) -> u64 {
        dispatch!(&self.backend, p => p.syscalls())
    }

    /// In the child after `fork()`: a new kernel object (an epoll instance is shared with the
    /// parent; a kqueue is not inherited at all), with the signal pipe re-made and
    /// re-registered. Every I/O registration and the notifier are forgotten: the base
    /// re-applies the former (`Base::reinit`), the caller re-watches the re-made notifier.
    ///
    /// # Errors
    ///
    /// The OS error of creating the new objects; the poller is then unusable.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        let res = dispatch!(&mut self.backend, p => p.reinit_after_fork());
        self.publish();
        res
    }
}

impl Backend {
    fn of_kind(kind: PollerKind) -> io::Result<Backend> {
        match kind {
            #[cfg(rouse_epoll)]
            PollerKind::Epoll => EpollPoller::new().map(Backend::Epoll),
            #[cfg(rouse_kqueue)]
            PollerKind::Kqueue => KqueuePoller::new().map(Backend::Kqueue),
            PollerKind::Poll => Ok(Backend::Poll(PollPoller::new())),
            PollerKind::Mock => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the mock poller runs only a MockBase (Builder::build_mock)",
            )),
            #[allow(unreachable_patterns)] // every kind may be compiled on some OS
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this poller is not available on this OS",
            )),
        }
    }
}

impl Poller for AnyPoller {
    #[inline]
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        dispatch!(&mut self.backend, p => p.update(source, old, new))
    }

    #[inline]
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        dispatch!(&mut self.backend, p => p.reset(source, new))
    }

    #[inline]
    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let res = dispatch!(&mut self.backend, p => p.watch_signal(signal, enable));
        // The first watch makes the signal pipe: a child must be able to find it.
        self.publish();
        res
    }

    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        dispatch!(&mut self.backend, p => p.wait(timeout))
    }

    #[inline]
    fn ready(&mut self, f: impl FnMut(Readiness)) {
        dispatch!(&mut self.backend, p => p.ready(f))
    }
}

// ---------------------------------------------------------------------------- shared helpers

/// The seam error the core carries for `e`: the OS errno, or `Unsupported` / `EINVAL` for an
/// error that has none.
fn errno(e: io::Error) -> SeamError {
    let e = SeamError::from(e);
    match e.kind() {
        rouse_core::SeamErrorKind::Other(_) => SeamError::os(libc::EINVAL),
        _ => e,
    }
}

/// `Poller::watch_signal` of every backend: subscribes `pipe` to `signal` (making the pipe,
/// and registering its read end with `register`, on first use) or unsubscribes it.
fn watch_signal(
    pipe: &mut Option<SignalPipe>,
    signal: u32,
    enable: bool,
    register: impl FnOnce(RawFd) -> io::Result<()>,
) -> Result<(), SeamError> {
    if !enable {
        return match pipe {
            Some(p) => p.unsubscribe(signal).map_err(errno),
            None => Ok(()),
        };
    }
    let p = match pipe {
        Some(p) => p,
        None => {
            let p = SignalPipe::new().map_err(errno)?;
            register(p.read_fd()).map_err(errno)?;
            pipe.insert(p)
        }
    };
    p.subscribe(signal).map_err(errno)
}

/// The fd a source id names (`EBADF` if it cannot be one).
#[inline]
fn source_fd(source: Source) -> Result<RawFd, SeamError> {
    RawFd::try_from(source.id()).map_err(|_| SeamError::os(libc::EBADF))
}

/// The longest wait any backend is asked for: about 68 years, which every kernel accepts as
/// a finite timeout (FreeBSD's kqueue takes more than `INT32_MAX` seconds as "forever"). A
/// longer wait returns after this, as an interrupted wait would.
const MAX_TIMEOUT_SECS: u64 = i32::MAX as u64;

/// `d`, clamped to [`MAX_TIMEOUT_SECS`].
#[inline]
fn clamp_timeout(d: Duration) -> Duration {
    if d.as_secs() > MAX_TIMEOUT_SECS {
        Duration::from_secs(MAX_TIMEOUT_SECS)
    } else {
        d
    }
}

/// `d` (clamped) as a libc `timespec`, to the nanosecond.
#[cfg(any(target_os = "linux", target_os = "freebsd", target_vendor = "apple"))]
#[inline]
fn timespec(d: Duration) -> libc::timespec {
    let d = clamp_timeout(d);
    libc::timespec {
        // Lossless: at most `i32::MAX` seconds and below 10^9 ns.
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// `d` in whole milliseconds, rounded **up** (a wait never ends early), saturated to what a
/// `c_int` timeout can say (about 24.8 days; a longer wait returns as an interrupted one).
/// `None` is `-1`, forever.
#[inline]
fn timeout_ms(d: Option<Duration>) -> libc::c_int {
    match d {
        None => -1,
        Some(d) => {
            let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
            libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX)
        }
    }
}

/// The first capacity of a wait's result buffer.
const EVENTS_MIN: usize = 64;
/// The largest capacity it grows to.
const EVENTS_MAX: usize = 4096;

/// A wait's results: a buffer the kernel fills, doubled (up to [`EVENTS_MAX`]) after a wait
/// that filled it, so a busy poller reaches its working size after a few waits and never
/// allocates again.
struct EventBuf<T> {
    v: Vec<T>,
}

impl<T: Copy> EventBuf<T> {
    fn new() -> EventBuf<T> {
        EventBuf {
            v: Vec::with_capacity(EVENTS_MIN),
        }
    }

    /// Forgets the last results and returns the buffer to fill and its capacity.
    #[inline]
    fn prepare(&mut self) -> (*mut T, libc::c_int) {
        let cap = self.v.capacity();
        let grow = cap > 0 && self.v.len() == cap && cap < EVENTS_MAX;
        self.v.clear();
        if grow {
            self.v.reserve_exact((cap * 2).min(EVENTS_MAX));
        }
        let cap = self.v.capacity().min(libc::c_int::MAX as usize);
        (self.v.as_mut_ptr(), cap as libc::c_int)
    }

    /// Records that the kernel filled the first `n` entries.
    ///
    /// # Safety
    ///
    /// The kernel must have written `n` entries, `n` at most the capacity `prepare` returned,
    /// and nothing may have touched the buffer since.
    #[inline]
    unsafe fn filled(&mut self, n: usize) {
        debug_assert!(n <= self.v.capacity());
        // SAFETY: the caller guarantees the first `n` entries were initialized (by the kernel)
        // and that `n` is within the capacity; `T: Copy` needs no drop.
        unsafe { self.v.set_len(n) }
    }

    #[inline]
    fn as_slice(&self) -> &[T] {
        &self.v
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.v.capacity()
    }
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;
