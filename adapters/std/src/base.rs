//! The base (the loop owner), its cross-thread handle, and the builder of every flavor.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rouse_core::{Exit, Options, RunFlags};

use crate::clock::BaseClock;
use crate::config::{Local, Threaded};
use crate::flavor::Flavor;
use crate::os::{LocalOs, Os};
use crate::sys::notify::NotifierKind;
use crate::sys::poll::PollerKind;

/// The window of the thread-safe base's default adaptive spin before blocking (see
/// [`Builder::adaptive_spin`]): long enough to catch a request made right after the loop went
/// idle (a cross-thread round trip takes well under a microsecond when both threads run).
pub const DEFAULT_ADAPTIVE_SPIN: Duration = Duration::from_micros(3);

/// How to build a base (libevent's `event_config`).
///
/// Without a forced kind, the poller is epoll (Linux) or kqueue (BSD, macOS), and the notifier
/// follows libevent's order: kqueue `EVFILT_USER`, eventfd, pipe, socketpair, falling back to
/// the next when creation fails with `EMFILE`, `ENFILE` or `ENOSYS`. Like libevent's
/// `EVENT_NO*` variables, `ROUSE_POLLER` (`epoll`, `kqueue`, `poll`) and `ROUSE_NOTIFIER`
/// (`kqueue-user`, `eventfd`, `pipe`, `socketpair`) force a kind unless
/// [`ignore_env`](Builder::ignore_env) is set; the test suite runs once per forced fallback
/// that way.
///
/// ```
/// use rouse_std::{Builder, NotifierKind, PollerKind};
/// let base = Builder::new()
///     .priorities(3)
///     .poller(PollerKind::Poll)
///     .notifier(NotifierKind::Pipe)
///     .build()?;
/// assert_eq!(base.poller_kind(), PollerKind::Poll);
/// # Ok::<(), std::io::Error>(())
/// ```

#[derive(Clone, Debug)]
pub struct Builder {
    options: Options,
    /// No spin was chosen: `build` gives the thread-safe base the adaptive default.
    spin_default: bool,
    notifier: Option<NotifierKind>,
    poller: Option<PollerKind>,
    ignore_env: bool,
    clock: BaseClock,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            options: Options::new(),
            spin_default: true,
            notifier: None,
            poller: None,
            ignore_env: false,
            clock: BaseClock::precise(),
        }
    }
}

impl Builder {
    /// The defaults: one priority, no dispatch limits, default poller and notifier; for the
    /// thread-safe base ([`build`](Builder::build)) an adaptive spin before blocking
    /// ([`DEFAULT_ADAPTIVE_SPIN`], see [`adaptive_spin`](Builder::adaptive_spin)); no spin for
    /// a [`LocalBase`] (nothing but its own thread can make a request) or a mock base.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Before blocking in its poller, the loop spins up to `spin` with `polling` still false:
    /// a change made meanwhile (a worker answering right after the loop went idle) is picked
    /// up with no notification write and no sleep/wake-up (a context switch costs several
    /// microseconds). This fixed spin runs every time the loop goes idle: it burns up to
    /// `spin` of CPU each time whether or not anything comes (the W6 workload measures it).
    /// Replaces the adaptive default; zero turns every spin off. See
    /// [`rouse_core::Options::spin_before_block`].
    pub fn spin_before_block(mut self, spin: Duration) -> Builder {
        self.options = self.options.spin_before_block(spin);
        self.spin_default = false;
        self
    }

    /// A spin before blocking, up to `window`, that runs only while it pays (the thread-safe
    /// base's default, with [`DEFAULT_ADAPTIVE_SPIN`]): on once a notification ended a
    /// blocking wait soon after it began (within 8 windows), off after four misses in a
    /// row; missed spins use at most 1/32 of the loop thread's time. A loop woken only by
    /// I/O and timers, or by requests far apart, never spins. Zero turns it off. See
    /// [`rouse_core::Options::adaptive_spin`].
    pub fn adaptive_spin(mut self, window: Duration) -> Builder {
        self.options = self.options.adaptive_spin(window);
        self.spin_default = false;
        self
    }

    /// The number of priorities (1..=255).
    pub fn priorities(mut self, n: u8) -> Builder {
        self.options = self.options.priorities(n);
        self
    }

