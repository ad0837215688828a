//! Every call into rouse-std and rouse-core: porting this crate to another rouse API touches
//! only this file. The rest of the crate speaks libevent (fds, `EV_*` bits, timevals) and
//! sees rouse only through [`Loop`], [`Key`], [`Ctx`] and [`Fail`].

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use rouse_std::rouse_core::{self, Event, Exit, Interest, Kind, Ready, RunFlags};
use rouse_std::{Base, Builder, Context, Flavor, Local, LocalBase, PollerKind};

use crate::abi::{EV_CLOSED, EV_ET, EV_READ, EV_WRITE};
#[cfg(test)]
use crate::abi::{EV_PERSIST, EV_SIGNAL, EV_TIMEOUT};
use crate::parked::{Op, Parked};

/// A rouse event's handle (generational: a freed event's key never names another event).
pub type Key = rouse_core::Key;

/// A common timeout of one loop.
pub type Common = rouse_core::CommonTimeout;

/// Why a rouse call failed, as far as libevent's API distinguishes.
#[derive(Debug)]
pub enum Fail {
    /// The key names no live event of this loop (freed, or of another loop).
    Stale,
    /// The loop is already running.
    Running,
    /// Anything else, with rouse's message.
    Other(String),
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Stale => f.write_str("the event is not registered with this base"),
            Fail::Running => f.write_str("the loop is already running"),
            Fail::Other(s) => f.write_str(s),
        }
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        // A key of another base is `InvalidInput` with the core's `Foreign` inside: for
        // libevent that is an event not registered with this base, like a stale one.
        let foreign = e
            .get_ref()
            .and_then(|r| r.downcast_ref::<rouse_core::Error>())
            .is_some_and(|c| matches!(c, rouse_core::Error::Foreign));
        match e.kind() {
            io::ErrorKind::NotFound => Fail::Stale,
            _ if foreign => Fail::Stale,
            io::ErrorKind::ResourceBusy => Fail::Running,
            _ => Fail::Other(e.to_string()),
        }
    }
}

/// What an event waits for, in libevent's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// I/O on `fd` for the `EV_READ | EV_WRITE | EV_CLOSED | EV_ET` bits of `events`.
    Io { fd: i32, events: i16 },
    /// A signal.
    Signal(i32),
    /// Nothing but a timeout (or a manual activation).
    Timer,
}

/// How a loop is built (from an `event_config`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// Use poll(2) even where epoll/kqueue exist.
    pub poll_only: bool,
    /// Ignore rouse's own `ROUSE_POLLER`/`ROUSE_NOTIFIER` variables.
    pub ignore_env: bool,
    /// `event_config_set_max_dispatch_interval`: (max callbacks, max interval, from priority).
    pub limits: Option<(u32, Option<Duration>, u8)>,
    /// A thread-safe loop (libevent: `evthread_use_pthreads()` was called before the base
    /// was made, and not `EVENT_BASE_FLAG_NOLOCK`); otherwise a single-threaded one.
    pub threaded: bool,
    /// Time timeouts on the precise monotonic clock (`EVENT_BASE_FLAG_PRECISE_TIMER`,
    /// `EVENT_PRECISE_TIMER`); otherwise on the coarse one, libevent's default.
    pub precise_timer: bool,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Nothing was pending or active.
    Empty,
    /// `loopbreak`.
    Break,
    /// `loopexit`.
    Exit,
    /// An `EVLOOP_ONCE`/`EVLOOP_NONBLOCK` run did its pass.
    Done,
}

/// A snapshot of one event.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    pub key: Key,
    pub what: What,
    pub persistent: bool,
    pub priority: u8,
    pub pending: bool,
    /// The libevent result bits it is queued with (`None`: not queued).
    pub active: Option<i16>,
    pub running: bool,
    /// Time left before its timeout, if armed.
    pub remaining: Option<Duration>,
    /// Its tag (given to [`Loop::create`]).
    pub tag: usize,
}

