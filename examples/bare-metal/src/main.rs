//! rouse's core on bare metal: a Cortex-M under QEMU, `Fixed<16>` storage, no allocator.
//!
//! The runtime is what an embedder writes (the three steps of the core's crate docs):
//!
//! 1. **The seams.** [`SysTickClock`]: milliseconds counted by the SysTick exception.
//!    [`PendSvNotifier`]: sets a flag and pends PendSV, so a loop asleep in `WFI` wakes up.
//!    [`WfiPoller`]: sleeps in `WFI` until the notifier rang or the deadline passed. The lock is
//!    the core's `CriticalSectionLock` (interrupts masked while the base's state is touched),
//!    because an interrupt handler activates events: with `SpinLock`, a handler that
//!    interrupted the loop while it held the lock would spin forever.
//! 2. **The config** ([`Firmware`]) names them, with `Fixed<16>` storage and `fn` callbacks.
//! 3. **A base in a `static`** (the interrupt handler reaches it there; `Base::new` is not a
//!    `const fn`, so a `spin::Once` holds it, filled at the start of `main`), owning its poller;
//!    events; a run.
//!
//! What it runs, and checks (exit code 1 on any mismatch, through semihosting):
//!
//! - Timers at two priorities: `c` (priority 0) and `a` (priority 1) due at the same instant
//!   run `c` first; then `b`, then the probe's `P` (below); then `w`, a callback busy for longer than the deadlines of `L`
//!   (priority 1) and `H` (priority 0, due later): both are due when it returns, and `H` runs
//!   first. A periodic timer never runs more often than its period allows.
//! - User events activated from an interrupt handler: a hardware timer interrupts every 2 ms;
//!   its handler counts a sample and activates the `sample` event (priority 0), which takes
//!   every sample counted so far (activations of a queued event coalesce), while a periodic
//!   callback churns timers (taking the lock hundreds of times). After the last sample the
//!   handler activates `done` (priority 1), which breaks the loop: every sample was seen.
//! - The lock against interrupts (the probe): `b` adds a timer and asks for its deadline, and
//!   the clock, read under the base's lock to start the timeout (an add from a callback reads
//!   none itself: the time rule), pends the probe interrupt, whose handler activates the `probe`
//!   user event (the activation's slow path, which takes the lock). The handler must run only
//!   after the locked section ended, and `P` must run. Built with the `spin-lock` feature
//!   (`SpinLock` instead), the handler preempts the holder and spins forever: a SysTick
//!   watchdog reports `DEADLOCK` and exits 1.
//! - The notify protocol: the notifier rang only while the loop slept, at most once per
//!   blocking wait, and every ring woke the loop (PendSV ran).
//!
//! Run it with `scripts/bare-metal.sh` (both boards), or by hand:
//!
//! ```sh
//! cd examples/bare-metal
//! cargo build --features lm3s6965evb --target thumbv7m-none-eabi   # dev profile: opt-level "s"
//! qemu-system-arm -machine lm3s6965evb -nographic -semihosting-config enable=on,target=native \
//!     -kernel target/thumbv7m-none-eabi/debug/rouse-bare-metal
//! ```

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod board;

use core::cell::{Cell, RefCell};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::time::Duration;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{NVIC, SCB};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use critical_section::Mutex;
use rouse_core::{
    Base, Clock, Config, Event, Exit, Fired, Fixed, Instant, Interest, Key, Notify, Options,
    Poller, Readiness, Ready, Source,
};

// ------------------------------------------------------------------ 1. the seams

/// Milliseconds since SysTick started, counted by its exception (1 kHz).
static MILLIS: Mutex<Cell<u64>> = Mutex::new(Cell::new(0));

