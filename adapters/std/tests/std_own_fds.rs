//! The base's own fds (notifier, epoll/kqueue fd, signal pipe) are refused as event sources
//! with `EINVAL`, on every path, for every flavor, while the loop runs too; registering one
//! and deleting it would have disabled wakeups for good. (One test in its own binary: it
//! counts the process's fds, which other tests would change meanwhile.)

mod util;

use std::io;
use std::os::fd::RawFd;

use rouse_core::{Event, Exit, Interest, Ready};
use rouse_std::{raw_source, Base, BaseRef, Builder, Flavor, NotifierKind, PollerKind};
use util::{open_fds, BOUND};

/// The fds that appeared since `before`.
fn new_fds(before: &[RawFd]) -> Vec<RawFd> {
    open_fds()
        .unwrap()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect()
}

/// Every path refuses `fd` with `EINVAL`, and nothing is left behind.
#[track_caller]
fn refused<F: Flavor>(events: BaseRef<'_, F>, fd: RawFd, what: &str) {
    let counts = events.counts();
    let src = raw_source(fd).unwrap();
    let paths: [(&str, io::Result<rouse_core::Key>); 3] = [
        (
            "event",
            events.event(Event::io(src, Interest::READ), |_, _| {}),
        ),
        (
            "add_event",
            events.add_event(Event::io(src, Interest::WRITE).persist(), None, |_, _| {}),
        ),
        (
            "add_fd",
            // SAFETY: `fd` is open for the whole call (the base owns it); borrowed only.
            events.add_fd(
                &unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                Interest::READ,
                |_, _| {},
            ),
        ),
    ];
    for (path, r) in paths {
        let e = r.expect_err(&format!("{what}: fd {fd} through {path} was accepted"));
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{what}: {path}: {e}");
    }
    assert_eq!(events.counts(), counts, "{what}: nothing left behind");
}

/// Builds a base, finds its fds, refuses each; then makes the signal pipe and refuses its fds,
/// from the owner and from a running loop's callback; the base still wakes from a signal.
fn check<F: Flavor>(build: impl Fn() -> io::Result<Base<F>>, what: &str) {
    let before = open_fds().unwrap();
    let base = build().unwrap();
    let own = new_fds(&before);
    // Only a local base on poll(2) has no fd of its own (no notifier, no kernel object).
    assert!(
        !own.is_empty() || what == "local poll",
        "{what}: the base made no fd?"
    );
    for &fd in &own {
        refused(base.base_ref(), fd, what);
    }
    // The signal pipe, made on the first signal event.
    let before = open_fds().unwrap();
    let sig = base.add_signal(libc::SIGURG, |_, _| {}).unwrap();
    let pipe = new_fds(&before);
    assert_eq!(pipe.len(), 2, "{what}: the signal pipe");
    for &fd in own.iter().chain(&pipe) {
        refused(base.base_ref(), fd, &format!("{what} (with signals)"));
    }
    // From a callback, while the loop runs (and holds the poller).
    let all: Vec<RawFd> = own.iter().chain(&pipe).copied().collect();
    let user = base
        .add_user(move |cx, _| {
            for &fd in &all {
                refused(cx.base_ref(), fd, "from a callback");
            }
            cx.loop_break().unwrap();
        })
        .unwrap();
    base.activate(user, Ready::USER).unwrap();
    assert_eq!(base.run().unwrap(), Exit::Break);
    base.free(sig).unwrap();
    base.free(user).unwrap();
}

#[test]
fn the_bases_own_fds_are_refused() {
    let _ = BOUND;
    for &p in PollerKind::available() {
        for n in [NotifierKind::Pipe, NotifierKind::SocketPair] {
            let what = format!("{p} + {n}");
            check(
                || Builder::new().ignore_env().poller(p).notifier(n).build(),
                &what,
            );
        }
        check(|| Builder::new().ignore_env().poller(p).build(), p.name());
        check(
            || Builder::new().ignore_env().poller(p).build_local(),
            &format!("local {p}"),
        );
    }
    // A signal pipe made by a running loop (the signal event added from a callback) is
    // refused at once, not only after the run.
    let base = Builder::new().ignore_env().build_local().unwrap();
    let before = open_fds().unwrap();
    let before2 = before.clone();
    base.add_timer(std::time::Duration::ZERO, move |cx, _| {
        cx.add_signal(libc::SIGURG, |_, _| {}).unwrap();
        cx.add_timer(std::time::Duration::ZERO, {
            let before = before2.clone();
            move |cx, _| {
                let pipe = new_fds(&before);
                assert_eq!(pipe.len(), 2, "the signal pipe, made by the running loop");
                for fd in pipe {
                    refused(cx.base_ref(), fd, "a pipe the running loop made");
                }
                cx.loop_break().unwrap();
            }
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(base.run_forever().unwrap(), Exit::Break);
    drop(before);
}