/// What a callback may do with its own event while it runs.
pub struct Ctx<'a> {
    cx: Cx<'a>,
    key: Key,
    ready: Ready,
    tag: usize,
}

/// The running callback's rouse context, of either flavor.
enum Cx<'a> {
    Shared(&'a Context<'a>),
    Local(&'a Context<'a, Local>),
}

/// `$e` with `$b` bound to whichever flavor `$on` holds (both have the same API).
macro_rules! either {
    ($on:expr, $t:ident, $l:ident, $b:ident => $e:expr) => {
        match $on {
            $t::Shared($b) => $e,
            $t::Local($l($b)) => $e,
        }
    };
    ($on:expr, $t:ident, $b:ident => $e:expr) => {
        match $on {
            $t::Shared($b) => $e,
            $t::Local($b) => $e,
        }
    };
}

impl Ctx<'_> {
    /// The running event's key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The running event's tag (given to [`Loop::create`]).
    #[inline]
    pub fn tag(&self) -> usize {
        self.tag
    }

    /// The libevent result bits of this run, for an event that asked for `events`.
    #[inline]
    pub fn res(&self, events: i16) -> i16 {
        res_of(self.ready, events)
    }

    /// The id of the loop running the callback ([`Loop::id`]).
    #[inline]
    pub fn loop_id(&self) -> u32 {
        either!(&self.cx, Cx, c => c.id())
    }

    /// Whether the running event is still pending.
    pub fn is_pending(&self) -> bool {
        either!(&self.cx, Cx, c => c.is_pending(self.key).unwrap_or(false))
    }

    /// Makes the running event non-pending.
    pub fn delete(&self) {
        let _ = either!(&self.cx, Cx, c => c.delete(self.key));
    }

    /// Frees the running event's slot once it returns.
    pub fn release(&self) {
        let _ = either!(&self.cx, Cx, c => c.free(self.key));
    }

    fn loop_continue(&self) {
        either!(&self.cx, Cx, c => c.loop_continue());
    }
}

