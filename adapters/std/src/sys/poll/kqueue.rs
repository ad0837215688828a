//! kqueue(2): the poller of FreeBSD and macOS, level- or edge-triggered, nanosecond timeouts.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use rouse_core::{Interest, Poller, Readiness, Ready, SeamError, Source};

use super::{errno, source_fd, EventBuf, SignalPipe};
use crate::sys::{fd, syscall, WakeSource};

/// The poller on FreeBSD and macOS.
///
/// # Implementation notes
///
/// One `kqueue()` instance (close-on-exec). [`update`](Poller::update) is one `kevent` call
/// carrying the `EVFILT_READ` / `EVFILT_WRITE` changes the new interest needs (`EV_ADD` for
/// every wanted filter, so a kernel that forgot a closed fd heals; `EV_DELETE` for dropped
/// ones), with `EV_RECEIPT` to learn each change's error. `EDGE` is `EV_CLEAR`; `CLOSED`
/// watches `EVFILT_READ` and reports its `EV_EOF`. [`wait`](Poller::wait) is one `kevent`
/// with a nanosecond `timespec`. The ident is the fd. The notifier is either an
/// `EVFILT_USER` event the notifier registers on this kqueue, or the readability of its fd.
///
/// A kqueue is not inherited by a `fork()` child: use
/// [`reinit_after_fork`](KqueuePoller::reinit_after_fork) there.
pub(crate) struct KqueuePoller {
    kq: RawFd,
    events: EventBuf<libc::kevent>,
    wake: Wake,
    /// The signal self-pipe, made on the first `watch_signal`.
    signals: Option<SignalPipe>,
    /// `kevent` calls carrying changes so far.
    change_calls: u64,
}

/// How the notifier is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wake {
    None,
    /// `EVFILT_READ` on this fd.
    Fd(RawFd),
    /// `EVFILT_USER` with this ident.
    User(usize),
}

/// A kevent for `ident` and `filter` with `flags`, the other fields zero.
#[inline]
fn kev(ident: usize, filter: i16, flags: u16) -> libc::kevent {
    // SAFETY: `kevent` is plain data (integers, and a raw `udata` pointer for which all-zero
    // bits are null); the all-zero value is valid.
    let mut k: libc::kevent = unsafe { mem::zeroed() };
    k.ident = ident;
    k.filter = filter;
    k.flags = flags;
    k
}

impl KqueuePoller {
    /// The fds this poller owns: its kernel object and its signal pipe (`-1`: none).
    pub(crate) fn own_fds(&self) -> [RawFd; 3] {
        let [r, w] = self.signals.as_ref().map_or([-1, -1], SignalPipe::fds);
        [self.kq, r, w]
    }

    /// A new kqueue.
    ///
    /// # Errors
    ///
    /// The error of `kqueue` (`EMFILE`, `ENFILE`, `ENOMEM`) or of setting `FD_CLOEXEC`.
    pub(crate) fn new() -> io::Result<KqueuePoller> {
        Ok(KqueuePoller {
            kq: new_kqueue()?,
            events: EventBuf::new(),
            wake: Wake::None,
            signals: None,
            change_calls: 0,
        })
    }

    /// The kqueue fd, for an `EVFILT_USER` notifier to register on.
    pub(crate) fn kqueue_fd(&self) -> RawFd {
        self.kq
    }

    /// Applies `changes` (each with `EV_RECEIPT`) in one `kevent` call; a delete of what is
    /// not registered (`ENOENT`) or of a closed fd (`EBADF`) succeeds, and so does an add
    /// failing with `EPIPE` (older macOS, a pipe whose peer is gone: registered anyway, as
    /// mio found).
    fn apply(&mut self, changes: &[libc::kevent]) -> Result<(), SeamError> {
        let mut out = [kev(0, 0, 0), kev(0, 0, 0)];
        let n = changes.len().min(out.len());
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        self.change_calls += 1;
        // `changes`/`out` are live arrays of `n` kevents, `zero` a live timespec. Every change
        // has EV_RECEIPT, so the call fills `out` with receipts and never waits for events.
        let got = syscall!(kevent(
            self.kq,
            changes.as_ptr(),
            n as libc::c_int,
            out.as_mut_ptr(),
            n as libc::c_int,
            &zero
        ))
        .map_err(errno)?;
        for r in &out[..(got as usize).min(n)] {
            if r.flags & libc::EV_ERROR == 0 || r.data == 0 {
                continue;
            }
            let code = r.data as i32;
            let delete = changes
                .iter()
                .any(|c| c.filter == r.filter && c.flags & libc::EV_DELETE != 0);
            let fine = if delete {
                matches!(code, libc::ENOENT | libc::EBADF)
            } else {
                code == libc::EPIPE
            };
            if !fine {
                return Err(SeamError::os(code));
            }
        }
        Ok(())
    }

