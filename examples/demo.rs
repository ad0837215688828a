//! The main demo: one loop thread, several worker threads, and the wake-up path between them.
//!
//! For a few seconds, worker threads change what the loop must do, through `Handle`s to its
//! base:
//!
//! - they **activate user events** (libevent's `event_active` from another thread); the demo
//!   measures the time from `activate` to the callback on the loop thread;
//! - they **add timers**; the demo measures how late each one fires;
//! - they **write into socketpairs** whose read ends the loop watches for READ.
//!
//! An activation or a new timer must wake the loop if it sleeps in its poller. rouse wakes it
//! through one notifier (eventfd, pipe, socketpair or kqueue `EVFILT_USER`) and *coalesces*:
//! while a notification is written and not yet consumed, further wake requests write nothing,
//! and requests made while the loop is awake write nothing either (it looks again before it
//! sleeps). The report shows how many requests were made and how few writes they cost. (A new
//! timer requests a wake only if it becomes the earliest deadline; an activation of an event
//! that is already queued costs one atomic load and no request at all; the socketpair writes
//! wake the poller through the kernel directly, not through the notifier.)
//!
//! Latency tails depend on the machine: on a busy or virtualized host, the OS may not run the
//! loop thread for a millisecond or more, and every wake and timer due meanwhile waits.
//!
//! ```sh
//! cargo run --release --example demo
//! cargo run --release --example demo -- --seconds 5 --workers 8
//! ROUSE_POLLER=poll ROUSE_NOTIFIER=pipe cargo run --release --example demo   # the fallbacks
//! ```

use std::error::Error;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rouse_std::{Base, Event, Exit, Handle, Interest, Key, Ready};

/// What the loop thread records. Only callbacks (on the loop thread) write it; `main` reads it
/// once the loop has returned.
struct Stats {
    /// The origin of the activation stamps.
    origin: Instant,
    callbacks: AtomicU64,
    bytes_read: AtomicU64,
    /// Nanoseconds from a worker's `activate` to the user event's callback.
    wake_ns: Mutex<Vec<u64>>,
    /// Nanoseconds from a timer's deadline to its callback.
    late_ns: Mutex<Vec<u64>>,
}

