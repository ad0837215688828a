#![cfg(not(miri))]
//! A child forked while the parent's loop runs in another thread takes the base over: the loop
//! thread L is blocked in `run()`, thread W forks; in the child (where L does not exist) the
//! base re-inits, keeps every inherited event, and a thread of the child wakes the child's
//! loop within 1 s. The parent's loop is unaffected.
//!
//! One `#[test]` only: forking a multi-threaded test process is safe only while no other test
//! thread runs.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rouse_core::{Exit, Key, Ready, RunFlags};
use rouse_std::{Base, PollerKind};
use util::{
    all_kinds, base_of, fork_child as fork, open_fds, wait_blocked, wait_child, wait_until,
};

/// How fast the child's own thread must wake the child's loop.
const WAKE_BOUND: Duration = Duration::from_secs(1);

/// What a child's exit code means.
fn meaning(code: i32) -> &'static str {
    match code {
        0 => "ok",
        10 => "reinit_after_fork failed",
        11 => "reinit_after_fork leaked or closed fds it should not have",
        12 => "an inherited event was lost by the reinit",
        13 => "the inherited signal event did not run (signal pipe not taken over)",
        14 => "the run woken by the child's thread did not return Break",
        15 => "the user event did not run exactly once",
        16 => "the child's thread panicked or failed to activate",
        17 => "the child's loop was not woken within 1 s",
        18 => "a second reinit_after_fork (no new fork) was not refused with InvalidInput",
        30 => "reinit_after_fork inside the forked callback: another error than ResourceBusy",
        31 => "reinit_after_fork inside the forked callback took over the poller its run holds",
        99 => "the child panicked",
        _ => "unknown",
    }
}

fn raise(sig: libc::c_int) {
    // SAFETY: raise with a signal whose handler (rouse's) is installed.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

struct Counters {
    user: Arc<AtomicU64>,
    signal: Arc<AtomicU64>,
}

/// Breaks the loop of a base when dropped: armed while a scope's loop thread runs, so that a
/// failed assertion ends the loop (and the scope can join it) instead of hanging.
struct BreakOnUnwind<'a>(&'a Base);

impl Drop for BreakOnUnwind<'_> {
    fn drop(&mut self) {
        let _ = self.0.loop_break();
    }
}

/// The child: take over, keep every event, be woken by its own thread.
fn child(base: &Base, kind: PollerKind, user: Key, c: &Counters) -> i32 {
    let counts = base.counts();
    let Ok(fds) = open_fds() else { return 11 };
    if base.reinit_after_fork().is_err() {
        return 10;
    }
    // The inherited epoll fd, signal pipe and notifier were closed, their replacements opened
    // (plus a kqueue, which the child does not inherit).
    let extra = usize::from(kind == PollerKind::Kqueue);
    match open_fds() {
        Ok(now) if now.len() == fds.len() + extra => {}
        _ => return 11,
    }
    if base.counts() != counts {
        return 12;
    }
    // The signal pipe was taken over: a signal raised here reaches this loop.
    raise(libc::SIGUSR1);
    let deadline = Instant::now() + util::BOUND;
    while c.signal.load(SeqCst) == 0 {
        if Instant::now() > deadline || base.run_with(RunFlags::ONCE_NONBLOCK).is_err() {
            return 13;
        }
    }
    // A thread of the child wakes the blocked loop.
    let h = base.handle();
    let before = base.wake_stats().blocking_polls;
    let waker = thread::spawn(move || {
        wait_blocked(&h, before, "the child's loop");
        let at = Instant::now();
        h.activate(user, Ready::USER).map(|()| at)
    });
    // A safety net, so that a lost wake is a clear exit code rather than a hang.
    if base.loop_exit(Some(util::BOUND)).is_err() {
        return 14;
    }
    let exit = base.run();
    let woken = Instant::now();
    let Ok(Ok(activated)) = waker.join() else {
        return 16;
    };
    if !matches!(exit, Ok(Exit::Break)) {
        return 14;
    }
    if c.user.load(SeqCst) != 1 {
        return 15;
    }
    if woken.duration_since(activated) > WAKE_BOUND {
        return 17;
    }
    // And the child's base is an ordinary base now: a second reinit without a new fork is
    // refused, as in any process that made its base.
    if !matches!(base.reinit_after_fork(), Err(e) if e.kind() == io::ErrorKind::InvalidInput) {
        return 18;
    }
    0
}

