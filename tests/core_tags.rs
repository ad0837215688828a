//! Event tags and reclaiming idle events, on the mocks: every `Fired` and snapshot carries
//! the event's tag, and `free_idle` frees exactly the idle events whose tag it selects.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{Error, Event, Options, Ready, RunFlags};

#[test]
fn every_fired_and_snapshot_carries_the_events_tag() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let mut keys = Vec::new();
    for tag in [7usize, 0, usize::MAX] {
        let l = log.clone();
        keys.push(
            fx.base
                .new_event(
                    Event::user().tag(tag),
                    cb(move |_, f| l.push((f.tag, f.ready))),
                )
                .unwrap(),
        );
    }
    let mut tags = Vec::new();
    fx.base.for_each_event(|i| tags.push(i.tag));
    assert_eq!(tags, [7, 0, usize::MAX], "snapshots in slot order");
    for &k in &keys {
        fx.base.activate(k, Ready::USER).unwrap();
    }
    fx.base
        .mock_poller()
        .run_with(RunFlags::ONCE_NONBLOCK)
        .unwrap();
    assert_eq!(
        log.take(),
        [
            (7, Ready::USER),
            (0, Ready::USER),
            (usize::MAX, Ready::USER)
        ]
    );
    // A finalizer is told the tag of the event it finalizes.
    let l = log.clone();
    fx.base
        .finalize(keys[0], cb(move |_, f| l.push((f.tag, f.ready))))
        .unwrap();
    fx.base
        .mock_poller()
        .run_with(RunFlags::ONCE_NONBLOCK)
        .unwrap();
    assert_eq!(log.take(), [(7, Ready::FINALIZE)]);
}

#[test]
fn free_idle_frees_the_idle_events_it_selects_and_nothing_busy() {
    let fx = fixture(Options::new());
    // More idle, selected events than one lock section frees (16), beside the busy ones.
    let idle: Vec<_> = (0..40)
        .map(|_| fx.base.new_event(Event::timer().tag(1), nop()).unwrap())
        .collect();
    let other = fx.base.new_event(Event::timer().tag(2), nop()).unwrap();
    let pending = fx.base.new_event(Event::timer().tag(1), nop()).unwrap();
    fx.base.add(pending, Some(Duration::from_secs(5))).unwrap();
    let queued = fx.base.new_event(Event::user().tag(1), nop()).unwrap();
    fx.base.activate(queued, Ready::USER).unwrap();
    // Running: asks for the reclaim from its own callback, and is not freed by it.
    let freed_inside = Log::new();
    let l = freed_inside.clone();
    let running = fx
        .base
        .new_event(
            Event::user().tag(1),
            cb(move |b, _| l.push(b.free_idle(|t| t == 1))),
        )
        .unwrap();

    assert_eq!(fx.base.counts().events, 44);
    fx.base.activate(running, Ready::USER).unwrap();
    fx.base
        .mock_poller()
        .run_with(RunFlags::ONCE_NONBLOCK)
        .unwrap();
    // `queued` ran before `running` (same priority, queued first): idle again by then, so
    // the reclaim took it with the 40.
    assert_eq!(freed_inside.take(), [41]);
    for k in idle.iter().chain([&queued]) {
        assert_eq!(
            fx.base.add(*k, None),
            Err(Error::Stale),
            "freed: its key is stale"
        );
    }
    assert!(
        fx.base.is_pending(pending).unwrap(),
        "a pending event stays"
    );
    fx.base.add(other, Some(Duration::ZERO)).unwrap(); // not selected: still there
    fx.base.add(running, None).unwrap(); // running then: still there
    assert_eq!(fx.base.counts().events, 3);

    // Nothing idle is left to select; the slots freed are reused.
    assert_eq!(fx.base.free_idle(|_| true), 0);
    let again = fx.base.new_event(Event::timer().tag(1), nop()).unwrap();
    assert_eq!(fx.base.free_idle(|t| t == 1), 1);
    assert_eq!(fx.base.add(again, None), Err(Error::Stale));
}
