#![cfg(not(miri))]
//! `fork()`: the child re-inits its base and is woken by a thread it starts; the parent is
//! unaffected; a child forked while the parent's loop runs (with a notification in flight)
//! takes the base over (more in `std_fork_takeover.rs`).
//!
//! One `#[test]` only: forking a multi-threaded test process is safe only while no other test
//! thread runs.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rouse_core::{Exit, Interest, Key, Ready, RunFlags};
use rouse_std::{Base, EventsExt};
use util::{all_kinds, base_of, default_base, drain, pair, wait_blocked, wait_until, write_byte};

/// What a child's exit code means.
fn meaning(code: i32) -> &'static str {
    match code {
        0 => "ok",
        10 => "reinit_after_fork failed",
        11 => "writing to the inherited socket failed",
        12 => "run_once on the inherited fd event did not return Done",
        13 => "the inherited fd event did not run exactly once",
        14 => "the run woken by the child's thread did not return Break",
        15 => "the user event did not run exactly once",
        16 => "the child's thread panicked",
        17 => "the child's thread failed to activate",
        18 => "no notification was written in the child",
        20 => "reinit_after_fork with the parent's loop running failed",
        21 => "after that reinit, a run failed",
        22 => "after that reinit, the child's thread did not wake the child's loop",
        99 => "the child panicked",
        _ => "unknown",
    }
}

/// Waits for `pid` to exit (at most `util::BOUND`, else kills it) and returns its exit code.
fn wait_child(pid: libc::pid_t, what: &str) -> i32 {
    let deadline = Instant::now() + util::BOUND;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live c_int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status),
                "{what}: the child did not exit normally (status {status:#x})"
            );
            return libc::WEXITSTATUS(status);
        }
        if r == -1 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{what}: waitpid: {e}");
        }
        if Instant::now() > deadline {
            // SAFETY: plain syscalls on our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what}: the child did not exit within {:?}", util::BOUND);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Forks; the child runs `child` and `_exit`s with its code (99 if it panics), never
/// returning. Returns the child's pid in the parent.
fn fork(child: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the caller runs no other thread that could hold a lock the child needs, except
    // where the test documents it (the in-flight case, whose other thread is the loop thread,
    // blocked in its poller: it holds neither the base lock nor the poller slot's).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: ends the child at once: no destructors, no atexit, no test harness.
        unsafe { libc::_exit(code) };
    }
    pid
}

struct Counters {
    user: Arc<AtomicU64>,
    fd: Arc<AtomicU64>,
}

/// A base with a persistent user event (it breaks the loop) and a persistent fd event on `a`
/// (it reads what arrived), both registered with the poller before the fork.
fn parent_base(
    base: &Base,
    a: &Arc<std::os::unix::net::UnixStream>,
) -> io::Result<(Key, Counters)> {
    let c = Counters {
        user: Arc::default(),
        fd: Arc::default(),
    };
    let u = c.user.clone();
    let user = base.add_user(move |events, _| {
        u.fetch_add(1, SeqCst);
        events.loop_break().unwrap();
    })?;
    let (f, sock) = (c.fd.clone(), a.clone());
    base.add_fd(&**a, Interest::READ, move |_, fired| {
        assert!(fired.ready.contains(Ready::READ));
        assert_eq!(drain(&sock).unwrap(), 1);
        f.fetch_add(1, SeqCst);
    })?;
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done); // registers both
    Ok((user, c))
}

/// The child of the first case: re-init, its inherited fd event works, its own thread wakes it.
fn child(base: &Base, b: &std::os::unix::net::UnixStream, user: Key, c: &Counters) -> i32 {
    if base.reinit_after_fork().is_err() {
        return 10;
    }
    if write_byte(b).is_err() {
        return 11;
    }
    if !matches!(base.run_once(), Ok(Exit::Done)) {
        return 12;
    }
    if c.fd.load(SeqCst) != 1 {
        return 13;
    }
    let h = base.handle();
    let before = base.wake_stats().blocking_polls;
    let t = thread::spawn(move || {
        wait_blocked(&h, before, "the child's loop");
        h.activate(user, Ready::USER)
    });
    if !matches!(base.run(), Ok(Exit::Break)) {
        return 14;
    }
    if c.user.load(SeqCst) != 1 {
        return 15;
    }
    match t.join() {
        Err(_) => return 16,
        Ok(Err(_)) => return 17,
        Ok(Ok(())) => {}
    }
    if base.wake_stats().writes == 0 {
        return 18;
    }
    0
}

