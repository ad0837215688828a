//! The W1-W6 benchmark workloads (see the README), run against rouse, printing one JSON object
//! per result on stdout (progress on stderr), field for field like the peer programs that run
//! the same workloads on libevent, libev, libuv, mio, polling and calloop, so their figures
//! compare line by line.
//!
//! ```text
//! cargo bench --bench workloads                 # everything
//! cargo bench --bench workloads -- W1b W3       # some (commas work too; W1 = W1a+W1b, W4 = W4a+W4b+W4scale)
//! ```
//!
//! - W1a/W1b/W2: a persistent user event ([`Base::add_user`]) on a default [`Base`], its
//!   loop thread in `base.run()`, activated from other threads through a [`rouse_std::Handle`].
//!   W1 is printed unpinned and pinned (loop on CPU 0, sender on CPU 1), as the peers do; W1a
//!   also with the opt-in fixed spin before blocking (`"variant":"spin-3us"`) and with no spin
//!   at all (`"variant":"spin-off"`), each its own line (the default is the adaptive spin).
//! - W6: W1's shape at ~2000 wakes/s: the loop thread's CPU time per wake, for the default
//!   base (adaptive spin) and, each its own line, the opt-in fixed spin (`"variant":"spin-3us"`)
//!   and no spin (`"variant":"spin-off"`).
//! - W3: libevent's `test/bench.c` shape; every run re-arms the P existing events with
//!   `delete` + `add` and dispatches with `ONCE_NONBLOCK` runs. Printed for the default
//!   (threaded) base and for [`LocalBase`] (impl `rouse-<ver>-local`).
//! - W4a/W4b: one-shot timers with zero-sized callbacks; add/delete churn. Both bases.
//! - W4scale: W4a at n = 1 000, 10 000, 100 000 and 1 000 000 (case `a_scale`), with the loop
//!   thread's CPU time per timer (`cpu_ns_per_timer`) beside the wall time. Both bases.
//! - W2ch: W2's storm sent through [`Base::channel`] (4 threads x 250 000 messages).
//! - W5: RSS per registered fd event, in a fresh process (the harness re-executes itself).
//!
//! A counting global allocator reports allocations per event/op/wake (`allocs_per_*`).

mod channel;
mod common;
mod w7;

use std::io;
use std::os::fd::RawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rouse_core::{Event, Exit, Interest, Key, Ready, RunFlags};
use rouse_std::{raw_source, Base, Context, Flavor, Local, LocalBase, Threaded};

use common::*;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn imp() -> String {
    format!("rouse-{}", env!("CARGO_PKG_VERSION"))
}

fn backend(base: &Base) -> String {
    format!(
        "{} + {}",
        base.poller_kind().name(),
        base.notifier_kind().name()
    )
}

// ====================================================================== W1

/// A W1 variant (common.h `struct w1_params`).
struct W1Params {
    name: &'static str,
    warmup: usize,
    measured: usize,
    gap_ns: u64,
}

const W1A: W1Params = W1Params {
    name: "W1a",
    warmup: 10_000,
    measured: 100_000,
    gap_ns: 0,
};
const W1B: W1Params = W1Params {
    name: "W1b",
    warmup: 2_000,
    measured: 20_000,
    gap_ns: 50_000,
};

/// Sender/loop shared state (common.h `struct w1_sync`).
struct W1Sync {
    t0: AtomicU64,
    seq: AtomicU64,
    /// seq + 1 of the last handled trigger.
    ack: AtomicU64,
    /// Per-seq latency, written by the loop.
    lat: Box<[AtomicU64]>,
}

/// The opt-in fixed spin before blocking that the `spin-3us` variant lines measure (what W1a
/// was first measured with, when it was the default).
const SPIN: Duration = Duration::from_micros(3);

/// Which spin before blocking a W1/W6 run's base has.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Spin {
    /// The builder's default: the adaptive spin (`DEFAULT_ADAPTIVE_SPIN`).
    Default,
    /// The opt-in fixed spin, `Builder::spin_before_block(SPIN)`: `"variant":"spin-3us"`.
    Fixed,
    /// No spin at all, `Builder::spin_before_block(0)`: `"variant":"spin-off"`.
    Off,
}

/// The W6 runs, in order: the default, the fixed spin, no spin; or those `ROUSE_W6` names
/// (comma-separated `default`, `fixed`, `off`, repeats allowed), so that a harness can run
/// each variant first in a fresh process, as the peers' W6 runs.
fn w6_variants() -> io::Result<Vec<Spin>> {
    let Ok(list) = std::env::var("ROUSE_W6") else {
        return Ok(vec![Spin::Default, Spin::Fixed, Spin::Off]);
    };
    list.split(',')
        .map(|v| match v.trim() {
            "default" => Ok(Spin::Default),
            "fixed" => Ok(Spin::Fixed),
            "off" => Ok(Spin::Off),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("ROUSE_W6: unknown variant {other:?} (default, fixed, off)"),
            )),
        })
        .collect()
}

