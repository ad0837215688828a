//! Driving a base on the mocks: a linked mock poller, and runs that end when the test's script
//! does (tokio's paused time: `time::advance`).

use core::borrow::Borrow;
use core::time::Duration;

use crate::mock::{self, ManualClock, Notifier};
use crate::options::Exit;
use crate::seam::{Clock, Config};
use crate::Error;

use super::Base;

impl<C: Config> Base<C>
where
    C::Notifier: Borrow<Notifier>,
    C::Clock: Borrow<ManualClock>,
{
    /// A [`mock::Poller`] linked to this base's mock notifier and clock: its waits move the
    /// clock and end at once with a wake when another thread notifies.
    ///
    /// ```
    /// use rouse_core::{mock, Base, Options};
    ///
    /// static CLOCK: mock::ManualClock = mock::ManualClock::new();
    /// static NOTIFIER: mock::Notifier = mock::Notifier::new();
    ///
    /// let base: Base<mock::Mock> = Base::new(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let poller = base.mock_poller();
    /// # let _ = poller;
    /// ```
    pub fn mock_poller(&self) -> mock::Poller<'_> {
        mock::Poller::new(self.notifier().borrow(), self.clock().borrow())
    }
}

impl<C: Config> Base<C> {
    /// Runs the loop until it is idle: everything active runs, every scripted wait is taken
    /// (moving the clock and firing the timers that fall due meanwhile), and the run returns
    /// where [`run`](Base::run) would block with nothing scripted — waiting for a later timer,
    /// or forever. An interval timer or a pending event therefore no longer keeps the test
    /// running, or fails it with [`SeamError::WouldBlockForever`](crate::SeamError::WouldBlockForever).
    ///
    /// Before it returns idle, the loop polls once more: the [`on_wait`](mock::Poller::on_wait)
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
    /// let base: Base<mock::Mock> = Base::new(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let tick = base.new_event(Event::timer().persist(), |_, _| {}).unwrap();
    /// base.add(tick, Some(Duration::from_millis(10))).unwrap(); // an interval timer
    /// let user = base.new_event(Event::user().persist(), |_, _| {}).unwrap();
    /// base.add(user, None).unwrap();
    /// base.activate(user, Ready::USER).unwrap();
    ///
    /// let mut poller = base.mock_poller();
    /// poller.script(Duration::from_millis(25), &[]); // 25 ms pass, then nothing is scripted
    /// assert_eq!(base.run_until_idle(&mut poller), Ok(Exit::Done));
    /// assert_eq!(CLOCK.now_nanos(), 25_000_000); // the ticks at 10 and 20 ms ran
    /// assert_eq!(poller.scripted(), 0);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_until_idle(&self, poller: &mut mock::Poller<'_>) -> Result<Exit, Error> {
        self.run_bounded(poller, None)
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
    /// let base: Base<mock::Mock> = Base::new(&NOTIFIER, &CLOCK, Options::new()).unwrap();
    /// let tick = base
    ///     .new_event(Event::timer().persist(), |_, _| {
    ///         TICKS.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .unwrap();
    /// base.add(tick, Some(Duration::from_secs(1))).unwrap();
    ///
    /// let mut poller = base.mock_poller();
    /// assert_eq!(base.advance(&mut poller, Duration::from_millis(3500)), Ok(Exit::Done));
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
    /// If `poller` has no clock ([`mock::Poller::unlinked`]).
    pub fn advance(&self, poller: &mut mock::Poller<'_>, d: Duration) -> Result<Exit, Error> {
        let clock = poller
            .clock()
            .expect("Base::advance: the mock poller has no clock (use Base::mock_poller)");
        let until = clock.now().saturating_add(d);
        let r = self.run_bounded(poller, Some(until));
        if matches!(r, Ok(Exit::Done | Exit::Empty)) {
            clock.advance_to(until);
        }
        r
    }

    fn run_bounded(
        &self,
        poller: &mut mock::Poller<'_>,
        until: Option<crate::Instant>,
    ) -> Result<Exit, Error> {
        let mut bounded = mock::poller::Bounded {
            inner: poller,
            until,
        };
        match self.run(&mut bounded) {
            Err(Error::Poll(mock::poller::IDLE)) => Ok(Exit::Done),
            r => r,
        }
    }
}
