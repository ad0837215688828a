//! Loop control on the mocks: break, exit, continue, and the run modes.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{Event, Exit, Options, Ready, RunFlags};

#[test]
fn break_stops_after_the_current_callback() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let mut keys = Vec::new();
    for i in 0..3 {
        let l = log.clone();
        keys.push(
            fx.base
                .new_event(
                    Event::user(),
                    cb(move |b, _| {
                        l.push(i);
                        if i == 1 {
                            b.loop_break().unwrap();
                        }
                    }),
                )
                .unwrap(),
        );
    }
    for k in &keys {
        fx.base.activate(*k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(log.take(), [0, 1]);
    // The rest is still queued and runs next time.
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(log.take(), [2]);
}

#[test]
fn a_break_requested_before_the_run_applies_to_the_next_run() {
    // libevent clears it at loop start (issue 1292); rouse keeps it.
    let fx = fixture(Options::new());
    let k = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(k, None).unwrap();
    fx.base.loop_break().unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run_forever(), Ok(Exit::Break));
    assert_eq!(poller.waits(), 0, "returned before polling");
    // Consumed: the next run polls (and the mock reports it would block forever).
    assert!(poller.run().is_err());
    assert_eq!(poller.waits(), 1);
}

#[test]
fn exit_now_finishes_the_iteration_exit_later_waits_for_the_deadline() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l1, l2) = (log.clone(), log.clone());
    let a = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, _| {
                l1.push("a");
                b.loop_exit(None).unwrap();
            }),
        )
        .unwrap();
    let b = fx
        .base
        .new_event(Event::user(), cb(move |_, _| l2.push("b")))
        .unwrap();
    fx.base.activate(a, Ready::USER).unwrap();
    fx.base.activate(b, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Exit));
    assert_eq!(log.take(), ["a", "b"], "the iteration's callbacks all ran");

    // Exit after 2 s on an otherwise idle base that must keep running.
    let k = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(k, None).unwrap();
    fx.base.loop_exit(Some(Duration::from_secs(2))).unwrap();
    let start = fx.clock.now_nanos();
    assert_eq!(poller.run(), Ok(Exit::Exit));
    assert_eq!(fx.clock.now_nanos() - start, 2_000_000_000);
    assert_eq!(poller.last_timeout(), Some(Some(Duration::from_secs(2))));
}

#[test]
fn continue_polls_again_before_the_rest_of_the_queue() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let mut keys = Vec::new();
    for i in 0..3 {
        let l = log.clone();
        keys.push(
            fx.base
                .new_event(
                    Event::user(),
                    cb(move |b, _| {
                        l.push(i);
                        if i == 0 {
                            b.loop_continue();
                        }
                    }),
                )
                .unwrap(),
        );
    }
    for k in &keys {
        fx.base.activate(*k, Ready::USER).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(log.take(), [0, 1, 2]);
    assert_eq!(poller.waits(), 2, "one extra poll after `continue`");
}

#[test]
fn run_modes_once_nonblock_forever() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let t = fx
        .base
        .new_event(Event::timer().persist(), cb(move |_, _| l.push(())))
        .unwrap();
    fx.base.add(t, Some(Duration::from_millis(10))).unwrap();
    let mut poller = fx.base.mock_poller();

    // Non-blocking: the timer is not due, nothing runs, no time passes.
    assert_eq!(poller.run_nonblocking(), Ok(Exit::Done));
    assert_eq!(poller.last_timeout(), Some(Some(Duration::ZERO)));
    assert_eq!((log.len(), fx.clock.now_nanos()), (0, 0));

    // Once: blocks until the timer fires, runs it, returns.
    assert_eq!(poller.run_once(), Ok(Exit::Done));
    assert_eq!((log.len(), fx.clock.now_nanos()), (1, 10_000_000));

    // Until empty: a persistent timer never empties the base; a break ends it.
    let b = fx
        .base
        .new_event(Event::timer(), cb(|b, _| b.loop_break().unwrap()))
        .unwrap();
    fx.base.add(b, Some(Duration::from_millis(35))).unwrap();
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(
        log.take().len(),
        4,
        "fired at 10, 20, 30 and 40; the break at 45"
    );

    // Forever with nothing pending: only an exit ends it.
    fx.base.delete(t).unwrap();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    fx.base.loop_exit(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(poller.run_with(RunFlags::FOREVER), Ok(Exit::Exit));
}
