#![cfg(not(miri))]
//! Waking a loop blocked in its poller from another thread, for every poller x notifier pair.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rouse_core::{Event, Exit, Interest, Ready, RunFlags};
use rouse_std::{NotifierKind, PollerKind};
use util::{all_kinds, base_of, pair, run_in_thread, wait_blocked, wait_until, write_byte, BOUND};

fn name(p: PollerKind, n: NotifierKind) -> String {
    format!("{p} + {n}")
}

#[test]
fn every_pair_is_offered_and_builds() -> io::Result<()> {
    let kinds = all_kinds();
    assert!(kinds.len() >= 2, "{kinds:?}");
    for (p, n) in kinds {
        base_of(p, n)?;
    }
    Ok(())
}

#[test]
fn adding_a_readable_fd_wakes_the_loop() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: add of a readable fd", name(p, n));
        let base = base_of(p, n)?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::FOREVER, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);

        let (a, b) = pair()?;
        write_byte(&b)?;
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        h.add_fd(&a, Interest::READ, move |events, fired| {
            assert!(fired.ready.contains(Ready::READ), "{:?}", fired.ready);
            f.store(true, SeqCst);
            events.loop_break().unwrap();
        })?;
        lt.expect_exit(Exit::Break);
        assert!(fired.load(SeqCst), "{what}");
        drop(a);
    }
    Ok(())
}

#[test]
fn deleting_the_last_event_wakes_the_loop_and_it_returns_empty() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: delete of the last event", name(p, n));
        let base = base_of(p, n)?;
        let key = base.add_user(|_, _| panic!("never activated"))?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        h.delete(key)?;
        lt.expect_exit(Exit::Empty);
    }
    Ok(())
}

#[test]
fn deleting_the_earliest_timer_wakes_the_loop() -> io::Result<()> {
    // libevent issue 1727: the loop kept sleeping until the deleted timer's deadline.
    for (p, n) in all_kinds() {
        let what = format!("{}: delete of the earliest timer", name(p, n));
        let base = base_of(p, n)?;
        let early = base.add_timer(Duration::from_secs(60), |_, _| panic!("deleted"))?;
        let late = base.add_timer(Duration::from_secs(120), |_, _| panic!("deleted"))?;
        let before = base.wake_stats().blocking_polls;
        let start = Instant::now();
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        // The loop must wake and block again with the later deadline...
        let blocked = h.wake_stats().blocking_polls;
        h.delete(early)?;
        wait_blocked(&h, blocked, &format!("{what}: re-planned"));
        // ...and return at once when the last timer goes.
        h.delete(late)?;
        lt.expect_exit(Exit::Empty);
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
    }
    Ok(())
}

#[test]
fn activating_wakes_the_loop() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: activate", name(p, n));
        let base = base_of(p, n)?;
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let key = base.add_user(move |events, fired| {
            assert_eq!(fired.ready, Ready::USER);
            r.store(true, SeqCst);
            events.loop_break().unwrap();
        })?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        h.activate(key, Ready::USER)?;
        lt.expect_exit(Exit::Break);
        assert!(ran.load(SeqCst), "{what}");
        let s = h.wake_stats();
        assert_eq!(s.writes, 1, "{what}: {s:?}");
    }
    Ok(())
}

/// libevent master: an edge-triggered, never-read eventfd busy-loops a poll(2) backend. After a
/// wake the notification must be consumed the way the poller needs, so the loop sleeps again.
#[test]
fn after_a_wake_the_loop_sleeps_again_instead_of_spinning() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: sleeping again after a wake", name(p, n));
        let base = base_of(p, n)?;
        let runs = Arc::new(AtomicU64::new(0));
        let r = runs.clone();
        let key = base.add_user(move |_, _| {
            r.fetch_add(1, SeqCst);
        })?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        for round in 1..=3 {
            h.activate(key, Ready::USER)?;
            wait_until(BOUND, &format!("{what}: run {round}"), || {
                runs.load(SeqCst) == round
            });
            let slept = before + 1 + round;
            wait_blocked(&h, slept - 1, &what);
            util::holds_for(
                Duration::from_millis(20),
                &format!("{what}: asleep"),
                || h.wake_stats().blocking_polls == slept,
            );
        }
        h.loop_break()?;
        lt.expect_exit(Exit::Break);
        let s = h.wake_stats();
        assert_eq!(s.writes, 4, "{what}: {s:?}");
    }
    Ok(())
}