    /// Limits how long the loop runs callbacks of priority `from_priority` and below (every
    /// priority numerically `>= from_priority`) before it polls again: at most
    /// `max_callbacks` callbacks, at most `max_interval` of time. More urgent priorities are
    /// never limited. See [`rouse_core::Options::dispatch_limits`].
    pub fn dispatch_limits(
        mut self,
        max_callbacks: u32,
        max_interval: Option<Duration>,
        from_priority: u8,
    ) -> Builder {
        self.options = self
            .options
            .dispatch_limits(max_callbacks, max_interval, from_priority);
        self
    }

    /// Uses exactly this notifier (an error if it cannot be created).
    pub fn notifier(mut self, kind: NotifierKind) -> Builder {
        self.notifier = Some(kind);
        self
    }

    /// Uses exactly this poller.
    pub fn poller(mut self, kind: PollerKind) -> Builder {
        self.poller = Some(kind);
        self
    }

    /// Starts a timeout added outside the loop's callbacks at a reading of the coarse
    /// monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux, `CLOCK_MONOTONIC_FAST` on FreeBSD;
    /// other OSes have none and keep the precise clock; see [`BaseClock`](crate::BaseClock)).
    /// Such an add (and a [`loop_exit`](crate::Base::loop_exit)) then costs a fraction of a
    /// precise reading (in a VM, 8 ns instead of 29 here), but its timeout starts as much
    /// early as the coarse clock lags: a kernel tick (1-10 ms), more right after the CPU
    /// idled (6 ms measured on a 250 Hz kernel), so it may fire that much early. The loop's own readings, which decide what is due, stay precise:
    /// nothing fires late for it (libevent's coarse default also checks deadlines on the
    /// coarse clock, which makes a 1 ms timer fire after 4 ms on a 250 Hz kernel). Adds from
    /// callbacks read no clock either way. Off by default: rouse's timeouts never fire early.
    pub fn coarse_clock(mut self) -> Builder {
        self.clock = BaseClock::coarse();
        self
    }

    /// Ends the loop's waits for timeouts on a grid of `slack`: every timeout due within one
    /// grid step fires in the same wake-up, each at most `slack` late, never early. A loop
    /// with many timers then wakes at most once per `slack` for them, not once per deadline
    /// (each wake-up of a sleeping thread costs several microseconds of CPU; libevent's epoll
    /// backend waits in whole milliseconds). I/O and notifications are not delayed. Zero, the
    /// default, waits for each deadline exactly. See [`rouse_core::Options::timer_slack`].
    pub fn timer_slack(mut self, slack: Duration) -> Builder {
        self.options = self.options.timer_slack(slack);
        self
    }

    /// Registers an fd afresh (one syscall) when its event is deleted and added back within
    /// one iteration, instead of costing nothing: for code that may close the fd and open
    /// another file under the same number in between, then re-add the same event (libevent's
    /// API allows it; `rouse-libevent` uses this). Off by default: then free the event of a
    /// closed fd and make a new one. See [`rouse_core::Options::reregister_on_rearm`].
    pub fn reregister_on_rearm(mut self) -> Builder {
        self.options = self.options.reregister_on_rearm(true);
        self
    }

    /// Ignores `ROUSE_POLLER` and `ROUSE_NOTIFIER`.
    pub fn ignore_env(mut self) -> Builder {
        self.ignore_env = true;
        self
    }

    fn env<T>(&self, var: &str, parse: fn(&str) -> Option<T>) -> io::Result<Option<T>> {
        if self.ignore_env {
            return Ok(None);
        }
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => parse(&v).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{var}={v}: unknown kind"),
                )
            }),
            _ => Ok(None),
        }
    }

    pub(crate) fn options(&self) -> Options {
        self.options
    }

    fn poller_choice(&self) -> io::Result<Option<PollerKind>> {
        match self.poller {
            Some(k) => Ok(Some(k)),
            None => self.env("ROUSE_POLLER", PollerKind::from_name),
        }
    }

    /// Builds a thread-safe base.
    ///
    /// # Errors
    ///
    /// The OS error of the poller or notifier (after fallbacks); `InvalidInput` for bad options
    /// or an unknown kind in the environment.
    pub fn build(self) -> io::Result<Base> {
        let notifier = match self.notifier {
            Some(k) => Some(k),
            None => self.env("ROUSE_NOTIFIER", NotifierKind::from_name)?,
        };
        let (os, poller) = Os::new(self.poller_choice()?, notifier)?;
        let options = if self.spin_default {
            self.options.adaptive_spin(DEFAULT_ADAPTIVE_SPIN)
        } else {
            self.options
        };
        let core = rouse_core::Base::new(os, poller, self.clock, options)?;
        Ok(Base::from_core(core))
    }

    /// Builds a single-threaded base: no lock, no notifier, and no way to reach it from
    /// another thread (it is neither `Send` nor `Sync`, and has no handle).
    ///
    /// # Errors
    ///
    /// As [`build`](Builder::build).
    pub fn build_local(self) -> io::Result<LocalBase> {
        let (os, poller) = LocalOs::new(self.poller_choice()?)?;
        let core = rouse_core::Base::new(os, poller, self.clock, self.options)?;
        Ok(Base::from_core(core))
    }
}

