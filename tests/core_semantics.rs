//! The loop's dispatch rules where they follow libevent's (or fix its traps), on the mocks:
//! a higher-priority activation preempts the running pass; what a pass queues at its own
//! priority or below runs after the next poll, so a self-activating event starves nothing;
//! `delete` of a live event that is not pending succeeds.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{cb, fixture, Log};
use rouse_core::{Event, Interest, Key, Options, Readiness, Ready, RunFlags, Source};

/// Five low-priority events are queued; the first one's callback activates a high-priority
/// event. libevent's rule (`event_continue`): the high one runs next, before the other four.
#[test]
fn a_higher_priority_activation_preempts_the_running_pass() {
    let fx = fixture(Options::new().priorities(2));
    let log = Log::new();
    let l = log.clone();
    let high = fx
        .base
        .new_event(
            Event::user().priority(0),
            cb(move |_, _| l.push("high".to_string())),
        )
        .unwrap();
    let mut low = Vec::new();
    for i in 0..5 {
        let l = log.clone();
        low.push(
            fx.base
                .new_event(
                    Event::user().priority(1),
                    cb(move |b, _| {
                        l.push(format!("low{i}"));
                        if i == 0 {
                            b.activate(high, Ready::USER).unwrap();
                        }
                    }),
                )
                .unwrap(),
        );
    }
    for &k in &low {
        fx.base.activate(k, Ready::USER).unwrap();
    }
    fx.base.mock_poller().run().unwrap();
    assert_eq!(
        log.take(),
        ["low0", "high", "low1", "low2", "low3", "low4"],
        "the high-priority event runs right after the callback that activated it"
    );
}

/// The same with readable sources: five low-priority I/O events made active by one wait.
#[test]
fn a_higher_priority_activation_preempts_a_pass_of_io_events() {
    let fx = fixture(Options::new().priorities(3));
    let log = Log::new();
    let l = log.clone();
    let high = fx
        .base
        .new_event(Event::user().priority(1), cb(move |_, _| l.push(99)))
        .unwrap();
    let mut found = Vec::new();
    for i in 0..5u32 {
        let l = log.clone();
        let k = fx
            .base
            .new_event(
                Event::io(Source::new(i), Interest::READ).priority(2),
                cb(move |b, _| {
                    l.push(i);
                    if i == 0 {
                        b.activate(high, Ready::USER).unwrap();
                    }
                }),
            )
            .unwrap();
        fx.base.add(k, None).unwrap();
        found.push(Readiness::Io(Source::new(i), Ready::READ));
    }
    let mut poller = fx.base.mock_poller();
    poller.script(Duration::ZERO, &found);
    poller.run_with(RunFlags::ONCE).unwrap();
    assert_eq!(log.take(), [0, 99, 1, 2, 3, 4]);
}

/// An activation of the running priority or below, made during a pass, runs after the next
/// poll: a callback that re-activates itself runs once per loop iteration, and a higher
/// priority (or any I/O) is looked at in between.
#[test]
fn a_self_activating_event_runs_once_per_iteration() {
    let fx = fixture(Options::new().priorities(2));
    let log = Log::new();
    let l = log.clone();
    let me: std::sync::Arc<std::sync::OnceLock<Key>> = Default::default();
    let m = me.clone();
    let k = fx
        .base
        .new_event(
            Event::user().priority(1),
            cb(move |b, _| {
                l.push("again");
                if l.len() < 4 {
                    b.activate(*m.get().unwrap(), Ready::USER).unwrap();
                }
            }),
        )
        .unwrap();
    me.set(k).unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(log.take(), ["again"; 4]);
    assert_eq!(
        poller.waits(),
        4,
        "one poll before each run of the callback"
    );
}

/// Issue scenario: 16 self-re-activating events at the lowest priority and a 10 ms
/// persistent timer at the highest. Each callback "works" 100 µs of the manual clock. Before
/// the rule, the first pass never ended (every callback re-queued itself into the running
/// pass) and the timer starved; now it fires every 10 ms, late by at most one pass (1.6 ms).
#[test]
fn self_activating_events_do_not_starve_a_timer() {
    let fx = fixture(Options::new().priorities(3));
    let fires = Log::new();
    let f = fires.clone();
    let clock = fx.clock.clone();
    let timer = fx
        .base
        .new_event(
            Event::timer().persist().priority(0),
            cb(move |b, _| {
                f.push(clock.now_nanos());
                if f.len() == 20 {
                    b.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(timer, Some(Duration::from_millis(10))).unwrap();
    let spins = Log::new();
    for _ in 0..16 {
        let me: std::sync::Arc<std::sync::OnceLock<Key>> = Default::default();
        let m = me.clone();
        let clock = fx.clock.clone();
        let s = spins.clone();
        let k = fx
            .base
            .new_event(
                Event::user().priority(2),
                cb(move |b, _| {
                    clock.advance(Duration::from_micros(100));
                    s.push(());
                    // Bounded, so that a regression fails the assertion instead of hanging.
                    if s.len() < 200_000 {
                        b.activate(*m.get().unwrap(), Ready::USER).unwrap();
                    }
                }),
            )
            .unwrap();
        me.set(k).unwrap();
        fx.base.activate(k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    let fires = fires.take();
    assert_eq!(
        fires.len(),
        20,
        "the timer fired 20 times and broke the loop"
    );
    let mut prev = 0;
    for (i, at) in fires.iter().enumerate() {
        let gap = at - prev;
        assert!(
            gap <= 11_700_000,
            "timer run {i} came {gap} ns after the previous one (at most 10 ms + one pass)"
        );
        prev = *at;
    }
}

/// libevent's `event_del` succeeds on an event that is not pending; the key stays valid.
#[test]
fn delete_of_a_live_event_that_is_not_pending_succeeds() {
    let fx = fixture(Options::new());
    let k = fx.base.new_event(Event::user(), fixture::nop()).unwrap();
    fx.base.delete(k).unwrap();
    fx.base.delete(k).unwrap();
    fx.base.add(k, None).unwrap();
    fx.base.delete(k).unwrap();
    assert!(!fx.base.is_pending(k).unwrap());
}
