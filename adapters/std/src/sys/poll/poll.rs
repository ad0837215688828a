//! poll(2): the portable fallback poller, level-triggered only.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use rouse_core::{Interest, Poller, Readiness, Ready, SeamError, Source};

use super::{errno, source_fd, SignalPipe};
use crate::sys::{syscall, WakeSource};

/// `index` entry of an fd that is not registered.
const ABSENT: u32 = u32::MAX;

/// The poller of every Unix.
///
/// # Implementation notes
///
/// A `Vec<pollfd>` handed whole to `ppoll` (Linux, FreeBSD: nanosecond timeouts) or `poll`
/// (elsewhere: milliseconds, rounded up), plus an fd-indexed table of positions in it, so an
/// interest change is O(1) and costs no syscall (a delete swaps the last entry into the hole).
/// The first entries hold the notifier and the signal self-pipe. Level-triggered only: an
/// `EDGE` interest is registered level (the base copes), and the notifier is always watched
/// level, so it must drain.
pub(crate) struct PollPoller {
    fds: Vec<libc::pollfd>,
    /// fd -> position in `fds` of its user registration, or [`ABSENT`].
    index: Vec<u32>,
    /// How many entries at the front of `fds` are internal (notifier, signal pipe).
    internal: usize,
    /// The notifier's fd, once watched (-1 before).
    wake_fd: RawFd,
    /// The signal self-pipe, made on the first `watch_signal`.
    signals: Option<SignalPipe>,
    /// Entries with events, from the last wait.
    found: usize,
}

impl PollPoller {
    /// The fds this poller owns: its kernel object and its signal pipe (`-1`: none).
    pub(crate) fn own_fds(&self) -> [RawFd; 3] {
        let [r, w] = self.signals.as_ref().map_or([-1, -1], SignalPipe::fds);
        [-1, r, w]
    }

    /// An empty poll set (no syscall: poll(2) keeps its set in user space).
    pub(crate) fn new() -> PollPoller {
        PollPoller {
            fds: Vec::new(),
            index: Vec::new(),
            internal: 0,
            wake_fd: -1,
            signals: None,
            found: 0,
        }
    }

    /// The position of `fd`'s user registration.
    #[inline]
    fn slot(&self, fd: RawFd) -> Option<usize> {
        match self.index.get(fd as usize) {
            Some(&i) if i != ABSENT => Some(i as usize),
            _ => None,
        }
    }

    /// Adds an internal entry at the front (after the other internal ones).
    fn push_internal(&mut self, fd: RawFd) {
        self.fds.push(pollfd(fd, libc::POLLIN));
        let last = self.fds.len() - 1;
        let at = self.internal;
        if at != last {
            // A user entry sat at `at`: move it to the end.
            self.fds.swap(at, last);
            let moved = self.fds[last].fd;
            self.index[moved as usize] = last as u32;
        }
        self.internal += 1;
    }

    /// Watches the notifier, always level-triggered (returns `false`: it must drain),
    /// replacing the one watched before.
    ///
    /// # Errors
    ///
    /// `Unsupported` for an `EVFILT_USER` source.
    pub(crate) fn watch_wake(&mut self, src: WakeSource) -> io::Result<bool> {
        let WakeSource::Fd { fd, .. } = src else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "poll(2) cannot watch an EVFILT_USER notifier",
            ));
        };
        match self.fds[..self.internal]
            .iter_mut()
            .find(|p| p.fd == self.wake_fd)
        {
            Some(p) if self.wake_fd >= 0 => p.fd = fd,
            _ => self.push_internal(fd),
        }
        self.wake_fd = fd;
        Ok(false)
    }

    /// Always 0: changing a poll set takes no syscall.
    pub(crate) fn syscalls(&self) -> u64 {
        0
    }

    /// In a forked child: the signal pipe re-made (its entry follows); the notifier and the
    /// I/O registrations forgotten.
    ///
    /// # Errors
    ///
    /// The error of re-making the signal pipe.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        self.fds.clear();
        self.index.clear();
        self.internal = 0;
        self.wake_fd = -1;
        self.found = 0;
        if let Some(mut pipe) = self.signals.take() {
            pipe.reinit_after_fork()?;
            self.push_internal(pipe.read_fd());
            self.signals = Some(pipe);
        }
        Ok(())
    }
}