/// An event base, the loop owner: it runs the loop, re-initializes after `fork()`, and hands
/// out [`Handle`]s (threaded flavor); events are added, deleted and activated through it, a
/// handle, or a callback's [`Context`](crate::Context) — each offering exactly what its holder
/// may do.
///
/// `F` is the [`Flavor`]: [`Threaded`] (the default: `Base`) or [`Local`]
/// ([`LocalBase`]); code generic over `F: Flavor` serves both.
///
/// ```
/// use rouse_std::Base;
///
/// let base = Base::new()?;
/// let handle = base.handle();
/// let user = base.add_user(|cx, _| cx.loop_break().unwrap())?;
/// let t = std::thread::spawn(move || handle.activate(user, rouse_std::Ready::USER));
/// base.run()?; // sleeps until the other thread activates `user`
/// t.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the base closes it: queued finalizers run, every event is freed, and calls through
/// remaining handles fail with `NotConnected`.
pub struct Base<F: Flavor = Threaded> {
    core: Arc<rouse_core::Base<F>>,
    /// The process that created (or last re-initialized) the base.
    pid: AtomicU32,
}

/// A single-threaded base (libevent's `EVENT_BASE_FLAG_NOLOCK`): cheaper (no lock, no
/// notifier fd), and the compiler keeps it on its thread — it has no handle, and it is neither
/// `Send` nor `Sync`:
///
/// ```compile_fail
/// let base = rouse_std::LocalBase::new_local().unwrap();
/// std::thread::spawn(move || drop(base)); // error: `LocalBase` cannot be sent between threads
/// ```
pub type LocalBase = Base<Local>;

/// A cross-thread handle to a [`Base`]: `Send + Sync + Clone`. It adds, deletes and activates
/// events and stops the loop; running the loop, re-initializing the base and its poller and
/// notifier are the base's alone.
pub struct Handle<F: Flavor = Threaded> {
    core: Arc<rouse_core::Base<F>>,
}

impl<F: Flavor> Clone for Handle<F> {
    fn clone(&self) -> Self {
        Handle {
            core: self.core.clone(),
        }
    }
}

impl<F: Flavor> fmt::Debug for Base<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Base")
            .field("id", &self.core.id())
            .field("counts", &self.core.counts())
            .field("os", F::os_debug(&self.core))
            .finish_non_exhaustive()
    }
}

impl<F: Flavor> fmt::Debug for Handle<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("base", &self.core.id())
            .finish_non_exhaustive()
    }
}

impl Base {
    /// A thread-safe base with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Base> {
        Builder::new().build()
    }

    /// A builder (of either flavor: [`Builder::build`], [`Builder::build_local`]).
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The notifier chosen.
    pub fn notifier_kind(&self) -> NotifierKind {
        self.core.notifier().notifier_kind()
    }
}

impl LocalBase {
    /// A single-threaded base with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new_local() -> io::Result<LocalBase> {
        Builder::new().build_local()
    }
}

impl<F: Flavor> Base<F>
where
    rouse_core::Base<F>: Send + Sync,
{
    /// A handle for other threads (only a thread-safe flavor has them).
    pub fn handle(&self) -> Handle<F> {
        Handle {
            core: self.core.clone(),
        }
    }
}

impl<F: Flavor> Base<F> {
    pub(crate) fn from_core(core: rouse_core::Base<F>) -> Base<F> {
        Base {
            core: Arc::new(core),
            pid: AtomicU32::new(std::process::id()),
        }
    }

