//! Notifiers: how another thread wakes a loop that sleeps in its poller.

#[cfg(rouse_epoll)]
mod eventfd;
#[cfg(rouse_kqueue)]
pub(crate) mod kqueue_user;
mod pipe;
mod socketpair;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

#[cfg(rouse_epoll)]
use eventfd::EventFdNotifier;
#[cfg(rouse_kqueue)]
use kqueue_user::KqueueUserNotifier;
use pipe::PipeNotifier;
use socketpair::SocketPairNotifier;

use super::WakeSource;

/// The mechanism a loop's notifier uses, in libevent's order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifierKind {
    /// A kqueue `EVFILT_USER` event on the poller's own kqueue (FreeBSD, macOS and Apple's
    /// other systems): no fd, nothing to drain. Only with a kqueue poller.
    KqueueUser,
    /// A Linux `eventfd`: one fd; no drain when registered edge-triggered.
    EventFd,
    /// A non-blocking pipe: two fds, one byte per notification, always drained.
    Pipe,
    /// An `AF_UNIX` stream socketpair: like [`Pipe`](Self::Pipe), for systems whose pipes
    /// misbehave with the poller, and the last resort.
    SocketPair,
}

/// The order tried when no kind is forced.
const DEFAULT_ORDER: [NotifierKind; 4] = [
    NotifierKind::KqueueUser,
    NotifierKind::EventFd,
    NotifierKind::Pipe,
    NotifierKind::SocketPair,
];

impl NotifierKind {
    /// The configuration name: `"kqueue-user"`, `"eventfd"`, `"pipe"` or `"socketpair"`.
    pub const fn name(self) -> &'static str {
        match self {
            NotifierKind::KqueueUser => "kqueue-user",
            NotifierKind::EventFd => "eventfd",
            NotifierKind::Pipe => "pipe",
            NotifierKind::SocketPair => "socketpair",
        }
    }

    /// The kind whose [`name`](Self::name) is `name`.
    pub fn from_name(name: &str) -> Option<NotifierKind> {
        DEFAULT_ORDER.into_iter().find(|k| k.name() == name)
    }

    /// Whether this OS has the mechanism (creation may still fail at run time).
    pub fn available(self) -> bool {
        match self {
            NotifierKind::KqueueUser => cfg!(rouse_kqueue),
            NotifierKind::EventFd => cfg!(rouse_epoll),
            NotifierKind::Pipe | NotifierKind::SocketPair => true,
        }
    }
}

impl fmt::Display for NotifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug)]
enum Inner {
    #[cfg(rouse_kqueue)]
    KqueueUser(KqueueUserNotifier),
    #[cfg(rouse_epoll)]
    EventFd(EventFdNotifier),
    Pipe(PipeNotifier),
    SocketPair(SocketPairNotifier),
}

/// Calls the same method on whichever notifier `$inner` holds.
macro_rules! each {
    ($inner:expr, $n:ident => $e:expr) => {
        match $inner {
            #[cfg(rouse_kqueue)]
            Inner::KqueueUser($n) => $e,
            #[cfg(rouse_epoll)]
            Inner::EventFd($n) => $e,
            Inner::Pipe($n) => $e,
            Inner::SocketPair($n) => $e,
        }
    };
}

/// A loop's notifier: one of the four mechanisms, plus whether [`consume`] must drain it.
///
/// Dropping it closes the fds it owns (never the poller's kqueue).
///
/// [`consume`]: rouse_core::Notify::consume
#[derive(Debug)]
pub(crate) struct Notifier {
    inner: Inner,
    /// `consume` drains: the wake source is registered level-triggered, or needs a drain
    /// whatever the registration (a pipe left full produces no further edge).
    drain: AtomicBool,
}

/// Whether a creation error means "try the next kind".
fn falls_back(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOSYS)
    )
}

impl Notifier {
    /// A new notifier.
    ///
    /// `forced`: `Some(kind)` creates exactly that kind; `None` tries libevent's order:
    /// `KqueueUser` (only if `kq`, the poller's kqueue, is `Some`), `EventFd` (Linux), `Pipe`,
    /// `SocketPair`, moving on when creation fails with `EMFILE`, `ENFILE` or `ENOSYS`.
    ///
    /// # Errors
    ///
    /// A forced kind that is unavailable (`Unsupported`), `KqueueUser` without `kq`
    /// (`EINVAL`), a creation error that is not a reason to fall back, or the last error when
    /// every kind failed.
    pub(crate) fn new(forced: Option<NotifierKind>, kq: Option<RawFd>) -> io::Result<Notifier> {
        match forced {
            Some(kind) => Notifier::create(kind, kq),
            None => Notifier::first_of(&DEFAULT_ORDER, kq, Notifier::create),
        }
    }

