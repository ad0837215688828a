//! Driving a base on the mocks: a base whose mock poller is linked to its notifier and clock,
//! the test's hold on that poller, and runs that end when the test's script does (tokio's
//! paused time: `time::advance`).

use core::fmt;
use core::ops::{Deref, DerefMut};
use core::time::Duration;

use crate::mock::poller::{Bound, Bounded, Hook, Link, IDLE};
use crate::mock::{self, ManualClock, Notifier};
use crate::options::{Exit, RunFlags};
use crate::seam::{Clock, Config};
use crate::{Error, Options};

use super::Base;

impl<C: Config<Poller = mock::Poller>> Base<C> {
    /// A base whose [`mock::Poller`] is linked to its mock notifier and clock: its waits move
    /// the clock and end at once with a wake when another thread notifies.
    ///
    /// ```
    /// use rouse_core::{mock, Base, Options};
    ///
    /// static CLOCK: mock::ManualClock = mock::ManualClock::new();
    /// static NOTIFIER: mock::Notifier = mock::Notifier::new();
    ///
    /// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let poller = base.mock_poller(); // the test's hold on the base's poller
    /// assert_eq!(poller.waits(), 0);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Base::new).
    pub fn new_mock(notifier: C::Notifier, clock: C::Clock, options: Options) -> Result<Self, Error>
    where
        C::Notifier: Clone + Into<Link<Notifier>>,
        C::Clock: Clone + Into<Link<ManualClock>>,
    {
        let poller = mock::Poller::new(notifier.clone(), clock.clone());
        Base::new(notifier, poller, clock, options)
    }

