//! The notifiers' tests: every fd kind, the fallback chain, EMFILE in a child process, and
//! the shared tests of the byte-stream notifiers.

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
    if cfg!(rouse_epoll) {
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
    let linux = cfg!(rouse_epoll);
    assert_eq!(NotifierKind::EventFd.available(), linux);
    let bsd = cfg!(rouse_kqueue);
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
