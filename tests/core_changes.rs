//! The change list: interest changes reach the poller once per iteration, a delete+add of the
//! same interest never reaches it, refused changes surface as `ERROR` readiness, and `reinit`
//! re-registers everything on a new poller.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{mock, Event, Interest, Options, Ready, RunFlags, SeamError, Source};

#[test]
fn delete_add_churn_of_many_sources_costs_no_poller_call() {
    let fx = fixture(Options::new());
    let n = 60; // Fixed<64> slots
    let keys: Vec<_> = (0..n)
        .map(|i| {
            fx.base
                .new_event(Event::io(Source::new(i), Interest::READ).persist(), nop())
                .unwrap()
        })
        .collect();
    for k in &keys {
        fx.base.add(*k, None).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), n, "one registration per source");
    for _ in 0..10 {
        for k in &keys {
            fx.base.delete(*k).unwrap();
            fx.base.add(*k, None).unwrap();
        }
        poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    }
    assert_eq!(
        poller.updates(),
        n,
        "delete+add within an iteration: no calls"
    );
    // A real change still goes through, once.
    fx.base.delete(keys[0]).unwrap();
    fx.base.delete(keys[0]).unwrap(); // not pending any more: nothing to do
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), n + 1);
    assert_eq!(poller.registered(Source::new(0)), Interest::NONE);
}

#[test]
fn several_events_on_one_source_register_the_union() {
    let fx = fixture(Options::new());
    let s = Source::new(2);
    let r = fx
        .base
        .new_event(Event::io(s, Interest::READ), nop())
        .unwrap();
    let w = fx
        .base
        .new_event(Event::io(s, Interest::WRITE), nop())
        .unwrap();
    let c = fx
        .base
        .new_event(Event::io(s, Interest::CLOSED), nop())
        .unwrap();
    let mut poller = fx.base.mock_poller();
    for k in [r, w, c] {
        fx.base.add(k, None).unwrap();
    }
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(
        poller.registered(s),
        Interest::READ | Interest::WRITE | Interest::CLOSED
    );
    assert_eq!(poller.updates(), 1, "three adds, one call");
    fx.base.delete(w).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.registered(s), Interest::READ | Interest::CLOSED);
}

#[test]
fn a_refused_registration_activates_the_events_with_error() {
    let fx = fixture(Options::new());
    let s = Source::new(6);
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(
            Event::io(s, Interest::READ).persist(),
            cb(move |_, f| l.push(f.ready)),
        )
        .unwrap();
    fx.base.add(k, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.fail_next_update(SeamError::os(9)); // e.g. EBADF: the fd was closed
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(log.take(), [Ready::READ | Ready::ERROR]);
    assert_eq!(fx.base.poll_errors(), 1);
    assert!(
        fx.base.is_pending(k).unwrap(),
        "still registered with the base"
    );
    // Not retried in a busy loop: the next iteration does nothing.
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!((poller.updates(), log.len()), (0, 0));
}

#[test]
fn reinit_reregisters_every_source_and_signal_on_a_new_poller() {
    let fx = fixture(Options::new());
    let a = fx
        .base
        .new_event(Event::io(Source::new(1), Interest::READ).persist(), nop())
        .unwrap();
    let b = fx
        .base
        .new_event(Event::io(Source::new(2), Interest::WRITE).persist(), nop())
        .unwrap();
    let s = fx
        .base
        .new_event(Event::signal(15).persist(), nop())
        .unwrap();
    let t = fx.base.new_event(Event::timer(), nop()).unwrap();
    for k in [a, b, s] {
        fx.base.add(k, None).unwrap();
    }
    fx.base.add(t, Some(Duration::from_secs(1))).unwrap();
    fx.base.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(fx.base.with_poller(|p| p.updates()), Ok(3));

    // SAFETY: a model of a forked child: nothing else uses the base meanwhile.
    unsafe { fx.base.reinit() };
    let fresh = mock::Poller::new(&fx.notifier, &fx.clock);
    let old = fx.base.replace_poller(fresh).expect("no run in progress");
    assert_eq!(old.map(|p| p.updates()), Some(3));
    let mut new = fx.base.mock_poller();
    new.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(new.registered(Source::new(1)), Interest::READ);
    assert_eq!(new.registered(Source::new(2)), Interest::WRITE);
    assert!(new.watches_signal(15));
    assert_eq!(new.updates(), 3);
    assert_eq!(
        new.resets(),
        2,
        "the base cannot know what a re-made poller has"
    );

    // On the same (re-made in place) poller, which still has both: reset, not registered.
    // SAFETY: as above.
    unsafe { fx.base.reinit() };
    fx.base.delete(b).unwrap();
    new.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(new.resets(), 4, "source 1 to READ, source 2 to nothing");
    assert_eq!(new.registered(Source::new(1)), Interest::READ);
    assert_eq!(new.registered(Source::new(2)), Interest::NONE);
    assert_eq!(fx.base.poll_errors(), 0);
    assert_eq!(fx.base.counts().timers, 1, "timers survive");
}

#[test]
fn a_new_event_on_a_source_emptied_in_the_same_iteration_registers_afresh() {
    // A callback frees a connection's event and closes its fd; `accept` returns the same fd
    // number and the new connection's event is added, all in one iteration. The kernel dropped
    // the old registration at `close`: the new fd must be registered, not coalesced away.
    let fx = fixture(Options::new());
    let s = Source::new(5);
    let old = fx
        .base
        .new_event(Event::io(s, Interest::READ).persist(), nop())
        .unwrap();
    fx.base.add(old, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), 1);

    fx.base.free(old).unwrap(); // (then close(5); accept() -> 5)
    let new = fx
        .base
        .new_event(Event::io(s, Interest::READ).persist(), nop())
        .unwrap();
    assert_eq!(
        new.index(),
        old.index(),
        "the freed slot is reused: still a new event"
    );
    fx.base.add(new, None).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), 2, "registered afresh");
    assert_eq!(poller.resets(), 1, "through reset: the base does not know");
    assert_eq!(poller.registered(s), Interest::READ);

    // The re-arm idiom (the same event deleted and added back) still costs nothing.
    fx.base.delete(new).unwrap();
    fx.base.add(new, None).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), 2);

    // Another event entering after the last one left (delete, not free) also re-registers.
    let other = fx
        .base
        .new_event(Event::io(s, Interest::WRITE), nop())
        .unwrap();
    fx.base.delete(new).unwrap();
    fx.base.add(other, None).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), 3);
    assert_eq!(poller.resets(), 2);
    assert_eq!(poller.registered(s), Interest::WRITE);
}