impl Stats {
    fn since_origin(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// User events per worker.
const USERS_PER_WORKER: usize = 4;

/// What one worker did.
#[derive(Default)]
struct Done {
    activations: u64,
    timers: u64,
    writes: u64,
    bytes: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let (duration, workers) = parse_args()?;
    let base = Base::new()?;
    println!(
        "rouse demo: {workers} workers for {} s; poller {}, notifier {}",
        duration.as_secs_f64(),
        base.poller_kind(),
        base.notifier_kind()
    );
    let stats = Arc::new(Stats {
        origin: Instant::now(),
        callbacks: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
        wake_ns: Mutex::new(Vec::new()),
        late_ns: Mutex::new(Vec::new()),
    });

    // Per worker: a few user events it activates, each with the stamp of its latest activation
    // (0: the callback took it), and a socketpair whose read end the loop watches.
    let mut all_users = Vec::new();
    let mut feeds = Vec::new();
    for _ in 0..workers {
        let mut users = Vec::new();
        for _ in 0..USERS_PER_WORKER {
            let stamp = Arc::new(AtomicU64::new(0));
            let (s, st) = (stats.clone(), stamp.clone());
            let user = base.add_user(move |_, _| {
                s.callbacks.fetch_add(1, Ordering::Relaxed);
                let at = st.swap(0, Ordering::Relaxed);
                if at != 0 {
                    let ns = s.since_origin().saturating_sub(at);
                    s.wake_ns.lock().unwrap().push(ns);
                }
            })?;
            all_users.push(user);
            users.push((user, stamp));
        }

        let (rx, tx) = UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        // `add_fd(&rx, ..)` borrows `rx` for the call, and the callback must own it (it reads
        // it and closes it): so name the fd by its source first, then move `rx` in.
        let source = rouse_std::source(&rx);
        base.add_event(
            Event::io(source, Interest::READ).persist(),
            None,
            reader(rx, stats.clone()),
        )?;
        feeds.push((users, tx));
    }

    // Progress, from a persistent timer on the loop thread.
    let start = Instant::now();
    let s = stats.clone();
    let progress = base.add_interval(Duration::from_millis(500), move |events, _| {
        let callbacks = s.callbacks.fetch_add(1, Ordering::Relaxed) + 1;
        let w = events.wake_stats();
        println!(
            "  {:4.1} s  {callbacks:>9} callbacks   {:>7} wake requests -> {:>6} notification writes",
            start.elapsed().as_secs_f64(),
            w.requests,
            w.writes
        );
    })?;

    // The loop thread owns the base; everyone else reaches it through a `Handle`.
    let handle = base.handle();
    let looper = thread::Builder::new()
        .name("rouse-loop".into())
        .spawn(move || base.run().map(|exit| (base, exit)))?;

    let until = start + duration;
    let threads: Vec<_> = feeds
        .into_iter()
        .enumerate()
        .map(|(i, (users, tx))| {
            let (handle, stats) = (handle.clone(), stats.clone());
            thread::spawn(move || worker(i as u64, handle, users, tx, stats, until))
        })
        .collect();
    let mut total = Done::default();
    for t in threads {
        let done = t.join().expect("worker panicked")?;
        total.activations += done.activations;
        total.timers += done.timers;
        total.writes += done.writes;
        total.bytes += done.bytes;
    }

    // Wind down: with the progress timer and the user events gone, and every socketpair closed
    // by its worker (the reader then frees its own event), `run` returns `Empty` as soon as the
    // last timers have fired.
    handle.free(progress)?;
    for user in all_users {
        handle.free(user)?;
    }
    let (base, exit) = looper.join().expect("loop thread panicked")?;
    assert_eq!(exit, Exit::Empty);
    let elapsed = start.elapsed().as_secs_f64();

    let callbacks = stats.callbacks.load(Ordering::Relaxed);
    let w = base.wake_stats();
    println!(
        "done in {elapsed:.2} s: {callbacks} callbacks, {:.0} events/s",
        callbacks as f64 / elapsed
    );
    println!(
        "  workers: {} activations, {} timers added, {} socketpair writes ({:.1} MB, {:.1} MB read)",
        total.activations,
        total.timers,
        total.writes,
        total.bytes as f64 / 1e6,
        stats.bytes_read.load(Ordering::Relaxed) as f64 / 1e6
    );
    println!(
        "  wakes: {} requests -> {} notification writes ({} coalesced, {} while awake); \
         {} blocking polls",
        w.requests, w.writes, w.coalesced, w.awake, w.blocking_polls
    );
    print_percentiles(
        "wake latency (activate -> callback)",
        &mut stats.wake_ns.lock().unwrap(),
    );
    print_percentiles(
        "timer lateness (callback - deadline)",
        &mut stats.late_ns.lock().unwrap(),
    );
    Ok(())
}

/// One worker: bursts of changes to the loop's base, then a short pause. While the loop
/// sleeps, the first change of a burst wakes it and the next ones find the wake pending.
fn worker(
    id: u64,
    handle: Handle,
    users: Vec<(Key, Arc<AtomicU64>)>,
    mut tx: UnixStream,
    stats: Arc<Stats>,
    until: Instant,
) -> io::Result<Done> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let message = [b'a' + (id % 26) as u8; 64];
    let mut done = Done::default();
    while Instant::now() < until {
        for _ in 0..=rng.below(8) {
            match rng.below(3) {
                0 => {
                    // Each user event whose last activation has run: one activation in flight
                    // per event, so that each measures one wake.
                    for (user, stamp) in &users {
                        if stamp.load(Ordering::Relaxed) == 0 {
                            stamp.store(stats.since_origin().max(1), Ordering::Relaxed);
                            // `activate` publishes the stamp: the callback sees what this
                            // thread wrote before the call.
                            handle.activate(*user, Ready::USER)?;
                            done.activations += 1;
                        }
                    }
                }
                1 => {
                    let after = Duration::from_micros(rng.below(5_000));
                    // Taken before the add (whose own clock read is a little later), so the
                    // measured lateness can only overstate the real one.
                    let due = Instant::now() + after;
                    let stats = stats.clone();
                    handle.add_timer(after, move |_, _| {
                        let late = Instant::now().saturating_duration_since(due);
                        stats.callbacks.fetch_add(1, Ordering::Relaxed);
                        stats.late_ns.lock().unwrap().push(late.as_nanos() as u64);
                        // A one-shot `add_timer` frees itself once it ran.
                    })?;
                    done.timers += 1;
                }
                _ => {
                    tx.write_all(&message)?;
                    done.writes += 1;
                    done.bytes += message.len() as u64;
                }
            }
        }
        thread::sleep(Duration::from_micros(50 + rng.below(450)));
    }
    Ok(done) // dropping `tx` closes the socketpair: the reader sees end-of-file
}

/// The callback of a socketpair's read end: reads everything available; at end-of-file frees
/// its event and, by being dropped with it, closes the read end.
fn reader(
    mut rx: UnixStream,
    stats: Arc<Stats>,
) -> impl FnMut(&rouse_std::Context<'_>, rouse_std::Fired) + Send + 'static {
    let mut buf = [0u8; 4096];
    move |events, fired| {
        stats.callbacks.fetch_add(1, Ordering::Relaxed);
        loop {
            match rx.read(&mut buf) {
                Ok(0) => {
                    // Delete before close: the event goes first (freed now; its callback, which
                    // owns `rx`, is dropped when it returns, closing the fd after that).
                    let _ = events.free(fired.key);
                    return;
                }
                Ok(n) => {
                    stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("socketpair: {e}");
                    let _ = events.free(fired.key);
                    return;
                }
            }
        }
    }
}

fn print_percentiles(what: &str, samples: &mut [u64]) {
    samples.sort_unstable();
    let n = samples.len();
    if n == 0 {
        println!("  {what}: no samples");
        return;
    }
    let at = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    println!(
        "  {what}: p50 {}  p90 {}  p99 {}  p99.9 {}  ({n} samples)",
        human(at(0.5)),
        human(at(0.9)),
        human(at(0.99)),
        human(at(0.999))
    );
}

fn human(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        _ => format!("{:.2} ms", ns as f64 / 1e6),
    }
}

/// `--seconds N` (default 3) and `--workers N` (default 4).
fn parse_args() -> Result<(Duration, usize), Box<dyn Error>> {
    let (mut duration, mut workers) = (Duration::from_secs(3), 4);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => duration = Duration::try_from_secs_f64(value.parse()?)?,
            "--workers" => workers = value.parse()?,
            _ => {
                return Err(format!("unknown option {flag} (use --seconds N, --workers N)").into())
            }
        }
    }
    if duration.is_zero() || workers == 0 {
        return Err("--seconds and --workers must be positive".into());
    }
    Ok((duration, workers))
}

/// xorshift64: enough randomness for pacing, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
