#![cfg(not(miri))]
//! Under load: threads adding, deleting and activating user events, timers and fd events,
//! breaking and exiting the loop while it runs, all under a storm of signals that interrupts
//! every syscall (`EINTR`). Every activation of a live event runs its callback (once, or
//! coalesced into a run that starts after it), no callback runs after `delete` returned, the
//! counts balance at the end, and nothing deadlocks (every wait is bounded).
//!
//! `ROUSE_STRESS_OPS` sets the operations per thread of the main test (default 100 000; the
//! per-pair test runs a quarter of it), `ROUSE_TEST_SEED` replays a seed a failure message
//! gives.
//!
//! The storm uses `SIGURG`, installed without `SA_RESTART`; no other test binary's signals
//! are involved (each `tests/*.rs` is a process of its own), and only the threads of the test
//! that runs it are targeted.

#[path = "util/mod.rs"]
mod util;

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, Once, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rouse_core::{Event, Exit, Fired, Interest, Key, Ready};
use rouse_std::{Base, BaseRef, Builder, Context, Handle};
use util::{all_kinds, builder, drain, join_within, pair, wait_until, wait_until_else, Rng, BOUND};

/// Operations per thread of the main test.
fn ops_per_thread() -> u64 {
    std::env::var("ROUSE_STRESS_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// The two tests of this file each load both cores: one at a time.
fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    HEAVY.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------------ the signal storm

/// `SIGURG` deliveries so far (the handler's only work: it is async-signal-safe).
static DELIVERED: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    DELIVERED.fetch_add(1, SeqCst);
}

/// Installs [`count_signal`] for `SIGURG` without `SA_RESTART`: a blocking syscall of a thread
/// it interrupts fails with `EINTR` instead of being restarted by the kernel.
fn install_storm_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: all-zero is a valid `sigaction` (SIG_DFL, empty mask, no flags); the fields
        // set below make it a plain handler without SA_RESTART.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        act.sa_flags = 0;
        // SAFETY: `act` is a live sigaction; the handler only increments an atomic.
        let r = unsafe {
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGURG, &act, std::ptr::null_mut())
        };
        assert_eq!(r, 0, "sigaction: {}", io::Error::last_os_error());
    });
}

/// The threads a storm targets: each registers itself when it starts. A registered thread
/// must not be joined (its `pthread_t` must stay valid) until the storm has stopped.
#[derive(Clone, Default)]
struct Targets(Arc<Mutex<Vec<libc::pthread_t>>>);

impl Targets {
    fn register(&self) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        self.0.lock().unwrap().push(me);
    }
}

/// A thread sending `SIGURG` to every target, round after round, until stopped.
struct Storm {
    stop: Arc<AtomicBool>,
    join: JoinHandle<u64>,
}

impl Storm {
    fn start(targets: Targets) -> Storm {
        install_storm_handler();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let join = thread::spawn(move || {
            let mut sent = 0u64;
            while !s.load(SeqCst) {
                for &t in targets.0.lock().unwrap().iter() {
                    // SAFETY: `t` is the pthread_t of a thread that registered itself and is
                    // not joined before this storm stops (the contract of `Targets`).
                    let r = unsafe { libc::pthread_kill(t, libc::SIGURG) };
                    // A target that already returned (not joined yet) is ESRCH: harmless.
                    sent += u64::from(r == 0);
                }
                // Pacing only: a few thousand rounds a second interrupt every blocking call
                // many times while leaving the CPUs to the threads under test.
                thread::sleep(Duration::from_micros(50));
            }
            sent
        });
        Storm { stop, join }
    }

    /// Stops the storm; returns how many signals it sent.
    fn stop(self) -> u64 {
        self.stop.store(true, SeqCst);
        join_within(self.join, BOUND, || "the signal storm".to_string())
    }
}

// ------------------------------------------------------------------------ shared test state

