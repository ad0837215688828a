//! epoll(7): Linux's poller, level- or edge-triggered, with nanosecond timeouts.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::time::Duration;

use rouse_core::{Interest, Poller, Readiness, Ready, SeamError, Source};

use super::{clamp_timeout, errno, source_fd, timeout_ms, EventBuf, SignalPipe};
use crate::sys::{fd, syscall, WakeSource};

/// `data` of the notifier's registration: no fd is this large.
const WAKE: u64 = u64::MAX;
/// `data` of the signal pipe's registration.
const SIGNALS: u64 = u64::MAX - 1;

/// The poller on Linux.
///
/// # Implementation notes
///
/// One `epoll_create1(EPOLL_CLOEXEC)` instance. [`update`](Poller::update) is one
/// `epoll_ctl` (`EPOLL_CTL_ADD` / `MOD` / `DEL`; a second one heals a kernel that disagrees
/// with the base, as libev's `epoll_modify` does). [`wait`](Poller::wait) is one
/// `epoll_pwait2` with a nanosecond `timespec`, or on kernels without it (before 5.11, or a
/// seccomp filter that refuses it) `epoll_wait` with the timeout rounded up to whole
/// milliseconds. The registration's `data` is the fd; two values no fd can have mark the
/// notifier and the signal self-pipe.
pub(crate) struct EpollPoller {
    epfd: RawFd,
    events: EventBuf<libc::epoll_event>,
    /// The notifier's fd, once watched.
    wake_fd: Option<RawFd>,
    /// The signal self-pipe, made on the first `watch_signal`.
    signals: Option<SignalPipe>,
    /// Whether `epoll_pwait2` may work (cleared on the first `ENOSYS`).
    pwait2: bool,
    /// `epoll_ctl` calls so far.
    ctl_calls: u64,
}

/// `struct __kernel_timespec`, what `epoll_pwait2` reads (64-bit fields on every arch, unlike
/// `libc::timespec` on 32-bit targets).
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

impl EpollPoller {
    /// The fds this poller owns: its kernel object and its signal pipe (`-1`: none).
    pub(crate) fn own_fds(&self) -> [RawFd; 3] {
        let [r, w] = self.signals.as_ref().map_or([-1, -1], SignalPipe::fds);
        [self.epfd, r, w]
    }

