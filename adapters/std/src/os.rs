//! The OS half of a base: its notifier and its poller, kept in the core's notifier slot; only
//! the loop owner ([`Base`](crate::Base) and its flavor) reaches the poller through it.

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, TryLockError};

use rouse_core::Notify;

use crate::sys::notify::{Notifier, NotifierKind};
use crate::sys::poll::{AnyPoller, PollerKind};

/// The notifier and poller of a thread-safe base.
///
/// The notifier is used by any thread (through the core's notify protocol); the poller only by
/// the thread that runs the loop, which holds its lock for the whole run.
#[derive(Debug)]
pub struct Os {
    notifier: Notifier,
    poller: Mutex<AnyPoller>,
    poller_kind: PollerKind,
    own: OwnFds,
}

/// The poller's own fds (kernel object, signal pipe), readable without the poller, which the
/// running loop holds: the base refuses them as user sources.
#[derive(Debug)]
pub(crate) struct OwnFds([AtomicI32; 3]);

impl OwnFds {
    fn of(p: &AnyPoller) -> OwnFds {
        let own = OwnFds([AtomicI32::new(-1), AtomicI32::new(-1), AtomicI32::new(-1)]);
        own.refresh(p);
        own
    }

    /// Reads them again (after the poller made its signal pipe, or was re-made).
    pub(crate) fn refresh(&self, p: &AnyPoller) {
        for (a, fd) in self.0.iter().zip(p.own_fds()) {
            a.store(fd, Relaxed);
        }
    }

    fn contains(&self, fd: RawFd) -> bool {
        fd >= 0 && self.0.iter().any(|a| a.load(Relaxed) == fd)
    }
}

impl Os {
    pub(crate) fn new(
        poller: Option<PollerKind>,
        notifier: Option<NotifierKind>,
    ) -> io::Result<Os> {
        let mut p = AnyPoller::new(poller)?;
        let n = Notifier::new(notifier, p.kqueue_fd())?;
        let edge = p.watch_wake(n.wake_source())?;
        n.set_edge(edge);
        Ok(Os {
            notifier: n,
            poller_kind: p.kind(),
            own: OwnFds::of(&p),
            poller: Mutex::new(p),
        })
    }

    /// The poller chosen for this base.
    pub fn poller_kind(&self) -> PollerKind {
        self.poller_kind
    }

    /// The notifier chosen for this base.
    pub fn notifier_kind(&self) -> NotifierKind {
        self.notifier.kind()
    }

    /// Interest-change syscalls the poller issued so far (`epoll_ctl`, `kevent` changes; 0 for
    /// poll(2)), or `None` while the loop runs. Proves that a delete+add within one iteration
    /// reaches no kernel.
    pub fn interest_syscalls(&self) -> Option<u64> {
        self.try_poller().map(|p| p.syscalls())
    }

    /// The poller, unless the loop is running (it holds the poller for the whole run).
    pub(crate) fn try_poller(&self) -> Option<MutexGuard<'_, AnyPoller>> {
        match self.poller.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// In a forked child: a new poller of the same kind and a new notifier, wired together.
    pub(crate) fn reinit_after_fork(&self) -> io::Result<()> {
        let mut p = self.try_poller().ok_or_else(running)?;
        p.reinit_after_fork()?;
        self.notifier.reinit(p.kqueue_fd())?;
        let edge = p.watch_wake(self.notifier.wake_source())?;
        self.notifier.set_edge(edge);
        self.own.refresh(&p);
        Ok(())
    }

    /// Whether `fd` belongs to the base itself (notifier, poller, signal pipe).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        self.notifier.owns_fd(fd) || self.own.contains(fd)
    }

    pub(crate) fn own_fds(&self) -> &OwnFds {
        &self.own
    }
}

pub(crate) fn running() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "the loop of this base is running (on this or another thread)",
    )
}

impl Notify for Os {
    #[inline]
    fn notify(&self) -> Result<(), i32> {
        Notify::notify(&self.notifier)
    }

    #[inline]
    fn consume(&self) {
        Notify::consume(&self.notifier)
    }
}

/// The poller of a single-threaded base. Such a base needs no notifier: no other thread can
/// reach it, and its loop never notifies itself.
#[derive(Debug)]
pub struct LocalOs {
    poller: RefCell<AnyPoller>,
    poller_kind: PollerKind,
    own: OwnFds,
}

impl LocalOs {
    pub(crate) fn new(poller: Option<PollerKind>) -> io::Result<LocalOs> {
        let p = AnyPoller::new(poller)?;
        Ok(LocalOs {
            poller_kind: p.kind(),
            own: OwnFds::of(&p),
            poller: RefCell::new(p),
        })
    }

    /// The poller chosen for this base.
    pub fn poller_kind(&self) -> PollerKind {
        self.poller_kind
    }

    /// As [`Os::interest_syscalls`].
    pub fn interest_syscalls(&self) -> Option<u64> {
        self.try_poller().map(|p| p.syscalls())
    }

    pub(crate) fn try_poller(&self) -> Option<std::cell::RefMut<'_, AnyPoller>> {
        self.poller.try_borrow_mut().ok()
    }

    pub(crate) fn reinit_after_fork(&self) -> io::Result<()> {
        let mut p = self.try_poller().ok_or_else(running)?;
        p.reinit_after_fork()?;
        self.own.refresh(&p);
        Ok(())
    }

    /// Whether `fd` belongs to the base itself (poller, signal pipe).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        self.own.contains(fd)
    }

    pub(crate) fn own_fds(&self) -> &OwnFds {
        &self.own
    }
}

impl Notify for LocalOs {
    /// Unreachable in practice: nothing but the loop thread can change a local base, and the
    /// loop never notifies itself.
    fn notify(&self) -> Result<(), i32> {
        Ok(())
    }
}