#[test]
fn a_child_forked_while_the_loop_runs_in_another_thread_takes_the_base_over() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{p} + {n}");
        let base = base_of(p, n)?;
        let c = Counters {
            user: Arc::default(),
            signal: Arc::default(),
        };
        let u = c.user.clone();
        let user = base.add_user(move |events, _| {
            u.fetch_add(1, SeqCst);
            events.loop_break().unwrap();
        })?;
        let s = c.signal.clone();
        base.add_signal(libc::SIGUSR1, move |_, _| {
            s.fetch_add(1, SeqCst);
        })?;
        // A far timer: inherited too.
        base.add_timer(Duration::from_secs(3600), |_, _| {})?;

        thread::scope(|scope| -> io::Result<()> {
            let before = base.wake_stats().blocking_polls;
            let looper = scope.spawn(|| base.run_forever());
            // A failed check below must not leave the scope waiting for the loop thread.
            let stop = BreakOnUnwind(&base);
            wait_blocked(
                &base.handle(),
                before,
                &format!("{what}: the parent's loop thread"),
            );
            let pid = fork(|| child(&base, p, user, &c));
            let code = wait_child(pid, &what);
            assert_eq!(code, 0, "{what}: child: {}", meaning(code));

            // The parent's loop never noticed: nothing of the child's ran here, its signal
            // pipe still works, and its own thread still wakes it.
            assert_eq!(
                (c.user.load(SeqCst), c.signal.load(SeqCst)),
                (0, 0),
                "{what}"
            );
            raise(libc::SIGUSR1);
            wait_until(
                util::BOUND,
                &format!("{what}: the parent's signal event runs"),
                || c.signal.load(SeqCst) == 1,
            );
            base.activate(user, Ready::USER)?;
            wait_until(
                util::BOUND,
                &format!("{what}: the parent's loop returns"),
                || looper.is_finished(),
            );
            assert_eq!(looper.join().expect("loop thread")?, Exit::Break, "{what}");
            assert_eq!(c.user.load(SeqCst), 1, "{what}");
            std::mem::forget(stop);
            Ok(())
        })?;
        // The poller is back in its slot: a second run works.
        assert!(base.interest_syscalls().is_some(), "{what}");
        base.activate(user, Ready::USER)?;
        assert_eq!(base.run()?, Exit::Break, "{what}");
    }

    // A fork made inside a callback: the child's only thread is the loop thread itself, still
    // inside its run, which holds the poller. Taking over would pull the poller from under
    // that run: the child gets ResourceBusy, as the parent would.
    let base = Arc::new(util::default_base()?);
    let me: Arc<std::sync::OnceLock<std::sync::Weak<Base>>> = Arc::default();
    let code = Arc::new(AtomicU64::new(u64::MAX));
    let (c, m) = (code.clone(), me.clone());
    let user = base.add_user(move |events, _| {
        let base = m
            .get()
            .and_then(std::sync::Weak::upgrade)
            .expect("the base");
        let pid = fork(|| match base.reinit_after_fork() {
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy => 0,
            Err(_) => 30,
            Ok(()) => 31,
        });
        c.store(wait_child(pid, "fork in a callback") as u64, SeqCst);
        events.loop_break().unwrap();
    })?;
    me.set(Arc::downgrade(&base)).expect("set once");
    base.activate(user, Ready::USER)?;
    assert_eq!(base.run()?, Exit::Break);
    let code = code.load(SeqCst) as i32;
    assert_eq!(code, 0, "fork in a callback: child: {}", meaning(code));
    Ok(())
}