/// Callback misbehaviour, recorded by callbacks on the loop thread and checked at the end.
#[derive(Default)]
struct Violations {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Violations {
    fn record(&self, what: impl FnOnce() -> String) {
        if self.count.fetch_add(1, SeqCst) < 10 {
            self.first.lock().unwrap().push(what());
        }
    }

    fn check(&self, what: &str) {
        let n = self.count.load(SeqCst);
        assert_eq!(
            n,
            0,
            "{what}: {n} violations: {:?}",
            self.first.lock().unwrap()
        );
    }
}

/// A user event shared by every worker: activated by any of them (and by its own callback),
/// deleted and re-added by any of them.
///
/// Activations and delete/re-add are serialized by `gate` (activators read, deleters write),
/// so that "after `delete` returned, the callback does not start again until the event is
/// re-added" is checkable: `dead` is set right after `delete` returns and cleared right before
/// the re-add, with no activation in between, and a run that sees it set is a violation. (A run
/// starting in the instant between `delete`'s return and the store of `dead` would go unseen:
/// the check cannot be tighter than the test's own instructions.)
#[derive(Default)]
struct User {
    /// Whether the event is pending; taken for writing to delete or re-add it.
    gate: RwLock<bool>,
    dead: AtomicBool,
    /// Activations requested: each activator increments it before it activates.
    seq: AtomicU64,
    /// The highest `seq` a run observed.
    seen: AtomicU64,
    /// `activate` calls that returned `Ok`.
    acts: AtomicU64,
    runs: AtomicU64,
}

impl User {
    /// Activates the event if it is live. `wait`: wait for the gate (a worker); else skip the
    /// activation when a deleter holds it (a callback, which must never wait for a deleter
    /// that waits for the running callback).
    fn activate(&self, events: BaseRef<'_>, key: Key, wait: bool) -> io::Result<bool> {
        let gate = if wait {
            self.gate.read().unwrap()
        } else {
            match self.gate.try_read() {
                Ok(g) => g,
                Err(_) => return Ok(false),
            }
        };
        if !*gate {
            return Ok(false);
        }
        self.seq.fetch_add(1, SeqCst);
        events.activate(key, Ready::USER)?;
        self.acts.fetch_add(1, SeqCst);
        Ok(true)
    }

    /// Deletes the event if it is live.
    fn delete(&self, events: BaseRef<'_>, key: Key) -> io::Result<bool> {
        let mut live = self.gate.write().unwrap();
        if !*live {
            return Ok(false);
        }
        events.delete(key)?;
        self.dead.store(true, SeqCst);
        *live = false;
        Ok(true)
    }

