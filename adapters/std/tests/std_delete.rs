#![cfg(not(miri))]
//! Deleting events across threads: `delete` and `free` wait for a running callback, a callback
//! may delete itself, `finalize_with` and `delete_nowait` never block, and a dropped base fails
//! its handles.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use rouse_core::{Exit, Fired, Key, Ready, RunFlags};
use rouse_std::{Context, Handle};
use util::{default_base, holds_for, run_in_thread, wait_blocked, wait_until, LoopThread, BOUND};

/// How long a blocked `delete` is watched to stay blocked: long against a mistaken early
/// return (microseconds), short for the suite.
const STAYS_BLOCKED: Duration = Duration::from_millis(30);

fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Sets its flag when dropped: tells when a callback (which owns it) was freed.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A callback that is "inside" until released: `started` when it begins, then waits for
/// `release`, then sets `finished`.
struct Gate {
    started: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
    dropped: Arc<AtomicBool>,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            started: flag(),
            release: flag(),
            finished: flag(),
            dropped: flag(),
        }
    }

    fn callback(&self) -> impl FnMut(&Context<'_>, Fired) + Send + 'static {
        let (started, release, finished) = (
            self.started.clone(),
            self.release.clone(),
            self.finished.clone(),
        );
        let guard = DropFlag(self.dropped.clone());
        move |_, _| {
            let _owned = &guard;
            started.store(true, SeqCst);
            wait_until(BOUND, "the test releases the callback", || {
                release.load(SeqCst)
            });
            finished.store(true, SeqCst);
        }
    }
}

/// Starts a loop on a thread with a gated user event, and activates it: returns once the
/// callback runs (and waits for its release).
fn running_gate() -> io::Result<(LoopThread, Handle, Key, Gate)> {
    let base = default_base()?;
    let gate = Gate::new();
    let key = base.add_user(gate.callback())?;
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "gated callback");
    let h = lt.handle().clone();
    h.activate(key, Ready::USER)?;
    wait_until(BOUND, "the callback starts", || gate.started.load(SeqCst));
    Ok((lt, h, key, gate))
}

/// What the gate looked like when a blocking call returned.
struct AtReturn {
    finished: bool,
    dropped: bool,
}

/// Runs `op` on another thread while the gated callback runs; checks it stays blocked until
/// the callback is released, and that the callback had finished when `op` returned.
fn blocks_until_the_callback_returns(
    h: &Handle,
    gate: &Gate,
    op: impl FnOnce(&Handle) -> io::Result<()> + Send + 'static,
) -> io::Result<AtReturn> {
    let returned = flag();
    let (h2, r) = (h.clone(), returned.clone());
    let (fin, dropped) = (gate.finished.clone(), gate.dropped.clone());
    let t = thread::spawn(move || {
        let res = op(&h2);
        let at = AtReturn {
            finished: fin.load(SeqCst),
            dropped: dropped.load(SeqCst),
        };
        r.store(true, SeqCst);
        (res, at)
    });
    holds_for(
        STAYS_BLOCKED,
        "the call waits for the running callback",
        || !returned.load(SeqCst),
    );
    gate.release.store(true, SeqCst);
    wait_until(BOUND, "the call returns once the callback has", || {
        returned.load(SeqCst)
    });
    let (res, at) = t.join().expect("deleting thread");
    res?;
    assert!(
        at.finished,
        "the call returned while the callback was still running"
    );
    Ok(at)
}

#[test]
fn delete_from_another_thread_waits_for_the_running_callback() -> io::Result<()> {
    let (lt, h, key, gate) = running_gate()?;
    blocks_until_the_callback_returns(&h, &gate, move |h| h.delete(key))?;
    assert!(!h.is_pending(key)?);
    let base = lt.expect_exit(Exit::Empty);
    assert!(!gate.dropped.load(SeqCst), "deleted, not freed");
    drop(base);
    assert!(gate.dropped.load(SeqCst), "freed with the base");
    Ok(())
}

