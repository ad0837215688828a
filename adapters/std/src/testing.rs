//! The friendly API on the mocks: code written against [`Base<F>`](crate::Base),
//! [`Context<'_, F>`](crate::Context) and [`Handle<F>`](crate::Handle), generic over
//! `F: Flavor`, runs unchanged in a unit test on a [`MockBase`] — a manual clock, a scripted
//! poller and the counting notifier of [`rouse_core::mock`], with no fds and no real time.
//!
//! - **Time** is the [`ManualClock`]'s: it starts at zero and moves only when the loop waits
//!   (a wait "sleeps" to its timeout at once) or the test moves it.
//!   [`advance(d)`](Base::advance) moves it by `d`, running every timer, scripted readiness
//!   and wake at its own instant (tokio's `time::advance`); [`run_until_idle`](Base::run_until_idle)
//!   runs what is active and everything scripted, and returns where a real loop would block.
//!   [`run`](Base::run) itself works too: it runs until no event is left, sleeping through
//!   every timeout in no real time (it fails with [`SeamError::WOULD_BLOCK_FOREVER`] where a real
//!   loop would sleep forever).
//! - **Sources stand in for fds**: [`source`](Base::source) hands out a fresh
//!   [`Source`]; the code under test watches it as it would a socket (`Event::io(source,
//!   interest)`, or [`add_source`](Base::add_source)), and the test makes it ready with
//!   [`script_ready`](Base::script_ready). Real fds (`add_fd`) work as well: the mock poller
//!   registers them and reports only what is scripted.
//! - **The poller and notifier** are the core's [`mock::Poller`] (every interest change
//!   recorded: [`with_poller`](Base::with_poller)) and [`mock::Notifier`] (counting:
//!   [`notifier`](Base::notifier)). The base is thread-safe: it has [`Handle`](crate::Handle)s,
//!   and a wake from another thread ends the mock poller's wait.
//!
//! Always compiled (no feature flag): it adds no dependency and costs nothing unless used.
//!
//! # Limits
//!
//! The script is the test's, set up between runs: scripting from a callback of the running
//! loop (or from another thread while it runs) panics, naming the cause. A mock base cannot
//! [`reinit_after_fork`](Base::reinit_after_fork) (`Unsupported` after a fork). Timers due at
//! the same instant fire in heap order, not add order: give them distinct deadlines, or one
//! [common timeout](Base::common_timeout), to assert their order.
//!
//! # Example
//!
//! The component is production code, generic over the flavor; the test runs it unchanged:
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//! use rouse_core::{Event, Exit, Interest, Ready, Source};
//! use rouse_std::{testing::MockBase, Base, Flavor};
//!
//! /// Production code: counts reads on `source`, gives up after `idle` without any.
//! fn watch<F: Flavor>(
//!     base: &Base<F>,
//!     source: Source,
//!     idle: Duration,
//!     log: Arc<Mutex<Vec<String>>>,
//! ) -> std::io::Result<()> {
//!     let ev = Event::io(source, Interest::READ).persist(); // the timeout restarts on a read
//!     base.add_event(ev, Some(idle), move |cx, fired| {
//!         let at = cx.now().as_nanos() / 1_000_000;
//!         if fired.ready.contains(Ready::TIMEOUT) {
//!             log.lock().unwrap().push(format!("idle at {at} ms"));
//!             cx.free(fired.key).unwrap();
//!         } else {
//!             log.lock().unwrap().push(format!("read at {at} ms"));
//!         }
//!     })?;
//!     Ok(())
//! }
//!
//! // The test: a manual clock, a scripted poller, no fds.
//! let base = MockBase::new_mock();
//! let conn = base.source(); // stands in for a socket
//! let log = Arc::new(Mutex::new(Vec::new()));
//! watch(&base, conn, Duration::from_secs(5), log.clone())?;
//!
//! base.advance(Duration::from_secs(3))?; // nothing happens for 3 s
//! assert_eq!(base.with_poller(|p| p.registered(conn)), Interest::READ);
//! base.script_ready(conn, Ready::READ); // data arrives at 3 s
//! assert_eq!(base.advance(Duration::from_secs(7))?, Exit::Empty); // idle 5 s later: freed
//! assert_eq!(*log.lock().unwrap(), ["read at 3000 ms", "idle at 8000 ms"]);
//! assert_eq!(base.elapsed(), Duration::from_secs(10));
//! assert_eq!(base.with_poller(|p| p.registered(conn)), Interest::NONE);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rouse_core::mock::{self, ManualClock};
use rouse_core::{
    Config, Exit, Fired, Growable, Interest, Readiness, Ready, RunFlags, SeamError, Source,
};

