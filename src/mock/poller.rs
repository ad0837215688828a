//! A poller that returns what the test scripted, and keeps time like a real one.

use core::time::Duration;

use crate::seam::{Clock, Instant, Interest, Readiness, Source};
use crate::SeamError;

use super::{ManualClock, Notifier};

/// `update` with an `old` interest that differs from what the mock has registered (a base
/// that registers a source the poller has, or modifies one it does not, breaks the
/// [contract](crate::Poller#contract); the base says [`reset`](crate::Poller::reset) when it
/// does not know).
pub const STALE_OLD_INTEREST: SeamError = SeamError::other(3);
/// `update` that would register more sources than a mock poller without the `alloc` feature
/// holds ([`Poller`]'s limits); the base activates the source's events with
/// [`Ready::ERROR`](crate::Ready::ERROR) and counts it in
/// [`Base::poll_errors`](crate::Base::poll_errors).
pub const TOO_MANY_SOURCES: SeamError = SeamError::other(4);
/// The bounded runs' own stop signal ([`Base::run_until_idle`](crate::Base::run_until_idle),
/// [`Base::advance`](crate::Base::advance)); never returned to their caller.
pub(crate) const IDLE: SeamError = SeamError::other(u16::MAX);

/// The fixed capacities of a mock poller built without the `alloc` feature.
#[cfg(not(feature = "alloc"))]
mod cap {
    pub const FOUND: usize = 16;
    pub const SCRIPT: usize = 32;
    pub const SOURCES: usize = 64;
}

#[cfg(feature = "alloc")]
type Found = alloc::vec::Vec<Readiness>;
#[cfg(not(feature = "alloc"))]
type Found = heapless::Vec<Readiness, { cap::FOUND }>;

#[cfg(feature = "alloc")]
type Script = alloc::collections::VecDeque<Batch>;
#[cfg(not(feature = "alloc"))]
type Script = heapless::Deque<Batch, { cap::SCRIPT }>;

#[cfg(feature = "alloc")]
type Registered = alloc::collections::BTreeMap<Source, Interest>;
#[cfg(not(feature = "alloc"))]
type Registered = heapless::Vec<(Source, Interest), { cap::SOURCES }>;

/// How a mock poller reaches the base's notifier or clock: a `&'static` (the [`Mock`](super::Mock)
/// config's) or an `Arc` (feature `alloc`, [`BoxedMock`](super::BoxedMock)'s).
#[derive(Debug)]
pub enum Link<T: 'static> {
    /// A `static`'s.
    Static(&'static T),
    /// A shared one's.
    #[cfg(feature = "alloc")]
    Shared(alloc::sync::Arc<T>),
}

impl<T> Link<T> {
    fn get(&self) -> &T {
        match self {
            Link::Static(t) => t,
            #[cfg(feature = "alloc")]
            Link::Shared(t) => t,
        }
    }
}