#[test]
fn loop_break_wakes_the_loop() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: loop_break", name(p, n));
        let base = base_of(p, n)?;
        base.add_user(|_, _| panic!("never activated"))?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        h.loop_break()?;
        lt.expect_exit(Exit::Break);
    }
    Ok(())
}

#[test]
fn loop_exit_wakes_the_loop() -> io::Result<()> {
    for (p, n) in all_kinds() {
        let what = format!("{}: loop_exit", name(p, n));
        let base = base_of(p, n)?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::FOREVER, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        h.loop_exit(None)?;
        lt.expect_exit(Exit::Exit);
    }
    Ok(())
}

/// Serializes the CPU-heavy tests of this file: the storm's senders would starve the hunter's
/// two spinning threads, and the hunter would then never catch the loop entering its wait.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Rounds of the lost-wakeup hunter per pair.
const HUNT_ROUNDS: u64 = 2000;
/// The hunter's time budget per pair: on a starved machine it runs fewer rounds (a few
/// hundred milliseconds suffice otherwise).
const HUNT_BUDGET: Duration = Duration::from_millis(2500);
/// `go` value that ends the hunter's loop thread early.
const STOP: u64 = u64::MAX;
/// The spread of the random part of the hunter's offset, in nanoseconds.
const JITTER_NS: u64 = 2_000;
/// How far the centre of the offset moves after each round, in nanoseconds.
const STEP_NS: i64 = 100;

/// As [`wait_until`] with [`BOUND`], but never sleeping: both threads of the hunter stay
/// responsive, so the random spins decide where the activation lands.
#[track_caller]
fn spin_until(what: impl Fn() -> String, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut i = 0u32;
    while !cond() {
        i = i.wrapping_add(1);
        if i.is_multiple_of(64) {
            assert!(
                start.elapsed() < BOUND,
                "timed out after {BOUND:?}: {}",
                what()
            );
            thread::yield_now();
        }
        std::hint::spin_loop();
    }
}