use crate::base::{Base, Builder};
use crate::flavor::{sealed, Flavor};
use crate::lock::StdLock;
use crate::sys::notify::NotifierKind;
use crate::sys::poll::PollerKind;

type CoreBase<F> = rouse_core::Base<F>;

/// The mock flavor: [`StdLock`], a [`mock::Notifier`] and [`mock::Poller`], a
/// [`ManualClock`], growable storage, `Send` closures. Its base is a [`MockBase`].
#[derive(Debug)]
pub struct Mock;

/// A base on the mocks (see the [module docs](self)): the whole friendly API of
/// [`Base`], plus the test's controls — [`source`](Base::source),
/// [`script_ready`](Base::script_ready), [`advance`](Base::advance),
/// [`run_until_idle`](Base::run_until_idle), [`elapsed`](Base::elapsed).
///
/// What the loop owner's introspection says of it: [`poller_kind`](Base::poller_kind) is
/// [`PollerKind::Mock`]; [`interest_syscalls`](Base::interest_syscalls) counts the mock
/// poller's interest changes (what a real poller would pay a syscall for); it has no OS
/// notifier ([`dump`](Base::dump) says `notifier none`; the counting one is
/// [`notifier`](Base::notifier)).
pub type MockBase = Base<Mock>;

/// What the core stores as an event's callback in a [`MockBase`].
pub type MockCallback = Box<dyn FnMut(&rouse_core::Base<Mock>, Fired) + Send>;

/// The first number [`Base::source`] hands out: above the fds a test usually has open, so
/// a real fd watched in the same mock base does not share a source with a mock one.
pub const FIRST_MOCK_SOURCE: u32 = 1 << 12;

/// The notifier half of a [`MockBase`]: the counting notifier, and the numbering of mock
/// sources. (Its poller is the core's: a [`mock::Poller`] linked to this notifier and to the
/// base's clock.)
#[derive(Debug)]
pub struct MockOs {
    notifier: Arc<mock::Notifier>,
    next_source: AtomicU32,
}

impl rouse_core::Notify for MockOs {
    #[inline]
    fn notify(&self) -> Result<(), SeamError> {
        self.notifier.notify()
    }

    #[inline]
    fn consume(&self) {
        self.notifier.consume()
    }
}

impl Config for Mock {
    type Lock = StdLock;
    type Notifier = MockOs;
    type Poller = mock::Poller;
    type Clock = Arc<ManualClock>;
    type Storage = Growable;
    type Callback = MockCallback;

    fn thread_id() -> usize {
        mock::thread_id()
    }
}

impl Flavor for Mock {}

impl sealed::Os for Mock {
    #[inline]
    fn boxed(f: impl FnMut(&CoreBase<Self>, Fired) + Send + 'static) -> Self::Callback {
        Box::new(f)
    }

    fn run(core: &CoreBase<Self>, flags: RunFlags) -> io::Result<Exit> {
        Ok(core.run_with(flags)?)
    }

    fn reinit(_: &CoreBase<Self>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a mock base cannot be re-initialized after fork",
        ))
    }

    fn owns_fd(_: &CoreBase<Self>, _: RawFd) -> bool {
        false
    }

    fn apply_now(core: &CoreBase<Self>) {
        core.apply_changes();
    }

    fn poller_kind(_: &CoreBase<Self>) -> PollerKind {
        PollerKind::Mock
    }

    fn notifier_kind(_: &CoreBase<Self>) -> Option<NotifierKind> {
        None // no OS notifier: the counting mock (`MockBase::notifier`)
    }

    fn interest_syscalls(core: &CoreBase<Self>) -> Option<u64> {
        core.with_poller(|p| u64::from(p.updates())).ok()
    }

    fn clock_name(_: &CoreBase<Self>) -> &'static str {
        "manual" // the mock clock moves only when told
    }

    fn os_debug(core: &CoreBase<Self>) -> &dyn fmt::Debug {
        core.notifier()
    }
}

impl Builder {
    /// Builds a [`MockBase`] with these options (priorities, dispatch limits); a forced
    /// poller or notifier and the environment are ignored: it runs on the mocks.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for bad options.
    pub fn build_mock(self) -> io::Result<MockBase> {
        let clock = Arc::new(ManualClock::new());
        let notifier = Arc::new(mock::Notifier::new());
        let poller = mock::Poller::new(notifier.clone(), clock.clone());
        let os = MockOs {
            notifier,
            next_source: AtomicU32::new(FIRST_MOCK_SOURCE),
        };
        let core = rouse_core::Base::new(os, poller, clock, self.options())?;
        Ok(Base::from_core(core))
    }
}

impl Base<Mock> {
    /// A base on the mocks with the default options, its clock at zero, nothing scripted.
    pub fn new_mock() -> MockBase {
        Builder::new()
            .build_mock()
            .expect("the default options are valid")
    }