    /// Re-adds the event if it was deleted.
    fn readd(&self, events: BaseRef<'_>, key: Key) -> io::Result<bool> {
        let mut live = self.gate.write().unwrap();
        if *live {
            return Ok(false);
        }
        self.dead.store(false, SeqCst);
        events.add(key, None)?;
        *live = true;
        Ok(true)
    }
}

/// A one-shot timer owned by one worker: only it adds and deletes the timer, the loop fires
/// it. `dead` is set right after `delete` returned and cleared right before the next add.
#[derive(Default)]
struct Timer {
    dead: AtomicBool,
    /// Adds so far (incremented before each add).
    seq: AtomicU64,
    /// The highest `seq` a firing observed.
    seen: AtomicU64,
    fires: AtomicU64,
}

/// A worker's fd event: a persistent `READ` on the loop's end of a socketpair, drained by its
/// callback; the worker writes bytes into the other end, and deletes and re-adds the event.
#[derive(Default)]
struct FdEvent {
    dead: AtomicBool,
    read: AtomicU64,
}

/// A worker's probe: a user event at the top priority, never deleted. Every so often the
/// worker activates it and waits (bounded) until a run has seen the activation: a lost wake-up
/// shows there, while the load goes on.
#[derive(Default)]
struct Probe {
    seq: AtomicU64,
    seen: AtomicU64,
}

/// Sets its flag when dropped: tells that a callback (which owns it) was freed.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// How a stress run is made.
struct Plan {
    what: String,
    threads: usize,
    ops: u64,
    users: usize,
    timers_per_thread: usize,
    storm: bool,
}

/// The events and their state, shared by every thread.
struct Shared {
    users: Vec<(Key, Arc<User>)>,
    /// Per worker.
    timers: Vec<Vec<(Key, Arc<Timer>)>>,
    /// Per worker.
    fds: Vec<(Key, Arc<FdEvent>)>,
    /// Per worker.
    probes: Vec<(Key, Arc<Probe>)>,
    violations: Arc<Violations>,
    /// Per worker: the operation it is in (see [`OPS`]), for the message of a hang.
    doing: Vec<AtomicUsize>,
    /// Per worker: operations done.
    done: Vec<AtomicU64>,
}

const OPS: [&str; 11] = [
    "finished",
    "activate",
    "delete a user event",
    "re-add a user event",
    "add a timer",
    "delete a timer",
    "write to its socket",
    "delete/re-add its fd event",
    "add, activate and free a temporary event",
    "break or exit",
    "wait for its probe",
];

impl Shared {
    /// Where every worker is: for the message of a hang.
    fn progress(&self) -> String {
        let mut s = String::new();
        for (w, (doing, done)) in self.doing.iter().zip(&self.done).enumerate() {
            s += &format!(
                "\n  worker {w}: {} ops done, in \"{}\"",
                done.load(SeqCst),
                OPS[doing.load(SeqCst)]
            );
        }
        s
    }
}

/// Creates every event of `plan` on `base`; `loop_ends`: the loop's ends of the socketpairs.
fn setup(base: &Base, plan: &Plan, loop_ends: &[UnixStream], seed: u64) -> io::Result<Shared> {
    let violations = Arc::new(Violations::default());
    let mut users = Vec::new();
    for i in 0..plan.users {
        let u = Arc::new(User::default());
        *u.gate.write().unwrap() = true;
        let (uu, v) = (u.clone(), violations.clone());
        let mut rng = Rng::new(seed ^ (i as u64 + 1));
        let cb = move |events: &Context<'_>, fired: Fired| {
            uu.runs.fetch_add(1, SeqCst);
            if uu.dead.load(SeqCst) {
                v.record(|| format!("user event {i} ran after delete returned"));
            }
            if fired.ready != Ready::USER {
                v.record(|| format!("user event {i} ran with {:?}", fired.ready));
            }
            uu.seen.fetch_max(uu.seq.load(SeqCst), SeqCst);
            // A callback may activate its own event.
            if rng.below(16) == 0 {
                if let Err(e) = uu.activate(events.base_ref(), fired.key, false) {
                    v.record(|| format!("user event {i}: activate from its callback: {e}"));
                }
            }
        };
        let prio = 1 + (i % 2) as u8;
        let key = base.add_event(Event::user().persist().priority(prio), None, cb)?;
        users.push((key, u));
    }
    let mut timers = Vec::new();
    for w in 0..plan.threads {
        let mut mine = Vec::new();
        for j in 0..plan.timers_per_thread {
            let t = Arc::new(Timer::default());
            t.dead.store(true, SeqCst);
            let (tt, v) = (t.clone(), violations.clone());
            let cb = move |_: &Context<'_>, fired: Fired| {
                tt.fires.fetch_add(1, SeqCst);
                if tt.dead.load(SeqCst) {
                    v.record(|| format!("timer {w}.{j} fired after delete returned"));
                }
                if fired.ready != Ready::TIMEOUT {
                    v.record(|| format!("timer {w}.{j} fired with {:?}", fired.ready));
                }
                tt.seen.fetch_max(tt.seq.load(SeqCst), SeqCst);
            };
            let key = base.event(Event::timer().priority((j % 3) as u8), cb)?;
            mine.push((key, t));
        }
        timers.push(mine);
    }
    let mut fds = Vec::new();
    for (w, a) in loop_ends.iter().enumerate() {
        let f = Arc::new(FdEvent::default());
        let (ff, v) = (f.clone(), violations.clone());
        let a2 = a.try_clone()?;
        let cb = move |_: &Context<'_>, fired: Fired| {
            if ff.dead.load(SeqCst) {
                v.record(|| format!("fd event {w} ran after delete returned"));
            }
            if !fired.ready.contains(Ready::READ) {
                v.record(|| format!("fd event {w} ran with {:?}", fired.ready));
            }
            match drain(&a2) {
                Ok(n) => {
                    ff.read.fetch_add(n as u64, SeqCst);
                }
                Err(e) => v.record(|| format!("fd event {w}: read: {e}")),
            }
        };
        let key = base.add_fd(a, Interest::READ, cb)?;
        fds.push((key, f));
    }
    let mut probes = Vec::new();
    for _ in 0..plan.threads {
        let p = Arc::new(Probe::default());
        let pp = p.clone();
        let key = base.add_event(Event::user().persist().priority(0), None, move |_, _| {
            pp.seen.fetch_max(pp.seq.load(SeqCst), SeqCst);
        })?;
        probes.push((key, p));
    }
    Ok(Shared {
        users,
        timers,
        fds,
        probes,
        violations,
        doing: (0..plan.threads).map(|_| AtomicUsize::new(0)).collect(),
        done: (0..plan.threads).map(|_| AtomicU64::new(0)).collect(),
    })
}