#[test]
fn with_reregister_on_rearm_the_same_event_deleted_and_added_back_registers_afresh() {
    // libevent's pattern: delete an event, close its fd, open another file that gets the
    // same number, add the same event again, all in one iteration (unbound's upstream
    // sockets). The kernel dropped the closed file's registration; "no change" would leave
    // the new file unwatched. The option makes the re-arm a fresh registration (`reset`).
    let fx = fixture(Options::new().reregister_on_rearm(true));
    let s = Source::new(5);
    let ev = fx
        .base
        .new_event(Event::io(s, Interest::READ).persist(), nop())
        .unwrap();
    fx.base.add(ev, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!((poller.updates(), poller.resets()), (1, 0));

    fx.base.delete(ev).unwrap(); // (then close(5); socket() -> 5)
    fx.base.add(ev, None).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(
        (poller.updates(), poller.resets()),
        (2, 1),
        "registered afresh, through reset"
    );
    assert_eq!(poller.registered(s), Interest::READ);

    // A change with no delete in between is still an ordinary update, and an iteration with
    // no change still makes no call.
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.updates(), 2);
    let w = fx
        .base
        .new_event(Event::io(s, Interest::WRITE), nop())
        .unwrap();
    fx.base.add(w, None).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!((poller.updates(), poller.resets()), (3, 1));
    assert_eq!(poller.registered(s), Interest::READ | Interest::WRITE);
}

#[test]
fn a_registration_the_base_forgot_is_deleted_when_the_new_event_leaves_too() {
    // A leaves, B enters (the base no longer knows what the kernel has), B leaves: all in one
    // iteration. The kernel must not keep watching the fd (level-triggered, a readable fd
    // would wake the loop forever).
    let fx = fixture(Options::new());
    let s = Source::new(2);
    let a = fx
        .base
        .new_event(Event::io(s, Interest::READ), nop())
        .unwrap();
    let b = fx
        .base
        .new_event(Event::io(s, Interest::WRITE), nop())
        .unwrap();
    fx.base.add(a, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(poller.registered(s), Interest::READ);
    fx.base.delete(a).unwrap();
    fx.base.add(b, None).unwrap();
    fx.base.delete(b).unwrap();
    poller.run_with(RunFlags::ONCE_NONBLOCK).unwrap();
    assert_eq!(
        poller.registered(s),
        Interest::NONE,
        "deleted, not forgotten"
    );
    assert_eq!(poller.resets(), 1);
    assert_eq!(fx.base.poll_errors(), 0);
}