impl<T> From<&'static T> for Link<T> {
    fn from(t: &'static T) -> Link<T> {
        Link::Static(t)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<alloc::sync::Arc<T>> for Link<T> {
    fn from(t: alloc::sync::Arc<T>) -> Link<T> {
        Link::Shared(t)
    }
}

#[cfg(feature = "alloc")]
impl<T> From<&alloc::sync::Arc<T>> for Link<T> {
    fn from(t: &alloc::sync::Arc<T>) -> Link<T> {
        Link::Shared(t.clone())
    }
}

#[derive(Debug)]
struct Batch {
    sleep: Duration,
    found: Found,
}

/// A scripted poller: every [`wait`](crate::Poller::wait) takes the next scripted batch (see
/// [`script`](Poller::script)), and time passes on the linked [`ManualClock`] as it would for a
/// real poller.
///
/// # Time
///
/// A wait that starts at `t0` with timeout `T` ends by `t0 + T`, as a real poller returns at
/// its timeout:
///
/// - A batch scripted with `sleep` is found at `t0 + sleep`. If that is after `t0 + T`, the
///   wait times out at `t0 + T` with nothing found and the rest of the batch's sleep belongs to
///   the next wait (the batch stays scripted, its sleep shortened by `T`). A zero-timeout poll
///   therefore only takes batches scripted with a zero sleep.
/// - With nothing scripted, the wait sleeps until `t0 + T`; with no timeout either, it fails
///   with [`SeamError::WOULD_BLOCK_FOREVER`] instead of hanging the test.
/// - Time the [`on_wait`](crate::mock::PollerGuard::on_wait) hook moves the clock by is time spent inside the
///   wait: it counts toward the timeout. A hook that moves the clock past `t0 + T` makes a
///   late wake-up (as an overloaded machine does); nothing moves the clock back.
///
/// # Wakes
///
/// The poller is linked to the base's [`Notifier`] by construction ([`Poller::new`],
/// [`Base::new_mock`](crate::Base::new_mock)): a wait that starts while the notifier is
/// signalled (another thread, or the hook, changed what the loop must do) returns at once with
/// [`Readiness::Wake`], as a real poller returns when its wakeup fd becomes readable.
///
/// # Interest changes
///
/// Every change is counted ([`updates`](Poller::updates), [`resets`](Poller::resets)) and an
/// `update`'s `old` is checked against what the poller has ([`STALE_OLD_INTEREST`]).
///
/// # Limits
///
/// With the `alloc` feature (the default), none: the script, the readiness of one wait and the
/// registered sources grow as needed. Without it, a poller holds 32 scripted waits of at most
/// 16 readinesses each ([`script`](Poller::script) panics beyond that, naming the limit) and 64
/// registered sources (the 65th is refused with [`TOO_MANY_SOURCES`]). Signals below 128.
///
/// ```
/// use core::time::Duration;
/// use rouse_core::{mock, Base, Event, Exit, Options};
///
/// static CLOCK: mock::ManualClock = mock::ManualClock::new();
/// static NOTIFIER: mock::Notifier = mock::Notifier::new();
///
/// let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
/// let t = base.new_event(Event::timer(), |_, _| {}).unwrap();
/// base.add(t, Some(Duration::from_millis(10))).unwrap();
///
/// let mut poller = base.mock_poller(); // the base's, linked to NOTIFIER and CLOCK
/// poller.script(Duration::from_millis(15), &[]); // longer than the timer's timeout
/// assert_eq!(poller.run(), Ok(Exit::Empty));
/// assert_eq!(CLOCK.now_nanos(), 10_000_000); // the wait returned at its timeout
/// assert_eq!(poller.scripted(), 1); // 5 ms of that sleep are left for the next wait
/// ```
pub struct Poller {
    clock: Option<Link<ManualClock>>,
    notifier: Option<Link<Notifier>>,
    script: Script,
    found: Found,
    registered: Registered,
    signals: u128,
    updates: u32,
    resets: u32,
    waits: u32,
    last_timeout: Option<Option<Duration>>,
    fail_update: Option<SeamError>,
}

impl core::fmt::Debug for Poller {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("mock::Poller")
            .field("scripted", &self.script.len())
            .field("registered", &self.registered)
            .field("updates", &self.updates)
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl Poller {
    /// A poller linked to the base's `notifier` (a signalled notifier ends a wait with
    /// [`Readiness::Wake`]) and `clock` (waits move it), with nothing scripted: give it the
    /// base's own (`&'static` or `Arc`), as [`Base::new_mock`](crate::Base::new_mock) does.
    pub fn new(notifier: impl Into<Link<Notifier>>, clock: impl Into<Link<ManualClock>>) -> Poller {
        Poller {
            clock: Some(clock.into()),
            notifier: Some(notifier.into()),
            ..Poller::unlinked()
        }
    }

    /// A poller linked to nothing, for tests of the poller alone or of interest changes: its
    /// waits move no clock and never see a cross-thread wake (a loop run with it sleeps
    /// through one). Prefer [`Poller::new`].
    pub fn unlinked() -> Poller {
        Poller {
            clock: None,
            notifier: None,
            script: Script::new(),
            found: Found::new(),
            registered: Registered::new(),
            signals: 0,
            updates: 0,
            resets: 0,
            waits: 0,
            last_timeout: None,
            fail_update: None,
        }
    }

    /// Scripts the next wait that has not been scripted yet: it finds `found` after `sleep`
    /// (or times out first; see [Time](Poller#time)).
    ///
    /// # Panics
    ///
    /// Without the `alloc` feature, if more than 32 waits are scripted or a wait finds more
    /// than 16 things (test misuse).
    pub fn script(&mut self, sleep: Duration, found: &[Readiness]) -> &mut Self {
        #[cfg(feature = "alloc")]
        {
            self.script.push_back(Batch {
                sleep,
                found: found.into(),
            });
        }
        #[cfg(not(feature = "alloc"))]
        {
            let found = Found::from_slice(found)
                .expect("mock::Poller::script: at most 16 readinesses per wait without `alloc`");
            if self.script.push_back(Batch { sleep, found }).is_err() {
                panic!("mock::Poller::script: at most 32 scripted waits without `alloc`");
            }
        }
        self
    }

    /// Makes the next `update` fail with `e`.
    pub fn fail_next_update(&mut self, e: SeamError) {
        self.fail_update = Some(e);
    }

    /// What the poller has registered for `source`.
    pub fn registered(&self, source: Source) -> Interest {
        #[cfg(feature = "alloc")]
        {
            self.registered
                .get(&source)
                .copied()
                .unwrap_or(Interest::NONE)
        }
        #[cfg(not(feature = "alloc"))]
        {
            self.registered
                .iter()
                .find(|(s, _)| *s == source)
                .map_or(Interest::NONE, |(_, i)| *i)
        }
    }

    /// Whether signal `n` is watched.
    pub fn watches_signal(&self, n: u32) -> bool {
        n < 128 && self.signals & (1 << n) != 0
    }

    /// Interest changes applied so far (what a real poller would pay a syscall for).
    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// How many of the [`updates`](Poller::updates) were [`reset`](crate::Poller::reset)s
    /// (the base did not know what was registered).
    pub fn resets(&self) -> u32 {
        self.resets
    }

    /// Waits so far.
    pub fn waits(&self) -> u32 {
        self.waits
    }

    /// The timeout of the last wait (`None` before the first).
    pub fn last_timeout(&self) -> Option<Option<Duration>> {
        self.last_timeout
    }

    /// Scripted waits not yet taken (a batch whose sleep was cut by a timeout still counts).
    pub fn scripted(&self) -> usize {
        self.script.len()
    }

    /// The linked clock.
    pub(crate) fn clock(&self) -> Option<&ManualClock> {
        self.clock.as_ref().map(Link::get)
    }

    /// Whether the last wait found nothing.
    pub(crate) fn found_nothing(&self) -> bool {
        self.found.is_empty()
    }

    /// Sets what [`last_timeout`](Poller::last_timeout) reports.
    pub(crate) fn set_last_timeout(&mut self, t: Option<Duration>) {
        self.last_timeout = Some(t);
    }

    /// Registers `new` for `source` (nothing if empty): one interest change.
    fn set(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        self.forget(source);
        if !new.is_empty() {
            self.remember(source, new)?;
        }
        self.updates += 1;
        Ok(())
    }

    fn forget(&mut self, source: Source) {
        #[cfg(feature = "alloc")]
        self.registered.remove(&source);
        #[cfg(not(feature = "alloc"))]
        self.registered.retain(|(s, _)| *s != source);
    }

    fn remember(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        #[cfg(feature = "alloc")]
        {
            self.registered.insert(source, new);
            Ok(())
        }
        #[cfg(not(feature = "alloc"))]
        {
            self.registered
                .push((source, new))
                .map_err(|_| TOO_MANY_SOURCES)
        }
    }
}

/// `a` capped at `b` (`None`: no bound).
fn min_timeout(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl crate::seam::Poller for Poller {
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        if let Some(e) = self.fail_update.take() {
            return Err(e);
        }
        // `old` is what the base applied last: it must be what the mock has. `new` empty: a
        // delete, of whatever is there (an fd closed behind the base's back has nothing).
        if !new.is_empty() && self.registered(source) != old {
            return Err(STALE_OLD_INTEREST);
        }
        self.set(source, new)
    }

    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        if let Some(e) = self.fail_update.take() {
            return Err(e);
        }
        self.resets += 1;
        self.set(source, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        if signal >= 128 {
            return Err(SeamError::UNSUPPORTED);
        }
        self.updates += 1;
        if enable {
            self.signals |= 1 << signal;
        } else {
            self.signals &= !(1 << signal);
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        self.wait_hooked(timeout, None)
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        for r in self.found.iter() {
            f(*r);
        }
    }
}

/// The hook of a [`PollerGuard`](super::PollerGuard)'s runs.
pub(crate) type Hook<'h> = &'h dyn Fn(Option<Duration>);

impl Poller {
    /// A wait that calls `hook` first (time it moves the clock by is spent inside the wait).
    pub(crate) fn wait_hooked(
        &mut self,
        timeout: Option<Duration>,
        hook: Option<Hook<'_>>,
    ) -> Result<(), SeamError> {
        self.waits += 1;
        self.last_timeout = Some(timeout);
        self.found.clear();
        let clock = self.clock.as_ref().map(Link::get);
        let start = clock.map_or(Instant::ZERO, |c| c.now());
        let sleep_until = |c: Option<&ManualClock>, d: Duration| {
            if let Some(c) = c {
                c.advance_to(start.saturating_add(d));
            }
        };
        if let Some(hook) = hook {
            hook(timeout);
        }
        if self
            .notifier
            .as_ref()
            .is_some_and(|n| n.get().is_signalled())
        {
            self.found.clear();
            #[cfg(feature = "alloc")]
            self.found.push(Readiness::Wake);
            #[cfg(not(feature = "alloc"))]
            let _ = self.found.push(Readiness::Wake); // capacity 16, just cleared
            return Ok(());
        }
        if let Some(batch) = self.script.front_mut() {
            if let Some(t) = timeout.filter(|t| batch.sleep > *t) {
                // The wait times out first; the rest of the sleep is the next wait's.
                batch.sleep -= t;
                sleep_until(clock, t);
                return Ok(());
            }
            sleep_until(clock, batch.sleep);
            if let Some(batch) = self.script.pop_front() {
                self.found = batch.found;
            }
            return Ok(());
        }
        match timeout {
            Some(t) => {
                sleep_until(clock, t);
                Ok(())
            }
            None => Err(SeamError::WOULD_BLOCK_FOREVER),
        }
    }
}

/// The poller of a run of a [`PollerGuard`](super::PollerGuard) or a bounded run: calls the
/// hook at every wait; if bounded, the loop may block only as far as the script or `until`
/// reaches, and a wait that would go further polls once instead and, if that finds nothing,
/// ends the run with [`IDLE`].
pub(crate) struct Bounded<'p, 'h> {
    pub inner: &'p mut Poller,
    pub hook: Option<Hook<'h>>,
    /// `None`: unbounded (a plain run with a hook).
    pub bound: Option<Bound>,
}

/// How far a bounded run goes.
#[derive(Clone, Copy)]
pub(crate) enum Bound {
    /// [`Base::advance`](crate::Base::advance) to this instant.
    Until(Instant),
    /// Until the script is used up.
    Idle,
}

impl crate::seam::Poller for Bounded<'_, '_> {
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        self.inner.update(source, old, new)
    }

    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        self.inner.reset(source, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        self.inner.watch_signal(signal, enable)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        let cap = match self.bound {
            None => return self.inner.wait_hooked(timeout, self.hook),
            Some(Bound::Until(until)) => {
                let now = self.inner.clock().map_or(Instant::ZERO, |c| c.now());
                Some(until.saturating_duration_since(now))
            }
            Some(Bound::Idle) if self.inner.scripted() == 0 => Some(Duration::ZERO),
            Some(Bound::Idle) => None,
        };
        let t = min_timeout(timeout, cap);
        if t != Some(Duration::ZERO) || timeout == Some(Duration::ZERO) {
            return self.inner.wait_hooked(t, self.hook);
        }
        // The loop would block beyond the bound: one last poll (the hook runs, a wake or a
        // zero-sleep batch is found), and if nothing turns up, the run is idle.
        self.inner.wait_hooked(t, self.hook)?;
        self.inner.set_last_timeout(timeout);
        if self.inner.found_nothing() {
            return Err(IDLE);
        }
        Ok(())
    }

    fn ready(&mut self, f: impl FnMut(Readiness)) {
        self.inner.ready(f)
    }
}
