//! Timers on the manual clock: never early, ordering, persistent re-arm, common timeouts,
//! zero and `Duration::MAX` timeouts, plus a seeded randomized run against a reference model.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::{Error, Event, Exit, Instant, Interest, Options, Readiness, Ready, Source};

const MS: Duration = Duration::from_millis(1);

#[test]
fn timers_fire_in_deadline_order_and_never_early() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let deadlines = [50u64, 10, 30, 10, 70, 20];
    for (i, ms) in deadlines.iter().enumerate() {
        let (l, clock) = (log.clone(), fx.clock.clone());
        let due = ms * 1_000_000;
        let k = fx
            .base
            .new_event(
                Event::timer(),
                cb(move |_, f| {
                    assert_eq!(f.ready, Ready::TIMEOUT);
                    assert!(clock.now_nanos() >= due, "timer {i} fired early");
                    l.push(due);
                }),
            )
            .unwrap();
        fx.base.add(k, Some(MS * *ms as u32)).unwrap();
    }
    // A poller that wakes up early (spuriously) must not make anything fire early.
    let mut poller = fx.base.mock_poller();
    poller.script(Duration::from_micros(9_999), &[]);
    assert_eq!(poller.run(), Ok(Exit::Empty));
    let fired = log.take();
    let mut sorted = fired.clone();
    sorted.sort();
    assert_eq!(fired, sorted, "deadline order");
    assert_eq!(fired.len(), deadlines.len());
}

