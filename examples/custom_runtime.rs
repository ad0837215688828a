//! Embedding rouse in a runtime of your own: only the `rouse` core, every seam written here.
//!
//! This "runtime" has no file descriptors at all: its loop thread sleeps on a condition
//! variable, and its events are timers and user events that another thread activates. The
//! core supplies the rest (event storage, the timer heap, the active queues, the loop, and the
//! notify protocol that decides when the loop must be woken). The steps are those of the
//! `rouse` crate documentation:
//!
//! 1. **The seams.** `MutexLock` guards the base's state (a `Mutex`, plus a `Condvar` for a
//!    cross-thread `delete` that waits for a running callback). `Doorbell` is the notifier:
//!    a flag under a `Mutex` with a `Condvar`. `DoorbellPoller` is what the loop blocks in:
//!    it sleeps on the doorbell's `Condvar` with the loop's timeout. `StdClock` tells time.
//! 2. **The config** names them, with `Fixed<16>` storage (room for 16 events inline in the
//!    base: no allocator) and plain `fn` callbacks (no allocation either; their state lives in
//!    statics).
//! 3. **A base, its events, a run.** A producer thread activates a user event in bursts and
//!    finally breaks the loop; a periodic timer ticks meanwhile.
//!
//! ```sh
//! cargo run --example custom_runtime
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use rouse_core::{
    Base, Clock, Config, Event, Fired, Fixed, Instant, Interest, Lock, Notify, Options, Poller,
    Readiness, Ready, Source,
};

// ------------------------------------------------------------------ 1. the seams

/// A lock over `std::sync::Mutex`. The base only ever touches its state inside [`Lock::with`],
/// so no callback can run with the lock held.
#[derive(Debug)]
struct MutexLock;

/// The cell of `MutexLock`.
struct MutexCell<T> {
    value: Mutex<T>,
    changed: Condvar,
}

/// The base never panics with its lock held; a poisoned lock still guards consistent state.
fn relock<'a, T>(
    r: Result<MutexGuard<'a, T>, PoisonError<MutexGuard<'a, T>>>,
) -> MutexGuard<'a, T> {
    r.unwrap_or_else(PoisonError::into_inner)
}

impl Lock for MutexLock {
    type Cell<T> = MutexCell<T>;

    fn new<T>(value: T) -> MutexCell<T> {
        MutexCell {
            value: Mutex::new(value),
            changed: Condvar::new(),
        }
    }

    fn with<T, R>(cell: &MutexCell<T>, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut relock(cell.value.lock()))
    }

    // A thread that deletes an event whose callback runs on the loop thread waits here (the
    // default would spin); the loop calls `wake_all` when a callback returns.
    fn wait<T>(cell: &MutexCell<T>, mut done: impl FnMut(&mut T) -> bool) {
        let mut value = relock(cell.value.lock());
        while !done(&mut value) {
            value = relock(cell.changed.wait(value));
        }
    }

    fn wake_all<T>(cell: &MutexCell<T>) {
        cell.changed.notify_all();
    }
}

/// The notifier: a flag that another thread sets to wake the loop, and a `Condvar` the loop
/// sleeps on. The base rings it at most once per sleep of the loop (the pending flag of the
/// notify protocol coalesces the rest), and consumes it before it sleeps again.
#[derive(Debug)]
struct Doorbell {
    rung: Mutex<bool>,
    bell: Condvar,
    rings: AtomicU64,
}

impl Doorbell {
    const fn new() -> Doorbell {
        Doorbell {
            rung: Mutex::new(false),
            bell: Condvar::new(),
            rings: AtomicU64::new(0),
        }
    }
}

impl Notify for Doorbell {
    fn notify(&self) -> Result<(), rouse_core::SeamError> {
        *relock(self.rung.lock()) = true;
        self.rings.fetch_add(1, Ordering::Relaxed);
        self.bell.notify_one();
        Ok(())
    }

    fn consume(&self) {
        *relock(self.rung.lock()) = false;
    }
}

/// What the loop blocks in: the doorbell, with a timeout (the next timer's deadline).
#[derive(Debug)]
struct DoorbellPoller {
    doorbell: &'static Doorbell,
    rung: bool,
}

impl Poller for DoorbellPoller {
    fn update(&mut self, _: Source, _: Interest, _: Interest) -> Result<(), rouse_core::SeamError> {
        Err(rouse_core::SeamError::UNSUPPORTED) // a runtime without I/O sources
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), rouse_core::SeamError> {
        // `None` (or a deadline too far to represent): until the doorbell rings.
        let deadline = timeout.and_then(|t| StdInstant::now().checked_add(t));
        let mut rung = relock(self.doorbell.rung.lock());
        while !*rung {
            rung = match deadline {
                None => relock(self.doorbell.bell.wait(rung)),
                Some(deadline) => {
                    let now = StdInstant::now();
                    if now >= deadline {
                        break; // never before the timeout: timers must not fire early
                    }
                    let (guard, _) = self
                        .doorbell
                        .bell
                        .wait_timeout(rung, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner);
                    guard
                }
            };
        }
        self.rung = *rung;
        Ok(())
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        // The loop then calls `Doorbell::consume` (under its lock) and clears its pending flag.
        if std::mem::take(&mut self.rung) {
            f(Readiness::Wake);
        }
    }
}

