#![cfg(not(miri))]
//! The loop's rules where they differ from (or fix) libevent's, on real threads, fds, time
//! and signals: a cross-thread delete removes first and waits second; self-re-activating
//! events starve neither timers nor signals.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rouse_core::{Exit, Interest, Ready, RunFlags};
use rouse_std::Builder;
use util::{default_base, holds_for, pair, run_in_thread, wait_until, write_byte, BOUND};

/// libevent's `test_del_wait` shape: a persistent read event on a socket that stays readable,
/// whose callback takes 50 ms; another thread deletes the event 10 ms into the callback.
/// Once `delete` returns, the callback is not running and never runs again (before the fix,
/// the loop started it a second time before the deleting thread took the lock back).
#[test]
fn a_cross_thread_delete_removes_first_then_waits() -> io::Result<()> {
    for round in 0..3 {
        let base = default_base()?;
        let (rx, tx) = pair()?;
        write_byte(&tx)?; // never read: the socket stays readable
        let runs = Arc::new(AtomicU32::new(0));
        let inside = Arc::new(AtomicBool::new(false));
        let (r, i) = (runs.clone(), inside.clone());
        let key = base.add_fd(&rx, Interest::READ, move |_, _| {
            i.store(true, SeqCst);
            r.fetch_add(1, SeqCst);
            thread::sleep(Duration::from_millis(50)); // the callback's own work
            i.store(false, SeqCst);
        })?;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "del_wait loop");
        let handle = lt.handle().clone();
        wait_until(BOUND, "the callback started", || inside.load(SeqCst));
        thread::sleep(Duration::from_millis(10)); // 10 ms into the callback, as the scenario
        handle.delete(key)?;
        assert!(
            !inside.load(SeqCst),
            "round {round}: delete returned while the callback ran"
        );
        assert_eq!(
            runs.load(SeqCst),
            1,
            "round {round}: the callback ran again"
        );
        holds_for(
            Duration::from_millis(60),
            "the callback never runs again",
            || runs.load(SeqCst) == 1,
        );
        // Nothing is pending any more: the run ends by itself.
        let (exit, _base) = lt.join_within(BOUND);
        assert_eq!(exit?, Exit::Empty, "round {round}");
        drop(rx);
    }
    Ok(())
}

/// Issue scenario: 16 events that re-activate themselves from their own callbacks at the
/// lowest priority, a 10 ms persistent timer at the highest, and SIGTERM. The timer keeps its
/// period (every callback queued during a pass at its priority or below waits for the next
/// poll and timer expiry), and SIGTERM stops the loop.
///
/// Starvation is measured in callbacks, not wall time (the machine is shared: a preempted
/// loop thread is late by whole scheduler slices whatever the loop does): the low callbacks
/// count how many of them ran while the timer was overdue. The pass in progress when the
/// deadline passes finishes (at most 16), then the loop polls, and the timer runs next.
#[test]
fn self_activating_events_starve_neither_timers_nor_sigterm() -> io::Result<()> {
    const PERIOD_NS: u64 = 10_000_000;
    let base = Builder::new().priorities(3).build()?;
    let now = || rouse_core::Clock::now(&rouse_std::MonotonicClock).as_nanos();
    let spins = Arc::new(AtomicU32::new(0));
    let due = Arc::new(AtomicU64::new(u64::MAX)); // the timer's deadline (the base's clock)
    let overdue = Arc::new(AtomicU32::new(0)); // low callbacks run since it passed
    for _ in 0..16 {
        let (s, d, o) = (spins.clone(), due.clone(), overdue.clone());
        let k = base.event(
            rouse_core::Event::user().priority(2),
            move |events, fired| {
                if now() >= d.load(SeqCst) {
                    o.fetch_add(1, SeqCst);
                }
                // Bounded: a regression (a pass that never ends) fails instead of hanging.
                if s.fetch_add(1, SeqCst) < 5_000_000 {
                    events.activate(fired.key, Ready::USER).unwrap();
                }
            },
        )?;
        base.activate(k, Ready::USER)?;
    }
    let runs: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default(); // (lateness ns, overdue callbacks)
    let (r, d, o) = (runs.clone(), due.clone(), overdue.clone());
    let timer = base.event(
        rouse_core::Event::timer().persist().priority(0),
        move |events, fired| {
            let at = d.load(SeqCst);
            r.lock()
                .unwrap()
                .push((now().saturating_sub(at), o.swap(0, SeqCst)));
            // Re-armed from its previous deadline (or from now, if it fell a period behind).
            let next = events.info(fired.key).unwrap().deadline.unwrap();
            d.store(next.as_nanos(), SeqCst);
        },
    )?;
    base.add(timer, Some(Duration::from_nanos(PERIOD_NS)))?;
    due.store(base.info(timer)?.deadline.unwrap().as_nanos(), SeqCst);
    let got_term = Arc::new(AtomicBool::new(false));
    let g = got_term.clone();
    base.add_signal(libc::SIGTERM, move |events, _| {
        g.store(true, SeqCst);
        events.loop_break().unwrap();
    })?;
    let r = runs.clone();
    let killer = thread::spawn(move || {
        wait_until(BOUND, "the timer ran 20 times", || {
            r.lock().unwrap().len() >= 20
        });
        // SAFETY: kill(2) of our own process with a signal whose handler (rouse's) is
        // installed: it is delivered to the self-pipe, not the default action.
        unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    });
    let exit = base.run()?;
    killer.join().unwrap();
    assert_eq!(exit, Exit::Break);
    assert!(got_term.load(SeqCst), "SIGTERM's callback ran");
    assert!(
        spins.load(SeqCst) > 16 * 20,
        "the self-activating events kept running"
    );
    let runs = runs.lock().unwrap().clone();
    for (i, &(late, over)) in runs.iter().enumerate() {
        assert!(
            over <= 16,
            "timer run {i}: {over} low callbacks ran while it was due (at most one pass); \
             (lateness ns, overdue callbacks) per run: {runs:?}"
        );
        assert!(
            late < 1_000_000_000,
            "timer run {i} starved for {late} ns; {runs:?}"
        );
    }
    Ok(())
}