#[test]
fn no_wakeup_is_lost_whenever_the_activation_lands() -> io::Result<()> {
    let _heavy = heavy();
    let mut rng = util::Rng::from_env_or_time();
    let seed = rng.seed();
    for (p, n) in all_kinds() {
        let what = format!("{}: lost-wakeup hunt (ROUSE_TEST_SEED={seed})", name(p, n));
        let base = base_of(p, n)?;
        let fires = Arc::new(AtomicU64::new(0));
        let f = fires.clone();
        let key = base.add_user(move |_, _| {
            f.fetch_add(1, SeqCst);
        })?;
        let h = base.handle();
        // Each round both threads leave the same starting line; one of them first spins for
        // `offset` (the loop thread if it is negative). The offset is a centre that adapts
        // until about half the activations find the loop asleep, plus a random jitter: the
        // activations land around the moment the loop commits to sleep, where a lost wakeup
        // would hide, on both sides of it.
        let go = Arc::new(AtomicU64::new(0));
        let loop_delay = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let (g, ld, d) = (go.clone(), loop_delay.clone(), done.clone());
        let looper = thread::spawn(move || -> io::Result<()> {
            for round in 1..=HUNT_ROUNDS {
                spin_until(
                    || format!("round {round} starts"),
                    || matches!(g.load(SeqCst), r if r == round || r == STOP),
                );
                if g.load(SeqCst) == STOP {
                    break;
                }
                util::spin_for(Duration::from_nanos(ld.load(SeqCst)));
                assert_eq!(base.run_once()?, Exit::Done);
                d.store(round, SeqCst);
            }
            Ok(())
        });
        let mut centre: i64 = 0;
        let (mut asleep, mut writes) = (0u64, h.wake_stats().writes);
        let (start, mut rounds) = (Instant::now(), 0);
        for round in 1..=HUNT_ROUNDS {
            if start.elapsed() > HUNT_BUDGET {
                break;
            }
            let offset = centre + rng.below(JITTER_NS) as i64 - JITTER_NS as i64 / 2;
            loop_delay.store(offset.min(0).unsigned_abs(), SeqCst);
            go.store(round, SeqCst);
            util::spin_for(Duration::from_nanos(offset.max(0) as u64));
            h.activate(key, Ready::USER)?;
            let fail = || format!("{what}: round {round} never ends: a lost wakeup");
            spin_until(fail, || done.load(SeqCst) == round || looper.is_finished());
            if done.load(SeqCst) == round {
                rounds = round;
            }
            if looper.is_finished() {
                break;
            }
            let w = h.wake_stats().writes;
            // Asleep: act earlier next time; awake: later.
            if w > writes {
                asleep += 1;
                centre -= STEP_NS;
            } else {
                centre += STEP_NS;
            }
            centre = centre.clamp(-50_000, 50_000);
            writes = w;
        }
        go.store(STOP, SeqCst);
        looper.join().expect("loop thread")?;
        assert_eq!(fires.load(SeqCst), rounds, "{what}");
        let s = h.wake_stats();
        assert!(s.writes <= s.blocking_polls, "{what}: {s:?}");
        assert!(s.writes <= rounds, "{what}: {s:?}");
        assert_eq!(s.failures, 0, "{what}: {s:?}");
        eprintln!(
            "{what}: {rounds} rounds, {asleep} found it asleep; {s:?}; offset centre {centre} ns"
        );
    }
    Ok(())
}

#[test]
fn a_storm_of_activations_coalesces_and_none_is_lost() -> io::Result<()> {
    const THREADS: u64 = 4;
    const EACH: u64 = 10_000;
    let _heavy = heavy();
    for (p, n) in all_kinds() {
        let what = format!("{}: activation storm", name(p, n));
        let base = base_of(p, n)?;
        let sent = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(AtomicU64::new(0));
        let runs = Arc::new(AtomicU64::new(0));
        let (s, sn, r) = (sent.clone(), seen.clone(), runs.clone());
        let key = base.add_event(Event::user().persist(), None, move |_, _| {
            r.fetch_add(1, SeqCst);
            sn.fetch_max(s.load(SeqCst), SeqCst);
        })?;
        let before = base.wake_stats().blocking_polls;
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &what);
        let h = lt.handle().clone();
        wait_blocked(&h, before, &what);
        let senders: Vec<_> = (0..THREADS)
            .map(|_| {
                let (h, sent) = (h.clone(), sent.clone());
                thread::spawn(move || -> io::Result<()> {
                    for _ in 0..EACH {
                        sent.fetch_add(1, SeqCst);
                        h.activate(key, Ready::USER)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for t in senders {
            t.join().expect("sender")?;
        }
        // A callback starts after the last activation and sees every count before it.
        wait_until(
            BOUND,
            &format!("{what}: a run sees the last activation"),
            || seen.load(SeqCst) == THREADS * EACH,
        );
        h.loop_break()?;
        lt.expect_exit(Exit::Break);
        let s = h.wake_stats();
        let ran = runs.load(SeqCst);
        assert!((1..=THREADS * EACH).contains(&ran), "{what}: {ran} runs");
        assert!(s.writes <= s.blocking_polls, "{what}: {s:?}");
        assert!(s.writes <= s.requests, "{what}: {s:?}");
        assert!(
            s.writes * 10 < THREADS * EACH,
            "{what}: {} writes for {} activations: {s:?}",
            s.writes,
            THREADS * EACH
        );
        eprintln!("{what}: {ran} runs, {s:?}");
    }
    Ok(())
}