    /// A fresh source standing in for an fd (numbered from [`FIRST_MOCK_SOURCE`] up): watch it
    /// as a socket (`Event::io(source, interest)`, [`add_source`](Base::add_source)) and make it
    /// ready with [`script_ready`](Base::script_ready).
    pub fn source(&self) -> Source {
        Source::new(self.os().next_source.fetch_add(1, Relaxed))
    }

    /// A persistent event for `interest` on a mock `source`, pending at once: what
    /// [`add_fd`](Base::add_fd) is for an fd.
    ///
    /// # Errors
    ///
    /// As [`add_event`](Base::add_event).
    pub fn add_source<C>(
        &self,
        source: Source,
        interest: Interest,
        callback: C,
    ) -> io::Result<rouse_core::Key>
    where
        C: FnMut(&crate::Context<'_, Mock>, Fired) + Send + 'static,
    {
        let ev = rouse_core::Event::io(source, interest).persist();
        self.add_event(ev, None, callback)
    }

    /// Scripts the next wait of the loop to find `source` ready for `ready` (`READ`, `WRITE`,
    /// `CLOSED`) at once: the next [`advance`](Base::advance), [`run_until_idle`](Base::run_until_idle)
    /// or run reports it, at the clock's current instant. Calls queue up, one wait each.
    ///
    /// # Panics
    ///
    /// While the loop runs (from a callback, or another thread): script between runs.
    pub fn script_ready(&self, source: Source, ready: Ready) {
        self.script(Duration::ZERO, &[Readiness::Io(source, ready)]);
    }

    /// Scripts the next wait not yet scripted: it finds `found` after `sleep` from its start,
    /// or times out first ([`mock::Poller::script`] says exactly how).
    ///
    /// # Panics
    ///
    /// As [`script_ready`](Base::script_ready).
    pub fn script(&self, sleep: Duration, found: &[Readiness]) {
        self.poller("script", |p| {
            p.script(sleep, found);
        });
    }

    /// Moves the clock forward by `d`, running everything that falls due on the way, each at
    /// its own instant: timers (an interval fires once per period), scripted readiness, wakes
    /// (tokio's `time::advance`). See [`rouse_core::Base::advance`].
    ///
    /// Returns [`Exit::Done`], [`Exit::Empty`] when no event is left (the clock is moved all
    /// the same), or [`Exit::Break`] / [`Exit::Exit`] when a callback stopped the loop (the
    /// clock stays where it was then).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if the loop is running (a callback, or another thread).
    pub fn advance(&self, d: Duration) -> io::Result<Exit> {
        Ok(self.core_ref().advance(d)?)
    }

    /// Runs everything active and every scripted wait (firing the timers that fall due
    /// meanwhile), and returns where a real loop would block. See
    /// [`rouse_core::Base::run_until_idle`].
    ///
    /// # Errors
    ///
    /// As [`advance`](Base::advance).
    pub fn run_until_idle(&self) -> io::Result<Exit> {
        Ok(self.core_ref().run_until_idle()?)
    }

    /// The time since the base was made, on its manual clock.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.clock().now_nanos())
    }

    /// The manual clock. Moving it by hand ([`ManualClock::advance`]) runs nothing: it makes
    /// the next run find its timers overdue, as a stalled machine does.
    pub fn clock(&self) -> &ManualClock {
        self.core_ref().clock()
    }

    /// The counting notifier (cross-thread wakes written and consumed).
    pub fn notifier(&self) -> &mock::Notifier {
        &self.os().notifier
    }

    /// Reads the mock poller: what it has registered, its interest changes, waits and the
    /// script left.
    ///
    /// # Panics
    ///
    /// As [`script_ready`](Base::script_ready).
    pub fn with_poller<R>(&self, f: impl FnOnce(&mock::Poller) -> R) -> R {
        self.poller("with_poller", |p| f(p))
    }

    /// Calls `f` with the mock poller.
    ///
    /// # Panics
    ///
    /// While the loop runs (a callback, or another thread).
    fn poller<R>(&self, what: &str, f: impl FnOnce(&mut mock::Poller) -> R) -> R {
        self.core_ref().with_poller(f).unwrap_or_else(|_| {
            panic!(
                "MockBase::{what}: the loop is running and has the mock poller; \
                 script it from the test, between runs"
            )
        })
    }

    fn os(&self) -> &MockOs {
        self.core_ref().notifier()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mock_base_is_thread_safe_and_says_what_it_is() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MockBase>();
        send_sync::<crate::Handle<Mock>>();
        let base = MockBase::new_mock();
        assert_eq!(base.poller_kind(), PollerKind::Mock);
        assert!(base.dump().starts_with("poller mock, notifier none"));
        assert_eq!(base.interest_syscalls(), Some(0));
    }
}
