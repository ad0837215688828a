//! The facade: what survives the base, what a closure's `Drop` may do, borrowed fds, code
//! written once for both flavors.

mod util;

use std::io;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use rouse_core::{Event, Exit, Interest, Ready};
use rouse_std::{Base, Context, Flavor, Handle, LocalBase};
use util::{pair, BOUND};

/// Every call through a handle that outlived its base returns `NotConnected` (some returned
/// `Ok`, and `activate` returned the stale-key error).
#[test]
fn every_call_through_a_handle_after_the_base_is_dropped_is_closed() -> io::Result<()> {
    let base = Base::new()?;
    let user = base.add_user(|_, _| {})?;
    let timer = base.event(Event::timer(), |_, _| {})?;
    let ct = base.common_timeout(Duration::from_millis(5))?;
    let h = base.handle();
    drop(base);
    let results: Vec<(&str, io::Result<()>)> = vec![
        ("loop_break", h.loop_break()),
        ("loop_exit", h.loop_exit(None)),
        (
            "loop_exit(after)",
            h.loop_exit(Some(Duration::from_secs(1))),
        ),
        (
            "common_timeout",
            h.common_timeout(Duration::from_millis(7)).map(drop),
        ),
        ("activate", h.activate(user, Ready::USER)),
        ("add", h.add(timer, None)),
        ("add_common", h.add_common(timer, ct)),
        ("delete", h.delete(user)),
        ("free", h.free(user)),
        ("set_priority", h.set_priority(user, 0)),
        ("finalize_with", h.finalize_with(user, |_| {})),
        ("info", h.info(user).map(drop)),
        ("add_user", h.add_user(|_, _| {}).map(drop)),
        (
            "add_timer",
            h.add_timer(Duration::ZERO, |_, _| {}).map(drop),
        ),
        ("event", h.event(Event::user(), |_, _| {}).map(drop)),
    ];
    for (what, r) in results {
        let e = r.expect_err(what);
        assert_eq!(e.kind(), io::ErrorKind::NotConnected, "{what}: {e}");
    }
    Ok(())
}

/// Captured by a closure: its `Drop` uses the base through a handle (a deadlock if the base
/// drops it while holding its lock).
struct UsesBaseOnDrop(Handle, Arc<AtomicU32>);

impl Drop for UsesBaseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.counts(); // takes the base lock
        let _ = self.0.loop_break();
        self.1.fetch_add(1, SeqCst);
    }
}

/// Runs `f` on a thread and fails (instead of hanging) if it does not finish within `BOUND`.
fn within_bound(what: &'static str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what}: deadlocked (a closure dropped under the base lock)"));
}

#[test]
fn a_closure_whose_drop_uses_the_base_is_never_dropped_under_the_lock() {
    within_bound("creation errors and close", || {
        let base = Base::new().unwrap();
        let drops = Arc::new(AtomicU32::new(0));
        let guard = || UsesBaseOnDrop(base.handle(), drops.clone());
        // An event creation that fails drops the closure.
        let g = guard();
        let e = base
            .add_event(Event::user().priority(9), None, move |_, _| {
                let _ = &g;
            })
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(drops.load(SeqCst), 1);
        // A queued one-shot `free_after_run` timer and a finalizer still queued when the base
        // is dropped.
        let g = guard();
        let once = base
            .event(Event::timer().free_after_run(), move |_, _| {
                let _ = &g;
            })
            .unwrap();
        base.activate(once, Ready::TIMEOUT).unwrap();
        let g = guard();
        let fin = base
            .add_user(move |_, _| {
                let _ = &g;
            })
            .unwrap();
        let g = guard();
        base.finalize_with(fin, move |_| {
            let _ = &g;
        })
        .unwrap();
        drop(base);
        assert_eq!(drops.load(SeqCst), 4);
    });
}

/// `add_fd` borrows: the socket stays open and usable after the call, and the event watches
/// it (by value it was closed on return, and the event watched a reused number).
#[test]
fn add_fd_borrows_the_fd() -> io::Result<()> {
    let base = Base::new()?;
    let (a, b) = pair()?;
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    let a2 = a.try_clone()?;
    base.add_fd(&a, Interest::READ, move |cx, _| {
        util::drain(&a2).unwrap();
        h.fetch_add(1, SeqCst);
        cx.loop_break().unwrap();
    })?;
    util::write_byte(&b)?;
    assert_eq!(base.run()?, Exit::Break);
    assert_eq!(hits.load(SeqCst), 1);
    // Still ours: a write through `a` reaches the peer.
    std::io::Write::write_all(&mut &a, b"x")?;
    let mut buf = [0u8; 1];
    std::io::Read::read_exact(&mut &b, &mut buf)?;
    assert_eq!(&buf, b"x");
    Ok(())
}

