//! The friendly API on the mocks (`rouse_std::testing`): code generic over `F: Flavor` runs
//! unchanged on a `MockBase`, with a manual clock, scripted readiness and the counting notifier.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rouse_core::{Event, Exit, Interest, Readiness, Ready, Source};
use rouse_std::testing::{MockBase, FIRST_MOCK_SOURCE};
use rouse_std::{Base, Builder, Context, Flavor, Handle, PollerKind};

/// Production-style code, as the README writes it: closures, one-shot and interval timers.
fn ticker<F: Flavor>(base: &Base<F>, log: Arc<Mutex<Vec<(u64, &'static str)>>>) -> io::Result<()> {
    let l = log.clone();
    base.add_interval(Duration::from_millis(100), move |cx: &Context<'_, F>, _| {
        l.lock()
            .unwrap()
            .push((cx.now().as_nanos() / 1_000_000, "tick"));
    })?;
    base.add_timer(Duration::from_millis(250), move |cx, _| {
        log.lock()
            .unwrap()
            .push((cx.now().as_nanos() / 1_000_000, "once"));
    })?;
    Ok(())
}

#[test]
fn generic_code_runs_unchanged_under_manual_time() {
    let base = MockBase::new_mock();
    let log = Arc::new(Mutex::new(Vec::new()));
    ticker(&base, log.clone()).unwrap();
    assert_eq!(
        base.advance(Duration::from_millis(350)).unwrap(),
        Exit::Done
    );
    assert_eq!(
        *log.lock().unwrap(),
        [(100, "tick"), (200, "tick"), (250, "once"), (300, "tick")]
    );
    assert_eq!(base.elapsed(), Duration::from_millis(350));
    // The interval would keep `run` going forever: the bounded run returns instead.
    assert_eq!(base.run_until_idle().unwrap(), Exit::Done);
    assert_eq!(base.elapsed(), Duration::from_millis(350));
}

#[test]
fn mock_sources_stand_in_for_fds() {
    let base = MockBase::new_mock();
    let (a, b) = (base.source(), base.source());
    assert_eq!(a, Source::new(FIRST_MOCK_SOURCE));
    assert_ne!(a, b);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    base.add_source(a, Interest::READ | Interest::WRITE, move |cx, fired| {
        s.lock().unwrap().push((cx.now().as_nanos(), fired.ready));
    })
    .unwrap();
    let s = seen.clone();
    let kb = base
        .add_event(Event::io(b, Interest::READ), None, move |_, fired| {
            s.lock().unwrap().push((u64::MAX, fired.ready));
        })
        .unwrap();

    base.script_ready(a, Ready::WRITE);
    base.script(
        Duration::from_millis(5),
        &[Readiness::Io(a, Ready::READ), Readiness::Io(b, Ready::READ)],
    );
    assert_eq!(base.run_until_idle().unwrap(), Exit::Done);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (0, Ready::WRITE),
            (5_000_000, Ready::READ),
            (u64::MAX, Ready::READ)
        ]
    );
    // `b` was a one-shot: it ran and is no longer pending; the poller saw it go.
    assert!(!base.is_pending(kb).unwrap());
    base.with_poller(|p| {
        assert_eq!(p.registered(a), Interest::READ | Interest::WRITE);
        assert_eq!(p.registered(b), Interest::NONE);
        assert_eq!(p.scripted(), 0);
    });
    assert!(base.interest_syscalls().unwrap() >= 2);
}

#[test]
fn run_sleeps_through_timeouts_in_no_real_time() {
    let base = MockBase::new_mock();
    let fired = Arc::new(AtomicU32::new(0));
    let f = fired.clone();
    base.add_timer(Duration::from_secs(3600), move |_, _| {
        f.fetch_add(1, Relaxed);
    })
    .unwrap();
    let start = std::time::Instant::now();
    assert_eq!(base.run().unwrap(), Exit::Empty);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(fired.load(Relaxed), 1);
    assert_eq!(base.elapsed(), Duration::from_secs(3600));
    // A pending event with nothing to wake it: a real loop would sleep forever.
    base.add_user(|_, _| {}).unwrap();
    let err = base.run().unwrap_err();
    let core = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rouse_core::Error>());
    assert_eq!(
        core,
        Some(&rouse_core::Error::Poll(
            rouse_core::SeamError::WOULD_BLOCK_FOREVER
        ))
    );
}