/// The base of a W1/W6 run, and its JSON variant field (none for the default). A variant
/// line's impl is the default's plus the variant (`rouse-X-spin3us`, as W7's `-spin0us`), so
/// the comparison shows it as its own row instead of merging it into the default's median.
fn w1_base(spin: Spin) -> io::Result<(Base, &'static str)> {
    match spin {
        Spin::Default => Ok((Base::new()?, "")),
        Spin::Fixed => Ok((
            Base::builder().spin_before_block(SPIN).build()?,
            ",\"variant\":\"spin-3us\"",
        )),
        Spin::Off => Ok((
            Base::builder().spin_before_block(Duration::ZERO).build()?,
            ",\"variant\":\"spin-off\"",
        )),
    }
}

/// The impl name of a W1/W6 line of `spin`.
fn w1_imp(spin: Spin) -> String {
    match spin {
        Spin::Default => imp(),
        Spin::Fixed => format!("{}-spin3us", imp()),
        Spin::Off => format!("{}-spin0us", imp()),
    }
}

fn w1(p: &W1Params, pinned: bool, spin: Spin) -> io::Result<()> {
    let total = p.warmup + p.measured;
    let s = Arc::new(W1Sync {
        t0: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        ack: AtomicU64::new(0),
        lat: (0..total).map(|_| AtomicU64::new(0)).collect(),
    });
    let (base, variant) = w1_base(spin)?;
    let handle = base.handle();
    let be = backend(&base);
    let key = {
        let s = s.clone();
        // w1_on_wake
        base.add_user(move |_, _| {
            let t = now_ns();
            let i = s.seq.load(Ordering::SeqCst);
            let lat = t.wrapping_sub(s.t0.load(Ordering::SeqCst));
            s.lat[i as usize].store(lat, Ordering::Relaxed);
            s.ack.store(i + 1, Ordering::SeqCst);
        })?
    };
    if pinned {
        pin_self(Some(1));
    }
    let lt = thread::spawn(move || {
        if pinned {
            pin_self(Some(0));
        }
        let r = base.run();
        (base, r)
    });

    // w1_send_all
    let ovh = io_overhead();
    let (mut io_a, mut t_start, mut a_start) = (ProcIo::default(), 0, 0);
    let mut spins = 0u64;
    let mut errors = 0u64;
    for i in 0..total as u64 {
        if i == p.warmup as u64 {
            io_a = read_proc_io();
            a_start = allocs();
            t_start = now_ns();
        }
        s.seq.store(i, Ordering::SeqCst);
        s.t0.store(now_ns(), Ordering::SeqCst);
        if handle.activate(key, Ready::USER).is_err() {
            errors += 1;
        }
        while s.ack.load(Ordering::SeqCst) != i + 1 {
            spin_pause(&mut spins);
        }
        if p.gap_ns > 0 {
            spin_for_ns(p.gap_ns);
        }
    }
    let elapsed = now_ns() - t_start;
    let a_end = allocs();
    let io_b = read_proc_io();
    let (dr, dw) = io_delta(io_a, io_b, ovh);

    handle.loop_break()?;
    let (base, r) = lt.join().expect("loop thread");
    if pinned {
        pin_self(None);
    }
    assert_eq!(r?, Exit::Break, "W1 loop must end by loop_break");
    let stats = base.wake_stats();
    drop(base);

    // w1_report
    let mut m: Vec<u64> = s.lat[p.warmup..]
        .iter()
        .map(|x| x.load(Ordering::Relaxed))
        .collect();
    m.sort_unstable();
    let n = m.len();
    let sum: u64 = m.iter().sum();
    println!(
        "{{\"impl\":\"{}\",\"workload\":\"{}\",\"median_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\
         \"wakes_per_s\":{:.0},\"mean_ns\":{:.0},\"min_ns\":{},\"max_ns\":{},\"samples\":{},\
         \"warmup\":{},\"gap_ns\":{},\"pinned\":{},\"syscw_per_wake\":{:.3},\
         \"syscr_per_wake\":{:.3},\"allocs_per_wake\":{:.3},\"notify_writes_total\":{},\
         \"blocking_polls_total\":{},\"spins_total\":{},\"spin_hits_total\":{},\
         \"activate_errors\":{},\"trigger\":\"Handle::activate(key, Ready::USER)\",\"backend\":\"{}\"{}}}",
        w1_imp(spin),
        p.name,
        pct_sorted(&m, 0.5),
        pct_sorted(&m, 0.99),
        pct_sorted(&m, 0.999),
        n as f64 / (elapsed as f64 / 1e9),
        sum as f64 / n as f64,
        m[0],
        m[n - 1],
        p.measured,
        p.warmup,
        p.gap_ns,
        pinned,
        dw as f64 / n as f64,
        dr as f64 / n as f64,
        (a_end - a_start) as f64 / n as f64,
        stats.writes,
        stats.blocking_polls,
        stats.spins,
        stats.spin_hits,
        errors,
        be,
        variant
    );
    Ok(())
}

