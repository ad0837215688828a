//! How a base is configured at run time, and how a run is asked to behave and why it ended.

use core::time::Duration;

/// Run-time options of a base (libevent's `event_config`).
///
/// ```
/// use core::time::Duration;
/// let opts = rouse_core::Options::new()
///     .priorities(3)
///     .dispatch_limits(64, Some(Duration::from_millis(5)), 1);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) priorities: u8,
    pub(crate) max_callbacks: u32,
    pub(crate) max_interval: Option<Duration>,
    pub(crate) limit_from: u8,
    pub(crate) spin: Duration,
    pub(crate) adaptive_spin: Duration,
    pub(crate) timer_slack: u64,
    pub(crate) reregister_on_rearm: bool,
}

impl Options {
    /// One priority, no dispatch limits (libevent's defaults).
    pub const fn new() -> Options {
        Options {
            priorities: 1,
            max_callbacks: u32::MAX,
            max_interval: None,
            limit_from: 0,
            spin: Duration::ZERO,
            adaptive_spin: Duration::ZERO,
            timer_slack: 0,
            reregister_on_rearm: false,
        }
    }

    /// The number of priorities, 1..=255 (events default to `n / 2`; 0 runs first).
    pub const fn priorities(mut self, n: u8) -> Options {
        self.priorities = n;
        self
    }

    /// Limits how long the loop runs callbacks of priorities `from_priority` and below before
    /// it polls again: at most `max_callbacks` callbacks and at most `max_interval` of time per
    /// pass (libevent's `event_config_set_max_dispatch_interval`). Higher priorities are never
    /// limited.
    pub const fn dispatch_limits(
        mut self,
        max_callbacks: u32,
        max_interval: Option<Duration>,
        from_priority: u8,
    ) -> Options {
        self.max_callbacks = if max_callbacks == 0 { 1 } else { max_callbacks };
        self.max_interval = max_interval;
        self.limit_from = from_priority;
        self
    }

    /// Before it blocks, the loop spins up to `spin` watching for changes, with `polling`
    /// still false: a change made in that window (a worker posting a result right after the
    /// loop went idle) is seen with no notification write and no sleep. Every spin is bounded
    /// by the next deadline. This fixed spin runs every time the loop goes idle, whether or not
    /// anything comes; it replaces an [`adaptive_spin`](Options::adaptive_spin). Zero turns
    /// both off. Default: zero.
    pub const fn spin_before_block(mut self, spin: Duration) -> Options {
        self.spin = spin;
        self.adaptive_spin = Duration::ZERO;
        self
    }

    /// A spin before blocking, up to `window`, that runs only while it pays: it turns on when
    /// a notification ended a blocking wait soon after it began (within 8 windows: the wait
    /// also holds the kernel's wake-up latency), as a spin would likely have caught that
    /// request; it turns off after four misses in a row (a spin that saw nothing, or a
    /// notification after a longer sleep). Missed spins may use at most 1/32 of the loop
    /// thread's wall time (plus 8 windows banked), however requests are timed. Waits that end
    /// by I/O or a timeout do not count, so a loop woken only by I/O, or by requests far
    /// apart, never spins; while the spin is off only one blocking wait in 8 is timed (a clock
    /// reading before it, and one after it if a notification ended it), so a run of quick
    /// wakes turns it on within 8 waits.
    /// Replaces a fixed [`spin_before_block`](Options::spin_before_block); zero turns it off.
    /// Default: zero (`rouse-std`'s thread-safe `Base` uses 3 µs).
    pub const fn adaptive_spin(mut self, window: Duration) -> Options {
        self.adaptive_spin = window;
        self.spin = Duration::ZERO;
        self
    }