#[exception]
fn SysTick() {
    let now = critical_section::with(|cs| {
        let ms = MILLIS.borrow(cs);
        ms.set(ms.get() + 1);
        ms.get()
    });
    // The watchdog of the probe (SysTick preempts the device interrupts: it has a higher
    // priority): a probe handler that has not finished after 100 ms is stuck on the lock.
    let entered = PROBE_ENTERED_AT.load(Ordering::Relaxed);
    if entered != 0 && !PROBE_DONE.load(Ordering::Relaxed) && now > u64::from(entered) + 100 {
        hprintln!(
            "bare-metal: DEADLOCK on {}: the probe interrupt spins on the base's lock, which \
             the code it interrupted holds ({})",
            board::NAME,
            LOCK_NAME
        );
        exit(debug::EXIT_FAILURE);
    }
}

/// The clock: SysTick's millisecond count. Monotonic (one counter, only ever incremented),
/// 64-bit (never overflows), and cheap (one short critical section).
#[derive(Clone, Copy, Debug)]
struct SysTickClock;

impl Clock for SysTickClock {
    fn now(&self) -> Instant {
        if PROBE_ARMED.swap(false, Ordering::Relaxed) {
            // The probe (see `arm_probe`): an interrupt raised while the base reads its clock
            // under its lock. `isb`: if interrupts are enabled, it is taken right here.
            IN_CLOCK.store(true, Ordering::Relaxed);
            NVIC::pend(board::PROBE_IRQ);
            cortex_m::asm::isb();
            IN_CLOCK.store(false, Ordering::Relaxed);
        }
        let ms = critical_section::with(|cs| MILLIS.borrow(cs).get());
        Instant::from_nanos(ms * 1_000_000)
    }
}

/// The notifier: a flag the poller checks, plus a pended PendSV so that a loop asleep in `WFI`
/// wakes up. The base rings it only while the loop is (about to be) blocked, at most once per
/// blocking wait, from whatever context changed the base: here, an interrupt handler.
#[derive(Debug)]
struct PendSvNotifier {
    rung: AtomicBool,
    rings: AtomicU32,
}

impl Notify for PendSvNotifier {
    fn notify(&self) -> Result<(), rouse_core::SeamError> {
        self.rung.store(true, Ordering::Release);
        self.rings.fetch_add(1, Ordering::Relaxed);
        SCB::set_pendsv();
        Ok(())
    }

    fn consume(&self) {
        self.rung.store(false, Ordering::Relaxed);
    }
}

static NOTIFIER: PendSvNotifier = PendSvNotifier {
    rung: AtomicBool::new(false),
    rings: AtomicU32::new(0),
};