    #[inline]
    fn core(&self) -> &rouse_core::Base<F> {
        &self.core
    }

    #[inline]
    pub(crate) fn core_ref(&self) -> &rouse_core::Base<F> {
        &self.core
    }

    /// The shared operations, for helpers that also serve a handle or a callback.
    pub fn base_ref(&self) -> crate::BaseRef<'_, F> {
        crate::BaseRef::new(&self.core)
    }

    /// Runs the loop until no event is pending or active, or a break or exit
    /// (`event_base_dispatch`).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if the loop is already running (on another thread, or this is called from
    /// one of its callbacks); the poller's OS error.
    pub fn run(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::UNTIL_EMPTY)
    }

    /// Blocks until something is active, runs it, returns (`EVLOOP_ONCE`).
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_once(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::ONCE)
    }

    /// Runs what is active without blocking, returns (`EVLOOP_NONBLOCK`).
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_nonblocking(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::NONBLOCK)
    }

    /// Runs until a break or exit, even with nothing pending (`EVLOOP_NO_EXIT_ON_EMPTY`).
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_forever(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::FOREVER)
    }

    /// Runs the loop as `flags` say.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_with(&self, flags: RunFlags) -> io::Result<Exit> {
        F::run(&self.core, flags)
    }

    /// After `fork()`, in the child: a new poller (and notifier), every event registered again
    /// on the next run, and no notification left in flight (so the child can be woken by a
    /// thread it starts). Call it before starting threads in the child.
    ///
    /// If the parent's loop was running in another thread when it forked, that thread does
    /// not exist in the child and still holds the poller: this returns `ResourceBusy`, and the
    /// child should build a new base.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if no fork happened since the base was made (or last re-initialized):
    /// nothing is changed, closed or leaked. `ResourceBusy` if the loop runs (or ran in a
    /// thread that did not survive the fork); the OS error of creating the new poller or
    /// notifier.
    pub fn reinit_after_fork(&self) -> io::Result<()> {
        let me = std::process::id();
        if self.pid.load(Relaxed) == me {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reinit_after_fork: this process made the base (no fork happened)",
            ));
        }
        F::reinit(&self.core)?;
        self.pid.store(me, Relaxed);
        Ok(())
    }

    /// The poller chosen.
    pub fn poller_kind(&self) -> PollerKind {
        F::poller_kind(&self.core)
    }

    /// Interest-change syscalls issued so far (`epoll_ctl`, `kevent` changes; 0 for poll(2)),
    /// or `None` while the loop runs. Proves that a delete+add within one iteration reaches no
    /// kernel.
    pub fn interest_syscalls(&self) -> Option<u64> {
        F::interest_syscalls(&self.core)
    }

    /// Calls `f` with a snapshot of every live event, in slot order. `f` runs under the base
    /// lock: it must not call the base.
    pub fn for_each_event(&self, f: impl FnMut(rouse_core::EventInfo)) {
        self.core.for_each_event(f)
    }

    /// Whether the base reads the coarse clock ([`Builder::coarse_clock`]).
    pub fn clock_is_coarse(&self) -> bool {
        F::clock_name(&self.core) == "coarse"
    }

    /// A human-readable dump of every event and the wake counters.
    pub fn dump(&self) -> String {
        let notifier = F::notifier_kind(&self.core).map_or("none", NotifierKind::name);
        let clock = F::clock_name(&self.core);
        let mut s = format!(
            "poller {}, notifier {}, clock {}\n",
            self.poller_kind().name(),
            notifier,
            clock
        );
        let _ = self.core.dump(&mut s);
        s
    }
}

impl<F: Flavor> Handle<F> {
    #[inline]
    fn core(&self) -> &rouse_core::Base<F> {
        &self.core
    }

    /// The shared operations, for helpers that also serve a base or a callback.
    pub fn base_ref(&self) -> crate::BaseRef<'_, F> {
        crate::BaseRef::new(&self.core)
    }
}

crate::api::shared_api!(impl[F: Flavor] Base<F>, Base, F, crate::api::wrap, [+ Send]);
crate::api::shared_api!(impl[F: Flavor] Handle<F>, Handle, F, crate::api::wrap, [+ Send]);

impl<F: Flavor> Drop for Base<F> {
    fn drop(&mut self) {
        // Frees every event now: their callbacks may hold handles (a cycle through the Arc).
        self.core.close();
    }
}
