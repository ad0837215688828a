//! The core loop's dispatch rules on the mocks: priorities, limits, one-shot vs persistent,
//! re-entrant changes from callbacks, finalizers, panicking callbacks.

#[path = "core/fixture.rs"]
mod fixture;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{Error, Event, Exit, Interest, Options, Readiness, Ready, RunFlags, Source};

#[test]
fn lower_priority_number_runs_first_and_fifo_within_a_level() {
    let fx = fixture(Options::new().priorities(3));
    let log = Log::new();
    let mut keys = Vec::new();
    for (name, prio) in [("c2", 2), ("a0", 0), ("b1", 1), ("d0", 0), ("e2", 2)] {
        let l = log.clone();
        let k = fx
            .base
            .new_event(Event::user().priority(prio), cb(move |_, _| l.push(name)))
            .unwrap();
        keys.push(k);
    }
    for k in &keys {
        fx.base.activate(*k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(log.take(), ["a0", "d0", "b1", "c2", "e2"]);
}

#[test]
fn after_a_level_ran_the_loop_polls_again_before_lower_levels() {
    // libevent's rule: a level runs, then the loop re-polls (timeout zero) before the next.
    let fx = fixture(Options::new().priorities(3));
    let log = Log::new();
    let l = log.clone();
    let hi = fx
        .base
        .new_event(Event::user().priority(0), cb(move |_, _| l.push("hi")))
        .unwrap();
    let l = log.clone();
    let mid = fx
        .base
        .new_event(
            Event::user().priority(1),
            cb(move |b, _| {
                l.push("mid");
                b.activate(hi, Ready::USER).unwrap(); // a higher level becomes active
            }),
        )
        .unwrap();
    let l = log.clone();
    let lo = fx
        .base
        .new_event(Event::user().priority(2), cb(move |_, _| l.push("lo")))
        .unwrap();
    fx.base.activate(lo, Ready::USER).unwrap();
    fx.base.activate(mid, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(
        log.take(),
        ["mid", "hi", "lo"],
        "hi must not wait behind lo"
    );
    assert_eq!(poller.waits(), 3, "one poll before each level");
    assert_eq!(poller.last_timeout(), Some(Some(Duration::ZERO)));
}

#[test]
fn dispatch_limits_return_to_the_poller_between_batches() {
    let fx = fixture(Options::new().priorities(2).dispatch_limits(2, None, 1));
    let log = Log::new();
    let mut keys = Vec::new();
    for i in 0..5 {
        let l = log.clone();
        keys.push(
            fx.base
                .new_event(Event::user().priority(1), cb(move |_, _| l.push(i)))
                .unwrap(),
        );
    }
    // Priority 0 is below the threshold: never limited.
    let l = log.clone();
    let urgent: Vec<_> = (10..14)
        .map(|i| {
            let l = l.clone();
            fx.base
                .new_event(Event::user().priority(0), cb(move |_, _| l.push(i)))
                .unwrap()
        })
        .collect();
    for k in keys.iter().chain(&urgent) {
        fx.base.activate(*k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(log.take(), [10, 11, 12, 13, 0, 1, 2, 3, 4]);
    // 1 poll for level 0 (all four), then 3 batches of at most two at level 1.
    assert_eq!(poller.waits(), 4);
}

#[test]
fn dispatch_time_limit_is_checked_between_callbacks() {
    let fx = fixture(Options::new().dispatch_limits(u32::MAX, Some(Duration::from_millis(10)), 0));
    let log = Log::new();
    let clock = fx.clock.clone();
    for i in 0..4 {
        let l = log.clone();
        let c = clock.clone();
        let k = fx
            .base
            .new_event(
                Event::user(),
                cb(move |_, _| {
                    l.push(i);
                    c.advance(Duration::from_millis(6)); // a slow callback
                }),
            )
            .unwrap();
        fx.base.activate(k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(log.take(), [0, 1, 2, 3]);
    assert_eq!(poller.waits(), 2, "two callbacks (12 ms) per pass");
}

#[test]
fn one_shot_io_event_fires_once_persistent_stays_pending() {
    let fx = fixture(Options::new());
    let (a, b) = (Source::new(3), Source::new(4));
    let log = Log::new();
    let l = log.clone();
    let once = fx
        .base
        .new_event(
            Event::io(a, Interest::READ),
            cb(move |_, f| l.push(("once", f.ready))),
        )
        .unwrap();
    let l = log.clone();
    let persist = fx
        .base
        .new_event(
            Event::io(b, Interest::READ).persist(),
            cb(move |base, f| {
                l.push(("persist", f.ready));
                if l.len() >= 3 {
                    base.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(once, None).unwrap();
    fx.base.add(persist, None).unwrap();
    let mut poller = fx.base.mock_poller();
    let both = [Readiness::Io(a, Ready::READ), Readiness::Io(b, Ready::READ)];
    poller.script(Duration::ZERO, &both);
    poller.script(Duration::ZERO, &both);
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(
        log.take(),
        [
            ("once", Ready::READ),
            ("persist", Ready::READ),
            ("persist", Ready::READ)
        ]
    );
    assert!(!fx.base.is_pending(once).unwrap());
    assert!(fx.base.is_pending(persist).unwrap());
    // The one-shot event's interest was withdrawn from the poller, the persistent one's kept.
    assert_eq!(poller.registered(a), Interest::NONE);
    assert_eq!(poller.registered(b), Interest::READ);
}

#[test]
fn readiness_is_filtered_by_interest_and_errors_reach_every_event() {
    let fx = fixture(Options::new());
    let s = Source::new(9);
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let r = fx
        .base
        .new_event(
            Event::io(s, Interest::READ).persist(),
            cb(move |_, f| l1.push(("r", f.ready))),
        )
        .unwrap();
    let w = fx
        .base
        .new_event(
            Event::io(s, Interest::WRITE).persist(),
            cb(move |_, f| l2.push(("w", f.ready))),
        )
        .unwrap();
    fx.base.add(r, None).unwrap();
    fx.base.add(w, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(Duration::ZERO, &[Readiness::Io(s, Ready::WRITE)]);
    poller.script(
        Duration::ZERO,
        &[Readiness::Io(s, Ready::READ | Ready::ERROR)],
    );
    poller.run_once().unwrap();
    assert_eq!(poller.registered(s), Interest::READ | Interest::WRITE);
    assert_eq!(log.take(), [("w", Ready::WRITE)]);
    poller.run_once().unwrap();
    let mut got = log.take();
    got.sort_by_key(|x| x.0);
    assert_eq!(
        got,
        [
            ("r", Ready::READ | Ready::ERROR),
            ("w", Ready::WRITE | Ready::ERROR)
        ]
    );
}

#[test]
fn callbacks_may_add_delete_free_and_activate_any_event_including_themselves() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let other = fx
        .base
        .new_event(Event::user(), cb(move |_, _| l.push("other")))
        .unwrap();
    let l = log.clone();
    let t = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |base, f| {
                l.push("timer");
                // Re-add itself once, activate another, then free itself on the second run.
                if l.len() == 1 {
                    base.add(f.key, Some(Duration::from_millis(1))).unwrap();
                    base.activate(other, Ready::USER).unwrap();
                } else {
                    base.free(f.key).unwrap();
                    assert_eq!(base.add(f.key, None), Err(Error::Stale));
                }
            }),
        )
        .unwrap();
    fx.base.add(t, Some(Duration::from_millis(1))).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(log.take(), ["timer", "other", "timer"]);
    assert_eq!(fx.base.info(t), Err(Error::Stale));
    assert_eq!(fx.base.counts().events, 1, "only `other` is left");
}

#[test]
fn a_deleted_active_event_does_not_run() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let victim = fx
        .base
        .new_event(Event::user(), cb(move |_, _| l.push("victim")))
        .unwrap();
    let l = log.clone();
    let killer = fx
        .base
        .new_event(
            Event::user().priority(0),
            cb(move |b, _| {
                l.push("killer");
                b.delete(victim).unwrap();
            }),
        )
        .unwrap();
    fx.base.activate(killer, Ready::USER).unwrap();
    fx.base.activate(victim, Ready::USER).unwrap();
    fx.base.mock_poller().run().unwrap();
    assert_eq!(log.take(), ["killer"]);
    assert_eq!(fx.base.info(victim).unwrap().queued, Ready::NONE);
    assert_eq!(
        fx.base.delete(victim),
        Ok(()),
        "nothing to delete: still a success"
    );
}

#[test]
fn activation_reasons_accumulate_while_queued_and_run_once() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::user(), cb(move |_, f| l.push(f.ready)))
        .unwrap();
    fx.base.activate(k, Ready::READ).unwrap();
    fx.base.activate(k, Ready::READ).unwrap(); // fast path: nothing new
    fx.base.activate(k, Ready::WRITE).unwrap(); // slow path: adds a reason
    fx.base.activate(k, Ready::NONE).unwrap(); // empty means USER
    assert_eq!(fx.base.counts().active, 1);
    fx.base.mock_poller().run().unwrap();
    assert_eq!(log.take(), [Ready::READ | Ready::WRITE | Ready::USER]);
}

#[test]
fn finalizer_runs_on_the_loop_after_the_callback_and_frees_the_event() {
    let fx = fixture(Options::new());
    let log = Log::new();
    // Finalized while idle: the finalizer runs at the next iteration.
    let l = log.clone();
    let idle = fx
        .base
        .new_event(Event::user(), cb(move |_, _| l.push("idle-cb")))
        .unwrap();
    fx.base.add(idle, None).unwrap();
    let l = log.clone();
    fx.base
        .finalize(
            idle,
            cb(move |_, f| {
                l.push(if f.ready == Ready::FINALIZE {
                    "idle-fin"
                } else {
                    "?"
                })
            }),
        )
        .unwrap();
    assert_eq!(
        fx.base.activate(idle, Ready::USER),
        Err(Error::Stale),
        "key stale at once"
    );
    // Finalized from inside its own callback: the finalizer runs after that callback.
    let l = log.clone();
    let busy = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, f| {
                l.push("busy-cb");
                let l2 = l.clone();
                b.finalize(f.key, Box::new(move |_, _| l2.push("busy-fin")))
                    .unwrap();
                l.push("busy-cb-end");
            }),
        )
        .unwrap();
    fx.base.activate(busy, Ready::USER).unwrap();
    fx.base.mock_poller().run().unwrap();
    assert_eq!(
        log.take(),
        ["idle-fin", "busy-cb", "busy-cb-end", "busy-fin"]
    );
    assert_eq!(fx.base.counts().events, 0, "both slots freed");
}

#[test]
fn finalizers_still_queued_run_when_the_base_is_dropped() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let k = fx.base.new_event(Event::user(), nop()).unwrap();
    let l = log.clone();
    fx.base.finalize(k, cb(move |_, _| l.push("fin"))).unwrap();
    drop(fx);
    assert_eq!(log.take(), ["fin"]);
}

#[test]
fn a_panicking_callback_reaches_the_caller_and_leaves_the_base_usable() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(
            Event::user().persist(),
            cb(move |_, _| {
                l.push("run");
                if l.len() == 1 {
                    panic!("boom");
                }
            }),
        )
        .unwrap();
    fx.base.add(k, None).unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    let r = catch_unwind(AssertUnwindSafe(|| poller.run()));
    assert!(r.is_err(), "the panic propagates");
    // Consistent afterwards: not running, the event kept its callback and still works.
    let info = fx.base.info(k).unwrap();
    assert!(!info.running && info.pending && info.queued.is_empty());
    fx.base.activate(k, Ready::USER).unwrap();
    assert_eq!(poller.run_with(RunFlags::ONCE_NONBLOCK), Ok(Exit::Done));
    assert_eq!(log.take(), ["run", "run"]);
}

#[test]
fn run_from_a_callback_is_refused() {
    let fx = fixture(Options::new());
    let k = fx
        .base
        .new_event(
            Event::user(),
            cb(|b, _| {
                assert_eq!(b.run(), Err(Error::AlreadyRunning));
                assert_eq!(b.run_until_idle(), Err(Error::AlreadyRunning));
                assert_eq!(b.with_poller(|_| ()), Err(Error::AlreadyRunning));
            }),
        )
        .unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    fx.base.run().unwrap();
}

#[test]
fn signal_events_all_fire_and_the_poller_watches_the_signal_while_any_is_pending() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let a = fx
        .base
        .new_event(
            Event::signal(10).persist(),
            cb(move |_, f| l1.push(("a", f.ready))),
        )
        .unwrap();
    let b = fx
        .base
        .new_event(Event::signal(10), cb(move |_, f| l2.push(("b", f.ready))))
        .unwrap();
    fx.base.add(a, None).unwrap();
    fx.base.add(b, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(Duration::ZERO, &[Readiness::Signal(10)]);
    poller.run_once().unwrap();
    assert!(poller.watches_signal(10));
    let mut got = log.take();
    got.sort_by_key(|x| x.0);
    assert_eq!(got, [("a", Ready::SIGNAL), ("b", Ready::SIGNAL)]);
    fx.base.delete(a).unwrap(); // b was one-shot: nothing pending now
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert!(
        !poller.watches_signal(10),
        "restored when the last is removed"
    );
}

#[test]
fn free_after_run_events_are_freed_when_they_ran_or_are_deleted() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let once = fx
        .base
        .new_event(
            Event::timer().free_after_run(),
            cb(move |_, _| l.push("once")),
        )
        .unwrap();
    fx.base.add(once, Some(Duration::from_millis(1))).unwrap();
    // One that re-adds itself once from its callback stays until it runs again.
    let l = log.clone();
    let again = fx
        .base
        .new_event(
            Event::timer().free_after_run(),
            cb(move |b, f| {
                l.push("again");
                if l.len() < 3 {
                    b.add(f.key, Some(Duration::from_millis(1))).unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(again, Some(Duration::from_millis(2))).unwrap();
    let deleted = fx
        .base
        .new_event(Event::timer().free_after_run(), nop())
        .unwrap();
    fx.base.add(deleted, Some(Duration::from_secs(9))).unwrap();
    fx.base.delete(deleted).unwrap();
    assert_eq!(
        fx.base.info(deleted),
        Err(Error::Stale),
        "deleting frees it"
    );
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(log.take(), ["once", "again", "again"]);
    assert_eq!(fx.base.counts().events, 0, "all freed");
    assert_eq!(fx.base.info(once), Err(Error::Stale));
    assert_eq!(
        fx.base
            .new_event(Event::timer().persist().free_after_run(), nop())
            .map(|_| ()),
        Err(Error::Invalid)
    );
}