/// How many times the wake-up interrupt ran.
static PENDSV_RUNS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn PendSV() {
    // The wake-up itself: its only job is to end the `WFI`. The flag says why.
    PENDSV_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// The poller: the loop sleeps in `WFI` until the notifier rang or the deadline passed. No
/// I/O sources (the peripherals' interrupts activate user events instead).
#[derive(Debug, Default)]
struct WfiPoller {
    woken: bool,
    sleeps: u32,
}

impl Poller for WfiPoller {
    fn update(&mut self, _: Source, _: Interest, _: Interest) -> Result<(), rouse_core::SeamError> {
        Err(rouse_core::SeamError::UNSUPPORTED)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), rouse_core::SeamError> {
        // `None`: until the notifier rings (an interrupt handler may activate an event).
        let deadline = timeout.map(|t| SysTickClock.now().saturating_add(t));
        loop {
            // Check, then sleep, with interrupts masked: an interrupt that arrives after the
            // check still ends the `WFI` (a pending interrupt wakes the core even while masked)
            // and runs as soon as the section ends. Checking with interrupts enabled would
            // lose a wake-up that came between the check and the `WFI`.
            let done = critical_section::with(|_| {
                let done = NOTIFIER.rung.load(Ordering::Acquire)
                    || deadline.is_some_and(|d| SysTickClock.now() >= d);
                if !done {
                    cortex_m::asm::wfi();
                }
                done
            });
            if done {
                break;
            }
            self.sleeps += 1;
        }
        self.woken = NOTIFIER.rung.load(Ordering::Acquire);
        Ok(())
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        // The base then calls `PendSvNotifier::consume` (under its lock) and clears its
        // pending flag.
        if core::mem::take(&mut self.woken) {
            f(Readiness::Wake);
        }
    }
}

// ------------------------------------------------------------------ 2. the config

#[derive(Debug)]
struct Firmware;

#[cfg(not(feature = "spin-lock"))]
type FirmwareLock = rouse_core::CriticalSectionLock;
/// The demonstration: the lock that deadlocks against interrupt handlers.
#[cfg(feature = "spin-lock")]
type FirmwareLock = rouse_core::SpinLock;
const LOCK_NAME: &str = if cfg!(feature = "spin-lock") {
    "SpinLock"
} else {
    "CriticalSectionLock"
};

/// The callbacks: plain functions (their state lives in statics).
type Callback = fn(&Base<Firmware>, Fired);

impl Config for Firmware {
    type Lock = FirmwareLock;
    type Notifier = &'static PendSvNotifier;
    type Poller = WfiPoller;
    type Clock = SysTickClock;
    type Storage = Fixed<16>;
    type Callback = Callback;

    fn thread_id() -> usize {
        // One core: the main code and the interrupt handlers count as the loop's thread, so a
        // `delete` from a handler never waits for the callback it interrupted (it could not
        // finish while the handler waits).
        0
    }
}

// ------------------------------------------------------------------ 3. a base, events, a run

/// The base, in a `static` so that the interrupt handler reaches it.
static BASE: spin::Once<Base<Firmware>> = spin::Once::new();

/// The events the interrupt handler and the callbacks refer to.
#[derive(Debug)]
struct Keys {
    sample: Key,
    done: Key,
    churn: Key,
    spare: Key,
    probe: Key,
}

static KEYS: spin::Once<Keys> = spin::Once::new();

/// Samples the hardware timer's handler produces in phase 2.
const SAMPLES: u32 = 50;
/// Its period.
const SAMPLE_PERIOD_MS: u32 = 2;
/// The periodic timer's period.
const PERIOD_MS: u64 = 4;

/// The order in which the logged callbacks ran.
static LOG: Mutex<RefCell<heapless::Vec<u8, 32>>> = Mutex::new(RefCell::new(heapless::Vec::new()));
const EXPECTED_LOG: &[u8] = b"cabPwHLD";

static SAMPLES_MADE: AtomicU32 = AtomicU32::new(0);
static SAMPLES_PENDING: AtomicU32 = AtomicU32::new(0);
static SAMPLES_SEEN: AtomicU32 = AtomicU32::new(0);
static SAMPLE_RUNS: AtomicU32 = AtomicU32::new(0);
static PERIODIC_RUNS: AtomicU32 = AtomicU32::new(0);
static CHURN_RUNS: AtomicU32 = AtomicU32::new(0);
static ERRORS: AtomicU32 = AtomicU32::new(0);
static LATE_INTERRUPTS: AtomicU32 = AtomicU32::new(0);

/// The probe: set by `arm_probe`, taken by the next clock read.
static PROBE_ARMED: AtomicBool = AtomicBool::new(false);
/// True while the clock read that pended the probe interrupt is in progress.
static IN_CLOCK: AtomicBool = AtomicBool::new(false);
/// 1 + the millisecond the probe's handler started (0: not yet).
static PROBE_ENTERED_AT: AtomicU32 = AtomicU32::new(0);
static PROBE_DONE: AtomicBool = AtomicBool::new(false);
/// Whether the probe's handler ran inside the clock read (inside the base's lock).
static PROBE_PREEMPTED: AtomicBool = AtomicBool::new(false);

fn log(tag: u8) {
    critical_section::with(|cs| {
        if LOG.borrow_ref_mut(cs).push(tag).is_err() {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    });
}

fn ok<T>(r: Result<T, rouse_core::Error>) {
    if r.is_err() {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A timer that logs its tag.
fn logged<const TAG: u8>(_: &Base<Firmware>, fired: Fired) {
    if fired.ready != Ready::TIMEOUT {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    log(TAG);
}

/// `b`: also the probe. Arms it, then adds a timer and asks for its deadline: from a callback
/// `add` reads no clock (its timeout starts at the loop's next reading), so `info` starts it,
/// reading the clock under the base's lock; the clock pends the probe interrupt, whose handler activates the (not yet queued)
/// `probe` event: the activation's slow path, which takes the lock. With
/// `CriticalSectionLock` the interrupt waits until the lock's section ends; with `SpinLock` it
/// preempts the holder and spins forever (the `spin-lock` demonstration).
fn arm_probe(base: &Base<Firmware>, fired: Fired) {
    logged::<b'b'>(base, fired);
    if let Some(keys) = KEYS.get() {
        PROBE_ARMED.store(true, Ordering::Relaxed);
        ok(base.add(keys.spare, Some(Duration::from_secs(1))));
        ok(base.info(keys.spare).map(drop));
        ok(base.delete(keys.spare));
    }
}

/// The probe interrupt's handler.
fn probe_interrupt() {
    let (Some(base), Some(keys)) = (BASE.get(), KEYS.get()) else {
        return;
    };
    let ms = critical_section::with(|cs| MILLIS.borrow(cs).get());
    PROBE_ENTERED_AT.store(ms as u32 + 1, Ordering::Relaxed);
    PROBE_PREEMPTED.store(IN_CLOCK.load(Ordering::Relaxed), Ordering::Relaxed);
    ok(base.activate(keys.probe, Ready::USER));
    PROBE_DONE.store(true, Ordering::Relaxed);
}

/// `w`: work that outlasts the deadlines of `L` and `H`.
fn busy(base: &Base<Firmware>, _: Fired) {
    log(b'w');
    let until = base.now().saturating_add(Duration::from_millis(15));
    while base.now() < until {
        cortex_m::asm::nop(); // SysTick keeps counting: callbacks run with the lock released
    }
}

/// `L`, the last timer of phase 1: starts phase 2 (the sensor's interrupts, and the churn).
fn last_timer(base: &Base<Firmware>, fired: Fired) {
    logged::<b'L'>(base, fired);
    if let Some(keys) = KEYS.get() {
        ok(base.add(keys.churn, Some(Duration::from_millis(1))));
    }
    board::start_timer(board::CORE_HZ / 1000 * SAMPLE_PERIOD_MS);
}

/// The hardware timer's interrupt: one sample, and an activation of the `sample` event.
fn sensor_interrupt() {
    board::clear_timer_interrupt();
    let (Some(base), Some(keys)) = (BASE.get(), KEYS.get()) else {
        return;
    };
    if SAMPLES_MADE.load(Ordering::Relaxed) >= SAMPLES {
        // Latched before the timer was stopped (an expiry while the last sample's handler
        // ran): not a sample.
        LATE_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let n = SAMPLES_MADE.fetch_add(1, Ordering::Relaxed) + 1;
    SAMPLES_PENDING.fetch_add(1, Ordering::Relaxed);
    // Published to the callback by `activate` (whose lock, or fast-path fence, orders it).
    ok(base.activate(keys.sample, Ready::USER));
    if n == SAMPLES {
        board::stop_timer();
        NVIC::mask(board::TIMER_IRQ);
        NVIC::unpend(board::TIMER_IRQ);
        ok(base.activate(keys.done, Ready::USER));
    }
}

/// `sample` (priority 0): takes every sample counted so far.
fn on_sample(_: &Base<Firmware>, fired: Fired) {
    if fired.ready != Ready::USER {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
    SAMPLE_RUNS.fetch_add(1, Ordering::Relaxed);
    let n = SAMPLES_PENDING.swap(0, Ordering::Relaxed);
    SAMPLES_SEEN.fetch_add(n, Ordering::Relaxed);
}

/// `done` (priority 1): after the last sample; breaks the loop.
fn on_done(base: &Base<Firmware>, _: Fired) {
    log(b'D');
    ok(base.loop_break());
}

/// The periodic timer (priority 1).
fn on_periodic(_: &Base<Firmware>, _: Fired) {
    PERIODIC_RUNS.fetch_add(1, Ordering::Relaxed);
}

/// Every millisecond in phase 2: arm and disarm a timer, many times, each time under the lock,
/// while the sensor's handler keeps activating (it waits until the lock is released).
fn on_churn(base: &Base<Firmware>, _: Fired) {
    CHURN_RUNS.fetch_add(1, Ordering::Relaxed);
    if let Some(keys) = KEYS.get() {
        for _ in 0..8 {
            ok(base.add(keys.spare, Some(Duration::from_secs(1))));
            ok(base.delete(keys.spare));
        }
    }
}

#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == board::TIMER_IRQ.0 as i16 {
        sensor_interrupt();
    } else if irqn == board::PROBE_IRQ.0 as i16 {
        probe_interrupt();
    } else {
        hprintln!("bare-metal: FAIL: unexpected interrupt {}", irqn);
        exit(debug::EXIT_FAILURE);
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    hprintln!("bare-metal: FAIL: hard fault at pc {:#x}", frame.pc());
    exit(debug::EXIT_FAILURE)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("bare-metal: FAIL: {}", info);
    exit(debug::EXIT_FAILURE)
}

/// Ends the program with `status` (QEMU's exit code, through semihosting).
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi(); // not reached under QEMU
    }
}

/// Records a failed check.
fn check(failures: &mut u32, pass: bool, what: core::fmt::Arguments<'_>) {
    if !pass {
        *failures += 1;
        hprintln!("bare-metal: FAIL: {}", what);
    }
}

#[entry]
fn main() -> ! {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        panic!("core peripherals taken twice");
    };
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(board::CORE_HZ / 1000 - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    cp.SYST.enable_interrupt();

    // `Base::new` is not `const`: the base goes into its `static` once, here, before the
    // interrupts that use it are unmasked.
    let base = BASE.call_once(|| {
        let poller = WfiPoller::default();
        match Base::new(
            &NOTIFIER,
            poller,
            SysTickClock,
            Options::new().priorities(2),
        ) {
            Ok(base) => base,
            Err(e) => panic!("Base::new: {}", e),
        }
    });
    let new = |event: Event, cb: Callback| match base.new_event(event, cb) {
        Ok(key) => key,
        Err(e) => panic!("new_event: {}", e),
    };
    KEYS.call_once(|| Keys {
        sample: new(Event::user().priority(0), on_sample),
        done: new(Event::user().priority(1), on_done),
        churn: new(Event::timer().persist().priority(1), on_churn),
        spare: new(Event::timer().priority(1), logged::<b'x'>),
        probe: new(Event::user().priority(0), |_, _| log(b'P')),
    });
    // The device interrupts below SysTick's priority (0, the highest), so that SysTick keeps
    // the clock (and the probe's watchdog) running while a handler runs.
    // SAFETY: neither priorities nor NVIC masks can break a critical section here: this
    // program's critical sections mask all interrupts with PRIMASK (cortex-m's single-core
    // implementation of `critical-section`), not by priority or by NVIC masks.
    unsafe {
        cp.NVIC.set_priority(board::TIMER_IRQ, 0x40);
        cp.NVIC.set_priority(board::PROBE_IRQ, 0x40);
        NVIC::unmask(board::TIMER_IRQ);
        NVIC::unmask(board::PROBE_IRQ);
    }

    // Phase 1: timers. Added in one critical section, so SysTick cannot move the clock
    // between the additions: `c` and `a` get the very same deadline.
    let ms = Duration::from_millis;
    let timers: [(u8, u64, Callback); 6] = [
        (1, 10, logged::<b'a'>),
        (0, 10, logged::<b'c'>),
        (0, 20, arm_probe),
        (1, 30, busy),
        (1, 35, last_timer),
        (0, 40, logged::<b'H'>),
    ];
    let started = critical_section::with(|_| {
        for (prio, after, cb) in timers {
            ok(base.add(new(Event::timer().priority(prio), cb), Some(ms(after))));
        }
        ok(base.add(
            new(Event::timer().persist().priority(1), on_periodic),
            Some(ms(PERIOD_MS)),
        ));
        base.now()
    });

    let ended = base.run_forever(); // the base owns its poller
    let elapsed = base.now() - started;

    // The checks.
    let mut failures = 0;
    let f = &mut failures;
    check(
        f,
        ended == Ok(Exit::Break),
        format_args!("run returned {:?}", ended),
    );
    critical_section::with(|cs| {
        let log = LOG.borrow_ref(cs);
        let shown = core::str::from_utf8(&log).unwrap_or("?");
        check(
            f,
            log.as_slice() == EXPECTED_LOG,
            format_args!("callbacks ran in the order {} (expected cabPwHLD)", shown),
        );
    });
    let made = SAMPLES_MADE.load(Ordering::Relaxed);
    let seen = SAMPLES_SEEN.load(Ordering::Relaxed);
    let runs = SAMPLE_RUNS.load(Ordering::Relaxed);
    check(
        f,
        made == SAMPLES,
        format_args!("{} samples made, {} expected", made, SAMPLES),
    );
    check(
        f,
        seen == made,
        format_args!("{} samples seen of {}", seen, made),
    );
    check(
        f,
        (1..=made).contains(&runs),
        format_args!("{} sample runs for {} activations", runs, made),
    );
    let periodic = PERIODIC_RUNS.load(Ordering::Relaxed);
    let elapsed_ms = elapsed.as_millis() as u64;
    check(
        f,
        periodic >= 1 && u64::from(periodic) * PERIOD_MS <= elapsed_ms,
        format_args!(
            "periodic timer ran {} times in {} ms (period {} ms)",
            periodic, elapsed_ms, PERIOD_MS
        ),
    );
    check(
        f,
        PROBE_DONE.load(Ordering::Relaxed) && !PROBE_PREEMPTED.load(Ordering::Relaxed),
        format_args!(
            "the probe interrupt ran inside the base's locked section (done: {})",
            PROBE_DONE.load(Ordering::Relaxed)
        ),
    );
    let churn = CHURN_RUNS.load(Ordering::Relaxed);
    check(f, churn >= 1, format_args!("churn ran {} times", churn));
    let errors = ERRORS.load(Ordering::Relaxed);
    check(f, errors == 0, format_args!("{} calls failed", errors));
    let w = base.wake_stats();
    let rings = NOTIFIER.rings.load(Ordering::Relaxed);
    let pendsv = PENDSV_RUNS.load(Ordering::Relaxed);
    check(
        f,
        u64::from(rings) == w.writes && rings >= 1 && w.writes <= w.blocking_polls,
        format_args!(
            "{} rings, {} writes, {} blocking polls",
            rings, w.writes, w.blocking_polls
        ),
    );
    check(
        f,
        (1..=rings).contains(&pendsv),
        format_args!("PendSV ran {} times for {} rings", pendsv, rings),
    );

    let sleeps = base.with_poller(|p| p.sleeps).unwrap_or(0);
    if failures == 0 {
        hprintln!(
            "bare-metal: ok on {} with {}: callbacks in order {}; the probe interrupt waited \
             for the lock; {} interrupts -> {} samples seen in {} \
             runs; {} wake-ups (PendSV) for {} wake requests over {} blocking waits ({} WFI \
             sleeps); periodic timer {} runs, churn {} runs; {} late interrupt(s); {} ms",
            board::NAME,
            LOCK_NAME,
            "cabPwHLD",
            made,
            seen,
            runs,
            rings,
            w.requests,
            w.blocking_polls,
            sleeps,
            periodic,
            churn,
            LATE_INTERRUPTS.load(Ordering::Relaxed),
            elapsed_ms
        );
        exit(debug::EXIT_SUCCESS)
    } else {
        hprintln!(
            "bare-metal: {} check(s) failed on {}",
            failures,
            board::NAME
        );
        exit(debug::EXIT_FAILURE)
    }
}