    /// The test's hold on the base's mock poller: script it, read what it registered, and run
    /// the base with it ([`PollerGuard::run`], ...) — optionally with a hook
    /// ([`on_wait`](PollerGuard::on_wait)). The poller goes back into the base when the guard
    /// drops; meanwhile the base's own runs return [`Error::AlreadyRunning`].
    ///
    /// # Panics
    ///
    /// If the poller is not in the base (a run, or another guard, has it): test misuse.
    pub fn mock_poller(&self) -> PollerGuard<'_, C> {
        let poller = self.take_poller().unwrap_or_else(|_| {
            panic!("Base::mock_poller: the poller is out (a run or another guard has it)")
        });
        PollerGuard {
            base: self,
            poller: Some(poller),
            hook: None,
        }
    }

    /// Runs the loop until it is idle: everything active runs, every scripted wait is taken
    /// (moving the clock and firing the timers that fall due meanwhile), and the run returns
    /// where [`run`](Base::run) would block with nothing scripted — waiting for a later timer,
    /// or forever. An interval timer or a pending event therefore no longer keeps the test
    /// running, or fails it with [`SeamError::WOULD_BLOCK_FOREVER`](crate::SeamError::WOULD_BLOCK_FOREVER).
    ///
    /// Before it returns idle, the loop polls once more: the [`on_wait`](PollerGuard::on_wait)
    /// hook runs, and a wake it (or another thread) caused is taken and run.
    ///
    /// Returns [`Exit::Done`] when idle, [`Exit::Empty`] when no event is left, and
    /// [`Exit::Break`] or [`Exit::Exit`] when a callback stopped the loop.
    ///
    /// ```
    /// use core::time::Duration;
    /// use rouse_core::{mock, Base, Event, Exit, Options, Ready};
    ///
    /// static CLOCK: mock::ManualClock = mock::ManualClock::new();
    /// static NOTIFIER: mock::Notifier = mock::Notifier::new();
    ///
    /// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let tick = base.new_event(Event::timer().persist(), |_, _| {}).unwrap();
    /// base.add(tick, Some(Duration::from_millis(10))).unwrap(); // an interval timer
    /// let user = base.new_event(Event::user().persist(), |_, _| {}).unwrap();
    /// base.add(user, None).unwrap();
    /// base.activate(user, Ready::USER).unwrap();
    ///
    /// let mut poller = base.mock_poller();
    /// poller.script(Duration::from_millis(25), &[]); // 25 ms pass, then nothing is scripted
    /// assert_eq!(poller.run_until_idle(), Ok(Exit::Done));
    /// assert_eq!(CLOCK.now_nanos(), 25_000_000); // the ticks at 10 and 20 ms ran
    /// assert_eq!(poller.scripted(), 0);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_until_idle(&self) -> Result<Exit, Error> {
        let mut run = self.start_run(true)?;
        let poller = run.poller.as_mut().expect("taken by start_run");
        self.run_mock(poller, None, Some(Bound::Idle))
    }

    /// Moves the poller's clock forward by `d`, running everything that falls due on the way,
    /// each at its own instant: timers (an interval timer fires once per period), scripted
    /// waits (a batch whose sleep ends within `d` is found; one that ends later is cut, and
    /// the rest of its sleep is left for later), wakes. The clock ends exactly `d` later
    /// (tokio's `time::advance`), unless a callback stops the loop first.
    ///
    /// Returns [`Exit::Done`], [`Exit::Empty`] when no event is left (the clock is still
    /// moved), or [`Exit::Break`] / [`Exit::Exit`] when a callback stopped the loop (the clock
    /// stays where it was then).
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use core::time::Duration;
    /// use rouse_core::{mock, Base, Event, Exit, Options};
    ///
    /// static CLOCK: mock::ManualClock = mock::ManualClock::new();
    /// static NOTIFIER: mock::Notifier = mock::Notifier::new();
    /// static TICKS: AtomicU32 = AtomicU32::new(0);
    ///
    /// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let tick = base
    ///     .new_event(Event::timer().persist(), |_, _| {
    ///         TICKS.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    /// base.add(tick, Some(Duration::from_secs(1))).unwrap();
    ///
    /// assert_eq!(base.advance(Duration::from_millis(3500)), Ok(Exit::Done));
    /// assert_eq!(TICKS.load(Ordering::Relaxed), 3); // at 1, 2 and 3 s
    /// assert_eq!(CLOCK.now_nanos(), 3_500_000_000);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    ///
    /// # Panics
    ///
    /// If the poller has no clock ([`mock::Poller::unlinked`]).
    pub fn advance(&self, d: Duration) -> Result<Exit, Error> {
        let mut run = self.start_run(true)?;
        let poller = run.poller.as_mut().expect("taken by start_run");
        self.advance_on(poller, None, d)
    }

    fn advance_on(
        &self,
        poller: &mut mock::Poller,
        hook: Option<Hook<'_>>,
        d: Duration,
    ) -> Result<Exit, Error> {
        let clock = poller
            .clock()
            .expect("Base::advance: the mock poller has no clock (use Base::new_mock)");
        let until = clock.now().saturating_add(d);
        let r = self.run_mock(poller, hook, Some(Bound::Until(until)));
        if matches!(r, Ok(Exit::Done | Exit::Empty)) {
            if let Some(clock) = poller.clock() {
                clock.advance_to(until);
            }
        }
        r
    }

    /// A run (already marked by a `RunGuard`) on `poller` with `hook`, bounded or not.
    fn run_mock(
        &self,
        poller: &mut mock::Poller,
        hook: Option<Hook<'_>>,
        bound: Option<Bound>,
    ) -> Result<Exit, Error> {
        let mut wrapped = Bounded {
            inner: poller,
            hook,
            bound,
        };
        let flags = RunFlags::UNTIL_EMPTY;
        match self.run_on(&mut wrapped, flags) {
            Err(Error::Poll(IDLE)) if bound.is_some() => Ok(Exit::Done),
            r => r,
        }
    }
}