#[test]
fn persistent_timer_rearms_from_its_previous_deadline_or_from_now_when_late() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(
            Event::timer().persist(),
            cb(move |b, _| {
                l.push(clock.now_nanos() / 1_000_000);
                if l.len() == 4 {
                    b.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(k, Some(MS * 10)).unwrap();
    // Late wake-ups (an overloaded machine): time that passes inside a wait beyond its
    // timeout.
    let late = [13, 0, 25]; // t = 13: next deadline still 20; t = 20; t = 45: missed 30 and
                            // 40, re-armed from now: 55
    let waits = std::cell::Cell::new(0);
    let hook = |_| {
        let i = waits.replace(waits.get() + 1);
        fx.clock.advance(MS * late.get(i).copied().unwrap_or(0));
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(log.take(), [13, 20, 45, 55]);
}

#[test]
fn io_timeout_of_a_persistent_event_restarts_when_io_arrives() {
    let fx = fixture(Options::new());
    let s = Source::new(5);
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(
            Event::io(s, Interest::READ).persist(),
            cb(move |b, f| {
                l.push((clock.now_nanos() / 1_000_000, f.ready));
                if f.ready == Ready::TIMEOUT {
                    b.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(k, Some(MS * 10)).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(MS * 6, &[Readiness::Io(s, Ready::READ)]); // t = 6: timeout now 16
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(log.take(), [(6, Ready::READ), (16, Ready::TIMEOUT)]);
}

#[test]
fn readding_with_a_new_timeout_replaces_a_fired_but_not_yet_run_timeout() {
    let fx = fixture(Options::new().priorities(2));
    let log = Log::new();
    let l = log.clone();
    let t = fx
        .base
        .new_event(Event::timer().priority(1), cb(move |_, _| l.push("t")))
        .unwrap();
    let l = log.clone();
    let re = fx
        .base
        .new_event(
            Event::timer().priority(0),
            cb(move |b, _| {
                l.push("re");
                b.add(t, Some(MS * 100)).unwrap(); // t is queued with TIMEOUT: re-arm instead
            }),
        )
        .unwrap();
    fx.base.add(t, Some(MS)).unwrap();
    fx.base.add(re, Some(MS)).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    assert_eq!(log.take(), ["re", "t"]);
    assert_eq!(
        fx.clock.now_nanos(),
        101_000_000,
        "t ran at its new deadline"
    );
}

#[test]
fn readding_a_pending_timer_to_the_deadline_it_has_keeps_it_and_a_new_interval_counts() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let once = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |_, _| l.push(("once", clock.now_nanos() / 1_000_000))),
        )
        .unwrap();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let every = fx
        .base
        .new_event(
            Event::timer().persist(),
            cb(move |b, _| {
                l.push(("every", clock.now_nanos() / 1_000_000));
                if l.len() == 4 {
                    b.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(once, Some(MS * 10)).unwrap();
    let due = fx.base.info(once).unwrap().deadline;
    // The clock has not moved: each re-add arms the deadline the timer has.
    for _ in 0..3 {
        fx.base.add(once, Some(MS * 10)).unwrap();
        assert_eq!(fx.base.info(once).unwrap().deadline, due);
    }
    assert_eq!(fx.base.counts().timers, 1);
    // The same deadline by another interval: a persistent timer re-arms by the new one.
    fx.base.add(every, Some(MS * 10)).unwrap();
    fx.clock.advance(MS * 5);
    fx.base.add(every, Some(MS * 5)).unwrap();
    assert_eq!(fx.base.info(every).unwrap().deadline, due);
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Break));
    let mut got = log.take();
    got.sort();
    assert_eq!(
        got,
        [("every", 10), ("every", 15), ("every", 20), ("once", 10)]
    );
}

#[test]
fn zero_timeout_fires_next_iteration_and_max_never_fires() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let z = fx
        .base
        .new_event(Event::timer(), cb(move |_, _| l.push("zero")))
        .unwrap();
    let l = log.clone();
    let never = fx
        .base
        .new_event(Event::timer(), cb(move |_, _| l.push("never")))
        .unwrap();
    fx.base.add(z, Some(Duration::ZERO)).unwrap();
    fx.base.add(never, Some(Duration::MAX)).unwrap();
    let info = fx.base.info(never).unwrap();
    assert_eq!(info.deadline, Some(Instant::MAX), "saturates, no overflow");
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run_once(), Ok(rouse_core::Exit::Done));
    assert_eq!(log.take(), ["zero"]);
    assert_eq!(fx.clock.now_nanos(), 0, "no time passed");
    poller.run_nonblocking().unwrap();
    assert_eq!(log.len(), 0);
}

#[test]
fn common_timeouts_keep_one_heap_entry_and_fire_in_order() {
    let fx = fixture(Options::new());
    let ct = fx.base.common_timeout(MS * 10).unwrap();
    assert_eq!(
        fx.base.common_timeout(MS * 10).unwrap(),
        ct,
        "same duration, same queue"
    );
    let log = Log::new();
    let mut keys = Vec::new();
    for i in 0..20u64 {
        let (l, clock) = (log.clone(), fx.clock.clone());
        let k = fx
            .base
            .new_event(
                Event::timer(),
                cb(move |_, _| {
                    assert!(clock.now_nanos() >= 10_000_000 + i * 1_000_000);
                    l.push(i)
                }),
            )
            .unwrap();
        fx.base.add_common(k, ct).unwrap();
        keys.push(k);
        fx.clock.advance(MS); // each added 1 ms after the previous
    }
    assert_eq!(fx.base.counts().timers, 20);
    fx.base.delete(keys[0]).unwrap(); // the head
    fx.base.delete(keys[7]).unwrap(); // the middle
    fx.base.delete(keys[19]).unwrap(); // the tail
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    let want: Vec<u64> = (1..19).filter(|i| *i != 7).collect();
    assert_eq!(log.take(), want);
}

#[test]
fn persistent_common_timeout_rearms_in_order() {
    let fx = fixture(Options::new());
    let ct = fx.base.common_timeout(MS * 10).unwrap();
    let log = Log::new();
    for i in 0..3u64 {
        let (l, clock) = (log.clone(), fx.clock.clone());
        let k = fx
            .base
            .new_event(
                Event::timer().persist(),
                cb(move |b, _| {
                    l.push((i, clock.now_nanos() / 1_000_000));
                    if l.len() == 9 {
                        b.loop_break().unwrap();
                    }
                }),
            )
            .unwrap();
        fx.base.add_common(k, ct).unwrap();
        fx.clock.advance(MS * 3);
    }
    let mut poller = fx.base.mock_poller();
    poller.run().unwrap();
    let got = log.take();
    assert_eq!(
        got,
        [
            (0, 10),
            (1, 13),
            (2, 16),
            (0, 20),
            (1, 23),
            (2, 26),
            (0, 30),
            (1, 33),
            (2, 36)
        ]
    );
}

#[test]
fn a_foreign_common_timeout_is_refused() {
    let a = fixture(Options::new());
    let b = fixture(Options::new());
    let ct = b.base.common_timeout(MS).unwrap();
    let k = a.base.new_event(Event::timer(), fixture::nop()).unwrap();
    assert_eq!(a.base.add_common(k, ct), Err(Error::Foreign));
}

/// Seeded random adds, deletes, re-adds and clock steps against a model of "what is due".
#[test]
fn randomized_timers_match_a_reference_model() {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let rounds = if cfg!(miri) { 60 } else { 3000 };
    let fx = fixture(Options::new());
    let fired: Arc<Mutex<Vec<usize>>> = Arc::default();
    let mut keys = Vec::new();
    for i in 0..48 {
        let f = fired.clone();
        keys.push(
            fx.base
                .new_event(Event::timer(), cb(move |_, _| f.lock().unwrap().push(i)))
                .unwrap(),
        );
    }
    let ct = fx.base.common_timeout(MS * 7).unwrap();
    let mut model: BTreeMap<usize, u64> = BTreeMap::new(); // timer -> deadline
    let mut seed = 0x1234_5678_u64;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut poller = fx.base.mock_poller();
    for round in 0..rounds {
        let i = rnd(48) as usize;
        let now = fx.clock.now_nanos();
        match rnd(5) {
            0 | 1 => {
                let d = rnd(20) * 1_000_000;
                fx.base.add(keys[i], Some(Duration::from_nanos(d))).unwrap();
                model.insert(i, now + d);
            }
            2 => {
                fx.base.add_common(keys[i], ct).unwrap();
                model.insert(i, now + 7_000_000);
            }
            3 => {
                let armed = fx.base.info(keys[i]).unwrap().deadline.is_some();
                fx.base.delete(keys[i]).unwrap();
                assert_eq!(armed, model.remove(&i).is_some(), "round {round}");
            }
            _ => {
                fx.clock.advance(Duration::from_nanos(rnd(5_000_000)));
                poller.run_nonblocking().unwrap();
                let now = fx.clock.now_nanos();
                let mut due: Vec<usize> = model
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(i, _)| *i)
                    .collect();
                model.retain(|_, at| *at > now);
                let mut got = std::mem::take(&mut *fired.lock().unwrap());
                due.sort();
                got.sort();
                assert_eq!(got, due, "round {round}: exactly the due timers fired");
            }
        }
        assert_eq!(
            fx.base.counts().timers as usize,
            model.len(),
            "round {round}"
        );
    }
}

#[test]
fn a_persistent_timer_at_the_end_of_time_never_fires_again() {
    // `now + 1` overflowed in the re-arm (a panic in debug, a spin under the lock in release).
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::timer().persist(), cb(move |_, _| l.push(())))
        .unwrap();
    fx.base.add(k, Some(MS)).unwrap();
    fx.clock.advance(Duration::MAX);
    let mut poller = fx.base.mock_poller();
    assert_eq!(
        poller.run_with(rouse_core::RunFlags::ONCE_NONBLOCK),
        Ok(Exit::Done)
    );
    assert_eq!(log.len(), 1, "fired once, for the deadline that passed");
    // Re-armed for "never": a second pass runs nothing.
    let _ = poller.run_with(rouse_core::RunFlags::NONBLOCK);
    assert_eq!(log.len(), 1);
    // A timer added at the end of time never fires either.
    let l = log.clone();
    let late = fx
        .base
        .new_event(Event::timer().persist(), cb(move |_, _| l.push(())))
        .unwrap();
    fx.base.add(late, Some(MS)).unwrap();
    let _ = poller.run_with(rouse_core::RunFlags::NONBLOCK);
    assert_eq!(log.len(), 1);
}

#[test]
fn timers_of_one_common_timeout_due_at_one_instant_fire_in_add_order() {
    // Under a manual clock every timer added at one moment with one timeout ties. Plain
    // timers then fire in heap order; the members of a common timeout, a FIFO, in add order.
    let fx = fixture(Options::new());
    let ct = fx.base.common_timeout(MS * 5).unwrap();
    let log = Log::new();
    let keys: Vec<_> = (0..12u32)
        .map(|i| {
            let l = log.clone();
            fx.base
                .new_event(Event::timer(), cb(move |_, _| l.push(i)))
                .unwrap()
        })
        .collect();
    let order = [3usize, 0, 7, 1, 11, 5, 10, 2, 9, 4, 8, 6];
    for &i in &order {
        fx.base.add_common(keys[i], ct).unwrap();
    }
    assert_eq!(fx.base.mock_poller().run(), Ok(Exit::Empty));
    let want: Vec<u32> = order.iter().map(|&i| i as u32).collect();
    assert_eq!(log.take(), want);
}

/// The time rule: an add from a callback reads no clock; its timeout starts at the loop's
/// next reading, after the callback. The mock clock moves inside the callback as a real one
/// would while it works: 5 ms of work, the add of a 10 ms timer, 2 ms more work. A cached
/// loop time (libevent's) would make the timer due at 10 ms, 5 ms early; the rule makes it
/// due at 17 ms: never early, late by exactly the work after the add.
#[test]
fn a_timer_added_late_in_a_callback_never_fires_early() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let timer = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |_, _| l.push(clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    let clock = fx.clock.clone();
    let starter = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, _| {
                clock.advance(MS * 5);
                b.add(timer, Some(MS * 10)).unwrap();
                clock.advance(MS * 2);
            }),
        )
        .unwrap();
    fx.base.activate(starter, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    let fired = log.take();
    assert_eq!(fired.len(), 1, "the timer fired once");
    assert!(
        fired[0] >= 15,
        "fired at {} ms: before 10 ms after its add",
        fired[0]
    );
    assert_eq!(
        fired[0], 17,
        "late by the callback's work after the add, no more"
    );
}

/// A timeout added by the last callback of a run that returns (`ONCE`, `NONBLOCK`) starts
/// when the run ends, not at the next run: its deadline is known as soon as the run returns.
#[test]
fn a_timer_added_in_the_last_callback_starts_when_the_run_returns() {
    let fx = fixture(Options::new());
    let timer = fx.base.new_event(Event::timer(), nop()).unwrap();
    let clock = fx.clock.clone();
    let starter = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, _| {
                b.add(timer, Some(MS * 10)).unwrap();
                clock.advance(MS * 3);
            }),
        )
        .unwrap();
    fx.clock.advance(MS * 100);
    fx.base.activate(starter, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run_nonblocking(), Ok(Exit::Done));
    // Time passes between runs: it must not delay the timer.
    fx.clock.advance(MS * 50);
    let info = fx.base.info(timer).unwrap();
    assert_eq!(info.deadline, Some(Instant::from_nanos(113_000_000)));
    assert_eq!(fx.base.counts().timers, 1);
}