    /// Lets the loop's waits for timeouts end on a grid of `slack` (measured on the base's
    /// clock from its origin): a wait for a deadline lasts until the first multiple of `slack`
    /// at or after it, so every timeout due within one grid step fires in one wake-up, each at
    /// most `slack` late (never early). A loop with many timers then wakes at most once per
    /// `slack` for them instead of once per distinct deadline, which saves a context switch
    /// each (the aim of libev's `ev_set_timeout_collect_interval`, which delays every wait
    /// instead; libevent's epoll backend waits in whole milliseconds unless
    /// `EVENT_BASE_FLAG_PRECISE_TIMER`). A fired timer runs after the grid point plus the
    /// OS's wake-up latency, as any timer does. A deadline that falls due while the
    /// callbacks of a wake-up run waits for its grid point too (no poll without a wait for
    /// it); one already past when the loop first sees it (a timeout counted from a lagging
    /// clock reading) fires at once. Waits that end for I/O or a notification are not
    /// delayed. Zero (the default) waits for each deadline exactly;
    /// longer than a second is clamped to a second.
    pub const fn timer_slack(mut self, slack: Duration) -> Options {
        self.timer_slack = if slack.as_secs() >= 1 {
            1_000_000_000
        } else {
            slack.subsec_nanos() as u64
        };
        self
    }

    /// Makes an I/O event deleted and added back within one iteration (before the loop applies
    /// the change) register its fd afresh, instead of costing nothing. In between, the program
    /// may have closed the fd and opened another file that got the same number: the kernel
    /// dropped the closed file's registration, so "no change" would leave the new file
    /// unwatched and its readiness unseen. libevent's API allows that pattern (it applies
    /// every delete and add at once; unbound relies on it), and `rouse-libevent` sets this.
    /// The fresh registration is the poller's [`reset`](crate::Poller::reset): on epoll
    /// `EPOLL_CTL_ADD`, then `EPOLL_CTL_MOD` if the file is still registered.
    ///
    /// Off by default: rouse's delete+add re-arm of the same event costs no syscall, and an
    /// fd that is closed while its event is deleted must not come back under the same event
    /// in the same iteration (free that event and make a new one, which is registered afresh
    /// whatever this option says).
    pub const fn reregister_on_rearm(mut self, on: bool) -> Options {
        self.reregister_on_rearm = on;
        self
    }

    /// The number of priorities.
    pub const fn priority_count(&self) -> u8 {
        self.priorities
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// How a run behaves (libevent's `EVLOOP_*` flags): one of the constants, e.g.
/// [`RunFlags::ONCE_NONBLOCK`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunFlags {
    /// Block until some event is active, run the active callbacks, return (`EVLOOP_ONCE`).
    pub once: bool,
    /// Never block: poll without waiting, run what is active, return (`EVLOOP_NONBLOCK`).
    pub nonblock: bool,
    /// Keep running when no event is pending (`EVLOOP_NO_EXIT_ON_EMPTY`); only a break or an
    /// exit ends the run.
    pub forever: bool,
}

impl RunFlags {
    /// Run until no event is pending or active.
    pub const UNTIL_EMPTY: RunFlags = RunFlags {
        once: false,
        nonblock: false,
        forever: false,
    };
    /// See [`RunFlags::once`].
    pub const ONCE: RunFlags = RunFlags {
        once: true,
        ..RunFlags::UNTIL_EMPTY
    };
    /// See [`RunFlags::nonblock`].
    pub const NONBLOCK: RunFlags = RunFlags {
        nonblock: true,
        ..RunFlags::UNTIL_EMPTY
    };
    /// Poll once without blocking and run everything that is active.
    pub const ONCE_NONBLOCK: RunFlags = RunFlags {
        once: true,
        nonblock: true,
        forever: false,
    };
    /// See [`RunFlags::forever`].
    pub const FOREVER: RunFlags = RunFlags {
        forever: true,
        ..RunFlags::UNTIL_EMPTY
    };
}

/// Why a run returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// No event was pending or active any more.
    Empty,
    /// `loop_break` was called (possibly before the run started).
    Break,
    /// `loop_exit` was called, or its deadline passed.
    Exit,
    /// A `once` or `nonblock` run did what it was asked, or a bounded run on the mocks
    /// ([`Base::run_until_idle`](crate::Base::run_until_idle),
    /// [`Base::advance`](crate::Base::advance)) reached its bound.
    Done,
}
