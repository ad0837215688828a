//! The notify protocol on the mocks: a change made while the loop blocks writes once, changes
//! while it is awake write nothing, writes coalesce, a failed write leaves nothing stuck, and
//! the activation fast path takes no lock. (`tests/loom_notify.rs` model-checks the races.)

#[path = "core/fixture.rs"]
mod fixture;

use std::cell::Cell;
use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{Error, Event, Exit, Interest, Notify, Options, Ready, SeamError, Source};

#[test]
fn changes_while_the_loop_is_awake_never_notify() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let other = fx.base.new_event(Event::user(), nop()).unwrap();
    let k = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, _| {
                // From a callback: the loop thread never notifies itself.
                b.activate(other, Ready::USER).unwrap();
                let t = b.new_event(Event::timer(), Box::new(|_, _| {})).unwrap();
                b.add(t, Some(Duration::ZERO)).unwrap();
                b.loop_exit(None).unwrap();
                l.push(());
            }),
        )
        .unwrap();
    fx.base.activate(k, Ready::USER).unwrap(); // before the run: not polling either
    fx.base.mock_poller().run().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(fx.notifier.writes(), 0);
    let s = fx.base.wake_stats();
    assert_eq!((s.writes, s.coalesced), (0, 0));
    assert_eq!(s.awake, s.requests);
}

#[test]
fn a_change_while_the_loop_blocks_wakes_it_with_one_write() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::user(), cb(move |_, f| l.push(f.ready)))
        .unwrap();
    let keep = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(keep, None).unwrap();
    let rounds = Cell::new(0);
    let hook = |timeout: Option<Duration>| {
        // "Another thread", while the loop is blocked with no timeout.
        assert_eq!(timeout, None);
        rounds.set(rounds.get() + 1);
        if rounds.get() == 1 {
            fx.base.activate(k, Ready::USER).unwrap(); // writes
            fx.base.activate(k, Ready::USER).unwrap(); // fast path: no lock, no write
            fx.base.activate(k, Ready::READ).unwrap(); // new reason: lock, nothing to wake for
            fx.base.loop_exit(None).unwrap(); // a request, coalesced
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Exit));
    assert_eq!(log.take(), [Ready::USER | Ready::READ]);
    assert_eq!(fx.notifier.writes(), 1, "one write for four requests");
    assert_eq!(fx.notifier.consumed(), 1);
    assert!(!fx.notifier.is_signalled());
    let s = fx.base.wake_stats();
    assert_eq!(s.writes, 1);
    assert_eq!(s.coalesced, 1);
    assert!(s.writes <= s.blocking_polls);
}

#[test]
fn a_failed_write_is_reported_and_does_not_leave_the_flag_stuck() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::user().persist(), cb(move |_, _| l.push(())))
        .unwrap();
    fx.base.add(k, None).unwrap();
    let step = Cell::new(0);
    let hook = |_| {
        step.set(step.get() + 1);
        if step.get() == 1 {
            fx.notifier.fail_next(5);
            assert_eq!(
                fx.base.activate(k, Ready::USER),
                Err(Error::Notify(SeamError::os(5)))
            );
            // The event is queued anyway; a later request must write again.
            fx.base.loop_exit(None).unwrap();
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Exit));
    assert_eq!(log.len(), 1);
    let s = fx.base.wake_stats();
    assert_eq!((s.writes, s.failures), (2, 1));
    assert_eq!(fx.notifier.writes(), 1);
}