#[test]
fn a_coarse_start_fires_up_to_its_lag_early_and_the_loop_times_on_the_precise_clock() {
    // A clock whose cheap reading lags by 4 ms (a 250 Hz kernel's coarse clock): an add
    // outside the loop starts there, so its timeout may come up to the lag early; the loop
    // decides what is due on the precise reading, so nothing is late for the coarseness, and
    // a timeout added from a callback starts at the loop's (precise) reading.
    let fx = fixture(Options::new());
    fx.clock.advance(MS * 100);
    fx.clock.set_coarse_lag(MS * 4);
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let again = std::rc::Rc::new(std::cell::Cell::new(None));
    let a = again.clone();
    let k = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |b, f| {
                l.push(clock.now_nanos() / 1_000_000);
                if l.len() == 1 {
                    b.add(f.key, Some(MS)).unwrap(); // from a callback: no reading
                    a.set(Some(f.key));
                }
            }),
        )
        .unwrap();
    fx.base.add(k, Some(MS * 10)).unwrap();
    let due = fx.base.info(k).unwrap().deadline.unwrap();
    assert_eq!(
        due,
        Instant::from_nanos(106_000_000),
        "started at the coarse reading"
    );
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(
        log.take(),
        [106, 107],
        "due on the precise clock, and the re-add from then"
    );
    assert!(again.get().is_some());
}

