//! Notifiers: how another thread wakes a loop that sleeps in its poller.

#[cfg(any(target_os = "linux", target_os = "android"))]
mod eventfd;
#[cfg(any(
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "dragonfly"
))]
pub(crate) mod kqueue_user;
mod pipe;
mod socketpair;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

#[cfg(any(target_os = "linux", target_os = "android"))]
use eventfd::EventFdNotifier;
#[cfg(any(
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "dragonfly"
))]
use kqueue_user::KqueueUserNotifier;
use pipe::PipeNotifier;
use socketpair::SocketPairNotifier;

use super::WakeSource;

/// The mechanism a loop's notifier uses, in libevent's order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotifierKind {
    /// A kqueue `EVFILT_USER` event on the poller's own kqueue (FreeBSD, DragonFly, macOS,
    /// iOS): no fd, nothing to drain. Only with a kqueue poller.
    KqueueUser,
    /// A Linux/Android `eventfd`: one fd; no drain when registered edge-triggered.
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
            NotifierKind::KqueueUser => cfg!(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            )),
            NotifierKind::EventFd => cfg!(any(target_os = "linux", target_os = "android")),
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
    #[cfg(any(
        target_os = "freebsd",
        target_os = "macos",
        target_os = "ios",
        target_os = "dragonfly"
    ))]
    KqueueUser(KqueueUserNotifier),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    EventFd(EventFdNotifier),
    Pipe(PipeNotifier),
    SocketPair(SocketPairNotifier),
}

/// Calls the same method on whichever notifier `$inner` holds.
macro_rules! each {
    ($inner:expr, $n:ident => $e:expr) => {
        match $inner {
            #[cfg(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            ))]
            Inner::KqueueUser($n) => $e,
            #[cfg(any(target_os = "linux", target_os = "android"))]
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
            #[cfg(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            ))]
            NotifierKind::KqueueUser => Inner::KqueueUser(KqueueUserNotifier::new(need_kq(kq)?)?),
            #[cfg(any(target_os = "linux", target_os = "android"))]
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
            #[cfg(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            ))]
            Inner::KqueueUser(_) => NotifierKind::KqueueUser,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(_) => NotifierKind::EventFd,
            Inner::Pipe(_) => NotifierKind::Pipe,
            Inner::SocketPair(_) => NotifierKind::SocketPair,
        }
    }

    /// Whether `fd` is one of this notifier's fds (the base refuses them as user sources).
    pub(crate) fn owns_fd(&self, fd: RawFd) -> bool {
        match &self.inner {
            #[cfg(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            ))]
            Inner::KqueueUser(_) => false, // no fd: an event on the poller's kqueue
            #[cfg(any(target_os = "linux", target_os = "android"))]
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
            #[cfg(any(
                target_os = "freebsd",
                target_os = "macos",
                target_os = "ios",
                target_os = "dragonfly"
            ))]
            Inner::KqueueUser(n) => n.reinit(need_kq(kq)?),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Inner::EventFd(n) => n.reinit(),
            Inner::Pipe(n) => n.reinit(),
            Inner::SocketPair(n) => n.reinit(),
        }
    }
}

