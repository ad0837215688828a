//! Model checks of the notify protocol with loom: every interleaving (up to a preemption
//! bound) of a loop thread and 2-3 other threads.
//!
//! Run: `RUSTFLAGS="--cfg rouse_loom" cargo test -p rouse-core --release --test loom_notify`
//!
//! The loop thread runs the real `Base::run_forever` on a loom-modelled notifier and poller.
//! The poller "blocks" (spins with `yield_now`) until the notifier is readable; once every
//! other thread has finished and nothing is readable, a real loop would sleep forever, so the
//! model's poller fails the run with `BLOCKED` instead. The models then check:
//! - **no lost wakeup**: every change made before a notify was skipped is seen before the loop
//!   blocks (all activations ran, and the callback saw the data written before them);
//! - **at most one outstanding notification**: `notify` is never called while a previous one
//!   is unconsumed (asserted inside the notifier);
//! - **the pending flag is never stuck** after a failed write;
//! - **cross-thread delete** waits for a running callback, and nothing runs after it.
#![cfg(rouse_loom)]

use std::sync::atomic::AtomicUsize as StdAtomicUsize;
use std::sync::atomic::Ordering::Relaxed as StdRelaxed;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;
use rouse_core::{
    Base, Clock, Config, Error, Event, Exit, Fired, Fixed, Instant, Interest, Lock, Notify,
    Options, Poller, Readiness, Ready, SeamError, Source,
};

const BLOCKED: SeamError = SeamError::WOULD_BLOCK_FOREVER;

struct LoomLock;

impl Lock for LoomLock {
    type Cell<T> = Mutex<T>;
    fn new<T>(value: T) -> Mutex<T> {
        Mutex::new(value)
    }
    fn with<T, R>(cell: &Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut cell.lock().unwrap())
    }
    fn wait<T>(cell: &Mutex<T>, mut done: impl FnMut(&mut T) -> bool) {
        while !Self::with(cell, &mut done) {
            thread::yield_now();
        }
    }
}

/// What the notifier writes and the poller sees: one "fd".
struct Wire {
    readable: AtomicBool,
    fail_next: AtomicBool,
    writes: AtomicUsize,
    /// Threads other than the loop that have not finished yet.
    others: AtomicUsize,
}

impl Wire {
    fn new(others: usize) -> Arc<Wire> {
        Arc::new(Wire {
            readable: AtomicBool::new(false),
            fail_next: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
            others: AtomicUsize::new(others),
        })
    }
    fn done(&self) {
        self.others.fetch_sub(1, SeqCst);
    }
}

struct LoomNotifier(Arc<Wire>);

impl Notify for LoomNotifier {
    fn notify(&self) -> Result<(), SeamError> {
        if self.0.fail_next.swap(false, SeqCst) {
            return Err(SeamError::os(7));
        }
        let was = self.0.readable.swap(true, SeqCst);
        assert!(!was, "a second notification while one is outstanding");
        self.0.writes.fetch_add(1, SeqCst);
        Ok(())
    }
    fn consume(&self) {
        self.0.readable.store(false, SeqCst);
    }
}

struct LoomPoller {
    wire: Arc<Wire>,
    woke: bool,
}

impl Poller for LoomPoller {
    fn update(&mut self, _: Source, _: Interest, _: Interest) -> Result<(), SeamError> {
        Ok(())
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        self.woke = false;
        loop {
            // Read `others` first: a notification written before a thread finished is then
            // surely visible below.
            let finished = self.wire.others.load(SeqCst) == 0;
            if self.wire.readable.load(SeqCst) {
                self.woke = true;
                return Ok(());
            }
            if timeout == Some(Duration::ZERO) {
                return Ok(());
            }
            if finished {
                return Err(BLOCKED);
            }
            thread::yield_now();
        }
    }
    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        if self.woke {
            f(Readiness::Wake);
        }
    }
}