#[test]
fn timer_slack_never_delays_a_timer_already_due() {
    // The clock moved on between the add and the run (on a coarse clock the add's own
    // reading lags, so a short timeout is often already due when the loop plans its wait):
    // the timer fires without a wait, not at the next grid point (4 ms).
    let fx = fixture(Options::new().timer_slack(4 * MS));
    let log = Log::new();
    let start = fx.clock.now_nanos();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |_, _| l.push((clock.now_nanos() - start) / 100_000)),
        )
        .unwrap();
    fx.base.add(k, Some(MS)).unwrap();
    fx.clock.advance(MS * 5 / 2);
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(
        log.take(),
        [25],
        "fired at 2.5 ms, when the loop first looked"
    );
}

#[test]
fn timer_slack_ends_waits_on_its_grid_so_near_deadlines_share_a_wake_up() {
    let slack = 4 * MS;
    let fx = fixture(Options::new().timer_slack(slack));
    let log = Log::new();
    let start = fx.clock.now_nanos();
    for ms in [1u64, 3, 5, 9, 12] {
        let (l, clock) = (log.clone(), fx.clock.clone());
        let k = fx
            .base
            .new_event(
                Event::timer(),
                cb(move |_, _| l.push((ms, (clock.now_nanos() - start) / 1_000_000))),
            )
            .unwrap();
        fx.base.add(k, Some(MS * ms as u32)).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    // (deadline, fired at) in ms: each at the first multiple of 4 at or after its deadline.
    assert_eq!(
        log.take(),
        [(1, 4), (3, 4), (5, 8), (9, 12), (12, 12)],
        "never early, at most one slack late"
    );
    assert_eq!(
        poller.waits(),
        3,
        "one wake-up per grid step that has deadlines"
    );

    // Without slack, the same deadlines take one wake-up each.
    let fx = fixture(Options::new());
    for ms in [1u64, 3, 5, 9, 12] {
        let k = fx.base.new_event(Event::timer(), nop()).unwrap();
        fx.base.add(k, Some(MS * ms as u32)).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(poller.waits(), 5);
}

#[test]
fn timer_slack_keeps_a_deadline_that_falls_due_during_callbacks_for_its_grid_point() {
    // Deadlines at 3 and 5 ms, slack 4 ms: the wake-up at 4 runs the first, whose callback
    // takes 1.5 ms, so the second is due (at 5.5) when the next wait is planned. It still
    // waits for its grid point (8): one wake-up per grid step, not a poll without a wait for
    // every deadline that a callback's time let pass.
    let fx = fixture(Options::new().timer_slack(4 * MS));
    let log = Log::new();
    let start = fx.clock.now_nanos();
    for (ms, busy) in [(3u32, MS * 3 / 2), (5, Duration::ZERO)] {
        let (l, clock) = (log.clone(), fx.clock.clone());
        let k = fx
            .base
            .new_event(
                Event::timer(),
                cb(move |_, _| {
                    l.push((ms, (clock.now_nanos() - start) / 100_000));
                    clock.advance(busy);
                }),
            )
            .unwrap();
        fx.base.add(k, Some(MS * ms)).unwrap();
    }
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(
        log.take(),
        [(3, 40), (5, 80)],
        "(deadline ms, fired at 0.1 ms): the second at its grid point, 3 ms late at most"
    );
    assert_eq!(
        poller.waits(),
        2,
        "one wait per grid step, no zero-timeout poll"
    );
}

#[test]
fn an_add_timed_from_an_earlier_reading_counts_from_it_and_keeps_its_interval() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let every = fx
        .base
        .new_event(
            Event::timer().persist(),
            cb(move |b, _| {
                l.push(clock.now_nanos() / 1_000_000);
                if l.len() == 3 {
                    b.loop_break().unwrap();
                }
            }),
        )
        .unwrap();
    fx.base.add(every, Some(MS * 100)).unwrap();
    // Asked for at 0, applied at 4: due at 10, not 14, and every 10 after it.
    let asked = fx.base.now();
    fx.clock.advance(MS * 4);
    let at = fx.base.add_timed_from(every, MS * 10, asked).unwrap();
    assert_eq!(at, Some(asked.saturating_add(MS * 10)));
    assert_eq!(fx.base.info(every).unwrap().deadline, at);
    assert_eq!(fx.base.counts().timers, 1);
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run(), Ok(Exit::Break));
    assert_eq!(log.take(), [10, 20, 30]);
}
