//! The OS half of a base: its notifier (the core's notifier slot) and its poller (the core's
//! poller slot), which share the record of the base's own fds.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rouse_core::{Interest, Notify, Poller, Readiness, SeamError, Source};

use crate::sys::notify::{Notifier, NotifierKind};
use crate::sys::poll::{AnyPoller, InheritedFds, PollerKind};

/// The notifier of a thread-safe base, and what it knows of the poller.
///
/// The notifier is used by any thread (through the core's notify protocol); the poller, which
/// the core keeps, only by the thread that runs the loop (a run takes it out of the core for
/// its whole length). The run records the process and thread that took it, so a child forked
/// while the loop ran in another thread (which does not exist in the child) can tell that the
/// poller is gone for good, and take over with a new one
/// ([`Base::reinit_after_fork`](crate::Base::reinit_after_fork)).
#[derive(Debug)]
pub struct Os {
    notifier: Notifier,
    /// The fds the poller (wherever it is) has that a forked child inherits.
    inherited: Arc<InheritedFds>,
    poller_kind: PollerKind,
    own: Arc<OwnFds>,
    /// The pid of the process whose thread last started a run, and that thread
    /// ([`thread_mark`]).
    run_pid: AtomicU32,
    run_thread: AtomicUsize,
}

/// The poller of a `rouse-std` base (the core's `Config::Poller`): the OS poller, refreshing
/// the base's record of its own fds when it makes its signal pipe (on the first signal
/// watched).
#[derive(Debug)]
pub struct OsPoller {
    pub(crate) inner: AnyPoller,
    own: Arc<OwnFds>,
}

impl OsPoller {
    /// Interest-change syscalls so far.
    pub(crate) fn syscalls(&self) -> u64 {
        self.inner.syscalls()
    }

    /// After fork: re-makes the poller in place.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        self.inner.reinit_after_fork()?;
        self.own.refresh(&self.inner);
        Ok(())
    }
}

impl Poller for OsPoller {
    #[inline]
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        self.inner.update(source, old, new)
    }

    #[inline]
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        self.inner.reset(source, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let r = self.inner.watch_signal(signal, enable);
        self.own.refresh(&self.inner);
        r
    }

    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        self.inner.wait(timeout)
    }

    #[inline]
    fn ready(&mut self, f: impl FnMut(Readiness)) {
        self.inner.ready(f)
    }
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

impl Os {
    /// A notifier and a poller, wired together.
    pub(crate) fn new(
        poller: Option<PollerKind>,
        notifier: Option<NotifierKind>,
    ) -> io::Result<(Os, OsPoller)> {
        let mut p = AnyPoller::new(poller)?;
        let n = Notifier::new(notifier, p.kqueue_fd())?;
        let edge = p.watch_wake(n.wake_source())?;
        n.set_edge(edge);
        let own = Arc::new(OwnFds::of(&p));
        let os = Os {
            notifier: n,
            poller_kind: p.kind(),
            own: own.clone(),
            inherited: p.inherited(),
            run_pid: AtomicU32::new(0),
            run_thread: AtomicUsize::new(0),
        };
        Ok((os, OsPoller { inner: p, own }))
    }

    /// The poller chosen for this base.
    pub fn poller_kind(&self) -> PollerKind {
        self.poller_kind
    }

    /// The notifier chosen for this base.
    pub fn notifier_kind(&self) -> NotifierKind {
        self.notifier.kind()
    }

    /// Records that this thread of this process starts a run (and takes the poller).
    #[inline]
    pub(crate) fn running_here(&self) {
        self.run_pid.store(pid(), Relaxed);
        self.run_thread.store(thread_mark(), Relaxed);
    }

    /// In a forked child: a new poller of the same kind and a new notifier, wired together.
    ///
    /// If the poller was in the base at `fork()`, it is re-made in place. If a thread of
    /// another process (the parent, whose loop thread ran) had it out, that thread does not
    /// exist here: its poller is never touched again (its memory is left as it is), the
    /// inherited fds it published are closed or taken over, and a new poller takes its place.
    /// If the thread that had it out is this one (the child of a fork made inside a callback
    /// of the run), the run is still in progress here: `ResourceBusy`, as in the parent (break
    /// the loop, let `run` return, then re-init).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if a thread of this process has the poller (the loop runs); the OS error
    /// of creating the new poller or notifier.
    pub(crate) fn reinit_after_fork<F>(&self, core: &rouse_core::Base<F>) -> io::Result<()>
    where
        F: rouse_core::Config<Notifier = Os, Poller = OsPoller>,
    {
        let me = refresh_pid();
        match core.with_poller(OsPoller::reinit_after_fork) {
            Ok(r) => r?,
            Err(_)
                if self.run_pid.load(Relaxed) == me
                    || self.run_thread.load(Relaxed) == thread_mark() =>
            {
                return Err(running())
            }
            Err(_) => {
                let p = AnyPoller::take_over(self.poller_kind, self.inherited.clone())?;
                self.own.refresh(&p);
                // SAFETY: a forked child (the caller saw a new pid), single-threaded as far as
                // this base goes: the run in progress was a thread of the parent, which does
                // not exist here. This forgets that run, so the poller can be replaced.
                unsafe { core.reinit() };
                let p = OsPoller {
                    inner: p,
                    own: self.own.clone(),
                };
                if core.replace_poller(p).is_err() {
                    return Err(running());
                }
            }
        }
        core.with_poller(|p| {
            self.notifier.reinit(p.inner.kqueue_fd())?;
            let edge = p.inner.watch_wake(self.notifier.wake_source())?;
            self.notifier.set_edge(edge);
            self.own.refresh(&p.inner);
            Ok(())
        })
        .map_err(|_| running())?
    }

    /// Whether `fd` belongs to the base itself (notifier, poller, signal pipe).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        self.notifier.owns_fd(fd) || self.own.contains(fd)
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
    fn notify(&self) -> Result<(), SeamError> {
        Notify::notify(&self.notifier)
    }

    #[inline]
    fn consume(&self) {
        Notify::consume(&self.notifier)
    }
}

/// What a single-threaded base knows of its poller. Such a base needs no notifier: no other
/// thread can reach it, and its loop never notifies itself.
#[derive(Debug)]
pub struct LocalOs {
    poller_kind: PollerKind,
    own: Arc<OwnFds>,
}

impl LocalOs {
    pub(crate) fn new(poller: Option<PollerKind>) -> io::Result<(LocalOs, OsPoller)> {
        let p = AnyPoller::new(poller)?;
        let own = Arc::new(OwnFds::of(&p));
        let os = LocalOs {
            poller_kind: p.kind(),
            own: own.clone(),
        };
        Ok((os, OsPoller { inner: p, own }))
    }

    /// The poller chosen for this base.
    pub fn poller_kind(&self) -> PollerKind {
        self.poller_kind
    }

    /// Whether `fd` belongs to the base itself (poller, signal pipe).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        self.own.contains(fd)
    }
}

impl Notify for LocalOs {
    /// Unreachable in practice: nothing but the loop thread can change a local base, and the
    /// loop never notifies itself.
    fn notify(&self) -> Result<(), SeamError> {
        Ok(())
    }
}