#[test]
fn free_from_another_thread_waits_and_drops_the_callback_before_returning() -> io::Result<()> {
    let (lt, h, key, gate) = running_gate()?;
    let at = blocks_until_the_callback_returns(&h, &gate, move |h| h.free(key))?;
    assert!(at.dropped, "free returned before dropping the callback");
    let e = h.activate(key, Ready::USER).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    lt.expect_exit(Exit::Empty);
    Ok(())
}

#[test]
fn a_callback_deletes_or_frees_itself_without_deadlock() -> io::Result<()> {
    let base = default_base()?;
    let runs = Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    let deleted = base.add_user(move |events, fired| {
        events.delete(fired.key).unwrap();
        assert!(!events.is_pending(fired.key).unwrap());
        r.fetch_add(1, SeqCst);
    })?;
    let dropped = flag();
    let guard = DropFlag(dropped.clone());
    let r = runs.clone();
    let freed = base.add_user(move |events, fired| {
        let _owned = &guard;
        events.free(fired.key).unwrap();
        r.fetch_add(1, SeqCst);
    })?;
    base.activate(deleted, Ready::USER)?;
    base.activate(freed, Ready::USER)?;
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "self-deleting callbacks");
    let base = lt.expect_exit(Exit::Empty);
    assert_eq!(runs.load(SeqCst), 2);
    assert!(!base.is_pending(deleted)?, "deleted, still exists");
    assert!(base.is_pending(freed).is_err(), "freed: stale key");
    assert!(dropped.load(SeqCst), "freed once its callback returned");
    Ok(())
}

#[test]
fn finalize_with_never_blocks_and_runs_on_the_loop_thread_after_the_callback() -> io::Result<()> {
    // While the callback runs.
    let (lt, h, key, gate) = running_gate()?;
    let ran: Arc<Mutex<Option<(ThreadId, bool)>>> = Arc::default();
    let (r, fin) = (ran.clone(), gate.finished.clone());
    h.finalize_with(key, move |_| {
        *r.lock().unwrap() = Some((thread::current().id(), fin.load(SeqCst)));
    })?;
    // It returned while the callback still waits for the release only this thread can give.
    assert!(!gate.finished.load(SeqCst));
    assert!(ran.lock().unwrap().is_none(), "the finalizer ran early");
    assert!(
        h.activate(key, Ready::USER).is_err(),
        "the key is stale at once"
    );
    gate.release.store(true, SeqCst);
    wait_until(BOUND, "the finalizer runs", || {
        ran.lock().unwrap().is_some()
    });
    let (thread_id, finished_first) = ran.lock().unwrap().expect("ran");
    assert_eq!(
        thread_id,
        lt.thread_id(),
        "the finalizer ran off the loop thread"
    );
    assert!(
        finished_first,
        "the finalizer ran before the callback returned"
    );
    lt.expect_exit(Exit::Empty);
    assert!(gate.dropped.load(SeqCst), "the callback was freed");

    // While the loop sleeps: finalizing wakes it.
    let base = default_base()?;
    let key = base.add_user(|_, _| panic!("never activated"))?;
    let before = base.wake_stats().blocking_polls;
    let lt = run_in_thread(
        base,
        RunFlags::UNTIL_EMPTY,
        "finalize a sleeping loop's event",
    );
    let h = lt.handle().clone();
    wait_blocked(&h, before, "finalize");
    let ran: Arc<Mutex<Option<ThreadId>>> = Arc::default();
    let r = ran.clone();
    h.finalize_with(key, move |_| {
        *r.lock().unwrap() = Some(thread::current().id())
    })?;
    let loop_thread = lt.thread_id();
    lt.expect_exit(Exit::Empty);
    assert_eq!(*ran.lock().unwrap(), Some(loop_thread));
    Ok(())
}