    /// A new epoll instance.
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1` (`EMFILE`, `ENFILE`, `ENOMEM`).
    pub(crate) fn new() -> io::Result<EpollPoller> {
        let epfd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        Ok(EpollPoller {
            epfd,
            events: EventBuf::new(),
            wake_fd: None,
            signals: None,
            pwait2: true,
            ctl_calls: 0,
        })
    }

    /// `epoll_ctl(op, fd)` with `events` and `data`.
    #[inline]
    fn ctl(&mut self, op: libc::c_int, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: data };
        self.ctl_calls += 1;
        // `ev` is a live epoll_event (ignored by EPOLL_CTL_DEL, but pre-2.6.9 kernels wanted a
        // non-null pointer there too).
        syscall!(epoll_ctl(self.epfd, op, fd, &mut ev)).map(drop)
    }

    /// Registers `fd` (not a user source), replacing a registration the kernel already has.
    fn add_internal(&mut self, fd: RawFd, events: u32, data: u64) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_ADD, fd, events, data) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.ctl(libc::EPOLL_CTL_MOD, fd, events, data)
            }
            res => res,
        }
    }

    /// Watches the notifier: edge-triggered if it allows (returns `true`), else level. A
    /// notifier watched before is forgotten, not deregistered: its fd number may already name
    /// another source (closing it deregistered it).
    ///
    /// # Errors
    ///
    /// `Unsupported` for an `EVFILT_USER` source; the error of `epoll_ctl`.
    pub(crate) fn watch_wake(&mut self, src: WakeSource) -> io::Result<bool> {
        let WakeSource::Fd { fd, edge_ok } = src else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "epoll cannot watch an EVFILT_USER notifier",
            ));
        };
        let mut events = libc::EPOLLIN as u32;
        if edge_ok {
            events |= libc::EPOLLET as u32;
        }
        self.add_internal(fd, events, WAKE)?;
        self.wake_fd = Some(fd);
        Ok(edge_ok)
    }

    /// `epoll_ctl` calls issued so far.
    pub(crate) fn syscalls(&self) -> u64 {
        self.ctl_calls
    }

    /// In a forked child: a new epoll instance (the old one is shared with the parent), the
    /// signal pipe re-made and re-registered; the notifier and I/O registrations forgotten.
    ///
    /// # Errors
    ///
    /// The error of `epoll_create1`, of re-making the signal pipe, or of registering it.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        let epfd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        fd::close(self.epfd);
        self.epfd = epfd;
        self.wake_fd = None;
        // SAFETY: zero entries are claimed initialized.
        unsafe { self.events.filled(0) };
        if let Some(mut pipe) = self.signals.take() {
            pipe.reinit_after_fork()?;
            self.add_internal(pipe.read_fd(), libc::EPOLLIN as u32, SIGNALS)?;
            self.signals = Some(pipe);
        }
        Ok(())
    }

    /// The fds a forked child inherits and must close if this poller is abandoned in the
    /// parent's hands: the epoll instance (shared with the parent) and the signal pipe.
    pub(crate) fn inherited_fds(&self) -> (RawFd, Option<&SignalPipe>) {
        (self.epfd, self.signals.as_ref())
    }

    /// Takes over `pipe` (adopted after `fork()`) as this poller's signal pipe.
    ///
    /// # Errors
    ///
    /// The error of registering its read end.
    pub(crate) fn adopt_signals(&mut self, pipe: SignalPipe) -> io::Result<()> {
        self.add_internal(pipe.read_fd(), libc::EPOLLIN as u32, SIGNALS)?;
        self.signals = Some(pipe);
        Ok(())
    }

    /// One `epoll_pwait2`: `Err` with `ENOSYS` if the kernel lacks it.
    #[inline]
    fn pwait2(
        &self,
        ptr: *mut libc::epoll_event,
        cap: libc::c_int,
        t: Option<Duration>,
    ) -> io::Result<usize> {
        let ts = t.map(|d| {
            let d = clamp_timeout(d);
            KernelTimespec {
                tv_sec: d.as_secs() as i64, // at most i32::MAX
                tv_nsec: i64::from(d.subsec_nanos()),
            }
        });
        let tsp = ts
            .as_ref()
            .map_or(ptr::null(), |t| t as *const KernelTimespec);
        // `ptr`/`cap` is the event buffer's spare capacity, `tsp` null or a live
        // `__kernel_timespec`, the sigmask null (so its size is ignored).
        let n = syscall!(syscall(
            libc::SYS_epoll_pwait2,
            self.epfd,
            ptr,
            cap,
            tsp,
            ptr::null::<libc::sigset_t>(),
            0usize
        ))?;
        Ok(n as usize)
    }

    #[cfg(test)]
    fn without_pwait2(mut self) -> EpollPoller {
        self.pwait2 = false;
        self
    }
}

impl Drop for EpollPoller {
    fn drop(&mut self) {
        fd::close(self.epfd);
    }
}

impl fmt::Debug for EpollPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpollPoller")
            .field("epfd", &self.epfd)
            .field("wake_fd", &self.wake_fd)
            .field("signals", &self.signals.as_ref().map(SignalPipe::read_fd))
            .field("pwait2", &self.pwait2)
            .field("syscalls", &self.ctl_calls)
            .finish_non_exhaustive()
    }
}

/// The epoll events of an interest.
#[inline]
fn epoll_events(i: Interest) -> u32 {
    let mut ev = 0;
    if i.contains(Interest::READ) {
        ev |= libc::EPOLLIN;
    }
    if i.contains(Interest::WRITE) {
        ev |= libc::EPOLLOUT;
    }
    if i.contains(Interest::CLOSED) {
        ev |= libc::EPOLLRDHUP;
    }
    if i.contains(Interest::EDGE) {
        ev |= libc::EPOLLET;
    }
    ev as u32
}

/// The signal pipe was readable: reports each signal it holds.
#[cold]
#[inline(never)]
fn drain_signals(signals: &mut Option<SignalPipe>, f: &mut dyn FnMut(Readiness)) {
    if let Some(pipe) = signals {
        pipe.drain(|n| f(Readiness::Signal(n)));
    }
}

/// The readiness epoll `events` report (hang-ups and errors as libevent maps them).
#[inline]
fn ready_of(events: u32) -> Ready {
    if events == libc::EPOLLIN as u32 {
        return Ready::READ; // the common case: one compare
    }
    let ev = events as libc::c_int;
    let mut r = Ready::NONE;
    if ev & libc::EPOLLIN != 0 {
        r |= Ready::READ;
    }
    if ev & libc::EPOLLOUT != 0 {
        r |= Ready::WRITE;
    }
    if ev & libc::EPOLLRDHUP != 0 {
        r |= Ready::CLOSED | Ready::READ;
    }
    if ev & libc::EPOLLHUP != 0 {
        r |= Ready::READ | Ready::WRITE;
    }
    if ev & libc::EPOLLERR != 0 {
        r |= Ready::READ | Ready::WRITE | Ready::ERROR;
    }
    r
}

impl Poller for EpollPoller {
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        let fd = source_fd(source)?;
        if new.kinds().is_empty() {
            if old.kinds().is_empty() {
                return Ok(());
            }
            return match self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
                // ENOENT: not registered; EBADF: closed (which dropped the registration).
                Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) => {
                    Err(errno(e))
                }
                _ => Ok(()),
            };
        }
        let (events, data) = (epoll_events(new), fd as u64);
        let res = if old.kinds().is_empty() {
            self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
        } else {
            match self.ctl(libc::EPOLL_CTL_MOD, fd, events, data) {
                // ENOENT: the fd was closed (which dropped the registration, behind the base's
                // back) and its number reused.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
                }
                res => res,
            }
        };
        res.map_err(|e| {
            if !old.kinds().is_empty() {
                // The base records "not registered" after a failure; make it so.
                let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
            }
            errno(e)
        })
    }

    /// `EPOLL_CTL_MOD`, and `EPOLL_CTL_ADD` if the kernel does not have the fd (`ENOENT`):
    /// one syscall when the file is still registered (an event deleted and added back in one
    /// iteration, the usual re-arm, with `Options::reregister_on_rearm`), two when it is not
    /// (its fd was closed and the number reused, or after `reinit`). An empty `new` deletes.
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        if new.kinds().is_empty() {
            let all = Interest::READ | Interest::WRITE | Interest::CLOSED;
            return self.update(source, all, Interest::NONE);
        }
        let fd = source_fd(source)?;
        let (events, data) = (epoll_events(new), fd as u64);
        match self.ctl(libc::EPOLL_CTL_MOD, fd, events, data) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                self.ctl(libc::EPOLL_CTL_ADD, fd, events, data)
            }
            res => res,
        }
        .map_err(|e| {
            // The base records "not registered" after a failure; make it so.
            let _ = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0);
            errno(e)
        })
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let mut pipe = self.signals.take();
        let r = super::watch_signal(&mut pipe, signal, enable, |fd| {
            self.add_internal(fd, libc::EPOLLIN as u32, SIGNALS)
        });
        self.signals = pipe;
        r
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        let (ptr, cap) = self.events.prepare();
        let res = match self.pwait2.then(|| self.pwait2(ptr, cap, timeout)) {
            // ENOSYS: before Linux 5.11; EPERM: a seccomp filter refusing unknown syscalls.
            Some(Err(e)) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                self.pwait2 = false;
                None
            }
            res => res,
        };
        let res = res.unwrap_or_else(|| {
            // `ptr`/`cap` is the event buffer's spare capacity.
            syscall!(epoll_wait(self.epfd, ptr, cap, timeout_ms(timeout))).map(|n| n as usize)
        });
        match res {
            Ok(n) => {
                // SAFETY: the kernel wrote `n` events (at most `cap`) into the buffer that
                // `prepare` handed out, untouched since.
                unsafe { self.events.filled(n) };
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        // One call site of `f` (the signal pipe's is out of line, through `dyn`), so that
        // the compiler can inline the base's handler into this loop.
        for &ev in self.events.as_slice() {
            // By value: `epoll_event` is packed on x86_64.
            let (events, data) = (ev.events, ev.u64);
            let r = match data {
                WAKE => Readiness::Wake,
                SIGNALS => {
                    drain_signals(&mut self.signals, &mut f);
                    continue;
                }
                fd => Readiness::Io(Source::new(fd as u32), ready_of(events)),
            };
            f(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use rouse_core::{Interest, Poller, Ready, SeamError};

    use super::EpollPoller;
    use crate::sys::poll::testutil::{self, *};
    use crate::sys::{fd, syscall, WakeSource};

    fn poller() -> EpollPoller {
        EpollPoller::new().expect("epoll_create1")
    }

    #[test]
    fn readable_reported() {
        testutil::readable_reported(&mut poller());
    }

    #[test]
    fn writable_reported() {
        testutil::writable_reported(&mut poller());
    }

    #[test]
    fn peer_close_reported_closed() {
        let r = testutil::peer_close_reported(&mut poller());
        assert!(r.contains(Ready::CLOSED | Ready::READ), "{r:?}");
    }

    #[test]
    fn closed_alone() {
        let mut p = poller();
        let (a, b) = socketpair();
        p.update(src(&a), Interest::NONE, Interest::CLOSED).unwrap();
        write_byte(&b);
        // Data is not a close: EPOLLRDHUP only.
        assert_eq!(ready_of(&mut p, &a, NOW), Ready::NONE);
        drop(b);
        assert!(ready_of(&mut p, &a, LONG).contains(Ready::CLOSED));
    }

    #[test]
    fn delete_stops_reports() {
        testutil::delete_stops_reports(&mut poller());
    }

    #[test]
    fn edge_reports_once_per_change() {
        let mut p = poller();
        let (a, b) = socketpair();
        p.update(src(&a), Interest::NONE, Interest::READ | Interest::EDGE)
            .unwrap();
        write_byte(&b);
        assert_eq!(ready_of(&mut p, &a, LONG), Ready::READ);
        assert_eq!(
            ready_of(&mut p, &a, NOW),
            Ready::NONE,
            "unread, but no new change"
        );
        write_byte(&b);
        assert_eq!(ready_of(&mut p, &a, LONG), Ready::READ);
        assert_eq!(ready_of(&mut p, &a, NOW), Ready::NONE);
        // Back to level: reported while unread.
        p.update(src(&a), Interest::READ | Interest::EDGE, Interest::READ)
            .unwrap();
        assert_eq!(ready_of(&mut p, &a, LONG), Ready::READ);
        assert_eq!(ready_of(&mut p, &a, LONG), Ready::READ);
    }

    #[test]
    fn reset_heals_via_enoent() {
        let mut p = poller();
        testutil::reset_heals(&mut p);
        // ADD; reset: MOD; reset to nothing: DEL; reset: MOD (ENOENT) + ADD; DEL.
        assert_eq!(p.syscalls(), 6);
    }

    #[test]
    fn modify_reopened_heals_via_enoent() {
        let mut p = poller();
        testutil::modify_reopened_heals(&mut p);
        // ADD, MOD (ENOENT) + ADD, DEL.
        assert_eq!(p.syscalls(), 4);
    }

    #[test]
    fn delete_closed_is_ok() {
        testutil::delete_closed_ok(&mut poller());
    }

    #[test]
    fn refused_add_is_an_error() {
        let mut p = poller();
        let (a, _b) = socketpair();
        // A regular file: epoll refuses it (EPERM).
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let s = rouse_core::Source::new(file.as_raw_fd() as u32);
        assert_eq!(
            p.update(s, Interest::NONE, Interest::READ),
            Err(SeamError::os(libc::EPERM))
        );
        // A closed fd: EBADF. (A number far above what the other tests get, the lowest free
        // ones, so nothing reuses it in between.)
        let high = syscall!(fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 18_000)).unwrap();
        fd::close(high);
        let closed = rouse_core::Source::new(high as u32);
        assert_eq!(
            p.update(closed, Interest::NONE, Interest::READ),
            Err(SeamError::os(libc::EBADF))
        );
        // Not an fd at all.
        let huge = rouse_core::Source::new(u32::MAX);
        assert_eq!(
            p.update(huge, Interest::NONE, Interest::READ),
            Err(SeamError::os(libc::EBADF))
        );
    }

    #[test]
    fn syscalls_count_interest_changes() {
        let mut p = poller();
        let (a, _b) = socketpair();
        assert_eq!(p.syscalls(), 0);
        p.update(src(&a), Interest::NONE, Interest::READ).unwrap();
        assert_eq!(p.syscalls(), 1);
        p.update(src(&a), Interest::READ, Interest::READ | Interest::WRITE)
            .unwrap();
        assert_eq!(p.syscalls(), 2);
        p.update(src(&a), Interest::READ | Interest::WRITE, Interest::NONE)
            .unwrap();
        assert_eq!(p.syscalls(), 3);
        // Nothing to do, no syscall; waits are not interest changes.
        p.update(src(&a), Interest::NONE, Interest::NONE).unwrap();
        p.wait(Some(NOW)).unwrap();
        assert_eq!(p.syscalls(), 3);
    }

    #[test]
    fn timeouts_not_early_pwait2() {
        let mut p = poller();
        let took = testutil::timeouts_not_early(&mut p, Duration::from_micros(300), 50);
        eprintln!(
            "epoll_pwait2 300us waits (pwait2 in use: {}): min {:?} median {:?} max {:?}",
            p.pwait2,
            took[0],
            took[took.len() / 2],
            took[took.len() - 1]
        );
    }

    #[test]
    fn timeouts_not_early_epoll_wait() {
        let mut p = poller().without_pwait2();
        let took = testutil::timeouts_not_early(&mut p, Duration::from_micros(300), 20);
        // Rounded up to a whole millisecond.
        assert!(took[0] >= Duration::from_millis(1), "{:?}", took[0]);
        eprintln!(
            "epoll_wait 300us waits: min {:?} median {:?}",
            took[0],
            took[took.len() / 2]
        );
    }

    #[test]
    fn extreme_timeouts() {
        testutil::extreme_timeouts(&mut poller());
        testutil::extreme_timeouts(&mut poller().without_pwait2());
    }

    #[test]
    fn many_fds() {
        let mut p = poller();
        testutil::many_fds(&mut p);
        // The buffer grew past 64 while 1000 were ready, and stopped at a bound.
        assert!(p.events.capacity() >= 1000, "{}", p.events.capacity());
        assert!(p.events.capacity() <= super::super::EVENTS_MAX);
    }

    #[test]
    fn wake_edge() {
        let mut p = poller();
        let (rd, w) = wake_fd();
        let edge = p
            .watch_wake(WakeSource::Fd {
                fd: rd.as_raw_fd(),
                edge_ok: true,
            })
            .unwrap();
        assert!(edge);
        testutil::wake_reported(&mut p, &rd, &w, true);
    }

    #[test]
    fn wake_level() {
        let mut p = poller();
        let (rd, w) = wake_fd();
        let edge = p
            .watch_wake(WakeSource::Fd {
                fd: rd.as_raw_fd(),
                edge_ok: false,
            })
            .unwrap();
        assert!(!edge);
        testutil::wake_reported(&mut p, &rd, &w, false);
        // Watching it again (same fd) is a modify (EEXIST healed), here to edge-triggered.
        assert!(p
            .watch_wake(WakeSource::Fd {
                fd: rd.as_raw_fd(),
                edge_ok: true
            })
            .unwrap());
        testutil::wake_reported(&mut p, &rd, &w, true);
        // A new one, after the old was closed.
        drop((rd, w));
        let (rd2, w2) = wake_fd();
        p.watch_wake(WakeSource::Fd {
            fd: rd2.as_raw_fd(),
            edge_ok: true,
        })
        .unwrap();
        testutil::wake_reported(&mut p, &rd2, &w2, true);
        assert!(p.watch_wake(WakeSource::KqueueUser { ident: 1 }).is_err());
    }

    #[test]
    fn signals_reported() {
        let mut p = poller();
        let (rd, w) = wake_fd();
        p.watch_wake(WakeSource::Fd {
            fd: rd.as_raw_fd(),
            edge_ok: false,
        })
        .unwrap();
        testutil::signals_reported(&mut p, testutil::test_signal(0), &rd, &w);
    }
}