impl PollPoller {
    /// The fds a forked child inherits and must close if this poller is abandoned in the
    /// parent's hands: the signal pipe only (a poll set is memory).
    pub(crate) fn inherited_fds(&self) -> (RawFd, Option<&SignalPipe>) {
        (-1, self.signals.as_ref())
    }

    /// Takes over `pipe` (adopted after `fork()`) as this poller's signal pipe.
    ///
    /// # Errors
    ///
    /// None: a poll set is memory.
    pub(crate) fn adopt_signals(&mut self, pipe: SignalPipe) -> io::Result<()> {
        self.push_internal(pipe.read_fd());
        self.signals = Some(pipe);
        Ok(())
    }
}

impl Default for PollPoller {
    fn default() -> PollPoller {
        PollPoller::new()
    }
}

impl fmt::Debug for PollPoller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollPoller")
            .field("registered", &(self.fds.len() - self.internal))
            .field("wake_fd", &self.wake_fd)
            .field("signals", &self.signals.as_ref().map(SignalPipe::read_fd))
            .finish_non_exhaustive()
    }
}

#[inline]
fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// The poll events of an interest (`EDGE` ignored: poll(2) has no edges).
#[inline]
fn poll_events(i: Interest) -> libc::c_short {
    let mut ev = 0;
    if i.contains(Interest::READ) {
        ev |= libc::POLLIN;
    }
    if i.contains(Interest::WRITE) {
        ev |= libc::POLLOUT;
    }
    // Elsewhere (macOS) a peer close is only seen as POLLHUP, which needs no request.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if i.contains(Interest::CLOSED) {
        ev |= libc::POLLRDHUP;
    }
    ev
}