struct ZeroClock;
impl Clock for ZeroClock {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

static NEXT_THREAD: StdAtomicUsize = StdAtomicUsize::new(1);
loom::thread_local! {
    static THREAD_ID: usize = NEXT_THREAD.fetch_add(1, StdRelaxed);
}

struct Model;
impl Config for Model {
    type Lock = LoomLock;
    type Notifier = LoomNotifier;
    type Poller = LoomPoller;
    type Clock = ZeroClock;
    type Storage = Fixed<4>;
    type Callback = Box<dyn FnMut(&Base<Model>, Fired) + Send>;
    fn thread_id() -> usize {
        THREAD_ID.with(|id| *id)
    }
}

fn base(wire: &Arc<Wire>) -> Arc<Base<Model>> {
    base_with(wire, Options::new())
}

fn base_with(wire: &Arc<Wire>, opts: Options) -> Arc<Base<Model>> {
    let poller = LoomPoller {
        wire: wire.clone(),
        woke: false,
    };
    Arc::new(Base::new(LoomNotifier(wire.clone()), poller, ZeroClock, opts).unwrap())
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Two threads write data and activate the same user event while the loop runs: the loop
/// never sleeps with an activation unseen, and the callback run that covers an activation sees
/// the data written before it (the fast path's fence pairing).
#[test]
fn no_lost_wakeup_and_activations_see_prior_writes() {
    model(|| {
        let wire = Wire::new(2);
        let base = base(&wire);
        let data = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let (d, s) = (data.clone(), seen.clone());
        let ev = base
            .new_event(
                Event::user().persist(),
                Box::new(move |_, _| {
                    for i in 0..2 {
                        s[i].store(d[i].load(SeqCst), SeqCst);
                    }
                }),
            )
            .unwrap();
        base.add(ev, None).unwrap();
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let (base, wire, data) = (base.clone(), wire.clone(), data.clone());
                thread::spawn(move || {
                    data[i].store(1, Relaxed);
                    base.activate(ev, Ready::USER).unwrap();
                    wire.done();
                })
            })
            .collect();
        assert_eq!(base.run_forever(), Err(Error::Poll(BLOCKED)));
        for t in senders {
            t.join().unwrap();
        }
        assert_eq!(seen[0].load(SeqCst), 1, "activation 0 lost");
        assert_eq!(seen[1].load(SeqCst), 1, "activation 1 lost");
        let stats = base.wake_stats();
        assert!(stats.writes <= stats.blocking_polls);
        assert_eq!(wire.writes.load(SeqCst) as u64, stats.writes);
    });
}

/// The channel's publication rule (`rouse_std::Sender::send`: push, then activate): two
/// senders each publish a message through a queue with *relaxed* operations only (the weakest
/// a lock-free queue may use), then activate the channel's event. Every message is received
/// exactly once by a callback run: the activation's fence pairing publishes the push. (One
/// consumer, so it takes a message with a load and a clear; the model fails without the
/// fence in `activate`.)
#[test]
fn messages_pushed_before_an_activation_are_received() {
    model(|| {
        let wire = Wire::new(2);
        let base = base(&wire);
        let slots = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
        let received = Arc::new(AtomicUsize::new(0));
        let (q, r) = (slots.clone(), received.clone());
        let ev = base
            .new_event(
                Event::user().persist(),
                Box::new(move |_, _| {
                    // Drain: take every message there is.
                    for slot in q.iter() {
                        if slot.load(Relaxed) != 0 {
                            slot.store(0, Relaxed);
                            r.fetch_add(1, Relaxed);
                        }
                    }
                }),
            )
            .unwrap();
        base.add(ev, None).unwrap();
        let senders: Vec<_> = (0..2)
            .map(|i| {
                let (base, wire, slots) = (base.clone(), wire.clone(), slots.clone());
                thread::spawn(move || {
                    slots[i].store(1 + i, Relaxed); // the push
                    base.activate(ev, Ready::USER).unwrap();
                    wire.done();
                })
            })
            .collect();
        assert_eq!(base.run_forever(), Err(Error::Poll(BLOCKED)));
        for t in senders {
            t.join().unwrap();
        }
        assert_eq!(received.load(SeqCst), 2, "a message was not received");
    });
}

/// The same with the loop spinning before it blocks (`polling` still false while it spins,
/// then set under the lock only if nothing changed): still no lost wakeup.
#[test]
fn no_lost_wakeup_with_spin_before_block() {
    model(|| {
        let wire = Wire::new(1);
        // ZeroClock never moves: the spin ends by its iteration bound (16 here).
        let base = base_with(
            &wire,
            Options::new().spin_before_block(Duration::from_nanos(32)),
        );
        let data = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let (d, s) = (data.clone(), seen.clone());
        let ev = base
            .new_event(
                Event::user().persist(),
                Box::new(move |_, _| s.store(d.load(SeqCst), SeqCst)),
            )
            .unwrap();
        base.add(ev, None).unwrap();
        let t = {
            let (base, wire, data) = (base.clone(), wire.clone(), data.clone());
            thread::spawn(move || {
                data.store(1, Relaxed);
                base.activate(ev, Ready::USER).unwrap();
                wire.done();
            })
        };
        assert_eq!(base.run_forever(), Err(Error::Poll(BLOCKED)));
        t.join().unwrap();
        assert_eq!(seen.load(SeqCst), 1, "activation lost while the loop spun");
    });
}

