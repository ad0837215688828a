//! The shipped mocks tell the truth: the mock poller keeps time as a real poller does, is
//! linked to the base's notifier, has no hidden limits (with `alloc`); the mock configs tell
//! threads apart and take non-`Send` closures on a single-threaded base; bounded runs end
//! when the script does.

#[path = "core/fixture.rs"]
mod fixture;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fixture::{cb, fixture, nop, Log};
use rouse_core::mock::{self, BoxedMock, ManualClock, Notifier};
use rouse_core::{
    Base, Event, Exit, Growable, Interest, NoLock, Options, Readiness, Ready, Source, SpinLock,
};

const MS: Duration = Duration::from_millis(1);

/// A one-shot timer of `after` that logs the clock (in ms) when it fires.
fn timer_logging_ms(fx: &fixture::Fx, after: Duration, log: &Log<u64>) {
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(
            Event::timer(),
            cb(move |_, _| l.push(clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    fx.base.add(k, Some(after)).unwrap();
}

// ------------------------------------------------------------------------------- time

#[test]
fn a_scripted_sleep_longer_than_the_timeout_ends_the_wait_at_the_timeout() {
    let fx = fixture(Options::new());
    let log = Log::new();
    timer_logging_ms(&fx, MS * 10, &log);
    let s = Source::new(3);
    let (l, clock) = (log.clone(), fx.clock.clone());
    let io = fx
        .base
        .new_event(
            Event::io(s, Interest::READ),
            cb(move |_, _| l.push(100 + clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    fx.base.add(io, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(MS * 15, &[Readiness::Io(s, Ready::READ)]);
    assert_eq!(poller.run(), Ok(Exit::Empty));
    // The timer at its deadline (not at 15 ms); the rest of the batch's sleep belonged to the
    // next wait, which found the readiness at 15 ms.
    assert_eq!(log.take(), [10, 115]);
    assert_eq!(poller.scripted(), 0);
}

#[test]
fn time_the_hook_spends_inside_a_wait_counts_toward_its_timeout() {
    let fx = fixture(Options::new());
    let log = Log::new();
    timer_logging_ms(&fx, MS * 10, &log);
    let hook = |_| fx.clock.advance(MS * 4); // another thread's work takes 4 ms
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(
        log.take(),
        [10],
        "the wait ended at start + timeout, not 4 ms later"
    );
    assert_eq!(fx.clock.now_nanos(), 10_000_000);
}

#[test]
fn a_zero_timeout_poll_does_not_sleep_through_a_batch() {
    let fx = fixture(Options::new());
    let k = fx.base.new_event(Event::user(), nop()).unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(MS * 7, &[]);
    assert_eq!(poller.run_nonblocking(), Ok(Exit::Empty));
    assert_eq!(fx.clock.now_nanos(), 0, "a non-blocking poll takes no time");
    assert_eq!(poller.scripted(), 1);
}

// ------------------------------------------------------------------------------ limits

#[test]
fn the_mock_poller_has_no_fixed_limits_with_alloc() {
    type Big = BoxedMock<NoLock, Growable>;
    let clock = Arc::new(ManualClock::new());
    let base: Base<Big> =
        Base::new_mock(Arc::new(Notifier::new()), clock.clone(), Options::new()).unwrap();
    let fired = Rc::new(Cell::new(0u32));
    let errors = Rc::new(Cell::new(0u32));
    for id in 0..100 {
        let (f, e) = (fired.clone(), errors.clone());
        let k = base
            .new_event(
                Event::io(Source::new(id), Interest::READ).persist(),
                Box::new(move |_, fired_| {
                    if fired_.ready.contains(Ready::ERROR) {
                        e.set(e.get() + 1);
                    }
                    f.set(f.get() + 1);
                }),
            )
            .unwrap();
        base.add(k, None).unwrap();
    }
    let mut poller = base.mock_poller();
    // 40 scripted waits (the old limit was 32), the last finding 20 sources (the old limit
    // per wait was 16).
    for _ in 0..39 {
        poller.script(MS, &[]);
    }
    let many: Vec<Readiness> = (0..20)
        .map(|id| Readiness::Io(Source::new(id), Ready::READ))
        .collect();
    poller.script(MS, &many);
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(
        base.poll_errors(),
        0,
        "all 100 sources registered (the old limit was 64)"
    );
    assert_eq!(errors.get(), 0);
    assert_eq!(fired.get(), 20);
    assert_eq!(poller.registered(Source::new(99)), Interest::READ);
    assert_eq!(clock.now_nanos(), 40_000_000);
}

// -------------------------------------------------------------------------- identities

#[test]
fn mock_thread_ids_tell_threads_apart() {
    let here = mock::thread_id();
    assert_eq!(here, mock::thread_id());
    let there = std::thread::spawn(mock::thread_id).join().unwrap();
    std::thread::scope(|s| {
        let other = s.spawn(mock::thread_id).join().unwrap();
        assert_ne!(other, here);
    });
    assert_ne!(there, here);
}

#[test]
fn a_cross_thread_delete_waits_for_the_running_callback() {
    type Shared = BoxedMock<SpinLock, rouse_core::Fixed<8>>;
    let base: Base<Shared> = Base::new_mock(
        Arc::new(Notifier::new()),
        Arc::new(ManualClock::new()),
        Options::new(),
    )
    .unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let returned = Arc::new(AtomicBool::new(false));
    let delete_returned = Arc::new(AtomicBool::new(false));
    let (st, re, dr) = (started.clone(), returned.clone(), delete_returned.clone());
    let k = base
        .new_event(
            Event::user().persist(),
            Box::new(move |b: &Base<Shared>, _| {
                st.store(true, Ordering::SeqCst);
                // Keep running until the other thread is blocked in `delete` (or, if deletes
                // do not wait, until its delete has returned).
                while b.waiters() == 0 && !dr.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                re.store(true, Ordering::SeqCst);
            }),
        )
        .unwrap();
    base.add(k, None).unwrap();
    base.activate(k, Ready::USER).unwrap();
    let seen_returned = std::thread::scope(|s| {
        let deleter = s.spawn(|| {
            while !started.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            base.delete(k).unwrap();
            let r = returned.load(Ordering::SeqCst);
            delete_returned.store(true, Ordering::SeqCst);
            r
        });
        // Returns once the callback has run (a mock wait cannot block for the deleter).
        assert_eq!(base.mock_poller().run_once(), Ok(Exit::Done));
        deleter.join().unwrap()
    });
    assert!(
        seen_returned,
        "delete from another thread returned while the callback still ran"
    );
    assert_eq!(base.waiters(), 0);
    assert_eq!(base.is_pending(k), Ok(false), "the delete took effect");
}

// ------------------------------------------------------------------------------- wakes

#[test]
fn the_mock_poller_of_a_base_sees_a_wake_without_opting_in() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(Event::user(), cb(move |_, _| l.push(clock.now_nanos())))
        .unwrap();
    let t = fx.base.new_event(Event::timer(), nop()).unwrap();
    fx.base.add(t, Some(Duration::from_secs(1))).unwrap();
    let first = Cell::new(true);
    let hook = |_| {
        if first.replace(false) {
            fx.base.activate(k, Ready::USER).unwrap(); // "another thread", while blocked
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Empty));
    assert_eq!(log.take(), [0], "woken at once, not after the 1 s timeout");
    assert_eq!(fx.notifier.consumed(), 1);
}

// ------------------------------------------------------------------------ bounded runs

#[test]
fn run_until_idle_returns_with_a_pending_user_event() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::user().persist(), cb(move |_, f| l.push(f.ready)))
        .unwrap();
    fx.base.add(k, None).unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(log.take(), [Ready::USER]);
    // Idle again, and still usable: another activation runs on the next bounded run.
    fx.base.activate(k, Ready::USER).unwrap();
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(log.take(), [Ready::USER]);
    assert_eq!(fx.clock.now_nanos(), 0);
}

#[test]
fn run_until_idle_returns_with_an_interval_timer_once_the_script_is_used_up() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let k = fx
        .base
        .new_event(
            Event::timer().persist(),
            cb(move |_, _| l.push(clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    fx.base.add(k, Some(MS * 10)).unwrap();
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(
        log.take(),
        Vec::<u64>::new(),
        "nothing scripted: no time passes"
    );
    poller.script(MS * 35, &[]);
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(log.take(), [10, 20, 30]);
    assert_eq!(fx.clock.now_nanos(), 35_000_000);
    assert_eq!(fx.base.is_pending(k), Ok(true));
}

#[test]
fn run_until_idle_takes_a_wake_the_hook_makes_on_its_last_poll() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let l = log.clone();
    let k = fx
        .base
        .new_event(Event::user().persist(), cb(move |_, _| l.push(())))
        .unwrap();
    fx.base.add(k, None).unwrap();
    let rounds = Cell::new(0);
    let hook = |_| {
        rounds.set(rounds.get() + 1);
        if rounds.get() == 1 {
            fx.base.activate(k, Ready::USER).unwrap();
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    assert_eq!(log.len(), 1);
    assert_eq!(
        poller.last_timeout(),
        Some(None),
        "the loop's own timeout is reported"
    );
}

#[test]
fn advance_runs_everything_due_each_at_its_own_instant() {
    let fx = fixture(Options::new());
    let log = Log::new();
    let (l, clock) = (log.clone(), fx.clock.clone());
    let tick = fx
        .base
        .new_event(
            Event::timer().persist(),
            cb(move |_, _| l.push(clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    fx.base.add(tick, Some(MS * 10)).unwrap();
    let s = Source::new(2);
    let (l, clock) = (log.clone(), fx.clock.clone());
    let io = fx
        .base
        .new_event(
            Event::io(s, Interest::READ).persist(),
            cb(move |_, _| l.push(1000 + clock.now_nanos() / 1_000_000)),
        )
        .unwrap();
    fx.base.add(io, None).unwrap();
    let mut poller = fx.base.mock_poller();
    poller.script(MS * 12, &[Readiness::Io(s, Ready::READ)]); // at 12 ms
    poller.script(MS * 50, &[Readiness::Io(s, Ready::READ)]); // at 62 ms: beyond
    assert_eq!(poller.advance(MS * 35), Ok(Exit::Done));
    assert_eq!(log.take(), [10, 1012, 20, 30]);
    assert_eq!(fx.clock.now_nanos(), 35_000_000);
    assert_eq!(poller.scripted(), 1, "the cut batch is left for later");
    assert_eq!(poller.advance(MS * 30), Ok(Exit::Done));
    assert_eq!(log.take(), [40, 50, 60, 1062]);
    assert_eq!(fx.clock.now_nanos(), 65_000_000);
}

#[test]
fn advance_moves_the_clock_of_an_empty_base_and_stops_at_a_break() {
    let fx = fixture(Options::new());
    let mut poller = fx.base.mock_poller();
    assert_eq!(poller.advance(MS * 5), Ok(Exit::Empty));
    assert_eq!(fx.clock.now_nanos(), 5_000_000);
    let k = fx
        .base
        .new_event(Event::timer().persist(), cb(|b, _| b.loop_break().unwrap()))
        .unwrap();
    fx.base.add(k, Some(MS * 10)).unwrap();
    assert_eq!(poller.advance(MS * 100), Ok(Exit::Break));
    assert_eq!(
        fx.clock.now_nanos(),
        15_000_000,
        "the clock stays where the break was"
    );
}

// ---------------------------------------------------------------------------- closures

#[test]
fn a_single_threaded_boxed_mock_takes_closures_that_are_not_send() {
    let fx = fixture(Options::new());
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let k = fx
        .base
        .new_event(
            Event::user(),
            Box::new(move |_, f| s.borrow_mut().push(f.ready)),
        )
        .unwrap();
    fx.base.activate(k, Ready::USER).unwrap();
    assert_eq!(fx.base.mock_poller().run_until_idle(), Ok(Exit::Empty));
    assert_eq!(*seen.borrow(), [Ready::USER]);
}

// ------------------------------------------------------------------------- wake stats

#[test]
fn wake_requests_count_the_loop_threads_own_changes_as_awake() {
    let fx = fixture(Options::new());
    let other = fx.base.new_event(Event::user(), nop()).unwrap();
    let k = fx
        .base
        .new_event(
            Event::user(),
            cb(move |b, _| {
                b.activate(other, Ready::USER).unwrap(); // the loop thread's own request
            }),
        )
        .unwrap();
    let keep = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(keep, None).unwrap();
    let first = Cell::new(true);
    let hook = |_| {
        if first.replace(false) {
            fx.base.activate(k, Ready::USER).unwrap(); // "another thread": writes
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    let s = fx.base.wake_stats();
    assert_eq!((s.requests, s.writes, s.coalesced, s.awake), (2, 1, 0, 1));
    assert_eq!(s.requests, s.writes + s.coalesced + s.awake);
}