/// The readiness poll `revents` report.
#[inline]
fn ready_of(rev: libc::c_short) -> Ready {
    let mut r = Ready::NONE;
    if rev & libc::POLLIN != 0 {
        r |= Ready::READ;
    }
    if rev & libc::POLLOUT != 0 {
        r |= Ready::WRITE;
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    if rev & libc::POLLRDHUP != 0 {
        r |= Ready::CLOSED | Ready::READ;
    }
    if rev & libc::POLLHUP != 0 {
        r |= Ready::READ | Ready::WRITE;
        // Without POLLRDHUP, a hang-up is the only close report there is.
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        {
            r |= Ready::CLOSED;
        }
    }
    // POLLNVAL: the fd was closed while registered.
    if rev & (libc::POLLERR | libc::POLLNVAL) != 0 {
        r |= Ready::READ | Ready::WRITE | Ready::ERROR;
    }
    r
}

impl Poller for PollPoller {
    fn update(&mut self, source: Source, _old: Interest, new: Interest) -> Result<(), SeamError> {
        let fd = source_fd(source)?;
        // The base's `old` is not needed: the table says what is registered, so a
        // disagreement (an add of a registered fd, a modify or delete of an unregistered one)
        // heals by itself.
        match (self.slot(fd), new.kinds().is_empty()) {
            (Some(i), false) => {
                self.fds[i].events = poll_events(new);
            }
            (Some(i), true) => {
                self.fds.swap_remove(i);
                self.index[fd as usize] = ABSENT;
                if let Some(moved) = self.fds.get(i) {
                    self.index[moved.fd as usize] = i as u32;
                }
            }
            (None, false) => {
                let fdu = fd as usize;
                if fdu >= self.index.len() {
                    self.index.resize((fdu + 1).next_power_of_two(), ABSENT);
                }
                self.index[fdu] = self.fds.len() as u32;
                self.fds.push(pollfd(fd, poll_events(new)));
            }
            (None, true) => {}
        }
        Ok(())
    }

    /// The table says what is registered: the same as an `update`.
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        self.update(source, Interest::NONE, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let mut pipe = self.signals.take();
        let r = super::watch_signal(&mut pipe, signal, enable, |fd| {
            self.push_internal(fd);
            Ok(())
        });
        self.signals = pipe;
        r
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        self.found = 0;
        let (ptr, len) = (self.fds.as_mut_ptr(), self.fds.len() as libc::nfds_t);
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
        let res = {
            let ts = timeout.map(super::timespec);
            let tsp = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // `ptr`/`len` is the pollfd vector, `tsp` null or a live timespec, no sigmask.
            syscall!(ppoll(ptr, len, tsp, std::ptr::null()))
        };
        #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
        // `ptr`/`len` is the pollfd vector.
        let res = syscall!(poll(ptr, len, super::timeout_ms(timeout)));
        match res {
            Ok(n) => {
                self.found = n as usize;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) => Err(errno(e)),
        }
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        let mut left = self.found;
        for (i, p) in self.fds.iter().enumerate() {
            if left == 0 {
                break;
            }
            if p.revents == 0 {
                continue;
            }
            left -= 1;
            if i >= self.internal {
                f(Readiness::Io(Source::new(p.fd as u32), ready_of(p.revents)));
            } else if p.fd == self.wake_fd {
                f(Readiness::Wake);
            } else if let Some(pipe) = &mut self.signals {
                pipe.drain(|n| f(Readiness::Signal(n)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use rouse_core::{Interest, Poller, Readiness, Ready, Source};

    use super::PollPoller;
    use crate::sys::poll::testutil::{self, *};
    use crate::sys::{fd, syscall, WakeSource};

    #[test]
    fn readable_reported() {
        testutil::readable_reported(&mut PollPoller::new());
    }

    #[test]
    fn writable_reported() {
        testutil::writable_reported(&mut PollPoller::new());
    }

    #[test]
    fn peer_close_reported() {
        let r = testutil::peer_close_reported(&mut PollPoller::new());
        assert!(
            r.contains(Ready::CLOSED) || r.contains(Ready::READ | Ready::WRITE),
            "{r:?}"
        );
        #[cfg(target_os = "linux")]
        assert!(r.contains(Ready::CLOSED), "POLLRDHUP: {r:?}");
    }

    #[test]
    fn delete_stops_reports() {
        testutil::delete_stops_reports(&mut PollPoller::new());
    }

    #[test]
    fn edge_is_level() {
        let mut p = PollPoller::new();
        let (a, b) = socketpair();
        p.update(src(&a), Interest::NONE, Interest::READ | Interest::EDGE)
            .unwrap();
        write_byte(&b);
        assert_eq!(ready_of(&mut p, &a, LONG), Ready::READ);
        assert_eq!(
            ready_of(&mut p, &a, NOW),
            Ready::READ,
            "no edges: reported again"
        );
    }

    #[test]
    fn reset_heals() {
        let mut p = PollPoller::new();
        testutil::reset_heals(&mut p);
        assert_eq!(p.fds.len(), 0);
    }

    #[test]
    fn modify_reopened_heals() {
        testutil::modify_reopened_heals(&mut PollPoller::new());
    }

    #[test]
    fn delete_closed_is_ok() {
        testutil::delete_closed_ok(&mut PollPoller::new());
    }

    #[test]
    fn closed_while_registered_is_an_error() {
        let mut p = PollPoller::new();
        let (a, _b) = socketpair();
        // A number far above what the other tests get (the lowest free ones), so nothing
        // reuses it between the close and the wait.
        let high = syscall!(fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 19_000)).unwrap();
        let s = Source::new(high as u32);
        p.update(s, Interest::NONE, Interest::READ).unwrap();
        fd::close(high);
        // POLLNVAL.
        assert_eq!(
            wait_collect(&mut p, Some(LONG)),
            [Readiness::Io(s, Ready::READ | Ready::WRITE | Ready::ERROR)]
        );
        p.update(s, Interest::READ, Interest::NONE).unwrap();
        assert!(wait_collect(&mut p, Some(NOW)).is_empty());
    }

    #[test]
    fn swap_remove_keeps_index() {
        let mut p = PollPoller::new();
        let pairs: Vec<_> = (0..8).map(|_| socketpair()).collect();
        let (rd, w) = wake_fd();
        for (a, _) in &pairs {
            p.update(src(a), Interest::NONE, Interest::READ).unwrap();
        }
        // The notifier arrives after user entries: it goes to the front.
        p.watch_wake(WakeSource::Fd {
            fd: rd.as_raw_fd(),
            edge_ok: true,
        })
        .unwrap();
        for (a, _) in pairs.iter().step_by(2) {
            p.update(src(a), Interest::READ, Interest::NONE).unwrap();
        }
        for (i, pfd) in p.fds.iter().enumerate().skip(p.internal) {
            assert_eq!(p.index[pfd.fd as usize] as usize, i);
        }
        assert_eq!(p.fds.len(), 1 + 4);
        for (_, b) in &pairs {
            write_byte(b);
        }
        poke(&w);
        let (m, wakes) = io_map(&mut p, LONG);
        assert_eq!(wakes, 1);
        let mut want: Vec<_> = pairs
            .iter()
            .skip(1)
            .step_by(2)
            .map(|(a, _)| a.as_raw_fd())
            .collect();
        want.sort();
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), want);
    }

    #[test]
    fn syscalls_are_zero() {
        let mut p = PollPoller::new();
        let (a, _b) = socketpair();
        p.update(src(&a), Interest::NONE, Interest::READ).unwrap();
        p.update(src(&a), Interest::READ, Interest::NONE).unwrap();
        assert_eq!(p.syscalls(), 0);
    }

    #[test]
    fn timeouts_not_early() {
        let took =
            testutil::timeouts_not_early(&mut PollPoller::new(), Duration::from_micros(300), 50);
        eprintln!(
            "ppoll 300us waits: min {:?} median {:?} max {:?}",
            took[0],
            took[took.len() / 2],
            took[took.len() - 1]
        );
    }

    #[test]
    fn extreme_timeouts() {
        testutil::extreme_timeouts(&mut PollPoller::new());
    }

    #[test]
    fn many_fds() {
        testutil::many_fds(&mut PollPoller::new());
    }

    #[test]
    fn wake_is_level() {
        let mut p = PollPoller::new();
        let (rd, w) = wake_fd();
        let edge = p
            .watch_wake(WakeSource::Fd {
                fd: rd.as_raw_fd(),
                edge_ok: true,
            })
            .unwrap();
        assert!(!edge, "poll(2) has no edges: the notifier must drain");
        testutil::wake_reported(&mut p, &rd, &w, false);
        // Re-watching replaces the entry instead of adding one.
        let (rd2, w2) = wake_fd();
        p.watch_wake(WakeSource::Fd {
            fd: rd2.as_raw_fd(),
            edge_ok: false,
        })
        .unwrap();
        assert_eq!(p.fds.len(), 1);
        poke(&w);
        assert!(
            wait_collect(&mut p, Some(NOW)).is_empty(),
            "the old notifier is gone"
        );
        testutil::wake_reported(&mut p, &rd2, &w2, false);
        assert!(p.watch_wake(WakeSource::KqueueUser { ident: 1 }).is_err());
    }

    #[test]
    fn signals_reported() {
        let mut p = PollPoller::new();
        let (a, _b) = socketpair();
        // A user entry first: the signal pipe's entry must go in front of it.
        p.update(src(&a), Interest::NONE, Interest::WRITE).unwrap();
        let (rd, w) = wake_fd();
        p.watch_wake(WakeSource::Fd {
            fd: rd.as_raw_fd(),
            edge_ok: false,
        })
        .unwrap();
        p.update(src(&a), Interest::WRITE, Interest::NONE).unwrap();
        testutil::signals_reported(&mut p, testutil::test_signal(1), &rd, &w);
        assert_eq!(p.internal, 2);
    }
}