#[test]
fn deleting_the_last_event_or_the_earliest_timer_wakes_the_loop() {
    // libevent issues 623 and 1727: neither woke a sleeping loop.
    let fx = fixture(Options::new());
    let early = fx.base.new_event(Event::timer(), nop()).unwrap();
    let late = fx.base.new_event(Event::timer(), nop()).unwrap();
    fx.base.add(early, Some(Duration::from_secs(1))).unwrap();
    fx.base.add(late, Some(Duration::from_secs(9))).unwrap();
    let step = Cell::new(0);
    let hook = |timeout: Option<Duration>| {
        step.set(step.get() + 1);
        match step.get() {
            1 => {
                assert_eq!(timeout, Some(Duration::from_secs(1)));
                fx.base.delete(early).unwrap();
                assert!(fx.notifier.is_signalled(), "earliest timer deleted: wake");
            }
            2 => {
                assert_eq!(timeout, Some(Duration::from_secs(9)), "recomputed");
                fx.base.delete(late).unwrap();
                assert!(fx.notifier.is_signalled(), "last event deleted: wake");
            }
            _ => unreachable!("the loop must have returned"),
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(fx.clock.now_nanos(), 0, "woken, not timed out");
}

#[test]
fn adding_a_later_timer_does_not_wake_an_earlier_one_does() {
    let fx = fixture(Options::new());
    let first = fx.base.new_event(Event::timer(), nop()).unwrap();
    fx.base.add(first, Some(Duration::from_secs(5))).unwrap();
    let later = fx.base.new_event(Event::timer(), nop()).unwrap();
    let earlier = fx
        .base
        .new_event(Event::timer(), cb(|b, _| b.loop_break().unwrap()))
        .unwrap();
    let step = Cell::new(0);
    let hook = |_| {
        step.set(step.get() + 1);
        if step.get() == 1 {
            fx.base.add(later, Some(Duration::from_secs(9))).unwrap();
            assert!(
                !fx.notifier.is_signalled(),
                "later deadline: no wake needed"
            );
            fx.base.add(earlier, Some(Duration::from_secs(2))).unwrap();
            assert!(fx.notifier.is_signalled(), "earlier deadline: wake");
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(fx.clock.now_nanos(), 2_000_000_000);
}

#[test]
fn an_io_add_while_blocked_wakes_the_loop_to_register_it() {
    let fx = fixture(Options::new());
    let keep = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(keep, None).unwrap();
    let s = Source::new(7);
    let io = fx
        .base
        .new_event(Event::io(s, Interest::READ), nop())
        .unwrap();
    let step = Cell::new(0);
    let hook = |_| {
        step.set(step.get() + 1);
        match step.get() {
            1 => fx.base.add(io, None).unwrap(),
            _ => fx.base.loop_break().unwrap(),
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(poller.registered(s), Interest::READ);
    assert_eq!(fx.notifier.writes(), 2);
}

#[test]
fn a_notification_in_flight_at_fork_is_forgotten_by_reinit() {
    // libevent's event_reinit keeps `is_notify_pending` set: the child can never be woken.
    let fx = fixture(Options::new());
    let keep = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(keep, None).unwrap();
    let k = fx.base.new_event(Event::user(), nop()).unwrap();
    let step = Cell::new(0);
    let hook = |_| {
        step.set(step.get() + 1);
        if step.get() == 1 {
            fx.base.activate(k, Ready::USER).unwrap(); // a write in flight ...
                                                       // SAFETY: a model of a forked child: nothing else uses the base meanwhile.
            unsafe { fx.base.reinit() }; // ... and the child process starts over
            fx.notifier.consume(); // (the child's new notifier is empty)
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    // The child's loop: the activation itself is queued; run it.
    assert!(poller.run().is_err(), "nothing woke it: would block");
    assert_eq!(fx.base.wake_stats().writes, 1);
    drop(poller); // back into the base
    let step2 = Cell::new(0); // counts every wait, blocking or not
    let hook2 = |timeout: Option<Duration>| {
        step2.set(step2.get() + 1);
        if timeout.is_none() {
            fx.base.loop_break().unwrap();
            assert!(
                fx.notifier.is_signalled(),
                "the child can be woken: not stuck"
            );
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook2);
    assert_eq!(poller.run(), Ok(Exit::Break));
}