    /// Watches `fd`'s readability for the notifier or the signal pipe.
    fn add_internal(&mut self, fd: RawFd, clear: bool) -> io::Result<()> {
        let mut flags = libc::EV_ADD | libc::EV_ENABLE | libc::EV_RECEIPT;
        if clear {
            flags |= libc::EV_CLEAR;
        }
        self.apply(&[kev(fd as usize, libc::EVFILT_READ, flags)])
            .map_err(io::Error::from)
    }

    /// Watches the notifier: an `EVFILT_USER` ident (which the notifier registers on this
    /// kqueue; returns `true`: nothing to drain), or an fd, edge-triggered (`EV_CLEAR`) if it
    /// allows (returns `true`), else level. A notifier watched before is forgotten, not
    /// deregistered: its fd number may already name another source (closing it deregistered
    /// it).
    ///
    /// # Errors
    ///
    /// The error of registering the fd.
    pub(crate) fn watch_wake(&mut self, src: WakeSource) -> io::Result<bool> {
        self.wake = Wake::None;
        match src {
            WakeSource::KqueueUser { ident } => {
                self.wake = Wake::User(ident);
                Ok(true)
            }
            WakeSource::Fd { fd, edge_ok } => {
                self.add_internal(fd, edge_ok)?;
                self.wake = Wake::Fd(fd);
                Ok(edge_ok)
            }
        }
    }

    /// `kevent` calls carrying interest changes so far.
    pub(crate) fn syscalls(&self) -> u64 {
        self.change_calls
    }

    /// In a forked child: a new kqueue (the parent's is not inherited: its fd number is
    /// already free in the child, so it is not closed here), the signal pipe re-made and
    /// re-registered; the notifier and I/O registrations forgotten. An `EVFILT_USER` notifier
    /// must re-register on the new [`kqueue_fd`](KqueuePoller::kqueue_fd) afterwards.
    ///
    /// # Errors
    ///
    /// The error of `kqueue`, of re-making the signal pipe, or of registering it.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        self.kq = new_kqueue()?;
        self.wake = Wake::None;
        // SAFETY: zero entries are claimed initialized.
        unsafe { self.events.filled(0) };
        if let Some(mut pipe) = self.signals.take() {
            pipe.reinit_after_fork()?;
            self.add_internal(pipe.read_fd(), false)?;
            self.signals = Some(pipe);
        }
        Ok(())
    }
}

impl KqueuePoller {
    /// The fds a forked child inherits and must close if this poller is abandoned in the
    /// parent's hands: the signal pipe only (a kqueue is not inherited).
    pub(crate) fn inherited_fds(&self) -> (RawFd, Option<&SignalPipe>) {
        (-1, self.signals.as_ref())
    }

    /// Takes over `pipe` (adopted after `fork()`) as this poller's signal pipe.
    ///
    /// # Errors
    ///
    /// The error of registering its read end.
    pub(crate) fn adopt_signals(&mut self, pipe: SignalPipe) -> io::Result<()> {
        self.add_internal(pipe.read_fd(), false)?;
        self.signals = Some(pipe);
        Ok(())
    }
}

/// `kqueue()` with `FD_CLOEXEC`.
fn new_kqueue() -> io::Result<RawFd> {
    let kq = syscall!(kqueue())?;
    if let Err(e) = syscall!(fcntl(kq, libc::F_SETFD, libc::FD_CLOEXEC)) {
        fd::close(kq);
        return Err(e);
    }
    Ok(kq)
}

// SAFETY: the only non-`Send` part is the raw `udata` pointer inside the buffered kevents,
// which this poller always sets to null and never dereferences; everything else is integers
// and fds owned by the poller, usable from any thread.
unsafe impl Send for KqueuePoller {}

impl Drop for KqueuePoller {
    fn drop(&mut self) {
        fd::close(self.kq);
    }
}

impl fmt::Debug for KqueuePoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KqueuePoller")
            .field("kq", &self.kq)
            .field("wake", &self.wake)
            .field("signals", &self.signals.as_ref().map(SignalPipe::read_fd))
            .field("syscalls", &self.change_calls)
            .finish_non_exhaustive()
    }
}