// ====================================================================== W6

const W6_WAKES: usize = 2_000;
const W6_GAP_NS: u64 = 500_000;

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock exists on every supported OS.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// W6: W1's setup, 2000 wakes 500 µs apart (the loop blocked before each); the loop thread's
/// CPU time from the first to the last callback, per wake.
fn w6(spin: Spin) -> io::Result<()> {
    let s = Arc::new(W1Sync {
        t0: AtomicU64::new(0),
        seq: AtomicU64::new(0),
        ack: AtomicU64::new(0),
        lat: (0..W6_WAKES).map(|_| AtomicU64::new(0)).collect(),
    });
    let cpu = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let (base, variant) = w1_base(spin)?;
    let handle = base.handle();
    let be = backend(&base);
    let key = {
        let (s, cpu) = (s.clone(), cpu.clone());
        base.add_user(move |_, _| {
            let t = now_ns();
            let i = s.seq.load(Ordering::SeqCst) as usize;
            if i == 0 {
                cpu[0].store(thread_cpu_ns(), Ordering::Relaxed);
            } else if i == W6_WAKES - 1 {
                cpu[1].store(thread_cpu_ns(), Ordering::Relaxed);
            }
            let lat = t.wrapping_sub(s.t0.load(Ordering::SeqCst));
            s.lat[i].store(lat, Ordering::Relaxed);
            s.ack.store(i as u64 + 1, Ordering::SeqCst);
        })?
    };
    let lt = thread::spawn(move || {
        let r = base.run();
        (base, r)
    });
    let mut spins = 0u64;
    let mut errors = 0u64;
    for i in 0..W6_WAKES as u64 {
        s.seq.store(i, Ordering::SeqCst);
        s.t0.store(now_ns(), Ordering::SeqCst);
        if handle.activate(key, Ready::USER).is_err() {
            errors += 1;
        }
        while s.ack.load(Ordering::SeqCst) != i + 1 {
            spin_pause(&mut spins);
        }
        spin_for_ns(W6_GAP_NS);
    }
    handle.loop_break()?;
    let (base, r) = lt.join().expect("loop thread");
    assert_eq!(r?, Exit::Break, "W6 loop must end by loop_break");
    let stats = base.wake_stats();
    drop(base);
    let per_wake = (cpu[1].load(Ordering::Relaxed) - cpu[0].load(Ordering::Relaxed)) as f64
        / (W6_WAKES - 1) as f64;
    let mut m: Vec<u64> = s.lat.iter().map(|x| x.load(Ordering::Relaxed)).collect();
    m.sort_unstable();
    println!(
        "{{\"impl\":\"{}\",\"workload\":\"W6\",\"wakes\":{},\"gap_ns\":{},\
         \"cpu_ns_per_wake\":{:.0},\"median_ns\":{},\"p99_ns\":{},\"notify_writes_total\":{},\
         \"blocking_polls_total\":{},\"spins_total\":{},\"spin_hits_total\":{},\
         \"activate_errors\":{},\"backend\":\"{}\"{}}}",
        w1_imp(spin),
        W6_WAKES,
        W6_GAP_NS,
        per_wake,
        pct_sorted(&m, 0.5),
        pct_sorted(&m, 0.99),
        stats.writes,
        stats.blocking_polls,
        stats.spins,
        stats.spin_hits,
        errors,
        be,
        variant
    );
    Ok(())
}

// ====================================================================== W2

const W2_SENDERS: usize = 4;
const W2_PER_SENDER: u64 = 250_000;

#[derive(Default)]
struct W2State {
    callbacks: AtomicU64,
    t_done: AtomicU64,
    go: AtomicBool,
    final_flag: AtomicBool,
    done: AtomicBool,
}

