//! Keys and bad input: every misuse is a typed error, never a panic, and nothing already
//! registered is lost.

#[path = "core/fixture.rs"]
mod fixture;

use std::time::Duration;

use fixture::{fixture, nop};
use rouse_core::mock::{self, ManualClock, Notifier};
use rouse_core::{
    Base, Error, Event, Fixed, Interest, Options, Ready, SeamError, Source, MAX_SIGNAL,
};

#[test]
fn stale_foreign_and_reused_keys_are_refused() {
    let a = fixture(Options::new());
    let b = fixture(Options::new());
    let k = a.base.new_event(Event::user(), nop()).unwrap();
    assert_eq!(b.base.activate(k, Ready::USER), Err(Error::Foreign));
    assert_eq!(b.base.delete(k), Err(Error::Foreign));
    assert_eq!(b.base.free(k), Err(Error::Foreign));
    a.base.free(k).unwrap();
    for r in [
        a.base.add(k, None),
        a.base.delete(k),
        a.base.activate(k, Ready::USER),
        a.base.free(k),
        a.base.set_priority(k, 0),
        a.base.info(k).map(|_| ()),
    ] {
        assert_eq!(r, Err(Error::Stale));
    }
    // The slot is reused; the old key still names nothing.
    let k2 = a.base.new_event(Event::user(), nop()).unwrap();
    assert_eq!(k2.index(), k.index());
    assert_eq!(a.base.activate(k, Ready::USER), Err(Error::Stale));
    assert_eq!(a.base.counts().active, 0, "the new event was not touched");
}

#[test]
fn bad_event_descriptions_are_refused() {
    let fx = fixture(Options::new().priorities(2));
    let io = |i| Event::io(Source::new(1), i);
    assert_eq!(
        fx.base.new_event(io(Interest::NONE), nop()),
        Err(Error::EmptyInterest)
    );
    assert_eq!(
        fx.base.new_event(io(Interest::EDGE), nop()),
        Err(Error::EmptyInterest)
    );
    assert_eq!(
        fx.base.new_event(Event::user().priority(2), nop()),
        Err(Error::Priority)
    );
    assert_eq!(
        fx.base.new_event(Event::signal(0), nop()),
        Err(Error::SignalRange)
    );
    assert_eq!(
        fx.base.new_event(Event::signal(MAX_SIGNAL + 1), nop()),
        Err(Error::SignalRange)
    );
    let k = fx.base.new_event(Event::user(), nop()).unwrap();
    assert_eq!(fx.base.set_priority(k, 9), Err(Error::Priority));
    assert_eq!(fx.base.counts().events, 1);
}