/// Monotonic nanoseconds since the runtime started.
#[derive(Debug)]
struct StdClock {
    origin: StdInstant,
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }
}

// ------------------------------------------------------------------ 2. the config

#[derive(Debug)]
struct Runtime;

impl Config for Runtime {
    type Lock = MutexLock;
    type Notifier = &'static Doorbell;
    type Poller = DoorbellPoller;
    type Clock = StdClock;
    type Storage = Fixed<16>;
    type Callback = fn(&Base<Runtime>, Fired);

    fn thread_id() -> usize {
        // The address of a thread-local: distinct for threads that run at the same time.
        thread_local!(static MARK: u8 = const { 0 });
        MARK.with(|m| m as *const u8 as usize)
    }
}

// ------------------------------------------------------------------ 3. a base, events, a run

static DOORBELL: Doorbell = Doorbell::new();

/// Activations made by the producer and not yet seen by the job's callback.
static ACTIVATIONS: AtomicU64 = AtomicU64::new(0);
static ACTIVATIONS_MADE: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static JOB_RUNS: AtomicU64 = AtomicU64::new(0);

fn millis(base: &Base<Runtime>) -> f64 {
    base.now().as_nanos() as f64 / 1e6
}

fn on_tick(base: &Base<Runtime>, _: Fired) {
    let n = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    println!("[{:6.1} ms] tick {n}", millis(base));
}

fn on_job(base: &Base<Runtime>, _: Fired) {
    JOB_RUNS.fetch_add(1, Ordering::Relaxed);
    let covered = ACTIVATIONS.swap(0, Ordering::Relaxed);
    println!(
        "[{:6.1} ms] job ran once for {covered} activation(s)",
        millis(base)
    );
}

fn main() -> Result<(), rouse_core::Error> {
    let clock = StdClock {
        origin: StdInstant::now(),
    };
    let poller = DoorbellPoller {
        doorbell: &DOORBELL,
        rung: false,
    };
    let base: Base<Runtime> = Base::new(&DOORBELL, poller, clock, Options::new())?;
    println!(
        "custom runtime: MutexLock, Doorbell notifier (Mutex<bool> + Condvar), DoorbellPoller, \
         Fixed<16> storage, fn callbacks"
    );

    let tick = base.new_event(Event::timer().persist(), on_tick)?;
    base.add(tick, Some(Duration::from_millis(100)))?;
    // A user event runs only when activated; adding it is not needed for that.
    let job = base.new_event(Event::user(), on_job)?;

    let exit = thread::scope(|s| {
        // The producer borrows the base: `Base<Runtime>` is `Sync` because `MutexLock` is.
        let producer = s.spawn(|| {
            for burst in 1..=8u64 {
                thread::sleep(Duration::from_millis(60));
                for _ in 0..1 + burst % 3 {
                    // Visible to the callback: `activate` publishes what this thread wrote
                    // before it. An activation of an event that is already queued costs one
                    // atomic load: no lock, no doorbell.
                    ACTIVATIONS.fetch_add(1, Ordering::Relaxed);
                    ACTIVATIONS_MADE.fetch_add(1, Ordering::Relaxed);
                    base.activate(job, Ready::USER)?;
                }
            }
            base.loop_break() // from another thread: rings the doorbell if the loop sleeps
        });
        let exit = base.run(); // the base owns its poller
        producer.join().expect("producer panicked")?;
        exit
    })?;

    let w = base.wake_stats();
    println!(
        "loop returned {exit:?} after {:.0} ms: {} ticks, {} job runs for {} activations",
        millis(&base),
        TICKS.load(Ordering::Relaxed),
        JOB_RUNS.load(Ordering::Relaxed),
        ACTIVATIONS_MADE.load(Ordering::Relaxed)
    );
    // A break stops the loop after the callback that runs, leaving the rest queued.
    let queued = ACTIVATIONS.load(Ordering::Relaxed);
    if queued > 0 {
        println!("  ({queued} activation(s) still queued when the break came)");
    }
    println!(
        "wakes: {} requests -> {} doorbell rings ({} coalesced, {} while the loop was awake), \
         {} blocking polls",
        w.requests,
        DOORBELL.rings.load(Ordering::Relaxed),
        w.coalesced,
        w.awake,
        w.blocking_polls
    );
    Ok(())
}