#[test]
fn handles_wake_the_mock_loop_from_another_thread() {
    let base = MockBase::new_mock();
    let handle: Handle<_> = base.handle();
    let user = base.add_user(|cx, _| cx.loop_break().unwrap()).unwrap();
    std::thread::spawn(move || handle.activate(user, Ready::USER))
        .join()
        .unwrap()
        .unwrap();
    assert!(base.notifier().writes() <= 1);
    assert_eq!(base.run_until_idle().unwrap(), Exit::Break);
    assert_eq!(base.elapsed(), Duration::ZERO);
}

#[test]
fn the_loop_owner_operations_say_what_a_mock_base_is() {
    let base = Builder::new().priorities(3).build_mock().unwrap();
    assert_eq!(base.poller_kind(), PollerKind::Mock);
    assert_eq!(PollerKind::Mock.name(), "mock");
    assert_eq!(PollerKind::from_name("mock"), Some(PollerKind::Mock));
    assert!(!PollerKind::available().contains(&PollerKind::Mock));
    assert!(base
        .dump()
        .starts_with("poller mock, notifier none, clock manual\n"));
    assert!(format!("{base:?}").contains("MockOs"));
    // No fork happened: the same answer as a real base.
    assert_eq!(
        base.reinit_after_fork().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    // The mock poller is not for real bases.
    let err = Builder::new().poller(PollerKind::Mock).build().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(Builder::new().priorities(0).build_mock().is_err());
}

#[test]
fn running_and_test_controls_exclude_each_other() {
    let base = Arc::new(MockBase::new_mock());
    let b = base.clone();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = answers.clone();
    base.add_timer(Duration::from_millis(1), move |_, _| {
        // From a callback: the loop has the poller.
        a.lock()
            .unwrap()
            .push(b.advance(Duration::from_secs(1)).unwrap_err().kind());
        a.lock().unwrap().push(b.run().unwrap_err().kind());
        let script = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            b.script_ready(Source::new(1), Ready::READ)
        }));
        let msg = script.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("between runs"), "{msg}");
    })
    .unwrap();
    assert_eq!(base.advance(Duration::from_millis(5)).unwrap(), Exit::Empty);
    assert_eq!(
        *answers.lock().unwrap(),
        [io::ErrorKind::ResourceBusy, io::ErrorKind::ResourceBusy]
    );
    // Dropping the last `Base` here frees the events (no cycle left: the timer ran).
}

#[test]
fn a_cross_thread_delete_waits_for_the_running_callback_on_the_mocks() {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    let base = Arc::new(MockBase::new_mock());
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let user = base
        .add_user(move |_, _| {
            started_tx.send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap(); // runs until the test says so
        })
        .unwrap();
    base.activate(user, Ready::USER).unwrap();
    let b = base.clone();
    let looper = std::thread::spawn(move || b.run_until_idle());
    started_rx.recv().unwrap(); // the callback runs on the loop thread

    let deleted = Arc::new(AtomicBool::new(false));
    let (handle, d) = (base.handle(), deleted.clone());
    let deleter = std::thread::spawn(move || {
        handle.delete(user).unwrap();
        d.store(true, Relaxed);
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !deleted.load(Relaxed),
        "the delete returned while the callback ran (threads told apart: it must wait)"
    );
    go_tx.send(()).unwrap();
    deleter.join().unwrap();
    assert!(deleted.load(Relaxed));
    looper.join().unwrap().unwrap();
    assert!(!base.is_pending(user).unwrap());
}