fn w2() -> io::Result<()> {
    let s = Arc::new(W2State::default());
    let base = Base::new()?;
    let handle = base.handle();
    let be = backend(&base);
    let key = {
        let s = s.clone();
        base.add_user(move |_, _| {
            s.callbacks.fetch_add(1, Ordering::Relaxed);
            if s.final_flag.load(Ordering::SeqCst) && !s.done.load(Ordering::SeqCst) {
                s.t_done.store(now_ns(), Ordering::SeqCst);
                s.done.store(true, Ordering::SeqCst);
            }
        })?
    };
    let lt = thread::spawn(move || {
        let r = base.run();
        (base, r)
    });
    let senders: Vec<_> = (0..W2_SENDERS)
        .map(|_| {
            let (s, h) = (s.clone(), handle.clone());
            thread::spawn(move || {
                let mut spins = 0;
                while !s.go.load(Ordering::SeqCst) {
                    spin_pause(&mut spins);
                }
                let mut errors = 0u64;
                for _ in 0..W2_PER_SENDER {
                    if h.activate(key, Ready::USER).is_err() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(20));

    let ovh = io_overhead();
    let io_a = read_proc_io();
    let a0 = allocs();
    let t_start = now_ns();
    s.go.store(true, Ordering::SeqCst);
    let mut errors: u64 = senders.into_iter().map(|t| t.join().expect("sender")).sum();
    s.final_flag.store(true, Ordering::SeqCst);
    if handle.activate(key, Ready::USER).is_err() {
        errors += 1;
    }
    let mut spins = 0;
    while !s.done.load(Ordering::SeqCst) {
        spin_pause(&mut spins);
    }
    let a1 = allocs();
    let io_b = read_proc_io();
    let (dr, dw) = io_delta(io_a, io_b, ovh);
    let cb_at_done = s.callbacks.load(Ordering::SeqCst);
    handle.loop_break()?;
    let (base, r) = lt.join().expect("loop thread");
    assert_eq!(r?, Exit::Break, "W2 loop must end by loop_break");
    base.run_nonblocking()?; // drain leftovers
    let stats = base.wake_stats();
    drop(base);

    let el = s.t_done.load(Ordering::SeqCst) - t_start;
    let trig = W2_SENDERS as u64 * W2_PER_SENDER + 1;
    println!(
        "{{\"impl\":\"{}\",\"workload\":\"W2\",\"elapsed_ns\":{},\"triggers\":{},\"callbacks\":{},\
         \"callbacks_at_final\":{},\"syscw\":{},\"syscr\":{},\"triggers_per_s\":{:.0},\
         \"final_seen\":{},\"senders\":{},\"allocs\":{},\"notify_writes_total\":{},\
         \"activate_errors\":{},\"coalescing\":\"a queued event is not queued again: \
         activate of an already-queued word is one fence + one load (no lock, no syscall); \
         at most one notification outstanding\",\"backend\":\"{}\"}}",
        imp(),
        el,
        trig,
        s.callbacks.load(Ordering::SeqCst),
        cb_at_done,
        dw,
        dr,
        trig as f64 / (el as f64 / 1e9),
        s.done.load(Ordering::SeqCst),
        W2_SENDERS,
        a1 - a0,
        stats.writes,
        errors,
        be
    );
    Ok(())
}

// ====================================================================== the two bases

/// What W3 and W4 need of a base, for the threaded [`Base`] and the single-threaded
/// [`LocalBase`] alike: one generic implementation over the flavor. Callbacks are plain
/// closures, wrapped without adding captures (a zero-sized closure stays zero-sized, so boxing
/// it allocates nothing).
trait Bench: Sized {
    /// Appended to the impl name.
    const SUFFIX: &'static str;
    /// What the base is, for the JSON.
    const KIND: &'static str;
    fn create() -> io::Result<Self>;
    /// A persistent read event on `fd`, not yet added.
    fn io_event<C: FnMut() + Send + 'static>(&self, fd: RawFd, f: C) -> io::Result<Key>;
    /// A timer event, not yet added.
    fn timer_event<C: FnMut() + Send + 'static>(&self, f: C) -> io::Result<Key>;
    /// `add_timer`: a one-shot timer, created and added.
    fn timer_after<C: FnMut() + Send + 'static>(&self, after: Duration, f: C) -> io::Result<Key>;
    fn ev_add(&self, key: Key, timeout: Option<Duration>) -> io::Result<()>;
    fn ev_delete(&self, key: Key) -> io::Result<()>;
    fn run_flags(&self, flags: RunFlags) -> io::Result<Exit>;
    fn interest_calls(&self) -> Option<u64>;
    fn describe(&self) -> String;
    /// Runs a measured section (one named function per base, for the instruction counts).
    fn measured<R>(f: impl FnOnce() -> R) -> R;
    /// W4b's churn from a callback: `n` times `add(key, Some(d))` + `delete(key)` inside one
    /// callback of a running loop; returns the wall ns of the loop of ops.
    fn churn_in_callback(&self, key: Key, n: usize, d: Duration) -> io::Result<u64>;
}

/// The per-flavor names and constructor.
trait Named: Flavor {
    const SUFFIX: &'static str;
    const KIND: &'static str;
    fn create() -> io::Result<Base<Self>>;
    fn describe(base: &Base<Self>) -> String;
}

impl Named for Threaded {
    const SUFFIX: &'static str = "";
    const KIND: &'static str = "Base (threaded: std Mutex, notifier)";
    fn create() -> io::Result<Base> {
        Base::new()
    }
    fn describe(base: &Base) -> String {
        backend(base)
    }
}

impl Named for Local {
    const SUFFIX: &'static str = "-local";
    const KIND: &'static str = "LocalBase (no lock, no notifier)";
    fn create() -> io::Result<LocalBase> {
        LocalBase::new_local()
    }
    fn describe(base: &LocalBase) -> String {
        base.poller_kind().name().to_string()
    }
}

impl<F: Named> Bench for Base<F> {
    const SUFFIX: &'static str = F::SUFFIX;
    const KIND: &'static str = F::KIND;
    fn create() -> io::Result<Self> {
        F::create()
    }
    fn io_event<C: FnMut() + Send + 'static>(&self, fd: RawFd, mut f: C) -> io::Result<Key> {
        let ev = Event::io(raw_source(fd)?, Interest::READ).persist();
        self.event(ev, move |_, _| f())
    }
    fn timer_event<C: FnMut() + Send + 'static>(&self, mut f: C) -> io::Result<Key> {
        self.event(Event::timer(), move |_, _| f())
    }
    fn timer_after<C: FnMut() + Send + 'static>(&self, d: Duration, mut f: C) -> io::Result<Key> {
        self.add_timer(d, move |_, _| f())
    }
    #[inline]
    fn ev_add(&self, key: Key, timeout: Option<Duration>) -> io::Result<()> {
        self.add(key, timeout)
    }
    #[inline]
    fn ev_delete(&self, key: Key) -> io::Result<()> {
        self.delete(key)
    }
    #[inline]
    fn run_flags(&self, flags: RunFlags) -> io::Result<Exit> {
        self.run_with(flags)
    }
    fn interest_calls(&self) -> Option<u64> {
        self.interest_syscalls()
    }
    fn describe(&self) -> String {
        F::describe(self)
    }
    fn measured<R>(f: impl FnOnce() -> R) -> R {
        if F::SUFFIX.is_empty() {
            measured_threaded(f)
        } else {
            measured_local(f)
        }
    }
    fn churn_in_callback(&self, key: Key, n: usize, d: Duration) -> io::Result<u64> {
        let took = Arc::new(AtomicU64::new(0));
        let t = took.clone();
        self.add_timer(Duration::ZERO, move |cx, _| {
            let ev = cx.base_ref();
            let t0 = now_ns();
            measured_in_callback(|| {
                for _ in 0..n {
                    ev.add(key, Some(d)).expect("add from a callback");
                    ev.delete(key).expect("delete from a callback");
                }
            });
            t.store(now_ns() - t0, Ordering::Relaxed);
        })?;
        self.run_with(RunFlags::ONCE)?;
        Ok(took.load(Ordering::Relaxed))
    }
}

fn local_note<B: Bench>() -> &'static str {
    if B::SUFFIX.is_empty() {
        ""
    } else {
        ",\"note\":\"single-threaded LocalBase (no lock, no notifier), the counterpart of \
         libevent's EVENT_BASE_FLAG_NOLOCK base used by its W3/W4/W5\""
    }
}