/// What a worker did, for the balance at the end.
#[derive(Debug, Default)]
struct Tally {
    activations: u64,
    deletes: u64,
    readds: u64,
    /// Per owned timer.
    timer_adds: Vec<u64>,
    timer_deletes_ok: Vec<u64>,
    timer_last_was_add: Vec<bool>,
    written: u64,
    fd_toggles: u64,
    temporaries: u64,
    breaks: u64,
    exits: u64,
    probes: u64,
}

const TIMEOUTS: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_micros(20),
    Duration::from_micros(200),
    Duration::from_millis(2),
];

/// Worker `w`: `ops` random operations.
fn worker(
    w: usize,
    h: Handle,
    sh: Arc<Shared>,
    mut out: UnixStream,
    ops: u64,
    seed: u64,
) -> io::Result<Tally> {
    let mut rng = Rng::new(seed);
    let n_timers = sh.timers[w].len();
    let mut t = Tally {
        timer_adds: vec![0; n_timers],
        timer_deletes_ok: vec![0; n_timers],
        timer_last_was_add: vec![false; n_timers],
        ..Tally::default()
    };
    let (fd_key, fd) = &sh.fds[w];
    let mut fd_live = true;
    let (probe_key, probe) = &sh.probes[w];
    for i in 0..ops {
        sh.done[w].store(i, SeqCst);
        let r = rng.below(1000);
        let op = match r {
            0..550 => 1,
            550..600 => 2,
            600..650 => 3,
            650..770 => 4,
            770..830 => 5,
            830..900 => 6,
            900..915 => 7,
            915..960 => 8,
            960..970 => 9,
            _ => 1, // 970..1000: more activations
        };
        sh.doing[w].store(op, SeqCst);
        match op {
            1 => {
                let (key, u) = &sh.users[rng.below(sh.users.len() as u64) as usize];
                t.activations += u64::from(u.activate(h.base_ref(), *key, true)?);
            }
            2 => {
                let (key, u) = &sh.users[rng.below(sh.users.len() as u64) as usize];
                t.deletes += u64::from(u.delete(h.base_ref(), *key)?);
            }
            3 => {
                let (key, u) = &sh.users[rng.below(sh.users.len() as u64) as usize];
                t.readds += u64::from(u.readd(h.base_ref(), *key)?);
            }
            4 if n_timers > 0 => {
                let j = rng.below(n_timers as u64) as usize;
                let (key, tm) = &sh.timers[w][j];
                tm.dead.store(false, SeqCst);
                tm.seq.fetch_add(1, SeqCst);
                h.add(*key, Some(TIMEOUTS[rng.below(4) as usize]))?;
                t.timer_adds[j] += 1;
                t.timer_last_was_add[j] = true;
            }
            5 if n_timers > 0 => {
                let j = rng.below(n_timers as u64) as usize;
                let (key, tm) = &sh.timers[w][j];
                // Succeeds whether or not it was still pending (libevent's event_del).
                h.delete(*key)?;
                t.timer_deletes_ok[j] += 1;
                tm.dead.store(true, SeqCst);
                t.timer_last_was_add[j] = false;
            }
            6 => match out.write(b"x") {
                Ok(n) => t.written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            },
            7 => {
                if fd_live {
                    h.delete(*fd_key)?;
                    fd.dead.store(true, SeqCst);
                } else {
                    fd.dead.store(false, SeqCst);
                    h.add(*fd_key, None)?;
                }
                fd_live = !fd_live;
                t.fd_toggles += 1;
            }
            8 => {
                let dropped = Arc::new(AtomicBool::new(false));
                let guard = DropFlag(dropped.clone());
                let k = h.add_user(move |_, _| {
                    let _owned = &guard;
                })?;
                if rng.below(2) == 0 {
                    h.activate(k, Ready::USER)?;
                }
                h.free(k)?;
                if !dropped.load(SeqCst) {
                    sh.violations.record(|| {
                        format!("worker {w}: free returned before dropping the callback")
                    });
                }
                let r = h.activate(k, Ready::USER);
                if r.as_ref().map_err(util::core_err).err() != Some(Some(rouse_core::Error::Stale))
                {
                    sh.violations
                        .record(|| format!("worker {w}: a freed key still activates"));
                }
                t.temporaries += 1;
            }
            9 => match rng.below(3) {
                0 => {
                    h.loop_break()?;
                    t.breaks += 1;
                }
                1 => {
                    h.loop_exit(None)?;
                    t.exits += 1;
                }
                _ => {
                    h.loop_exit(Some(Duration::from_micros(50)))?;
                    t.exits += 1;
                }
            },
            _ => {}
        }
        if i % 1000 == 999 {
            sh.doing[w].store(10, SeqCst);
            let s = probe.seq.fetch_add(1, SeqCst) + 1;
            h.activate(*probe_key, Ready::USER)?;
            wait_until(
                BOUND,
                &format!("worker {w}: a run sees its probe activation {s} (a lost wake-up?)"),
                || probe.seen.load(SeqCst) >= s,
            );
            t.probes += 1;
        }
    }
    if !fd_live {
        fd.dead.store(false, SeqCst);
        h.add(*fd_key, None)?;
    }
    sh.doing[w].store(0, SeqCst);
    Ok(t)
}