/// A failed write clears the pending flag: the next change writes again and the loop wakes.
#[test]
fn a_failed_write_never_leaves_the_flag_stuck() {
    model(|| {
        let wire = Wire::new(1);
        let base = base(&wire);
        let ran = Arc::new(AtomicUsize::new(0));
        let keys: Vec<_> = (0..2)
            .map(|_| {
                let ran = ran.clone();
                base.new_event(
                    Event::user(),
                    Box::new(move |_, _| {
                        ran.fetch_add(1, SeqCst);
                    }),
                )
                .unwrap()
            })
            .collect();
        let keep = base
            .new_event(Event::user().persist(), Box::new(|_, _| {}))
            .unwrap();
        base.add(keep, None).unwrap();
        let t = {
            let (base, wire) = (base.clone(), wire.clone());
            thread::spawn(move || {
                // The first write (if one is needed at all) fails; the event is queued anyway.
                wire.fail_next.store(true, SeqCst);
                let r = base.activate(keys[0], Ready::USER);
                assert!(r.is_ok() || r == Err(Error::Notify(SeamError::os(7))));
                wire.fail_next.store(false, SeqCst);
                // The next change must write if the loop sleeps: the flag is not stuck.
                base.activate(keys[1], Ready::USER).unwrap();
                wire.done();
            })
        };
        assert_eq!(base.run_forever(), Err(Error::Poll(BLOCKED)));
        t.join().unwrap();
        assert_eq!(
            ran.load(SeqCst),
            2,
            "an activation was lost after a failed write"
        );
    });
}

/// A failed write, then a retry of the *same* activation: the event is already queued, but
/// with no notification behind it the retry must still wake the loop (not take the
/// "already queued" fast path).
#[test]
fn retrying_the_same_activation_after_a_failed_write_wakes_the_loop() {
    model(|| {
        let wire = Wire::new(1);
        let base = base(&wire);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let ev = base
            .new_event(
                Event::user(),
                Box::new(move |_, _| {
                    r.fetch_add(1, SeqCst);
                }),
            )
            .unwrap();
        let keep = base
            .new_event(Event::user().persist(), Box::new(|_, _| {}))
            .unwrap();
        base.add(keep, None).unwrap();
        let t = {
            let (base, wire) = (base.clone(), wire.clone());
            thread::spawn(move || {
                wire.fail_next.store(true, SeqCst);
                let first = base.activate(ev, Ready::USER);
                wire.fail_next.store(false, SeqCst);
                if first.is_err() {
                    base.activate(ev, Ready::USER).unwrap(); // the retry
                }
                wire.done();
            })
        };
        assert_eq!(base.run_forever(), Err(Error::Poll(BLOCKED)));
        t.join().unwrap();
        assert!(ran.load(SeqCst) >= 1, "the retried activation never ran");
    });
}

/// A break from another thread ends a blocked loop; one issued before the run is kept.
#[test]
fn a_break_from_another_thread_always_ends_the_run() {
    model(|| {
        let wire = Wire::new(1);
        let base = base(&wire);
        let keep = base
            .new_event(Event::user().persist(), Box::new(|_, _| {}))
            .unwrap();
        base.add(keep, None).unwrap();
        let t = {
            let (base, wire) = (base.clone(), wire.clone());
            thread::spawn(move || {
                base.loop_break().unwrap();
                wire.done();
            })
        };
        assert_eq!(base.run_forever(), Ok(Exit::Break));
        t.join().unwrap();
    });
}

/// `delete` from another thread returns only when the callback is not running, and the
/// callback never starts after it returned.
#[test]
fn cross_thread_delete_waits_for_the_running_callback() {
    model(|| {
        let wire = Wire::new(1);
        let base = base(&wire);
        let running = Arc::new(AtomicBool::new(false));
        let deleted = Arc::new(AtomicBool::new(false));
        let (r, d) = (running.clone(), deleted.clone());
        let ev = base
            .new_event(
                Event::user().persist(),
                Box::new(move |_, _| {
                    assert!(!d.load(SeqCst), "callback started after delete returned");
                    r.store(true, SeqCst);
                    thread::yield_now();
                    r.store(false, SeqCst);
                }),
            )
            .unwrap();
        base.add(ev, None).unwrap();
        base.activate(ev, Ready::USER).unwrap();
        let t = {
            let (base, wire) = (base.clone(), wire.clone());
            thread::spawn(move || {
                base.delete(ev).unwrap();
                assert!(
                    !running.load(SeqCst),
                    "delete returned while the callback ran"
                );
                deleted.store(true, SeqCst);
                wire.done();
            })
        };
        // Deleting the last pending event ends a run-until-empty loop.
        let r = base.run();
        assert!(
            matches!(r, Ok(Exit::Empty) | Err(Error::Poll(BLOCKED))),
            "{r:?}"
        );
        t.join().unwrap();
    });
}