#[test]
fn delete_of_a_never_added_or_already_deleted_event_succeeds_and_keeps_the_key() {
    // libevent's event_del succeeds on a non-pending event: re-arm code (delete+add) need not
    // check first. The key stays valid; a stale key is still an error.
    let fx = fixture(Options::new());
    let k = fx.base.new_event(Event::timer(), nop()).unwrap();
    assert_eq!(fx.base.delete(k), Ok(()));
    fx.base.add(k, Some(Duration::from_secs(1))).unwrap();
    fx.base.delete(k).unwrap();
    assert_eq!(fx.base.delete(k), Ok(()));
    assert_eq!(fx.base.counts().timers, 0);
    assert!(!fx.base.is_pending(k).unwrap(), "the key is still valid");
    fx.base.add(k, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(fx.base.counts().timers, 1);
    fx.base.free(k).unwrap();
    assert_eq!(fx.base.delete(k), Err(Error::Stale));
}

#[test]
fn double_add_rearms_instead_of_duplicating() {
    let fx = fixture(Options::new());
    let k = fx
        .base
        .new_event(Event::io(Source::new(3), Interest::READ), nop())
        .unwrap();
    fx.base.add(k, Some(Duration::from_secs(1))).unwrap();
    fx.base.add(k, Some(Duration::from_secs(2))).unwrap();
    fx.base.add(k, None).unwrap(); // keeps the armed timeout
    let c = fx.base.counts();
    assert_eq!((c.pending, c.timers), (1, 1));
    assert_eq!(
        fx.base.info(k).unwrap().deadline.map(|d| d.as_nanos()),
        Some(2_000_000_000)
    );
}

#[test]
fn edge_and_level_events_cannot_share_a_source() {
    let fx = fixture(Options::new());
    let s = Source::new(4);
    let lvl = fx
        .base
        .new_event(Event::io(s, Interest::READ), nop())
        .unwrap();
    let edge = fx
        .base
        .new_event(Event::io(s, Interest::WRITE | Interest::EDGE), nop())
        .unwrap();
    fx.base.add(lvl, None).unwrap();
    assert_eq!(fx.base.add(edge, None), Err(Error::EdgeConflict));
    assert!(
        fx.base.is_pending(lvl).unwrap(),
        "the first registration is untouched"
    );
    fx.base.delete(lvl).unwrap();
    fx.base.add(edge, None).unwrap();
}

#[test]
fn fixed_storage_exhaustion_is_an_error_and_loses_nothing() {
    type Small = mock::BoxedMock<rouse_core::NoLock, Fixed<4>>;
    let base: Base<Small> = Base::new_mock(
        std::sync::Arc::new(Notifier::new()),
        std::sync::Arc::new(ManualClock::new()),
        Options::new(),
    )
    .unwrap();
    let keys: Vec<_> = (0..4)
        .map(|_| base.new_event(Event::user(), Box::new(|_, _| {})).unwrap())
        .collect();
    assert_eq!(
        base.new_event(Event::user(), Box::new(|_, _| {})),
        Err(Error::Full)
    );
    // Source ids index a table of the same capacity.
    base.free(keys[3]).unwrap();
    let far = base
        .new_event(
            Event::io(Source::new(4), Interest::READ),
            Box::new(|_, _| {}),
        )
        .unwrap();
    assert_eq!(base.add(far, None), Err(Error::SourceRange));
    assert!(!base.is_pending(far).unwrap());
    for k in &keys[..3] {
        base.activate(*k, Ready::USER).unwrap();
    }
    assert_eq!(base.counts().active, 3);
    // More priorities than fixed capacity.
    assert_eq!(
        Base::<Small>::new_mock(
            std::sync::Arc::new(Notifier::new()),
            std::sync::Arc::new(ManualClock::new()),
            Options::new().priorities(5)
        )
        .map(|_| ()),
        Err(Error::Full)
    );
    assert_eq!(
        Base::<Small>::new_mock(
            std::sync::Arc::new(Notifier::new()),
            std::sync::Arc::new(ManualClock::new()),
            Options::new().priorities(0)
        )
        .map(|_| ()),
        Err(Error::Priority)
    );
}

#[test]
fn errors_display_and_are_errors() {
    fn is_error<E: core::error::Error>(_: &E) {}
    let e = Error::Notify(SeamError::os(32));
    is_error(&e);
    assert_eq!(e.to_string(), "waking the loop failed: OS error 32");
    assert_eq!(Error::Stale.to_string(), "the key names no live event");
}

#[test]
fn close_frees_everything_and_refuses_new_events() {
    use std::sync::Arc;
    let fx = fixture(Options::new());
    let alive = Arc::new(());
    let keys: Vec<_> = (0..3)
        .map(|_| {
            let a = alive.clone();
            fx.base
                .new_event(
                    Event::user(),
                    Box::new(move |_, _| assert!(Arc::strong_count(&a) > 0)),
                )
                .unwrap()
        })
        .collect();
    fx.base.add(keys[0], None).unwrap();
    fx.base.activate(keys[1], Ready::USER).unwrap();
    let fin = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let f = fin.clone();
    fx.base
        .finalize(
            keys[2],
            Box::new(move |_, _| f.store(true, std::sync::atomic::Ordering::SeqCst)),
        )
        .unwrap();
    assert_eq!(Arc::strong_count(&alive), 3);
    fx.base.close();
    assert!(
        fin.load(std::sync::atomic::Ordering::SeqCst),
        "queued finalizer ran"
    );
    assert_eq!(Arc::strong_count(&alive), 1, "every callback dropped");
    assert_eq!(fx.base.counts(), rouse_core::Counts::default());
    assert_eq!(
        fx.base.loop_break(),
        Err(Error::Closed),
        "every call after close"
    );
    assert_eq!(
        fx.base.common_timeout(Duration::from_secs(1)).map(|_| ()),
        Err(Error::Closed)
    );
    assert_eq!(fx.base.activate(keys[0], Ready::USER), Err(Error::Closed));
    assert_eq!(fx.base.new_event(Event::user(), nop()), Err(Error::Closed));
}

thread_local! {
    /// The base a [`TouchesBase`] reaches when it is dropped (tests on one thread).
    static TOUCHED: std::cell::RefCell<Option<std::rc::Rc<rouse_core::Base<fixture::Cfg>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Captured by a closure: its `Drop` uses the base (with `NoLock`, a `RefCell` panic if the
/// base drops it under its lock).
struct TouchesBase(std::sync::Arc<std::sync::atomic::AtomicU32>);

impl Drop for TouchesBase {
    fn drop(&mut self) {
        TOUCHED.with(|b| {
            if let Some(base) = b.borrow().as_ref() {
                let _ = base.counts(); // takes the base lock
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
}

#[test]
fn user_values_are_dropped_outside_the_lock() {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    let fx = fixture(Options::new());
    let base = std::rc::Rc::new(fx.base);
    TOUCHED.with(|b| *b.borrow_mut() = Some(base.clone()));
    let drops = std::sync::Arc::new(AtomicU32::new(0));
    let guard = |d: &std::sync::Arc<AtomicU32>| {
        let t = TouchesBase(d.clone());
        fixture::cb(move |_, _| {
            let _ = &t;
        })
    };
    // An event creation that fails (priority out of range) drops the closure.
    let bad = base.new_event(Event::user().priority(9), guard(&drops));
    assert_eq!(bad, Err(Error::Priority));
    assert_eq!(drops.load(SeqCst), 1);
    // Closing with a queued one-shot `free_after_run` event and a queued finalizer.
    let once = base
        .new_event(Event::timer().free_after_run(), guard(&drops))
        .unwrap();
    base.activate(once, Ready::TIMEOUT).unwrap();
    let fin = base.new_event(Event::user(), guard(&drops)).unwrap();
    base.finalize(fin, guard(&drops)).unwrap();
    let _idle = base.new_event(Event::user(), guard(&drops)).unwrap();
    base.close();
    assert_eq!(
        drops.load(SeqCst),
        5,
        "every closure was dropped, each outside the lock"
    );
    TOUCHED.with(|b| b.borrow_mut().take());
}

#[test]
fn new_event_added_makes_a_pending_event_or_leaves_nothing_behind() {
    use std::rc::Rc;
    let fx = fixture(Options::new());
    let k = fx
        .base
        .new_event_added(Event::timer(), Some(Duration::from_secs(2)), nop())
        .unwrap();
    let c = fx.base.counts();
    assert_eq!((c.events, c.pending, c.timers), (1, 1, 1));
    assert_eq!(
        fx.base.info(k).unwrap().deadline.map(|d| d.as_nanos()),
        Some(2_000_000_000)
    );
    // Refused by the add (an edge event on a level-triggered source): the event is freed
    // and its callback dropped.
    let s = Source::new(4);
    fx.base
        .new_event_added(Event::io(s, Interest::READ), None, nop())
        .unwrap();
    let state = Rc::new(());
    let held = state.clone();
    let r = fx.base.new_event_added(
        Event::io(s, Interest::WRITE | Interest::EDGE),
        None,
        Box::new(move |_, _| {
            let _ = &held;
        }),
    );
    assert_eq!(r, Err(Error::EdgeConflict));
    assert_eq!(
        Rc::strong_count(&state),
        1,
        "the refused callback was dropped"
    );
    let c = fx.base.counts();
    assert_eq!(
        (c.events, c.pending),
        (2, 2),
        "nothing left of the refused one"
    );
    // Refused by the create (a priority out of range): nothing made.
    assert_eq!(
        fx.base
            .new_event_added(Event::timer().priority(9), None, nop())
            .err(),
        Some(Error::Priority)
    );
    assert_eq!(fx.base.counts().events, 2);
}
