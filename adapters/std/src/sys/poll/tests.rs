//! Tests of what the backends share: kinds, timeout rounding, the event buffer.

use std::io;
use std::os::fd::AsRawFd;

use super::testutil::{self, wake_fd};
use super::{AnyPoller, PollerKind};
use crate::sys::WakeSource;

#[test]
fn kinds_are_named() {
    for k in [PollerKind::Epoll, PollerKind::Kqueue, PollerKind::Poll] {
        assert_eq!(PollerKind::from_name(k.name()), Some(k));
        assert_eq!(k.to_string(), k.name());
    }
    assert_eq!(PollerKind::from_name("select"), None);
    assert_eq!(PollerKind::available().last(), Some(&PollerKind::Poll));
    #[cfg(rouse_epoll)]
    {
        assert_eq!(
            PollerKind::available(),
            [PollerKind::Epoll, PollerKind::Poll]
        );
        assert!(!PollerKind::Kqueue.is_available());
    }
}

#[test]
fn default_and_forced() {
    let p = AnyPoller::new(None).unwrap();
    assert_eq!(p.kind(), PollerKind::available()[0]);
    assert_eq!(
        p.kqueue_fd().is_some(),
        p.kind() == PollerKind::Kqueue,
        "{p:?}"
    );
    for &k in PollerKind::available() {
        assert_eq!(AnyPoller::new(Some(k)).unwrap().kind(), k);
    }
    for k in [PollerKind::Epoll, PollerKind::Kqueue] {
        if !k.is_available() {
            let e = AnyPoller::new(Some(k)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported);
        }
    }
}

/// Each available kind through the enum: I/O, the notifier, signals, the syscall count.
#[test]
fn every_kind_works() {
    for &k in PollerKind::available() {
        let mut p = AnyPoller::new(Some(k)).unwrap();
        testutil::readable_reported(&mut p);
        testutil::delete_stops_reports(&mut p);
        let (rd, w) = wake_fd();
        let src = WakeSource::Fd {
            fd: rd.as_raw_fd(),
            edge_ok: true,
        };
        let edge = p.watch_wake(src).unwrap();
        assert_eq!(edge, k != PollerKind::Poll, "{k}");
        testutil::wake_reported(&mut p, &rd, &w, edge);
        testutil::signals_reported(&mut p, testutil::test_signal(2), &rd, &w);
        if k == PollerKind::Poll {
            assert_eq!(p.syscalls(), 0);
        } else {
            assert!(p.syscalls() >= 6, "{k}: {}", p.syscalls());
        }
    }
}

/// After `reinit_after_fork`, I/O registrations and the notifier are forgotten (the base
/// and the caller make them again), signals still arrive.
#[test]
fn reinit_after_fork_starts_over() {
    use rouse_core::{Interest, Poller, Readiness, Ready};
    let sig = testutil::test_signal(3);
    for &k in PollerKind::available() {
        let mut p = AnyPoller::new(Some(k)).unwrap();
        let (rd, w) = wake_fd();
        let watch = WakeSource::Fd {
            fd: rd.as_raw_fd(),
            edge_ok: false,
        };
        p.watch_wake(watch).unwrap();
        p.watch_signal(sig, true).unwrap();
        let (a, b) = testutil::socketpair();
        p.update(testutil::src(&a), Interest::NONE, Interest::READ)
            .unwrap();
        testutil::write_byte(&b);
        testutil::poke(&w);
        p.reinit_after_fork().unwrap();
        assert!(
            testutil::wait_collect(&mut p, Some(testutil::NOW)).is_empty(),
            "{k}"
        );
        // What the base and the caller do next.
        p.update(testutil::src(&a), Interest::NONE, Interest::READ)
            .unwrap();
        p.watch_wake(watch).unwrap();
        testutil::raise(sig);
        let mut found = testutil::wait_collect(&mut p, Some(testutil::LONG));
        found.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(
            found,
            [
                Readiness::Io(testutil::src(&a), Ready::READ),
                Readiness::Signal(sig),
                Readiness::Wake
            ],
            "{k}"
        );
        p.watch_signal(sig, false).unwrap();
    }
}