/// Code written once against the generic facade runs on both flavors: the base, a callback's
/// context, and the shared `BaseRef` view.
fn count_to_three<F: Flavor>(base: &Base<F>) -> io::Result<u32> {
    let n = Arc::new(AtomicU32::new(0));
    let c = n.clone();
    let tick = move |cx: &Context<'_, F>, _| {
        if c.fetch_add(1, SeqCst) + 1 == 3 {
            cx.loop_break().unwrap();
        }
    };
    let key = base.add_interval(Duration::from_millis(1), tick)?;
    assert_eq!(base.run()?, Exit::Break);
    base.base_ref().free(key)?;
    Ok(n.load(SeqCst))
}

#[test]
fn one_generic_function_serves_both_flavors() -> io::Result<()> {
    assert_eq!(count_to_three(&Base::new()?)?, 3);
    assert_eq!(count_to_three(&LocalBase::new_local()?)?, 3);
    Ok(())
}

/// A local base's callbacks may share `Rc`/`RefCell` state through `local()`.
#[test]
fn a_local_base_takes_closures_that_are_not_send() -> io::Result<()> {
    use std::cell::RefCell;
    use std::rc::Rc;
    let base = LocalBase::new_local()?;
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    base.local().add_timer(Duration::ZERO, move |cx, _| {
        l.borrow_mut().push("timer");
        let l = l.clone();
        cx.local()
            .add_timer(Duration::ZERO, move |_, _| l.borrow_mut().push("nested"))
            .unwrap();
    })?;
    assert_eq!(base.run()?, Exit::Empty);
    assert_eq!(*log.borrow(), ["timer", "nested"]);
    Ok(())
}

/// A worker pool, written from the docs: the loop hands jobs to worker threads, which post
/// their results back through a `Handle` (a shared queue plus one user event, activated from
/// each worker); the loop's callback collects them and stops the loop when all are in.
#[test]
fn a_worker_pool_posts_results_back_through_handles() -> io::Result<()> {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    const JOBS: u64 = 200;
    const WORKERS: usize = 4;

    let base = Base::new()?;
    let results = Arc::new(Mutex::new(VecDeque::new()));
    let sum = Arc::new(AtomicU32::new(0));
    let (r, s) = (results.clone(), sum.clone());
    let mut seen = 0;
    let done = base.add_user(move |cx, _| {
        // Coalesced: one run may carry many results.
        while let Some(v) = r.lock().unwrap().pop_front() {
            s.fetch_add(v, SeqCst);
            seen += 1;
        }
        if seen == JOBS {
            cx.loop_break().unwrap();
        }
    })?;
    // A watchdog: the test fails instead of hanging.
    let watchdog = base.add_timer(BOUND, |_, _| panic!("the workers' results never arrived"))?;

    let (tx, rx) = mpsc::channel::<u64>();
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (rx, results, handle) = (rx.clone(), results.clone(), base.handle());
            thread::spawn(move || -> io::Result<()> {
                loop {
                    let job = rx.lock().unwrap().recv();
                    let Ok(n) = job else { return Ok(()) };
                    results.lock().unwrap().push_back((n * 2) as u32);
                    handle.activate(done, Ready::USER)?; // wakes the loop if it sleeps
                }
            })
        })
        .collect();
    // Jobs are handed out from the loop thread, by a timer.
    base.add_timer(Duration::ZERO, move |_, _| {
        for n in 0..JOBS {
            tx.send(n).unwrap();
        }
    })?;
    assert_eq!(base.run()?, Exit::Break);
    assert_eq!(
        sum.load(SeqCst) as u64,
        (0..JOBS).map(|n| n * 2).sum::<u64>()
    );
    // The job sender went with its timer: the workers end; then the rest is cleaned up.
    for w in workers {
        w.join().expect("worker")?;
    }
    base.free(watchdog)?;
    base.finalize_with(done, |cx| assert!(cx.counts().events <= 1))?;
    assert_eq!(base.run()?, Exit::Empty);
    Ok(())
}
