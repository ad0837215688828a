//! The OS half of a base: its notifier and its poller, kept in the core's notifier slot; only
//! the loop owner ([`Base`](crate::Base) and its flavor) reaches the poller through it.

use std::cell::RefCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use rouse_core::{Notify, SeamError};

use crate::sys::notify::{Notifier, NotifierKind};
use crate::sys::poll::{AnyPoller, InheritedFds, PollerKind};

/// The notifier and poller of a thread-safe base.
///
/// The notifier is used by any thread (through the core's notify protocol); the poller only by
/// the thread that runs the loop (or applies changes while it does not run). That thread
/// *takes* the poller out of its slot for the whole run and puts it back at the end: the
/// slot's mutex is held only for the take and the put-back (one uncontended lock each per
/// run), never across the poll. The slot records the process whose thread took it, so a child
/// forked while the loop ran in another thread (which does not exist in the child) can tell
/// that the poller is gone for good, and take over with a new one
/// ([`Base::reinit_after_fork`](crate::Base::reinit_after_fork)).
#[derive(Debug)]
pub struct Os {
    notifier: Notifier,
    slot: Mutex<Slot>,
    /// The fds the poller (wherever it is) has that a forked child inherits.
    inherited: Arc<InheritedFds>,
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

/// Where the poller is.
#[derive(Debug)]
struct Slot {
    /// `None` while a thread has it out (running the loop).
    poller: Option<AnyPoller>,
    /// The pid of the process whose thread has it out (0 while it is in).
    owner: u32,
    /// And that thread ([`thread_mark`]).
    owner_thread: usize,
}

/// The pid of this process, cached (no syscall on the loop's path): refreshed by
/// [`Os::reinit_after_fork`], which a forked child calls before anything else.
static PID: AtomicU32 = AtomicU32::new(0);

fn pid() -> u32 {
    match PID.load(Relaxed) {
        0 => refresh_pid(),
        p => p,
    }
}

thread_local! {
    static MARK: u8 = const { 0 };
}

/// The address of a thread-local: unique among the running threads of a process, free to
/// read, and the same for the thread that calls `fork()` and its continuation in the child.
fn thread_mark() -> usize {
    MARK.with(|m| std::ptr::from_ref(m) as usize)
}

fn refresh_pid() -> u32 {
    let p = std::process::id();
    PID.store(p, Relaxed);
    p
}

/// The poller, taken out of its [`Os`] by one thread; put back when dropped (also when a
/// callback of the run panics).
#[derive(Debug)]
pub(crate) struct PollerGuard<'a> {
    os: &'a Os,
    poller: Option<AnyPoller>,
}

impl Deref for PollerGuard<'_> {
    type Target = AnyPoller;
    fn deref(&self) -> &AnyPoller {
        self.poller
            .as_ref()
            .expect("the poller is in the guard until it drops")
    }
}

impl DerefMut for PollerGuard<'_> {
    fn deref_mut(&mut self) -> &mut AnyPoller {
        self.poller
            .as_mut()
            .expect("the poller is in the guard until it drops")
    }
}

impl Drop for PollerGuard<'_> {
    fn drop(&mut self) {
        let mut slot = self.os.lock();
        slot.poller = self.poller.take();
        slot.owner = 0;
        slot.owner_thread = 0;
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
            inherited: p.inherited(),
            slot: Mutex::new(Slot {
                poller: Some(p),
                owner: 0,
                owner_thread: 0,
            }),
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

    fn lock(&self) -> MutexGuard<'_, Slot> {
        // The slot is consistent between statements; a panic elsewhere cannot break it.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the poller out, unless a thread has it (the loop is running).
    pub(crate) fn try_poller(&self) -> Option<PollerGuard<'_>> {
        let mut slot = self.lock();
        let poller = slot.poller.take()?;
        slot.owner = pid();
        slot.owner_thread = thread_mark();
        Some(PollerGuard {
            os: self,
            poller: Some(poller),
        })
    }

    /// In a forked child: a new poller of the same kind and a new notifier, wired together.
    ///
    /// If the poller was in its slot at `fork()`, it is re-made in place. If a thread of
    /// another process (the parent, whose loop thread ran) had it out, that thread does not
    /// exist here: its poller is never touched again (its memory is left as it is), the
    /// inherited fds it published are closed or taken over, and a new poller takes its place.
    /// If the thread that had it out is this one (the child of a fork made inside a callback
    /// of the run), the run is still in progress here: `ResourceBusy`, as in the parent (break
    /// the loop, let `run` return, then re-init).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if a thread of this process has the poller (the loop runs), or if the
    /// slot's lock was held at `fork()` (by a thread that took or put back the poller at that
    /// very moment); the OS error of creating the new poller or notifier.
    pub(crate) fn reinit_after_fork(&self) -> io::Result<()> {
        let me = refresh_pid();
        let mut slot = match self.slot.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(held_at_fork()),
        };
        let slot = &mut *slot;
        let p = match &mut slot.poller {
            Some(p) => {
                p.reinit_after_fork()?;
                p
            }
            None if slot.owner == me || slot.owner_thread == thread_mark() => return Err(running()),
            None => {
                let p = AnyPoller::take_over(self.poller_kind, self.inherited.clone())?;
                slot.owner = 0;
                slot.owner_thread = 0;
                slot.poller.insert(p)
            }
        };
        self.notifier.reinit(p.kqueue_fd())?;
        let edge = p.watch_wake(self.notifier.wake_source())?;
        self.notifier.set_edge(edge);
        self.own.refresh(p);
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

fn held_at_fork() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "the poller of this base was being taken or put back by another thread at fork()",
    )
}

impl Notify for Os {
    #[inline]
    fn notify(&self) -> Result<(), SeamError> {
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
    fn notify(&self) -> Result<(), SeamError> {
        Ok(())
    }
}