#[test]
fn dropping_the_base_fails_every_handle_call_without_panic() -> io::Result<()> {
    let base = default_base()?;
    let freed = flag();
    let guard = DropFlag(freed.clone());
    // A callback holding a handle: a cycle through the base, broken by the drop.
    let cyclic = base.handle();
    let key = base.add_user(move |_, _| {
        let _owned = (&guard, &cyclic);
    })?;
    let h = base.handle();
    let stop = flag();
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (h, stop) = (h.clone(), stop.clone());
            let oks = Arc::new(AtomicU64::new(0));
            let errs = Arc::new(AtomicU64::new(0));
            let (o, e) = (oks.clone(), errs.clone());
            let t = thread::spawn(move || {
                while !stop.load(SeqCst) {
                    let r = match i {
                        0 => h.activate(key, Ready::USER),
                        1 => h.add_user(|_, _| {}).and_then(|k| h.free(k)),
                        _ => h.add_timer(Duration::from_secs(60), |_, _| {}).map(drop),
                    };
                    match r {
                        Ok(()) => o.fetch_add(1, SeqCst),
                        Err(err) => {
                            assert!(
                                matches!(
                                    err.kind(),
                                    io::ErrorKind::NotFound | io::ErrorKind::NotConnected
                                ),
                                "worker {i}: {err}"
                            );
                            e.fetch_add(1, SeqCst)
                        }
                    };
                }
            });
            (t, oks, errs)
        })
        .collect();
    for (i, (_, oks, _)) in workers.iter().enumerate() {
        wait_until(BOUND, &format!("worker {i} succeeds once"), || {
            oks.load(SeqCst) > 0
        });
    }
    drop(base);
    assert!(
        freed.load(SeqCst),
        "the callback (and its handle) were freed"
    );
    for (i, (_, _, errs)) in workers.iter().enumerate() {
        wait_until(BOUND, &format!("worker {i} sees the base gone"), || {
            errs.load(SeqCst) > 0
        });
    }
    stop.store(true, SeqCst);
    for (t, _, _) in workers {
        t.join().expect("no worker panicked");
    }
    // Every call through a handle of a dropped base is the closed error.
    let kind = |r: io::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        kind(h.activate(key, Ready::USER)),
        io::ErrorKind::NotConnected
    );
    assert_eq!(kind(h.delete(key)), io::ErrorKind::NotConnected);
    assert_eq!(kind(h.free(key)), io::ErrorKind::NotConnected);
    assert_eq!(
        h.add_user(|_, _| {}).unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(
        h.add_timer(Duration::ZERO, |_, _| {}).unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    assert_eq!(h.counts().events, 0);
    Ok(())
}

#[test]
fn delete_nowait_from_another_thread_returns_while_the_callback_runs() -> io::Result<()> {
    let base = default_base()?;
    let gate = Gate::new();
    let runs = Arc::new(AtomicU64::new(0));
    let (r, mut inner) = (runs.clone(), gate.callback());
    let key = base.add_user(move |cx, fired| {
        r.fetch_add(1, SeqCst);
        inner(cx, fired);
    })?;
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "gated callback");
    let h = lt.handle().clone();
    h.activate(key, Ready::USER)?;
    wait_until(BOUND, "the callback starts", || gate.started.load(SeqCst));
    // Queued again while it runs: the nowait delete takes that run off the queue too.
    h.activate(key, Ready::USER)?;
    assert!(!h.info(key)?.queued.is_empty());
    h.delete_nowait(key)?; // returns with the callback still inside (a `delete` would block)
    assert!(
        !gate.finished.load(SeqCst),
        "delete_nowait returned only after the callback"
    );
    let info = h.info(key)?;
    assert!(!info.pending && info.queued.is_empty(), "{info:?}");
    gate.release.store(true, SeqCst);
    let base = lt.expect_exit(Exit::Empty);
    assert_eq!(runs.load(SeqCst), 1, "the deleted run did not happen");
    // The key is still valid: the event can be activated again.
    base.activate(key, Ready::USER)?;
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 2);
    // A key kept as raw words is the same key; forged words name no event.
    let [b, i, g] = key.to_raw();
    assert_eq!(Key::from_raw([b, i, g]), key);
    assert!(
        base.is_pending(Key::from_raw([b, i, g + 1])).is_err(),
        "another generation"
    );
    assert!(
        base.is_pending(Key::from_raw([b + 1, i, g])).is_err(),
        "another base"
    );
    assert!(h.delete_nowait(key).is_ok() && base.free(key).is_ok());
    assert_eq!(
        base.delete_nowait(key).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    Ok(())
}
