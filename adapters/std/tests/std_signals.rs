#![cfg(not(miri))]
//! Signal events: delivery, several events per signal, the previous disposition restored,
//! uncatchable signals refused, a signal from another thread waking a blocked loop.
//!
//! Dispositions are process-wide: every test holds [`serial`]'s lock, and only this file (one
//! process) raises SIGUSR1 and SIGUSR2.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;

use rouse_core::{Exit, Fired, Ready, RunFlags};
use util::{default_base, raise, restore, run_in_thread, signals_serial, wait_blocked};

/// The handler currently installed for `sig`.
fn current_handler(sig: libc::c_int) -> libc::sighandler_t {
    util::disposition(sig).sa_sigaction
}

fn install_plain(sig: libc::c_int, handler: libc::sighandler_t) -> libc::sigaction {
    util::install(sig, handler, false)
}

extern "C" fn test_handler(_: libc::c_int) {}

fn test_handler_addr() -> libc::sighandler_t {
    test_handler as extern "C" fn(libc::c_int) as libc::sighandler_t
}

fn counter() -> (Arc<AtomicU64>, impl Fn() -> u64) {
    let c = Arc::new(AtomicU64::new(0));
    let r = c.clone();
    (c, move || r.load(SeqCst))
}

#[test]
fn a_raised_signal_runs_its_event() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    let (n, count) = counter();
    let key = base.add_signal(libc::SIGUSR1, move |events, f: Fired| {
        assert_eq!(f.ready, Ready::SIGNAL);
        if n.fetch_add(1, SeqCst) == 0 {
            events.loop_break().unwrap();
        }
    })?;
    // The handler is installed by add_signal itself: raising now is caught.
    raise(libc::SIGUSR1);
    assert_eq!(base.run()?, Exit::Break);
    assert_eq!(count(), 1);
    // Two deliveries before the loop looks make one run: the callback is told the signal
    // arrived, not how often.
    raise(libc::SIGUSR1);
    raise(libc::SIGUSR1);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(count(), 2);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(count(), 2, "nothing left over");
    base.free(key)?;
    Ok(())
}

#[test]
fn every_event_of_a_signal_runs() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    let (n, count) = counter();
    for _ in 0..3 {
        let n = n.clone();
        base.add_signal(libc::SIGUSR2, move |_, f: Fired| {
            assert_eq!(f.ready, Ready::SIGNAL);
            n.fetch_add(1, SeqCst);
        })?;
    }
    // And one on another base: every base watching the signal hears it.
    let other = default_base()?;
    let (m, other_count) = counter();
    other.add_signal(libc::SIGUSR2, move |_, _| {
        m.fetch_add(1, SeqCst);
    })?;
    raise(libc::SIGUSR2);
    base.run_with(RunFlags::ONCE_NONBLOCK)?;
    assert_eq!(count(), 3);
    other.run_with(RunFlags::ONCE_NONBLOCK)?;
    assert_eq!(other_count(), 1);
    Ok(())
}

#[test]
fn removing_the_last_event_restores_the_previous_disposition() -> io::Result<()> {
    let _serial = signals_serial();
    let sig = libc::SIGUSR1;
    let saved = install_plain(sig, test_handler_addr());
    let base = default_base()?;
    let a = base.add_signal(sig, |_, _| {})?;
    let b = base.add_signal(sig, |_, _| {})?;
    let other = default_base()?;
    let c = other.add_signal(sig, |_, _| {})?;
    let ours = current_handler(sig);
    assert_ne!(ours, test_handler_addr(), "the base installed its handler");
    assert_ne!(ours, libc::SIG_DFL);

    base.delete(a)?;
    base.run_with(RunFlags::ONCE_NONBLOCK)?; // applies the change
    assert_eq!(current_handler(sig), ours, "b and c still watch it");
    base.free(b)?;
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Empty);
    assert_eq!(current_handler(sig), ours, "c still watches it");
    // The last one, through dropping its base.
    drop(other);
    let _ = c;
    assert_eq!(current_handler(sig), test_handler_addr(), "restored");
    // Raised now, only the test's handler runs: the base hears nothing.
    raise(sig);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Empty);

    // Added again: installed again, and restored again.
    let d = base.add_signal(sig, |_, _| {})?;
    assert_eq!(current_handler(sig), ours);
    base.delete(d)?;
    base.run_with(RunFlags::ONCE_NONBLOCK)?;
    assert_eq!(current_handler(sig), test_handler_addr());
    restore(sig, &saved);
    Ok(())
}

#[test]
fn uncatchable_signals_are_refused() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    for sig in [libc::SIGKILL, libc::SIGSTOP, 0, -1, 1000] {
        let e = base.add_signal(sig, |_, _| {}).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "signal {sig}: {e}");
    }
    assert_eq!(base.counts().events, 0, "nothing left behind");
    Ok(())
}

#[test]
fn a_signal_from_another_thread_wakes_the_blocked_loop() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    let (n, count) = counter();
    base.add_signal(libc::SIGUSR2, move |events, _| {
        n.fetch_add(1, SeqCst);
        events.loop_break().unwrap();
    })?;
    let before = base.wake_stats().blocking_polls;
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "signal from another thread");
    let h = lt.handle().clone();
    wait_blocked(&h, before, "waiting for SIGUSR2");
    thread::spawn(|| raise(libc::SIGUSR2))
        .join()
        .expect("raising thread");
    lt.expect_exit(Exit::Break);
    assert_eq!(count(), 1);
    // No notifier write: the signal pipe itself woke the loop.
    assert_eq!(h.wake_stats().writes, 0);
    Ok(())
}