// ====================================================================== W3

const W3_ACTIVE: usize = 100;
const W3_WARMUP_RUNS: usize = 2;
const W3_RUNS: usize = 25;
const W3_SIZES: [usize; 3] = [100, 1000, 9900];

/// The W3 sizes to run: all, or the one `ROUSE_W3_P` names.
fn w3_sizes() -> Vec<usize> {
    match env_usize("ROUSE_W3_P", 0) {
        0 => W3_SIZES.to_vec(),
        p => vec![p],
    }
}

/// The state the callbacks share (single-threaded use: relaxed load + store, no RMW).
struct W3State {
    count: AtomicUsize,
    writes_left: AtomicUsize,
    failures: AtomicUsize,
    /// Write end of pair i.
    wfds: Vec<RawFd>,
}

fn bump(a: &AtomicUsize) {
    a.store(a.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn w3_one<B: Bench>(p_req: usize) -> io::Result<()> {
    let p = max_pairs(p_req);
    let space = p / W3_ACTIVE;
    let w = p_req.max(1000);
    let fds = make_pairs(p);
    let st = Arc::new(W3State {
        count: AtomicUsize::new(0),
        writes_left: AtomicUsize::new(0),
        failures: AtomicUsize::new(0),
        wfds: (0..p).map(|i| fds[2 * i + 1]).collect(),
    });
    let base = B::create()?;
    let t_reg = now_ns();
    let mut keys = Vec::with_capacity(p);
    for i in 0..p {
        let (st, rfd) = (st.clone(), fds[2 * i]);
        // The callback of test/bench.c: read one byte, count, pass a byte on.
        let key = base.io_event(rfd, move || {
            let s = &*st;
            if read_byte(rfd) {
                bump(&s.count);
            } else {
                bump(&s.failures);
            }
            let left = s.writes_left.load(Ordering::Relaxed);
            if left > 0 {
                s.writes_left.store(left - 1, Ordering::Relaxed);
                let widx = if i + 1 >= p { 0 } else { i + 1 };
                if !write_byte(s.wfds[widx]) {
                    bump(&s.failures);
                }
            }
        })?;
        base.ev_add(key, None)?;
        keys.push(key);
    }
    let t_reg = now_ns() - t_reg;

    // Allocated up front, so the measured runs' allocation count is the library's alone.
    let mut tot = Vec::with_capacity(W3_RUNS);
    let mut rearm = Vec::with_capacity(W3_RUNS);
    let mut disp = Vec::with_capacity(W3_RUNS);
    let mut ok = true;
    let (mut polls, mut a0, mut sys0) = (0u64, 0u64, None);
    // Every run (warm-ups included: 27 x W events, each with its re-arm) is one measured
    // section for the instruction counts.
    B::measured(|| -> io::Result<()> {
        for run in 0..W3_WARMUP_RUNS + W3_RUNS {
            if run == W3_WARMUP_RUNS {
                a0 = allocs();
                sys0 = base.interest_calls();
            }
            let t0 = now_ns();
            for &k in &keys {
                base.ev_delete(k)?;
                base.ev_add(k, None)?;
            }
            let t1 = now_ns();
            for i in 0..W3_ACTIVE {
                if !write_byte(st.wfds[i * space]) {
                    bump(&st.failures);
                }
            }
            st.count.store(0, Ordering::Relaxed);
            st.writes_left.store(w - W3_ACTIVE, Ordering::Relaxed);
            let t2 = now_ns();
            let mut iters = 0u64;
            while st.count.load(Ordering::Relaxed) < w {
                base.run_flags(RunFlags::ONCE_NONBLOCK)?;
                iters += 1;
                if iters > 100_000_000 {
                    ok = false;
                    break;
                }
            }
            let t3 = now_ns();
            if st.count.load(Ordering::Relaxed) != w {
                ok = false;
            }
            if run >= W3_WARMUP_RUNS {
                tot.push(t3 - t0);
                rearm.push(t1 - t0);
                disp.push(t3 - t2);
                polls += iters;
            }
        }
        Ok(())
    })?;
    let a1 = allocs();
    let sys1 = base.interest_calls();
    // Sanity: every byte written was read, so one more pass runs nothing.
    let before = st.count.load(Ordering::Relaxed);
    base.run_flags(RunFlags::NONBLOCK)?;
    let leftover = st.count.load(Ordering::Relaxed) - before;
    let be = base.describe();
    drop(base);
    close_all(&fds);

    let med = median_of(&mut tot);
    let mn = tot[0];
    let rm = median_of(&mut rearm);
    let dm = median_of(&mut disp);
    let dmin = disp[0];
    let events = (W3_RUNS * w) as f64;
    let ctl = match (sys0, sys1) {
        (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / W3_RUNS as f64),
        _ => "null".into(),
    };
    println!(
        "{{\"impl\":\"{}{}\",\"workload\":\"W3\",\"P\":{},\"A\":{},\"W\":{},\"median_us\":{:.1},\
         \"min_us\":{:.1},\"rearm_us\":{:.1},\"rearm_ns\":{},\"dispatch_median_us\":{:.1},\
         \"dispatch_min_us\":{:.1},\"register_us\":{:.1},\"polls_per_run\":{:.1},\"runs\":{},\
         \"count_ok\":{},\"failures\":{},\"leftover_callbacks\":{},\"P_requested\":{},{}\
         \"allocs\":{},\"allocs_per_event\":{:.4},\"interest_syscalls_per_run\":{},\
         \"rearm\":\"delete + add on the existing keys (change list: no epoll_ctl when the \
         interest is unchanged)\",\"dispatch\":\"run_with(ONCE_NONBLOCK) until count == W\",\
         \"base\":\"{}\",\"backend\":\"{}\"{}}}",
        imp(),
        B::SUFFIX,
        p,
        W3_ACTIVE,
        w,
        med as f64 / 1e3,
        mn as f64 / 1e3,
        rm as f64 / 1e3,
        rm,
        dm as f64 / 1e3,
        dmin as f64 / 1e3,
        t_reg as f64 / 1e3,
        polls as f64 / W3_RUNS as f64,
        W3_RUNS,
        ok,
        st.failures.load(Ordering::Relaxed),
        leftover,
        p_req,
        if p < p_req {
            "\"reduced\":\"P capped by RLIMIT_NOFILE hard limit (2 fds per socketpair)\","
        } else {
            ""
        },
        a1 - a0,
        (a1 - a0) as f64 / events,
        ctl,
        B::KIND,
        be,
        local_note::<B>()
    );
    Ok(())
}

// ====================================================================== W4

/// One-shot timers of W4a (`ROUSE_W4_TIMERS` overrides it).
fn w4_timers() -> usize {
    env_usize("ROUSE_W4_TIMERS", 1_000_000)
}
const W4_CHURN: usize = 1_000_000;

/// Counted into by the W4 callbacks, which capture nothing (single-threaded: load + store).
static FIRED: AtomicU64 = AtomicU64::new(0);

fn w4_cb() {
    FIRED.store(FIRED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

fn w4a<B: Bench>() -> io::Result<()> {
    w4a_n::<B>(w4_timers(), false)
}

/// W4scale: W4a at each of these n (case "a_scale"), as the peers run it.
const W4S_SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

fn w4scale<B: Bench>() -> io::Result<()> {
    for n in W4S_SIZES {
        w4a_n::<B>(n, true)?;
    }
    Ok(())
}

/// W4a with `n` timers; `scale`: printed as case "a_scale", with the loop thread's CPU time
/// (`CLOCK_THREAD_CPUTIME_ID`) over the same section as the wall time.
fn w4a_n<B: Bench>(n: usize, scale: bool) -> io::Result<()> {
    let base = B::create()?;
    let cb = || w4_cb();
    assert_eq!(
        std::mem::size_of_val(&cb),
        0,
        "W4 callbacks capture nothing"
    );
    FIRED.store(0, Ordering::Relaxed);
    let mut lcg = Lcg::new();
    let a0 = allocs();
    let (c0, t0, t1, t2, c1, exit) = B::measured(|| -> io::Result<_> {
        let c0 = thread_cpu_ns();
        let t0 = now_ns();
        for _ in 0..n {
            let us = lcg.deadline_us();
            base.timer_after(Duration::from_micros(us), cb)?;
        }
        let t1 = now_ns();
        let exit = base.run_flags(RunFlags::UNTIL_EMPTY)?;
        let t2 = now_ns();
        Ok((c0, t0, t1, t2, thread_cpu_ns(), exit))
    })?;
    let a1 = allocs();
    let fired = FIRED.load(Ordering::Relaxed);
    drop(base);
    let (case, cpu) = if scale {
        let cpu = format!(",\"cpu_ns_per_timer\":{:.1}", (c1 - c0) as f64 / n as f64);
        ("a_scale", cpu)
    } else {
        ("a_add_fire", String::new())
    };
    println!(
        "{{\"impl\":\"{}{}\",\"workload\":\"W4\",\"case\":\"{}\",\"timers\":{},\
         \"total_ns\":{},\"ns_per_timer\":{:.1}{},\"add_ns_per_timer\":{:.1},\
         \"fire_ns_per_timer\":{:.1},\"fired\":{},\"fire_ok\":{},\"exit\":\"{:?}\",\
         \"allocs\":{},\"allocs_per_timer\":{:.4},\"deadline_us\":\"[1000,100000] LCG\",\
         \"op\":\"add_timer(LCG deadline, zero-sized closure) = new_event + add; then run() \
         until Exit::Empty\",\"base\":\"{}\"{}}}",
        imp(),
        B::SUFFIX,
        case,
        n,
        t2 - t0,
        (t2 - t0) as f64 / n as f64,
        cpu,
        (t1 - t0) as f64 / n as f64,
        (t2 - t1) as f64 / n as f64,
        fired,
        fired == n as u64 && exit == Exit::Empty,
        exit,
        a1 - a0,
        (a1 - a0) as f64 / n as f64,
        B::KIND,
        local_note::<B>()
    );
    Ok(())
}

fn w4b<B: Bench>() -> io::Result<()> {
    let base = B::create()?;
    let key = base.timer_event(w4_cb)?;
    let one_s = Duration::from_secs(1);
    let a0 = allocs();
    let (t0, t1) = B::measured(|| -> io::Result<_> {
        let t0 = now_ns();
        for _ in 0..W4_CHURN {
            base.ev_add(key, Some(one_s))?;
            base.ev_delete(key)?;
        }
        Ok((t0, now_ns()))
    })?;
    let a1 = allocs();
    // Sanity: the key is still valid (a delete of a non-pending event succeeds).
    let churn_ok = base.ev_delete(key).is_ok();
    // The same churn from a callback (the time rule: no clock reading; its own case).
    let cb_ns = base.churn_in_callback(key, W4_CHURN, one_s)?;
    let cb_ok = base.ev_delete(key).is_ok();
    drop(base);
    println!(
        "{{\"impl\":\"{}{}\",\"workload\":\"W4\",\"case\":\"b_churn\",\"ops\":{},\
         \"ns_per_op\":{:.1},\"churn_ok\":{},\"allocs\":{},\
         \"op\":\"add(key, Some(1 s)) + delete(key)\",\"base\":\"{}\"{}}}",
        imp(),
        B::SUFFIX,
        W4_CHURN,
        (t1 - t0) as f64 / W4_CHURN as f64,
        churn_ok,
        a1 - a0,
        B::KIND,
        local_note::<B>()
    );
    println!(
        "{{\"impl\":\"{}{}\",\"workload\":\"W4\",\"case\":\"b_churn_in_callback\",\"ops\":{},\
         \"ns_per_op\":{:.1},\"churn_ok\":{},\"op\":\"add(key, Some(1 s)) + delete(key), both from \
         one callback of a running loop (no clock reading: the timeout would start after the pass)\",\
         \"base\":\"{}\"{}}}",
        imp(),
        B::SUFFIX,
        W4_CHURN,
        cb_ns as f64 / W4_CHURN as f64,
        cb_ok,
        B::KIND,
        local_note::<B>()
    );
    Ok(())
}

// ====================================================================== W5

const W5_PAIRS: usize = 9_500;

fn w5() -> io::Result<()> {
    let pairs = max_pairs(W5_PAIRS);
    let n = 2 * pairs;
    let base = Base::new()?;
    let be = backend(&base);
    let fds = make_pairs(pairs);
    let mut keys = Vec::with_capacity(n);
    let cb = |_: &Context<'_>, _: rouse_core::Fired| {};
    assert_eq!(
        std::mem::size_of_val(&cb),
        0,
        "W5 callbacks capture nothing"
    );
    trim_heap();
    let (r0, s0) = statm_res_shared();
    let a0 = allocs();
    for &fd in &fds {
        let ev = Event::io(raw_source(fd)?, Interest::READ).persist();
        keys.push(base.add_event(ev, None, cb)?);
    }
    base.run_nonblocking()?; // the one non-blocking iteration: applies the change list
    let a1 = allocs();
    let (r1, s1) = statm_res_shared();
    let calls = base.interest_syscalls();
    drop(base);
    close_all(&fds);
    let reduced = if pairs < W5_PAIRS {
        ",\"reduced\":\"socketpairs capped by RLIMIT_NOFILE hard limit (2 fds each); \
         requested 9500 pairs / 19000 events\""
    } else {
        ""
    };
    println!(
        "{{\"impl\":\"{}\",\"workload\":\"W5\",\"events\":{},\"socketpairs\":{},\
         \"rss_delta_bytes\":{},\"bytes_per_event\":{:.1},\"anon_delta_bytes\":{},\
         \"anon_bytes_per_event\":{:.1},\"file_delta_bytes\":{},\"allocs\":{},\
         \"interest_syscalls\":{},\"includes\":\"add_event(io READ persist, zero-sized \
         closure) per fd + 1 run_nonblocking\",\"note\":\"RSS only: the kernel's \
         per-registration slab memory (epitem etc.) is not in it, for any program\",\
         \"backend\":\"{}\"{}}}",
        imp(),
        n,
        pairs,
        r1 - r0,
        (r1 - r0) as f64 / n as f64,
        (r1 - s1) - (r0 - s0),
        ((r1 - s1) - (r0 - s0)) as f64 / n as f64,
        s1 - s0,
        a1 - a0,
        calls.map_or("null".into(), |c| c.to_string()),
        be,
        reduced
    );
    Ok(())
}

/// W5 in a fresh process: this executable again, with only W5; its stdout is forwarded.
fn w5_fresh() -> io::Result<()> {
    let out = Command::new(std::env::current_exe()?)
        .arg("W5")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        return Err(io::Error::other(format!("W5 child: {}", out.status)));
    }
    Ok(())
}

// ====================================================================== main

fn main() -> io::Result<()> {
    let (args, w7) = w7::take_args(std::env::args().skip(1).collect());
    if let Some(opts) = w7.server {
        return w7::server::serve(opts);
    }
    let only_w7 = !w7.modes.is_empty() && args.iter().all(|a| a.starts_with('-'));
    let sel = if only_w7 {
        Vec::new()
    } else {
        selection(&args)
    };
    let want = |w: &str| sel.contains(&w);
    max_pairs(W5_PAIRS); // raise RLIMIT_NOFILE once, as the peers do
    let t_all = now_ns();
    let step = |name: &str| eprintln!("# rouse {name} ...");

    if want("W1a") {
        step("W1a");
        w1(&W1A, false, Spin::Default)?;
        if can_pin() {
            w1(&W1A, true, Spin::Default)?;
        }
        step("W1a (opt-in fixed spin)");
        w1(&W1A, false, Spin::Fixed)?;
        step("W1a (no spin)");
        w1(&W1A, false, Spin::Off)?;
    }
    if want("W1b") {
        step("W1b");
        w1(&W1B, false, Spin::Default)?;
        if can_pin() {
            w1(&W1B, true, Spin::Default)?;
        }
    }
    if want("W2") {
        step("W2");
        w2()?;
    }
    if want("W2ch") {
        step("W2ch");
        channel::w2_channel()?;
    }
    if want("W3") {
        for p in w3_sizes() {
            step(&format!("W3 P={p}"));
            w3_one::<Base>(p)?;
        }
        for p in w3_sizes() {
            step(&format!("W3 P={p} (local)"));
            w3_one::<LocalBase>(p)?;
        }
    }
    if want("W4a") {
        step("W4a");
        w4a::<Base>()?;
        w4a::<LocalBase>()?;
    }
    if want("W4b") {
        step("W4b");
        w4b::<Base>()?;
        w4b::<LocalBase>()?;
    }
    if want("W4scale") {
        step("W4scale");
        w4scale::<Base>()?;
        w4scale::<LocalBase>()?;
    }
    if want("W5") {
        step("W5");
        if sel.len() > 1 {
            w5_fresh()?;
        } else {
            w5()?;
        }
    }
    if want("W6") {
        for spin in w6_variants()? {
            step(match spin {
                Spin::Default => "W6",
                Spin::Fixed => "W6 (opt-in fixed spin)",
                Spin::Off => "W6 (no spin)",
            });
            w6(spin)?;
        }
    }
    w7::run(&w7)?;
    eprintln!("# rouse: {:.1} s", (now_ns() - t_all) as f64 / 1e9);
    Ok(())
}