    /// The first kind of `order` that `create` makes, skipping unavailable kinds (and
    /// `KqueueUser` without `kq`) and creation failures that [`falls_back`].
    fn first_of(
        order: &[NotifierKind],
        kq: Option<RawFd>,
        mut create: impl FnMut(NotifierKind, Option<RawFd>) -> io::Result<Notifier>,
    ) -> io::Result<Notifier> {
        let mut last = io::Error::from_raw_os_error(libc::ENOSYS);
        for &kind in order {
            if !kind.available() || (kind == NotifierKind::KqueueUser && kq.is_none()) {
                continue;
            }
            match create(kind, kq) {
                Ok(n) => return Ok(n),
                Err(e) if falls_back(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Exactly `kind`.
    fn create(kind: NotifierKind, kq: Option<RawFd>) -> io::Result<Notifier> {
        let _ = kq; // only KqueueUser needs it
        let inner = match kind {
            #[cfg(rouse_kqueue)]
            NotifierKind::KqueueUser => Inner::KqueueUser(KqueueUserNotifier::new(need_kq(kq)?)?),
            #[cfg(rouse_epoll)]
            NotifierKind::EventFd => Inner::EventFd(EventFdNotifier::new()?),
            NotifierKind::Pipe => Inner::Pipe(PipeNotifier::new()?),
            NotifierKind::SocketPair => Inner::SocketPair(SocketPairNotifier::new()?),
            // The kinds this OS lacks.
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the {kind} notifier is not available on this OS"),
                ))
            }
        };
        let n = Notifier {
            inner,
            drain: AtomicBool::new(false),
        };
        n.set_edge(false);
        Ok(n)
    }

    /// The mechanism in use.
    pub(crate) fn kind(&self) -> NotifierKind {
        match self.inner {
            #[cfg(rouse_kqueue)]
            Inner::KqueueUser(_) => NotifierKind::KqueueUser,
            #[cfg(rouse_epoll)]
            Inner::EventFd(_) => NotifierKind::EventFd,
            Inner::Pipe(_) => NotifierKind::Pipe,
            Inner::SocketPair(_) => NotifierKind::SocketPair,
        }
    }

    /// Whether `fd` is one of this notifier's fds (the base refuses them as user sources).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        match &self.inner {
            #[cfg(rouse_kqueue)]
            Inner::KqueueUser(_) => false, // no fd: an event on the poller's kqueue
            #[cfg(rouse_epoll)]
            Inner::EventFd(n) => n.fd() == fd,
            Inner::Pipe(n) => n.read_fd() == fd || n.write_fd() == fd,
            Inner::SocketPair(n) => n.read_fd() == fd || n.write_fd() == fd,
        }
    }

    /// How the poller must watch this notifier.
    pub(crate) fn wake_source(&self) -> WakeSource {
        each!(&self.inner, n => n.wake_source())
    }

    /// The poller tells whether it registered the wake source edge-triggered (epoll
    /// `EPOLLET`, kqueue `EV_CLEAR`). [`consume`](rouse_core::Notify::consume) then skips the drain
    /// if the mechanism allows it; a level-triggered registration (and poll(2), which has no
    /// edges) is always drained, or the poller would report the wake forever.
    pub(crate) fn set_edge(&self, edge: bool) {
        let drain = match self.wake_source() {
            WakeSource::Fd { edge_ok, .. } => !(edge && edge_ok),
            WakeSource::KqueueUser { .. } => false,
        };
        self.drain.store(drain, Relaxed);
    }

    /// Writes the notification: one syscall, `EINTR` retried, "already signalled" is success.
    pub(crate) fn notify(&self) -> io::Result<()> {
        each!(&self.inner, n => n.notify())
    }

    /// Consumes pending notifications whatever the registration.
    fn drain_now(&self) {
        each!(&self.inner, n => n.drain())
    }

    /// Replaces the OS objects in a forked child: new fds (the old ones, shared with the
    /// parent, are closed), or the user event registered on the poller's new kqueue `kq`.
    ///
    /// # Errors
    ///
    /// Creation errors; `EINVAL` for `KqueueUser` without `kq`.
    pub(crate) fn reinit(&self, kq: Option<RawFd>) -> io::Result<()> {
        let _ = kq; // only KqueueUser needs it
        match &self.inner {
            #[cfg(rouse_kqueue)]
            Inner::KqueueUser(n) => n.reinit(need_kq(kq)?),
            #[cfg(rouse_epoll)]
            Inner::EventFd(n) => n.reinit(),
            Inner::Pipe(n) => n.reinit(),
            Inner::SocketPair(n) => n.reinit(),
        }
    }
}

/// `kq`, or `EINVAL`: a kqueue user event needs the poller's kqueue.
#[cfg(rouse_kqueue)]
fn need_kq(kq: Option<RawFd>) -> io::Result<RawFd> {
    kq.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

impl rouse_core::Notify for Notifier {
    fn notify(&self) -> Result<(), rouse_core::SeamError> {
        Notifier::notify(self)
            .map_err(|e| rouse_core::SeamError::os(e.raw_os_error().unwrap_or(libc::EIO)))
    }

    fn consume(&self) {
        if self.drain.load(Relaxed) {
            self.drain_now();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
