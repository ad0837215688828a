//! `LoopCell`: state shared by one base's callbacks without a lock.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rouse_std::{Base, LocalBase, LoopCell, Ready};

/// Two callbacks of a thread-safe base share one value (a read and a write event's buffer,
/// in a server), and the base's loop may run on another thread than the one that made it.
#[test]
fn callbacks_of_one_base_share_it_across_runs_and_threads() {
    let base = Base::new().unwrap();
    let cell = Arc::new(LoopCell::new(base.base_ref(), Vec::new()));
    let (a, b) = (cell.clone(), cell.clone());
    let first = base
        .add_user(move |cx, _| a.with(cx, |v| v.push("first")))
        .unwrap();
    let second = base
        .add_user(move |cx, _| {
            b.with(cx, |v| v.push("second"));
            cx.loop_break().unwrap();
        })
        .unwrap();
    for _ in 0..2 {
        base.activate(first, Ready::USER).unwrap();
        base.activate(second, Ready::USER).unwrap();
        base.run().unwrap();
    }
    // The next run on another thread (the base moves there and back).
    let base = std::thread::spawn(move || {
        base.activate(first, Ready::USER).unwrap();
        base.activate(second, Ready::USER).unwrap();
        base.run().unwrap();
        base
    })
    .join()
    .unwrap();
    drop(base); // frees the events and their clones
    let v = Arc::try_unwrap(cell).unwrap().into_inner();
    assert_eq!(v, ["first", "second"].repeat(3));
}

/// A context of another base is refused (that base's loop may run on another thread at the
/// same time).
#[test]
fn a_context_of_another_base_panics() {
    let mine = Base::new().unwrap();
    let other = Base::new().unwrap();
    let cell = Arc::new(LoopCell::new(mine.base_ref(), 0u32));
    let refused = Arc::new(AtomicBool::new(false));
    let (c, r) = (cell.clone(), refused.clone());
    other
        .add_timer(Duration::ZERO, move |cx, _| {
            let res = catch_unwind(AssertUnwindSafe(|| c.with(cx, |n| *n += 1)));
            r.store(res.is_err(), Ordering::SeqCst);
        })
        .unwrap();
    other.run().unwrap();
    assert!(refused.load(Ordering::SeqCst));
    drop(other);
    assert_eq!(Arc::try_unwrap(cell).unwrap().into_inner(), 0);
}

/// A nested `with` on the same cell panics instead of handing out a second `&mut`, and the
/// loan ends when that panic unwinds out of the outer `with`.
#[test]
fn a_nested_with_panics_and_the_loan_ends_on_unwinding() {
    let base = Base::new().unwrap();
    let cell = Arc::new(LoopCell::new(base.base_ref(), 1u32));
    let seen = Arc::new(AtomicBool::new(false));
    let (c, s) = (cell.clone(), seen.clone());
    base.add_timer(Duration::ZERO, move |cx, _| {
        let nested = catch_unwind(AssertUnwindSafe(|| {
            c.with(cx, |_| c.with(cx, |n| *n += 1));
        }));
        assert!(nested.is_err());
        // Lent no more: a later `with` works and sees the value unchanged.
        s.store(c.with(cx, |n| *n) == 1, Ordering::SeqCst);
    })
    .unwrap();
    base.run().unwrap();
    assert!(seen.load(Ordering::SeqCst));
}

/// Finalizers get a context too; a local base serves code generic over the flavor.
#[test]
fn finalizers_and_local_bases() {
    let base = LocalBase::new_local().unwrap();
    let cell = Arc::new(LoopCell::new(base.base_ref(), 0u32));
    let (a, b) = (cell.clone(), cell.clone());
    let user = base.add_user(move |cx, _| a.with(cx, |n| *n += 1)).unwrap();
    base.activate(user, Ready::USER).unwrap();
    base.run_once().unwrap();
    base.finalize_with(user, move |cx| b.with(cx, |n| *n += 10))
        .unwrap();
    base.run_once().unwrap();
    drop(base);
    assert_eq!(Arc::try_unwrap(cell).unwrap().into_inner(), 11);
}

#[test]
fn get_mut_needs_no_base() {
    let base = Base::new().unwrap();
    let mut cell = LoopCell::new(base.base_ref(), 5u8);
    *cell.get_mut() += 1;
    assert_eq!(cell.into_inner(), 6);
}