/// `kq`, or `EINVAL`: a kqueue user event needs the poller's kqueue.
#[cfg(any(
    target_os = "freebsd",
    target_os = "macos",
    target_os = "ios",
    target_os = "dragonfly"
))]
fn need_kq(kq: Option<RawFd>) -> io::Result<RawFd> {
    kq.ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

impl rouse_core::Notify for Notifier {
    fn notify(&self) -> Result<(), i32> {
        Notifier::notify(self).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
    }

    fn consume(&self) {
        if self.drain.load(Relaxed) {
            self.drain_now();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// The tests every byte-stream notifier (pipe, socketpair) passes alike.
    macro_rules! byte_stream_notifier_tests {
        ($N:ty) => {
            use crate::sys::notify::tests::{assert_nonblock_cloexec, readable};
            use crate::sys::{fd, syscall, WakeSource};

            #[test]
            fn notify_then_drain() {
                let n = <$N>::new().unwrap();
                assert!(!readable(n.read_fd()));
                for _ in 0..1000 {
                    n.notify().unwrap();
                }
                assert!(readable(n.read_fd()));
                n.drain();
                assert!(!readable(n.read_fd()));
                let edge_ok = false;
                assert_eq!(
                    n.wake_source(),
                    WakeSource::Fd {
                        fd: n.read_fd(),
                        edge_ok
                    }
                );
            }

            #[test]
            fn a_full_buffer_is_success() {
                let n = <$N>::new().unwrap();
                // Far more than any buffer (64 KiB on Linux): later writes hit EAGAIN.
                for _ in 0..100_000 {
                    n.notify().unwrap();
                }
                assert!(readable(n.read_fd()));
                n.drain();
                assert!(!readable(n.read_fd()));
                n.notify().unwrap();
                assert!(readable(n.read_fd()));
            }

            #[test]
            fn flags_and_reinit() {
                let n = <$N>::new().unwrap();
                assert_nonblock_cloexec(n.read_fd());
                assert_nonblock_cloexec(n.write_fd());
                n.notify().unwrap();
                let (r, w) = (n.read_fd(), n.write_fd());
                let keep = syscall!(dup(r)).unwrap(); // keeps the old numbers apart from the new
                n.reinit().unwrap();
                assert_ne!(n.read_fd(), r);
                assert_ne!(n.write_fd(), w);
                assert_nonblock_cloexec(n.read_fd());
                assert_nonblock_cloexec(n.write_fd());
                assert!(!readable(n.read_fd()), "the new one starts empty");
                n.notify().unwrap();
                assert!(readable(n.read_fd()));
                fd::close(keep);
            }
        };
    }
    pub(crate) use byte_stream_notifier_tests;

    use super::*;
    use crate::sys::{fd, syscall};
    use rouse_core::Notify as _;

    /// Whether `fd` is readable now (`poll(2)`, zero timeout).
    pub(crate) fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // `p` is one live pollfd.
        syscall!(poll(&mut p, 1, 0)).unwrap() == 1
    }

    pub(crate) fn assert_nonblock_cloexec(fd: RawFd) {
        let fl = syscall!(fcntl(fd, libc::F_GETFL)).unwrap();
        assert_ne!(fl & libc::O_NONBLOCK, 0, "fd {fd} blocks");
        let fdfl = syscall!(fcntl(fd, libc::F_GETFD)).unwrap();
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0, "fd {fd} not close-on-exec");
    }

    /// The kind `new(None, None)` picks on this build.
    fn default_kind() -> NotifierKind {
        if cfg!(any(target_os = "linux", target_os = "android")) {
            NotifierKind::EventFd
        } else {
            NotifierKind::Pipe
        }
    }

    fn watched_fd(n: &Notifier) -> RawFd {
        match n.wake_source() {
            WakeSource::Fd { fd, .. } => fd,
            WakeSource::KqueueUser { .. } => panic!("not an fd notifier"),
        }
    }

    #[test]
    fn kind_names() {
        for kind in DEFAULT_ORDER {
            assert_eq!(NotifierKind::from_name(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(NotifierKind::from_name("kqueue"), None);
        assert!(NotifierKind::Pipe.available() && NotifierKind::SocketPair.available());
        let linux = cfg!(any(target_os = "linux", target_os = "android"));
        assert_eq!(NotifierKind::EventFd.available(), linux);
        let bsd = cfg!(any(
            target_os = "freebsd",
            target_os = "macos",
            target_os = "ios",
            target_os = "dragonfly"
        ));
        assert_eq!(NotifierKind::KqueueUser.available(), bsd);
    }

    #[test]
    fn default_and_forced_kinds() {
        assert_eq!(Notifier::new(None, None).unwrap().kind(), default_kind());
        for kind in [NotifierKind::Pipe, NotifierKind::SocketPair] {
            let n = Notifier::new(Some(kind), None).unwrap();
            assert_eq!(n.kind(), kind);
            assert!(matches!(
                n.wake_source(),
                WakeSource::Fd { edge_ok: false, .. }
            ));
        }
        // KqueueUser needs the poller's kqueue, or is not available at all.
        assert!(Notifier::new(Some(NotifierKind::KqueueUser), None).is_err());
        if !NotifierKind::EventFd.available() {
            let e = Notifier::new(Some(NotifierKind::EventFd), None).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        }
    }

    #[test]
    fn notify_consume_and_reinit_every_fd_kind() {
        for kind in DEFAULT_ORDER
            .into_iter()
            .filter(|&k| k != NotifierKind::KqueueUser)
        {
            let Ok(n) = Notifier::new(Some(kind), None) else {
                assert!(!kind.available());
                continue;
            };
            let fd = watched_fd(&n);
            assert_nonblock_cloexec(fd);
            assert!(!readable(fd));
            for _ in 0..100 {
                assert_eq!(rouse_core::Notify::notify(&n), Ok(()));
            }
            assert!(readable(fd), "{kind}");
            n.consume();
            assert!(!readable(fd), "{kind}: level-triggered consume drains");

            let keep = syscall!(dup(fd)).unwrap(); // keeps the old number from being reused
            n.reinit(None).unwrap();
            let new = watched_fd(&n);
            assert_ne!(new, fd);
            assert_nonblock_cloexec(new);
            n.notify().unwrap();
            assert!(readable(new), "{kind} after reinit");
            n.consume();
            assert!(!readable(new));
            fd::close(keep);
        }
    }

    #[test]
    fn consume_follows_the_registration_mode() {
        let pipe = Notifier::new(Some(NotifierKind::Pipe), None).unwrap();
        pipe.set_edge(true);
        pipe.notify().unwrap();
        pipe.consume();
        assert!(
            !readable(watched_fd(&pipe)),
            "a pipe is drained even when edge-triggered"
        );

        if NotifierKind::EventFd.available() {
            let efd = Notifier::new(Some(NotifierKind::EventFd), None).unwrap();
            let fd = watched_fd(&efd);
            efd.set_edge(true);
            efd.notify().unwrap();
            efd.consume();
            assert!(readable(fd), "edge-triggered eventfd: no drain");
            efd.set_edge(false); // e.g. a poll(2) poller: no edges, must drain
            efd.consume();
            assert!(!readable(fd));
        }
    }

    /// A fake `create` for `first_of`: fails the kinds in `fail` with their errno, records
    /// what was tried.
    fn scripted<'a>(
        fail: &'a [(NotifierKind, i32)],
        tried: &'a mut Vec<NotifierKind>,
    ) -> impl FnMut(NotifierKind, Option<RawFd>) -> io::Result<Notifier> + 'a {
        move |kind, _| {
            tried.push(kind);
            match fail.iter().find(|(k, _)| *k == kind) {
                Some(&(_, errno)) => Err(io::Error::from_raw_os_error(errno)),
                None => Notifier::create(kind, None),
            }
        }
    }

    #[test]
    fn fallback_chain() {
        use NotifierKind::*;
        let order = [KqueueUser, EventFd, Pipe, SocketPair];
        let fd_kinds: Vec<_> = order[1..]
            .iter()
            .copied()
            .filter(|k| k.available())
            .collect();

        // EMFILE, ENFILE and ENOSYS move on; KqueueUser is never tried without a kqueue.
        for errno in [libc::EMFILE, libc::ENFILE, libc::ENOSYS] {
            let mut tried = Vec::new();
            let fail = [(fd_kinds[0], errno)];
            let n = Notifier::first_of(&order, None, scripted(&fail, &mut tried)).unwrap();
            assert_eq!(n.kind(), fd_kinds[1]);
            assert_eq!(tried, fd_kinds[..2]);
        }
        // Any other error is returned at once.
        let mut tried = Vec::new();
        let fail = [(fd_kinds[0], libc::EACCES)];
        let e = Notifier::first_of(&order, None, scripted(&fail, &mut tried)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EACCES));
        assert_eq!(tried, fd_kinds[..1]);
        // Everything failing returns the last error.
        let mut tried = Vec::new();
        let fail: Vec<_> = fd_kinds.iter().map(|&k| (k, libc::EMFILE)).collect();
        let e = Notifier::first_of(&order, None, scripted(&fail, &mut tried)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        assert_eq!(tried, fd_kinds);
    }

    const CHILD_ENV: &str = "ROUSE_NOTIFY_EMFILE_CHILD";

    /// Runs [`emfile_child`] in a process of its own, whose fd limit it may lower.
    #[test]
    fn emfile_falls_back_in_a_child_process() {
        let name = "sys::notify::tests::emfile_child";
        let exe = std::env::current_exe().unwrap();
        // Under an emulator, the child runs under it too (as in tests/util's `self_command`).
        let runner = std::env::var("ROUSE_TEST_RUNNER").unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut child = match words.next() {
            Some(program) => {
                let mut c = std::process::Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        };
        let out = child
            .args([
                name,
                "--exact",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{report}");
        assert!(stdout.contains(&format!("test {name} ... ok")), "{report}");
    }

    #[test]
    #[ignore = "run in its own process by emfile_falls_back_in_a_child_process"]
    fn emfile_child() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        // Leave exactly one free fd number below the limit: the lowest free one.
        let devnull = c"/dev/null";
        let lowest = syscall!(open(devnull.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)).unwrap();
        fd::close(lowest);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // `lim` is a live rlimit.
        syscall!(getrlimit(libc::RLIMIT_NOFILE, &mut lim)).unwrap();
        let low = libc::rlimit {
            rlim_cur: lowest as libc::rlim_t + 1,
            rlim_max: lim.rlim_max,
        };
        syscall!(setrlimit(libc::RLIMIT_NOFILE, &low)).unwrap();

        // A pipe needs two fds: EMFILE, and the chain moves on.
        let order = [
            NotifierKind::Pipe,
            NotifierKind::EventFd,
            NotifierKind::SocketPair,
        ];
        let r = Notifier::first_of(&order, None, Notifier::create);
        if NotifierKind::EventFd.available() {
            assert_eq!(r.unwrap().kind(), NotifierKind::EventFd, "one fd suffices");
            assert_eq!(
                Notifier::new(None, None).unwrap().kind(),
                NotifierKind::EventFd
            );
        } else {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EMFILE));
        }
        // A forced kind does not fall back.
        let e = Notifier::new(Some(NotifierKind::Pipe), None).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        // No fd left at all: every kind fails, the error says why.
        let last = syscall!(open(devnull.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)).unwrap();
        let e = Notifier::first_of(&DEFAULT_ORDER, None, Notifier::create).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        fd::close(last);

        syscall!(setrlimit(libc::RLIMIT_NOFILE, &lim)).unwrap();
    }
}