#[test]
fn fork_reinit_wakes_the_child_and_leaves_the_parent_alone() -> io::Result<()> {
    // 1. A quiet fork, for every pair: the child re-inits and runs; the parent is unaffected.
    for (p, n) in all_kinds() {
        let what = format!("{p} + {n}");
        let base = base_of(p, n)?;
        let (a, b) = pair()?;
        let a = Arc::new(a);
        let (user, c) = parent_base(&base, &a)?;

        let pid = fork(|| child(&base, &b, user, &c));
        let code = wait_child(pid, &what);
        assert_eq!(code, 0, "{what}: child: {}", meaning(code));

        // The child's counters were its own; nothing ran here.
        assert_eq!((c.user.load(SeqCst), c.fd.load(SeqCst)), (0, 0), "{what}");
        // Nothing the child did reaches this loop: a wait for a timer alone is one wait, with no
        // notification to consume and no byte left on the shared socket.
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        base.add_timer(Duration::from_millis(20), move |_, _| {
            t.fetch_add(1, SeqCst);
        })?;
        let polls = base.wake_stats().blocking_polls;
        assert_eq!(base.run_once()?, Exit::Done, "{what}");
        assert_eq!(ticks.load(SeqCst), 1, "{what}");
        assert_eq!((c.user.load(SeqCst), c.fd.load(SeqCst)), (0, 0), "{what}");
        assert_eq!(
            base.wake_stats().blocking_polls,
            polls + 1,
            "{what}: the parent's loop was woken by something of the child's"
        );
        // Its own thread still wakes it.
        let h = base.handle();
        let before = base.wake_stats().blocking_polls;
        let waker = thread::spawn(move || {
            wait_blocked(&h, before, "the parent's loop");
            h.activate(user, Ready::USER)
        });
        assert_eq!(base.run()?, Exit::Break, "{what}");
        waker.join().expect("waker")?;
        assert_eq!(c.user.load(SeqCst), 1, "{what}");
        // And its fd event still works.
        write_byte(&b)?;
        assert_eq!(base.run_once()?, Exit::Done, "{what}");
        assert_eq!(c.fd.load(SeqCst), 1, "{what}");
    }

    // 2. A notification in flight at fork: the parent's loop thread is blocked, the main thread
    //    activates (a write), and forks at once. In the child that loop thread does not exist:
    //    the child takes over, and its own thread wakes it (the parent's notification is not
    //    left pending in the child).
    let base = default_base()?;
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let tick = base.add_user(move |_, _| {
        t.fetch_add(1, SeqCst);
    })?;
    thread::scope(|s| -> io::Result<()> {
        let before = base.wake_stats().blocking_polls;
        let looper = s.spawn(|| base.run_forever());
        wait_blocked(&base, before, "the parent's loop thread");
        let writes = base.wake_stats().writes;
        base.activate(tick, Ready::USER)?;
        let pid = fork(|| {
            if base.reinit_after_fork().is_err() {
                return 20;
            }
            // Whatever was active at fork runs now; then the child's thread must wake it.
            if base.run_with(RunFlags::ONCE_NONBLOCK).is_err() {
                return 21;
            }
            let seen = ticks.load(SeqCst);
            let h = base.handle();
            let before = base.wake_stats().blocking_polls;
            let t = thread::spawn(move || {
                wait_blocked(&h, before, "the child's loop");
                h.activate(tick, Ready::USER)
            });
            if !matches!(base.run_once(), Ok(Exit::Done)) {
                return 21;
            }
            if !matches!(t.join(), Ok(Ok(()))) || ticks.load(SeqCst) != seen + 1 {
                return 22;
            }
            0
        });
        let code = wait_child(pid, "in-flight notification");
        if code != 0 {
            // Let the scope end: it joins the loop thread.
            base.loop_break()?;
        }
        assert_eq!(code, 0, "in-flight notification: child: {}", meaning(code));
        assert_eq!(
            base.wake_stats().writes,
            writes + 1,
            "a notification was written"
        );
        // The parent's loop got it, and stops when asked.
        wait_until(util::BOUND, "the parent's loop runs the activation", || {
            ticks.load(SeqCst) == 1
        });
        base.loop_break()?;
        wait_until(util::BOUND, "the parent's loop thread returns", || {
            looper.is_finished()
        });
        assert_eq!(looper.join().expect("loop thread")?, Exit::Break);
        Ok(())
    })?;
    // Usable afterwards, on this thread.
    base.activate(tick, Ready::USER)?;
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(ticks.load(SeqCst), 2);
    Ok(())
}