/// The test's hold on a base's [`mock::Poller`] ([`Base::mock_poller`]): derefs to the poller
/// (script it, read what it registered) and runs the base with it, calling an optional hook at
/// every wait. Dropping it puts the poller back into the base.
///
/// ```
/// use core::time::Duration;
/// use rouse_core::{mock, Base, Event, Exit, Interest, Options, Readiness, Ready, Source};
///
/// static CLOCK: mock::ManualClock = mock::ManualClock::new();
/// static NOTIFIER: mock::Notifier = mock::Notifier::new();
///
/// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
/// let s = Source::new(3);
/// let rx = base.new_event(Event::io(s, Interest::READ), |_, _| {}).unwrap();
/// base.add(rx, None).unwrap();
///
/// let waits = core::cell::Cell::new(0);
/// let hook = |_timeout| waits.set(waits.get() + 1); // "another thread", while the loop waits
/// let mut poller = base.mock_poller().on_wait(&hook);
/// poller.script(Duration::from_millis(5), &[Readiness::Io(s, Ready::READ)]);
/// assert_eq!(poller.run(), Ok(Exit::Empty));
/// assert_eq!(poller.registered(s), Interest::NONE); // registered, then deleted
/// assert_eq!(waits.get(), 1);
/// drop(poller);
/// assert_eq!(base.run(), Ok(Exit::Empty)); // the base has its poller back
/// ```
pub struct PollerGuard<'b, C: Config<Poller = mock::Poller>> {
    base: &'b Base<C>,
    poller: Option<mock::Poller>,
    hook: Option<Hook<'b>>,
}

impl<C: Config<Poller = mock::Poller>> fmt::Debug for PollerGuard<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollerGuard")
            .field("poller", &self.poller)
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Config<Poller = mock::Poller>> Deref for PollerGuard<'_, C> {
    type Target = mock::Poller;
    fn deref(&self) -> &mock::Poller {
        self.poller.as_ref().expect("held until dropped")
    }
}

impl<C: Config<Poller = mock::Poller>> DerefMut for PollerGuard<'_, C> {
    fn deref_mut(&mut self) -> &mut mock::Poller {
        self.poller.as_mut().expect("held until dropped")
    }
}

impl<C: Config<Poller = mock::Poller>> Drop for PollerGuard<'_, C> {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            self.base.put_poller(p);
        }
    }
}

impl<'b, C: Config<Poller = mock::Poller>> PollerGuard<'b, C> {
    /// Calls `hook` at the start of every wait of this guard's runs, while the loop is
    /// blocked: what it does to the base is what "another thread" would do at that moment
    /// (the base is `polling`). Time it moves the clock by is spent inside the wait.
    pub fn on_wait(mut self, hook: &'b dyn Fn(Option<Duration>)) -> Self {
        self.hook = Some(hook);
        self
    }

    /// [`Base::run`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run(&mut self) -> Result<Exit, Error> {
        self.run_with(RunFlags::UNTIL_EMPTY)
    }

    /// [`Base::run_once`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run_once(&mut self) -> Result<Exit, Error> {
        self.run_with(RunFlags::ONCE)
    }

    /// [`Base::run_nonblocking`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run_nonblocking(&mut self) -> Result<Exit, Error> {
        self.run_with(RunFlags::NONBLOCK)
    }

    /// [`Base::run_forever`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run_forever(&mut self) -> Result<Exit, Error> {
        self.run_with(RunFlags::FOREVER)
    }

    /// [`Base::run_with`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run_with(&mut self, flags: RunFlags) -> Result<Exit, Error> {
        let base = self.base;
        let _run = base.start_run(false)?;
        let mut wrapped = Bounded {
            inner: self.poller.as_mut().expect("held until dropped"),
            hook: self.hook,
            bound: None,
        };
        base.run_on(&mut wrapped, flags)
    }

    /// [`Base::run_until_idle`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    pub fn run_until_idle(&mut self) -> Result<Exit, Error> {
        let base = self.base;
        let _run = base.start_run(false)?;
        let poller = self.poller.as_mut().expect("held until dropped");
        base.run_mock(poller, self.hook, Some(Bound::Idle))
    }

    /// [`Base::advance`] with this poller (and hook).
    ///
    /// # Errors
    ///
    /// As [`Base::run`].
    ///
    /// # Panics
    ///
    /// As [`Base::advance`].
    pub fn advance(&mut self, d: Duration) -> Result<Exit, Error> {
        let base = self.base;
        let _run = base.start_run(false)?;
        let poller = self.poller.as_mut().expect("held until dropped");
        base.advance_on(poller, self.hook, d)
    }

    /// [`Base::apply_changes`] to this poller.
    pub fn apply_changes(&mut self) {
        let base = self.base;
        let poller = self.poller.as_mut().expect("held until dropped");
        base.with(|st| st.apply_changes(&base.words, poller));
    }
}