impl Poller for KqueuePoller {
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        let fd = source_fd(source)?;
        let ident = fd as usize;
        let edge = new.contains(Interest::EDGE);
        let mut changes = [kev(0, 0, 0), kev(0, 0, 0)];
        let mut n = 0;
        let read = Interest::READ | Interest::CLOSED;
        if new.intersects(read) {
            // CLOSED without READ: EV_CLEAR, so unread data is reported once (and ignored by
            // the base), not on every wait until the peer closes.
            let clear = edge || !new.contains(Interest::READ);
            let mut flags = libc::EV_ADD | libc::EV_ENABLE | libc::EV_RECEIPT;
            if clear {
                flags |= libc::EV_CLEAR;
            }
            changes[n] = kev(ident, libc::EVFILT_READ, flags);
            n += 1;
        } else if old.intersects(read) {
            changes[n] = kev(ident, libc::EVFILT_READ, libc::EV_DELETE | libc::EV_RECEIPT);
            n += 1;
        }
        if new.contains(Interest::WRITE) {
            let mut flags = libc::EV_ADD | libc::EV_ENABLE | libc::EV_RECEIPT;
            if edge {
                flags |= libc::EV_CLEAR;
            }
            changes[n] = kev(ident, libc::EVFILT_WRITE, flags);
            n += 1;
        } else if old.contains(Interest::WRITE) {
            changes[n] = kev(
                ident,
                libc::EVFILT_WRITE,
                libc::EV_DELETE | libc::EV_RECEIPT,
            );
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        self.apply(&changes[..n]).inspect_err(|_| {
            if !new.kinds().is_empty() {
                // The base records "not registered" after a failure; make it so.
                let del = libc::EV_DELETE | libc::EV_RECEIPT;
                let _ = self.apply(&[
                    kev(ident, libc::EVFILT_READ, del),
                    kev(ident, libc::EVFILT_WRITE, del),
                ]);
            }
        })
    }

    /// One `kevent` call: `EV_ADD` for the kinds of `new`, `EV_DELETE` for the others (a delete
    /// of a filter that is not registered succeeds).
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        let all = Interest::READ | Interest::WRITE | Interest::CLOSED;
        self.update(source, all, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let mut pipe = self.signals.take();
        let r = super::watch_signal(&mut pipe, signal, enable, |fd| self.add_internal(fd, false));
        self.signals = pipe;
        r
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        let (events, cap) = self.events.prepare();
        let ts = timeout.map(super::timespec);
        let tsp = ts
            .as_ref()
            .map_or(ptr::null(), |t| t as *const libc::timespec);
        // No changes; `events`/`cap` is the event buffer's spare capacity, `tsp` null or a
        // live timespec.
        match syscall!(kevent(self.kq, ptr::null(), 0, events, cap, tsp)) {
            Ok(n) => {
                // SAFETY: the kernel wrote `n` events (at most `cap`) into the buffer that
                // `prepare` handed out, untouched since.
                unsafe { self.events.filled(n as usize) };
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        let sig_fd = self.signals.as_ref().map(SignalPipe::read_fd);
        for ev in self.events.as_slice() {
            let ident = ev.ident;
            match ev.filter {
                libc::EVFILT_USER if self.wake == Wake::User(ident) => f(Readiness::Wake),
                // Another EVFILT_USER event is nobody's source.
                libc::EVFILT_USER => {}
                libc::EVFILT_READ if self.wake == Wake::Fd(ident as RawFd) => f(Readiness::Wake),
                libc::EVFILT_READ if sig_fd == Some(ident as RawFd) => {
                    if let Some(pipe) = &mut self.signals {
                        pipe.drain(|n| f(Readiness::Signal(n)));
                    }
                }
                _ if ev.flags & libc::EV_ERROR != 0 => f(Readiness::Io(
                    Source::new(ident as u32),
                    Ready::READ | Ready::WRITE | Ready::ERROR,
                )),
                libc::EVFILT_READ => {
                    let mut r = Ready::READ;
                    if ev.flags & libc::EV_EOF != 0 {
                        r |= Ready::CLOSED;
                    }
                    f(Readiness::Io(Source::new(ident as u32), r));
                }
                libc::EVFILT_WRITE => f(Readiness::Io(Source::new(ident as u32), Ready::WRITE)),
                _ => {}
            }
        }
    }
}