/// A callback: told its context (the key and result bits of the run).
pub type Callback = Box<dyn FnMut(&Ctx<'_>) + Send>;

/// The rouse priority count every loop is built with (libevent's priorities map 1:1 onto
/// the first `n` of them).
pub const MAX_PRIORITIES: u8 = 255;

/// One rouse loop: a thread-safe `rouse_std::Base`, or a single-threaded `LocalBase` (no
/// lock, no notifier) for libevent's bases without locking.
#[derive(Debug)]
pub struct Loop {
    base: Core,
    /// rouse's id of `base`.
    id: u32,
    /// The process that made (or last re-initialized) the loop: `event_reinit` without a fork
    /// has nothing to do (rouse-std refuses it).
    pid: AtomicU32,
    /// The thread running the loop (`pthread_self`, 0: none), how deep in the program's
    /// callbacks it is, and whether one asked for `event_base_loopcontinue`. Written by that
    /// thread only (no read-modify-write); other threads only see that they are not it.
    runner: AtomicUsize,
    in_callback: AtomicU32,
    continue_asked: AtomicBool,
    /// A delete held back ([`crate::parked`]): every call but the two fast paths of a
    /// timer's delete and re-add settles it first ([`Loop::core`]).
    parked: Parked,
    /// The OS clock's reading (ns) at rouse's zero instant: a rouse instant plus this is the
    /// `CLOCK_MONOTONIC` reading it stands for (as [`rouse_std::MonotonicClock::to_os`]).
    os_zero: u64,
}

/// The rouse base of a [`Loop`].
#[derive(Debug)]
enum Core {
    Shared(Base),
    Local(LocalCore),
}

/// A single-threaded base that the program may move between threads.
#[derive(Debug)]
struct LocalCore(LocalBase);

// SAFETY: a base without locking is used by one thread at a time: libevent's contract for
// such a base ("unsafe and nonfunctional to call functions on the base concurrently from
// multiple threads", `EVENT_BASE_FLAG_NOLOCK`; a base made before `evthread_use_pthreads()`
// has no lock either), and a program that moves one to another thread (memcached makes its
// workers' bases on the main thread) hands it over with its own synchronization, which
// orders every access. The callbacks stored in it are `Send` (`Loop::create` and
// `Loop::once` take only `Send` closures), and nothing else in it is tied to a thread: the
// loop thread is whichever one runs it.
unsafe impl Send for LocalCore {}
// SAFETY: as for `Send`: shared references are only used by one thread at a time.
unsafe impl Sync for LocalCore {}

fn this_thread() -> usize {
    // SAFETY: always safe to call; the value identifies the calling thread while it runs.
    unsafe { libc::pthread_self() as usize }
}

/// libevent's result bits as rouse's readiness (`Ready::USER` for none): bit arithmetic, as
/// every `event_active` converts (the table it computes is `RES_READY`).
#[inline]
fn ready_of(res: i16) -> Ready {
    let r = res as u16;
    let bits = ((r >> 1) & 3) | ((r >> 5) & 4) | ((r & 1) << 3) | ((r & 8) << 1);
    if bits == 0 {
        Ready::USER
    } else {
        Ready::from_bits_truncate(bits as u8)
    }
}

/// rouse's readiness as libevent's result bits (a poller error reads as whichever of
/// `EV_READ | EV_WRITE` the event asked for, as in libevent), as every callback converts.
#[inline]
fn res_of(ready: Ready, events: i16) -> i16 {
    let r = i16::from(ready.bits());
    let mut res = ((r & 3) << 1) | ((r & 4) << 5) | ((r >> 3) & 1) | ((r >> 1) & 8);
    if ready.contains(Ready::ERROR) {
        res |= events & (EV_READ | EV_WRITE);
    }
    res
}

/// Which libevent bit is which rouse readiness.
#[cfg(test)]
const RES_READY: [(i16, Ready); 5] = [
    (EV_READ, Ready::READ),
    (EV_WRITE, Ready::WRITE),
    (EV_CLOSED, Ready::CLOSED),
    (EV_TIMEOUT, Ready::TIMEOUT),
    (EV_SIGNAL, Ready::SIGNAL),
];

fn interest_of(events: i16) -> Interest {
    let mut i = Interest::NONE;
    if events & EV_READ != 0 {
        i |= Interest::READ;
    }
    if events & EV_WRITE != 0 {
        i |= Interest::WRITE;
    }
    if events & EV_CLOSED != 0 {
        i |= Interest::CLOSED;
    }
    if events & EV_ET != 0 {
        i |= Interest::EDGE;
    }
    i
}

fn events_of(i: Interest) -> i16 {
    let mut e = 0;
    if i.contains(Interest::READ) {
        e |= EV_READ;
    }
    if i.contains(Interest::WRITE) {
        e |= EV_WRITE;
    }
    if i.contains(Interest::CLOSED) {
        e |= EV_CLOSED;
    }
    if i.contains(Interest::EDGE) {
        e |= EV_ET;
    }
    e
}

#[inline(always)]
fn event_of(what: What) -> Result<Event, Fail> {
    Ok(match what {
        What::Io { fd, events } => Event::io(rouse_std::raw_source(fd)?, interest_of(events)),
        What::Signal(n) => {
            Event::signal(u32::try_from(n).map_err(|_| Fail::Other("bad signal".into()))?)
        }
        What::Timer => Event::timer(),
    })
}

/// A rouse context as the flavor-independent [`Cx`].
trait AsCx: Flavor {
    fn cx<'a>(cx: &'a Context<'a, Self>) -> Cx<'a>;
}

impl AsCx for rouse_std::Threaded {
    #[inline(always)]
    fn cx<'a>(cx: &'a Context<'a, Self>) -> Cx<'a> {
        Cx::Shared(cx)
    }
}

impl AsCx for Local {
    #[inline(always)]
    fn cx<'a>(cx: &'a Context<'a, Self>) -> Cx<'a> {
        Cx::Local(cx)
    }
}

/// The rouse callback of `cb`: adds nothing to what `cb` captures (a callback that captures
/// nothing needs no heap chunk).
fn wrap<Fl: AsCx, F>(mut cb: F) -> impl FnMut(&Context<'_, Fl>, rouse_core::Fired) + Send
where
    F: FnMut(&Ctx<'_>) + Send + 'static,
{
    move |cx: &Context<'_, Fl>, fired: rouse_core::Fired| {
        cb(&Ctx {
            cx: Fl::cx(cx),
            key: fired.key,
            ready: fired.ready,
            tag: fired.tag,
        });
    }
}

/// The size of what rouse boxes for a callback `cb` (tests keep the adapter's in a small
/// heap chunk).
#[cfg(test)]
pub fn boxed_size<F>(cb: F) -> usize
where
    F: FnMut(&Ctx<'_>) + Send + 'static,
{
    std::mem::size_of_val(&wrap::<rouse_std::Threaded, _>(cb))
}

/// The timer slack of a base without `PRECISE_TIMER`, whose coarse clock ticks every `tick`:
/// half a tick, at least 1 ms and at most 5 ms. libevent judges such a base's timeouts on the
/// coarse clock, so they fire up to a tick late (and its epoll backend waits in whole
/// milliseconds); rouse judges them on the precise clock, and its waits end on a grid of half
/// a tick: timers stay within half a tick of their deadlines, closer than libevent's, and
/// the timers due within one grid step share a wake-up (2 ms on a 250 Hz kernel, 1 ms at
/// 1 000 Hz or where the tick is unknown).
fn coarse_slack(tick: Option<Duration>) -> Duration {
    let half = tick.map_or(Duration::ZERO, |t| t / 2);
    half.clamp(Duration::from_millis(1), Duration::from_millis(5))
}

impl Loop {
    /// A new loop.
    pub fn new(s: Settings) -> Result<Loop, Fail> {
        // rouse-std's spin before blocking is off by default, as libevent has none.
        // libevent applies every event_del and event_add at once, so a program may delete an
        // event, close its fd, open another file under the same number and add the same event
        // again in one callback (unbound does): rouse must not take that for an unchanged fd.
        let mut b = Builder::new()
            .priorities(MAX_PRIORITIES)
            .reregister_on_rearm();
        if s.ignore_env {
            b = b.ignore_env();
        }
        if !s.precise_timer {
            b = b
                .coarse_clock()
                .timer_slack(coarse_slack(crate::base::coarse_tick()));
        }
        if s.poll_only {
            b = b.poller(PollerKind::Poll);
        }
        if let Some((n, t, p)) = s.limits {
            b = b.dispatch_limits(n, t, p);
        }
        let base = if s.threaded {
            Core::Shared(b.build()?)
        } else {
            Core::Local(LocalCore(b.build_local()?))
        };
        let id = either!(&base, Core, LocalCore, b => b.id());
        Ok(Loop {
            id,
            parked: Parked::new(s.threaded, id),
            os_zero: u64::try_from(
                rouse_std::MonotonicClock::to_os(rouse_core::Instant::from_nanos(0)).as_nanos(),
            )
            .unwrap_or(u64::MAX),
            base,
            pid: AtomicU32::new(std::process::id()),
            runner: AtomicUsize::new(0),
            in_callback: AtomicU32::new(0),
            continue_asked: AtomicBool::new(false),
        })
    }

    /// rouse's id of the loop (unique in the process).
    #[inline]
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The rouse base, with any parked delete or re-add applied: what every call but the
    /// parking ones goes through.
    #[inline(always)]
    fn core(&self) -> &Core {
        self.parked.settle(self.apply());
        &self.base
    }

    /// Applies a parked delete (without waiting: see [`crate::parked`]) or re-add.
    #[inline(always)]
    fn apply(&self) -> impl Fn(Op) + '_ {
        move |op| match op {
            Op::Delete(k) => {
                let _ = either!(&self.base, Core, LocalCore, b => b.delete_nowait(k));
            }
            Op::Readd { key, timeout, from } => self.apply_readd(key, timeout, from),
        }
    }

    /// A parked re-add, as of when the program asked for it. The event is pending with its
    /// timeout in the heap, so the re-arm has nothing to fail on but a base being closed;
    /// should it fail, the event is deleted (its old deadline must not fire).
    #[cold]
    #[inline(never)]
    fn apply_readd(&self, key: Key, timeout: u64, from: u64) {
        let (d, from) = (
            Duration::from_nanos(timeout),
            rouse_core::Instant::from_nanos(from),
        );
        let r = either!(&self.base, Core, LocalCore, b => b.add_timed_from(key, d, from));
        if let Err(e) = r {
            crate::log::warn(&format!("event_add: {e}"));
            let _ = either!(&self.base, Core, LocalCore, b => b.delete_nowait(key));
        }
    }

    /// `event_del` of `key`, a timer-only event that no `event_active` queued (the caller
    /// knows from `EVLIST_ACTIVE`; one its timeout queued is fine: both the re-add and the
    /// delete take it off the queue), held back if it can be. True: the caller has nothing
    /// more to do (the next use of the loop applies it, or the next add of `key` takes it
    /// back); otherwise it deletes `key` now.
    #[inline(always)]
    pub fn park_delete(&self, key: Key) -> bool {
        self.parked.park(key, || {
            self.in_callback.load(Ordering::Relaxed) > 0
                && self.runner.load(Ordering::Relaxed) == this_thread()
        })
    }

    /// Whether the loop is thread-safe (else single-threaded: no lock, no notifier).
    pub fn is_threaded(&self) -> bool {
        matches!(self.base, Core::Shared(_))
    }

    /// Whether timeouts are timed on the precise clock (else the coarse one).
    pub fn is_precise(&self) -> bool {
        !either!(self.core(), Core, LocalCore, b => b.clock_is_coarse())
    }

    /// The poller's name ("epoll", "poll", "kqueue").
    pub fn method(&self) -> &'static str {
        either!(self.core(), Core, LocalCore, b => b.poller_kind()).name()
    }

    /// Whether the poller is poll(2) (any fd, no edge-triggering).
    pub fn is_poll(&self) -> bool {
        either!(self.core(), Core, LocalCore, b => b.poller_kind()) == PollerKind::Poll
    }

    /// Creates a non-pending event tagged `tag` (a signal event is created pending: rouse-std
    /// installs its handler at once only for an event made pending as it is created).
    #[inline]
    pub fn create<F>(
        &self,
        what: What,
        persist: bool,
        priority: u8,
        tag: usize,
        cb: F,
    ) -> Result<Key, Fail>
    where
        F: FnMut(&Ctx<'_>) + Send + 'static,
    {
        let ev = event_of(what)?.priority(priority).tag(tag);
        if let What::Signal(_) = what {
            // Persistent and pending from the start (the handler is installed now), as
            // rouse-std's `add_signal` makes them.
            let ev = ev.persist();
            return Ok(
                either!(self.core(), Core, LocalCore, b => b.add_event(ev, None, wrap(cb)))?,
            );
        }
        let ev = if persist { ev.persist() } else { ev };
        Ok(either!(self.core(), Core, LocalCore, b => b.event(ev, wrap(cb)))?)
    }

    /// Frees every idle event whose tag `select` accepts (rouse-std's `free_idle`).
    pub fn free_idle(&self, select: impl FnMut(usize) -> bool) -> usize {
        either!(self.core(), Core, LocalCore, b => b.free_idle(select))
    }

    /// A one-shot event that frees itself after it ran (`event_base_once`), pending now.
    pub fn once(
        &self,
        what: What,
        timeout: Option<Duration>,
        priority: u8,
        cb: Callback,
    ) -> Result<(), Fail> {
        let ev = event_of(what)?.priority(priority).free_after_run();
        either!(self.core(), Core, LocalCore, b => b.add_event(ev, timeout, wrap(cb)))?;
        Ok(())
    }

    /// Makes `key` pending; `Some(timeout)` (re-)arms its timeout.
    #[inline]
    pub fn add(&self, key: Key, timeout: Option<Duration>) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.add(key, timeout))?)
    }

    /// Re-adds `key`, a timer whose delete is parked, with timeout `tv` (libevent's: negative
    /// parts count as zero) outside a run: parks the re-add (`Parked::readd`) and returns
    /// the deadline armed, a reading of `CLOCK_MONOTONIC` in nanoseconds. `None`: nothing of
    /// `key`'s is parked (or a run is on), and the caller adds it
    /// ([`add_timed`](Loop::add_timed)).
    #[inline(always)]
    pub fn readd(&self, key: Key, tv: &libc::timeval) -> Option<u64> {
        let timeout = crate::abi::nanos_of(tv);
        let now = || either!(&self.base, Core, LocalCore, b => b.now_coarse()).as_nanos();
        let from = self.parked.readd(key, timeout, now)?;
        Some(from.saturating_add(timeout).saturating_add(self.os_zero))
    }

    /// Makes `key` pending with timeout `d`, returning the deadline armed as a reading of
    /// `CLOCK_MONOTONIC` in nanoseconds (`None`: it starts at the loop's next reading).
    #[inline(always)]
    pub fn add_timed(&self, key: Key, d: Duration) -> Result<Option<u64>, Fail> {
        // A parked delete of `key` is dropped: the add re-arms the event, still pending (and
        // if the add fails, the delete is applied after all). (Outside a run, the caller
        // parked the add instead where it could: [`readd`](Loop::readd).)
        let taken = self.parked.take_back(key, self.apply());
        match either!(&self.base, Core, LocalCore, b => b.add_timed(key, d)) {
            Ok(at) => Ok(at.map(|at| at.as_nanos().saturating_add(self.os_zero))),
            Err(e) => Err(self.add_failed(key, taken, e)),
        }
    }

    /// [`add_timed`](Loop::add_timed)'s error, after applying the parked delete of `key` it
    /// dropped if the add had no effect (no room, refused; a failed wake-up of the loop
    /// comes after the add took effect, and a stale key has nothing to delete).
    #[cold]
    #[inline(never)]
    fn add_failed(&self, key: Key, taken: bool, e: io::Error) -> Fail {
        let no_effect = matches!(
            e.kind(),
            io::ErrorKind::OutOfMemory | io::ErrorKind::InvalidInput
        );
        if taken && no_effect {
            self.apply()(Op::Delete(key));
        }
        e.into()
    }

    /// Makes `key` pending with a common timeout.
    #[inline]
    pub fn add_common(&self, key: Key, ct: Common) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.add_common(key, ct))?)
    }

    /// The common timeout of duration `d`.
    pub fn common(&self, d: Duration) -> Result<Common, Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.common_timeout(d))?)
    }

    /// Makes `key` non-pending (waits for its callback running on another thread).
    #[inline]
    pub fn delete(&self, key: Key) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.delete(key))?)
    }

    /// Makes `key` non-pending without waiting for its callback running on another thread.
    #[inline]
    pub fn delete_nowait(&self, key: Key) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.delete_nowait(key))?)
    }

    /// Frees `key` (waits for its callback running on another thread).
    pub fn free(&self, key: Key) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.free(key))?)
    }

    /// Frees `key` without waiting and runs `f` on the loop thread once its callback cannot
    /// run any more.
    pub fn finalize(&self, key: Key, f: Box<dyn FnOnce() + Send>) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.finalize_with(key, move |_| f()))?)
    }

    /// Queues `key` with the libevent result bits `res`.
    #[inline]
    pub fn activate(&self, key: Key, res: i16) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.activate(key, ready_of(res)))?)
    }

    /// Changes the priority of a non-queued event.
    pub fn set_priority(&self, key: Key, p: u8) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.set_priority(key, p))?)
    }

    /// Runs the loop.
    pub fn run(&self, once: bool, nonblock: bool, forever: bool) -> Result<End, Fail> {
        // `RunFlags` is non-exhaustive: built from a constant, its public fields set.
        let mut flags = RunFlags::UNTIL_EMPTY;
        flags.once = once;
        flags.nonblock = nonblock;
        flags.forever = forever;
        // The thread that runs it (a nested or concurrent run is refused by rouse, and then
        // leaves the runner as it is).
        let me = this_thread();
        let claimed = self
            .runner
            .compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if claimed {
            self.parked.begin_run(self.apply());
        }
        let r = either!(self.core(), Core, LocalCore, b => b.run_with(flags));
        if claimed {
            self.parked.end_run(self.apply());
            self.runner.store(0, Ordering::Relaxed);
        }
        Ok(match r? {
            Exit::Empty => End::Empty,
            Exit::Break => End::Break,
            Exit::Exit => End::Exit,
            // `Done`, and whatever a later rouse adds (`Exit` is non-exhaustive).
            _ => End::Done,
        })
    }

    /// Stops the loop after the running callback (or the next run at once).
    pub fn loop_break(&self) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.loop_break())?)
    }

    /// Stops the loop after `after` (`None`: after this iteration).
    pub fn loop_exit(&self, after: Option<Duration>) -> Result<(), Fail> {
        Ok(either!(self.core(), Core, LocalCore, b => b.loop_exit(after))?)
    }

    /// From one of this loop's callbacks (or anything such a callback calls on its thread):
    /// poll again before running the rest of the queue, once that callback returned.
    /// Anywhere else it does nothing: libevent's flag is reset at each iteration, so outside
    /// a callback it has no effect either.
    pub fn loop_continue(&self) {
        if self.in_callback.load(Ordering::Relaxed) > 0
            && self.runner.load(Ordering::Relaxed) == this_thread()
        {
            self.continue_asked.store(true, Ordering::Relaxed);
        }
    }

    /// Runs `f`, the program's callback of one of this loop's events (`ctx` its context):
    /// a `loop_continue` asked meanwhile stops the pass after it, which is where libevent
    /// checks its flag too. Per-loop bookkeeping of the loop thread, no thread-local (in a
    /// shared object each thread-local access is a call into the dynamic linker).
    #[inline]
    pub fn callback<R>(&self, ctx: &Ctx<'_>, f: impl FnOnce() -> R) -> R {
        struct Depth<'a>(&'a AtomicU32);
        impl Drop for Depth<'_> {
            fn drop(&mut self) {
                let d = self.0.load(Ordering::Relaxed);
                self.0.store(d.saturating_sub(1), Ordering::Relaxed);
            }
        }
        let d = self.in_callback.load(Ordering::Relaxed);
        self.in_callback.store(d + 1, Ordering::Relaxed);
        let depth = Depth(&self.in_callback);
        let r = f();
        // A delete the callback parked is applied before rouse goes on.
        self.parked.settle(self.apply());
        drop(depth);
        if self.continue_asked.load(Ordering::Relaxed) {
            self.continue_asked.store(false, Ordering::Relaxed);
            ctx.loop_continue();
        }
        r
    }

    /// After fork, in the child (in the process that made the loop: nothing to do).
    pub fn reinit(&self) -> Result<(), Fail> {
        let me = std::process::id();
        if self.pid.load(Ordering::Relaxed) == me {
            return Ok(());
        }
        either!(self.core(), Core, LocalCore, b => b.reinit_after_fork())?;
        self.pid.store(me, Ordering::Relaxed);
        Ok(())
    }

    /// (events, pending, active).
    pub fn counts(&self) -> (u32, u32, u32) {
        let c = either!(self.core(), Core, LocalCore, b => b.counts());
        (c.events, c.pending, c.active)
    }

    /// Whether `key` is pending or queued (no snapshot, no clock read: `event_assign` asks
    /// this of every re-assigned event).
    pub fn is_busy(&self, key: Key) -> bool {
        either!(self.core(), Core, LocalCore, b => b.info(key))
            .is_ok_and(|i| i.pending || !i.queued.is_empty())
    }

    /// A snapshot of `key`.
    pub fn info(&self, key: Key) -> Result<Info, Fail> {
        let i = either!(self.core(), Core, LocalCore, b => b.info(key))?;
        Ok(self.convert(i))
    }

    fn convert(&self, i: rouse_core::EventInfo) -> Info {
        let what = match i.kind {
            Kind::Io(src, interest) => What::Io {
                fd: src.id() as i32,
                events: events_of(interest),
            },
            Kind::Signal(n) => What::Signal(n as i32),
            // Timers, user events (`Kind` is non-exhaustive).
            _ => What::Timer,
        };
        let events = match what {
            What::Io { events, .. } => events,
            _ => 0,
        };
        let now = either!(self.core(), Core, LocalCore, b => b.now());
        Info {
            key: i.key,
            what,
            persistent: i.persistent,
            priority: i.priority,
            pending: i.pending,
            active: (!i.queued.is_empty()).then(|| res_of(i.queued, events)),
            running: i.running,
            remaining: i.deadline.map(|d| d.saturating_duration_since(now)),
            tag: i.tag,
        }
    }

    /// A snapshot of every live event, in slot order.
    pub fn events(&self) -> Vec<Info> {
        let mut v = Vec::new();
        either!(self.core(), Core, LocalCore, b => b.for_each_event(|i| v.push(i)));
        v.into_iter().map(|i| self.convert(i)).collect()
    }

    /// The slot index of a key (stable while the event lives).
    pub fn index(key: Key) -> u32 {
        key.index()
    }

    /// rouse's own dump (poller, notifier, wake counters, every event).
    pub fn dump(&self) -> String {
        either!(self.core(), Core, LocalCore, b => b.dump())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarse_base_slack_is_half_a_tick_within_1_and_5_ms() {
        let ms = Duration::from_millis;
        for (tick, slack) in [
            (None, ms(1)),
            (Some(Duration::from_nanos(1)), ms(1)),
            (Some(ms(1)), ms(1)),
            (Some(ms(4)), ms(2)),
            (Some(ms(10)), ms(5)),
            (Some(ms(40)), ms(5)),
        ] {
            assert_eq!(coarse_slack(tick), slack, "tick {tick:?}");
        }
    }

    #[test]
    fn result_bits_convert_as_the_table_says() {
        for res in 0..=0xffu16 {
            let res = res as i16;
            let mut want = Ready::NONE;
            for (bit, ready) in RES_READY {
                if res & bit != 0 {
                    want |= ready;
                }
            }
            if want.is_empty() {
                want = Ready::USER;
            }
            assert_eq!(ready_of(res), want, "res {res:#x}");
        }
        for bits in 0..=0xffu16 {
            let ready = Ready::from_bits_truncate(bits as u8);
            for events in [0, EV_READ, EV_WRITE, EV_READ | EV_WRITE | EV_PERSIST] {
                let mut want = 0;
                for (bit, r) in RES_READY {
                    if ready.contains(r) {
                        want |= bit;
                    }
                }
                if ready.contains(Ready::ERROR) {
                    want |= events & (EV_READ | EV_WRITE);
                }
                assert_eq!(res_of(ready, events), want, "ready {ready:?}");
            }
        }
    }
}