/// The loop thread: runs until `stop`, starting a new run after every break or exit.
/// Returns how many runs ended by a break and by an exit, and the base.
fn run_loop(base: Base, stop: Arc<AtomicBool>, targets: Targets) -> (io::Result<(u64, u64)>, Base) {
    targets.register();
    let (mut breaks, mut exits) = (0, 0);
    while !stop.load(SeqCst) {
        match base.run_forever() {
            Ok(Exit::Break) => breaks += 1,
            Ok(Exit::Exit) => exits += 1,
            Ok(e) => {
                let e = io::Error::other(format!("run_forever returned {e:?}"));
                return (Err(e), base);
            }
            Err(e) => return (Err(e), base),
        }
    }
    (Ok((breaks, exits)), base)
}

/// Runs `plan` on `base`: the workers' mixed operations while the loop runs (under a signal
/// storm if the plan says so), then the checks.
fn stress(base: Base, plan: &Plan) -> io::Result<()> {
    let seed = Rng::from_env_or_time().seed();
    let what = format!("{} (ROUSE_TEST_SEED={seed})", plan.what);
    eprintln!("{what}: {} threads x {} ops", plan.threads, plan.ops);
    let started = Instant::now();
    let mut loop_ends = Vec::new();
    let mut outs = Vec::new();
    // Kept open to the end: a worker's end closing would make the loop's end readable (EOF)
    // for good, and its level-triggered event would then run at every iteration.
    let mut keep_open = Vec::new();
    for _ in 0..plan.threads {
        let (a, b) = pair()?;
        loop_ends.push(a);
        keep_open.push(b.try_clone()?);
        outs.push(b);
    }
    let sh = Arc::new(setup(&base, plan, &loop_ends, seed)?);
    let h = base.handle();
    let targets = Targets::default();
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (stop, targets) = (stop.clone(), targets.clone());
        thread::Builder::new()
            .name(format!("loop: {}", plan.what))
            .spawn(move || run_loop(base, stop, targets))?
    };
    let storm = plan.storm.then(|| Storm::start(targets.clone()));
    let workers: Vec<_> = outs
        .into_iter()
        .enumerate()
        .map(|(w, out)| {
            let (h, sh, targets) = (h.clone(), sh.clone(), targets.clone());
            let (ops, seed) = (plan.ops, seed.wrapping_add(w as u64 * 0x9e37_79b9));
            thread::spawn(move || {
                targets.register();
                worker(w, h, sh, out, ops, seed)
            })
        })
        .collect();
    // No deadlock: the workers as a whole must keep making progress.
    let mut last = (Instant::now(), u64::MAX);
    while !workers.iter().all(JoinHandle::is_finished) {
        let total: u64 = sh.done.iter().map(|d| d.load(SeqCst)).sum();
        if total != last.1 {
            last = (Instant::now(), total);
        } else if last.0.elapsed() > BOUND {
            panic!(
                "{what}: no worker made progress for {BOUND:?} (deadlock?); loop finished: {}{}",
                looper.is_finished(),
                sh.progress()
            );
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Before any registered thread is joined.
    let sent = storm.map(Storm::stop);
    let mut tallies = Vec::new();
    for (w, j) in workers.into_iter().enumerate() {
        match j.join() {
            Ok(r) => {
                tallies.push(r.map_err(|e| io::Error::other(format!("{what}: worker {w}: {e}")))?)
            }
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    let load_time = started.elapsed();

    // Every event live again and activated once more: every last activation must be seen.
    for (key, u) in &sh.users {
        u.readd(h.base_ref(), *key)?;
        u.activate(h.base_ref(), *key, true)?;
    }
    let unseen = || {
        let users: Vec<_> = sh
            .users
            .iter()
            .enumerate()
            .filter(|(_, (_, u))| u.seen.load(SeqCst) < u.seq.load(SeqCst))
            .map(|(i, (_, u))| {
                format!(
                    "user {i}: seq {} seen {}",
                    u.seq.load(SeqCst),
                    u.seen.load(SeqCst)
                )
            })
            .collect();
        format!(
            "{users:?}; {:?}; {:?}; the loop thread ended: {}",
            h.counts(),
            h.wake_stats(),
            looper.is_finished()
        )
    };
    wait_until_else(
        BOUND,
        || {
            sh.users
                .iter()
                .all(|(_, u)| u.seen.load(SeqCst) == u.seq.load(SeqCst))
        },
        || format!("{what}: every last activation runs: {}", unseen()),
    );
    for (w, t) in tallies.iter().enumerate() {
        for (j, (_, tm)) in sh.timers[w].iter().enumerate() {
            if t.timer_last_was_add[j] {
                wait_until(
                    BOUND,
                    &format!("{what}: timer {w}.{j} fires after its last add"),
                    || tm.seen.load(SeqCst) == tm.seq.load(SeqCst),
                );
            }
        }
        let (_, fd) = &sh.fds[w];
        wait_until(
            BOUND,
            &format!("{what}: worker {w}'s bytes are all read"),
            || fd.read.load(SeqCst) == t.written,
        );
    }
    wait_until(BOUND, &format!("{what}: nothing queued or armed"), || {
        let c = h.counts();
        c.active == 0 && c.timers == 0
    });

    sh.violations.check(&what);
    let (mut acts, mut runs) = (0, 0);
    for (i, (_, u)) in sh.users.iter().enumerate() {
        let (a, r) = (u.acts.load(SeqCst), u.runs.load(SeqCst));
        assert!(r <= a, "{what}: user {i} ran {r} times for {a} activations");
        assert!(r >= 1, "{what}: user {i} never ran ({a} activations)");
        acts += a;
        runs += r;
    }
    for (w, t) in tallies.iter().enumerate() {
        for (j, (_, tm)) in sh.timers[w].iter().enumerate() {
            let (adds, dels, fires) = (
                t.timer_adds[j],
                t.timer_deletes_ok[j],
                tm.fires.load(SeqCst),
            );
            // Each add starts or extends one arming; each arming ends in at most one firing
            // (a delete ends it without one, or finds it already fired).
            assert!(
                fires <= adds,
                "{what}: timer {w}.{j}: {fires} firings > {adds} adds ({dels} deletes)"
            );
        }
    }
    let n_timers = (plan.threads * plan.timers_per_thread) as u32;
    let c = h.counts();
    let users = plan.users as u32;
    let threads = plan.threads as u32;
    assert_eq!(c.events, users + n_timers + 2 * threads, "{what}: {c:?}");
    assert_eq!(c.pending, users + 2 * threads, "{what}: {c:?}");
    assert_eq!((c.active, c.timers), (0, 0), "{what}: {c:?}");

    stop.store(true, SeqCst);
    h.loop_break()?;
    let (r, base) = join_within(looper, BOUND, || format!("{what}: the loop thread"));
    let (broke, exited) = r?;
    let total = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let (breaks, exits) = (total(|t| t.breaks), total(|t| t.exits));
    assert!(
        broke <= breaks + 1,
        "{what}: {broke} runs broke for {breaks} breaks"
    );
    assert!(
        exited <= exits,
        "{what}: {exited} runs exited for {exits} exits"
    );
    let s = base.wake_stats();
    assert_eq!(s.failures, 0, "{what}: {s:?}");
    assert!(s.writes <= s.blocking_polls, "{what}: {s:?}");
    assert!(s.writes <= s.requests, "{what}: {s:?}");
    if let Some(sent) = sent {
        let got = DELIVERED.load(SeqCst);
        assert!(
            sent > 0 && got > 0,
            "{what}: no storm: {sent} sent, {got} delivered"
        );
        eprintln!("{what}: {sent} SIGURG sent, {got} delivered in this process");
    }
    eprintln!(
        "{what}: {:?} under load, {:?} in all; {acts} activations ({} by workers) -> {runs} \
         runs; {} deletes, {} re-adds, {} timer adds, {} bytes, {} fd toggles, {} temporaries, \
         {} probes; {broke} runs broke, {exited} exited; {s:?}",
        load_time,
        started.elapsed(),
        total(|t| t.activations),
        total(|t| t.deletes),
        total(|t| t.readds),
        total(|t| t.timer_adds.iter().sum()),
        total(|t| t.written),
        total(|t| t.fd_toggles),
        total(|t| t.temporaries),
        total(|t| t.probes),
    );
    drop((loop_ends, keep_open));
    Ok(())
}

#[test]
fn eight_threads_of_mixed_operations_under_a_signal_storm() -> io::Result<()> {
    let _heavy = heavy();
    let base = Builder::new().priorities(3).build()?;
    let plan = Plan {
        what: format!("{} + {}", base.poller_kind(), base.notifier_kind()),
        threads: 8,
        ops: ops_per_thread(),
        users: 64,
        timers_per_thread: 4,
        storm: true,
    };
    stress(base, &plan)
}

#[test]
fn every_poller_and_notifier_keeps_its_promises_under_a_signal_storm() -> io::Result<()> {
    let _heavy = heavy();
    for (p, n) in all_kinds() {
        let base = builder(p, n).priorities(3).build()?;
        let plan = Plan {
            what: format!("{p} + {n}"),
            threads: 2,
            ops: (ops_per_thread() / 4).max(1000),
            users: 8,
            timers_per_thread: 2,
            storm: true,
        };
        stress(base, &plan)?;
    }
    Ok(())
}
