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
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rouse_core::{Exit, Interest, Key, Ready, RunFlags};
use rouse_std::Base;
use util::{
    all_kinds, base_of, default_base, drain, fork_child as fork, pair, wait_blocked, wait_child,
    wait_until, write_byte,
};

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
        23 => "after that reinit, the activation made before the fork did not run",
        99 => "the child panicked",
        _ => "unknown",
    }
}

/// The loop thread of case 2, for `pthread_kill`.
static LOOP_THREAD: AtomicUsize = AtomicUsize::new(0);
/// The read end [`park_handler`] blocks on, and whether it is blocked there.
static PARK_FD: AtomicI32 = AtomicI32::new(-1);
static PARKED: AtomicBool = AtomicBool::new(false);

fn pthread_self() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

/// Blocks the thread it runs on until a byte arrives on [`PARK_FD`]: async-signal-safe
/// (atomics and `read(2)`).
extern "C" fn park_handler(_: libc::c_int) {
    PARKED.store(true, SeqCst);
    let mut b = 0u8;
    loop {
        // SAFETY: `b` is a live one-byte buffer; PARK_FD is the open read end of Park's pipe.
        let n = unsafe { libc::read(PARK_FD.load(SeqCst), std::ptr::from_mut(&mut b).cast(), 1) };
        if n != -1 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    PARKED.store(false, SeqCst);
}

/// Parks a thread inside a signal handler (`SIGURG`) until released: it then holds no lock
/// and runs nothing until [`release`](Park::release).
struct Park {
    read: libc::c_int,
    write: libc::c_int,
    saved: libc::sigaction,
}

impl Park {
    fn new() -> io::Result<Park> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is a live array of two fds.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } == -1 {
            return Err(io::Error::last_os_error());
        }
        PARK_FD.store(fds[0], SeqCst);
        // SAFETY: all-zero bytes are a valid sigaction (SIG_DFL, empty mask, no flags).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = park_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: as above.
        let mut saved: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `act` and `saved` are live sigactions; the handler is async-signal-safe.
        if unsafe { libc::sigaction(libc::SIGURG, &act, &mut saved) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(Park {
            read: fds[0],
            write: fds[1],
            saved,
        })
    }

    /// Parks `thread` and waits until it is parked.
    fn park(&self, thread: usize) {
        // SAFETY: `thread` is a live thread of this process (the loop thread, which runs until
        // the scope ends); SIGURG runs `park_handler` on it.
        let r = unsafe { libc::pthread_kill(thread as libc::pthread_t, libc::SIGURG) };
        assert_eq!(r, 0, "pthread_kill");
        wait_until(util::BOUND, "the loop thread is parked", || {
            PARKED.load(SeqCst)
        });
    }

    /// Lets a parked thread go on (idempotent: the byte stays for a later park otherwise).
    fn release(&self) {
        if PARKED.load(SeqCst) {
            // SAFETY: a one-byte buffer to the open write end.
            let n = unsafe { libc::write(self.write, b"x".as_ptr().cast(), 1) };
            assert_eq!(n, 1, "release: {}", io::Error::last_os_error());
            wait_until(util::BOUND, "the loop thread is released", || {
                !PARKED.load(SeqCst)
            });
        }
    }
}

impl Drop for Park {
    fn drop(&mut self) {
        self.release();
        // SAFETY: `saved` was returned by the kernel for SIGURG; the fds are ours.
        unsafe {
            libc::sigaction(libc::SIGURG, &self.saved, std::ptr::null_mut());
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Releases the parked loop thread and breaks its loop when dropped: armed while a scope's
/// loop thread runs, so that a failed assertion ends the loop (and the scope can join it)
/// instead of hanging.
struct BreakOnUnwind<'a>(&'a Base, &'a Park);

impl Drop for BreakOnUnwind<'_> {
    fn drop(&mut self) {
        self.1.release();
        let _ = self.0.loop_break();
    }
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

    // 2. A notification in flight at fork: the parent's loop thread is blocked in its poller
    //    and parked there by a signal handler (so it can neither consume the notification nor
    //    take a lock); the main thread activates (a write) and forks. In the child that loop
    //    thread does not exist: the child takes over, runs the activation it inherited, and
    //    its own thread wakes it (the parent's notification is not left pending in the child).
    let base = default_base()?;
    let ticks = Arc::new(AtomicU64::new(0));
    let t = ticks.clone();
    let tick = base.add_user(move |_, _| {
        t.fetch_add(1, SeqCst);
    })?;
    let park = Park::new()?;
    thread::scope(|s| -> io::Result<()> {
        let before = base.wake_stats().blocking_polls;
        let looper = s.spawn(|| {
            LOOP_THREAD.store(pthread_self(), SeqCst);
            base.run_forever()
        });
        // A failed check below must not leave the scope waiting for the loop thread.
        let stop = BreakOnUnwind(&base, &park);
        wait_blocked(&base.handle(), before, "the parent's loop thread");
        park.park(LOOP_THREAD.load(SeqCst));
        let writes = base.wake_stats().writes;
        base.activate(tick, Ready::USER)?;
        assert_eq!(
            base.wake_stats().writes,
            writes + 1,
            "a notification was written"
        );
        let pid = fork(|| {
            if base.reinit_after_fork().is_err() {
                return 20;
            }
            // The activation made before the fork runs here; then the child's thread wakes it.
            if base.run_with(RunFlags::ONCE_NONBLOCK).is_err() {
                return 21;
            }
            if ticks.load(SeqCst) != 1 {
                return 23;
            }
            let h = base.handle();
            let before = base.wake_stats().blocking_polls;
            let t = thread::spawn(move || {
                wait_blocked(&h, before, "the child's loop");
                h.activate(tick, Ready::USER)
            });
            if !matches!(base.run_once(), Ok(Exit::Done)) {
                return 21;
            }
            if !matches!(t.join(), Ok(Ok(()))) || ticks.load(SeqCst) != 2 {
                return 22;
            }
            0
        });
        let code = wait_child(pid, "in-flight notification");
        assert_eq!(code, 0, "in-flight notification: child: {}", meaning(code));
        assert_eq!(ticks.load(SeqCst), 0, "the parent's loop is still parked");
        park.release();
        // The parent's loop got it, and stops when asked.
        wait_until(util::BOUND, "the parent's loop runs the activation", || {
            ticks.load(SeqCst) == 1
        });
        base.loop_break()?;
        wait_until(util::BOUND, "the parent's loop thread returns", || {
            looper.is_finished()
        });
        assert_eq!(looper.join().expect("loop thread")?, Exit::Break);
        std::mem::forget(stop);
        Ok(())
    })?;
    drop(park);
    // Usable afterwards, on this thread.
    base.activate(tick, Ready::USER)?;
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(ticks.load(SeqCst), 2);
    Ok(())
}
