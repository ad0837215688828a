//! A poller that returns what the test scripted.

use core::time::Duration;

use crate::seam::{Interest, Readiness, Source};

use super::{ManualClock, Notifier};

/// `wait` with no timeout and nothing scripted: a real poller would sleep forever.
pub const WOULD_BLOCK_FOREVER: i32 = -2;
/// `update` with a non-empty `old` interest that differs from what the mock has registered.
pub const STALE_OLD_INTEREST: i32 = -3;

const MAX_FOUND: usize = 16;
const MAX_SCRIPT: usize = 32;
const MAX_SOURCES: usize = 64;

#[derive(Debug)]
struct Batch {
    sleep: Duration,
    found: heapless::Vec<Readiness, MAX_FOUND>,
}

/// A scripted poller.
///
/// Each [`wait`](crate::Poller::wait) takes the next scripted batch (see
/// [`script`](Poller::script)). With nothing scripted, it "sleeps" for the whole timeout by
/// advancing the linked [`ManualClock`] and finds nothing; with no timeout either, it fails
/// with [`WOULD_BLOCK_FOREVER`] instead of hanging the test. A linked [`Notifier`] that was
/// notified makes the wait report [`Readiness::Wake`]. Every interest change is recorded and
/// checked against what the poller last saw.
#[derive(Default)]
pub struct Poller<'a> {
    hook: Option<&'a dyn Fn(Option<Duration>)>,
    clock: Option<&'a ManualClock>,
    notifier: Option<&'a Notifier>,
    script: heapless::Deque<Batch, MAX_SCRIPT>,
    found: heapless::Vec<Readiness, MAX_FOUND>,
    registered: heapless::Vec<(Source, Interest), MAX_SOURCES>,
    signals: u128,
    updates: u32,
    waits: u32,
    last_timeout: Option<Option<Duration>>,
    fail_update: i32,
}

impl core::fmt::Debug for Poller<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("mock::Poller")
            .field("scripted", &self.script.len())
            .field("registered", &self.registered)
            .field("updates", &self.updates)
            .field("waits", &self.waits)
            .finish_non_exhaustive()
    }
}

impl<'a> Poller<'a> {
    /// A poller with nothing scripted.
    pub fn new() -> Poller<'a> {
        Poller::default()
    }

    /// Sleeps on `clock`: an empty wait advances it by the timeout.
    pub fn with_clock(mut self, clock: &'a ManualClock) -> Poller<'a> {
        self.clock = Some(clock);
        self
    }

    /// Calls `hook` at the start of every wait, while the loop is blocked: what it does to the
    /// base is what "another thread" would do at that moment (the base is `polling`).
    pub fn on_wait(mut self, hook: &'a dyn Fn(Option<Duration>)) -> Poller<'a> {
        self.hook = Some(hook);
        self
    }

    /// Reports [`Readiness::Wake`] while `notifier` is signalled.
    pub fn with_notifier(mut self, notifier: &'a Notifier) -> Poller<'a> {
        self.notifier = Some(notifier);
        self
    }

    /// Scripts the next wait: it advances the clock by `sleep` and reports `found`.
    ///
    /// # Panics
    ///
    /// If more than 32 waits are scripted or a wait finds more than 16 things (test misuse).
    pub fn script(&mut self, sleep: Duration, found: &[Readiness]) -> &mut Self {
        let found = heapless::Vec::from_slice(found).expect("mock poller: at most 16 per wait");
        self.script
            .push_back(Batch { sleep, found })
            .expect("mock poller: at most 32 scripted waits");
        self
    }

    /// Makes the next `update` fail with `code`.
    pub fn fail_next_update(&mut self, code: i32) {
        self.fail_update = code;
    }

    /// What the poller has registered for `source`.
    pub fn registered(&self, source: Source) -> Interest {
        self.registered
            .iter()
            .find(|(s, _)| *s == source)
            .map_or(Interest::NONE, |(_, i)| *i)
    }

    /// Whether signal `n` is watched.
    pub fn watches_signal(&self, n: u32) -> bool {
        n < 128 && self.signals & (1 << n) != 0
    }

    /// Interest changes applied so far (what a real poller would pay a syscall for).
    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// Waits so far.
    pub fn waits(&self) -> u32 {
        self.waits
    }

    /// The timeout of the last wait (`None` before the first).
    pub fn last_timeout(&self) -> Option<Option<Duration>> {
        self.last_timeout
    }

    /// Scripted waits not yet taken.
    pub fn scripted(&self) -> usize {
        self.script.len()
    }
}

impl crate::seam::Poller for Poller<'_> {
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), i32> {
        if self.fail_update != 0 {
            return Err(core::mem::take(&mut self.fail_update));
        }
        // `old` empty: the base registers afresh (it forgot, e.g. after fork or an fd number
        // that may have been reused); a real poller heals a registration it still has. `new`
        // empty: a delete, of whatever is there.
        if !old.is_empty() && !new.is_empty() && self.registered(source) != old {
            return Err(STALE_OLD_INTEREST);
        }
        self.updates += 1;
        self.registered.retain(|(s, _)| *s != source);
        if !new.is_empty() {
            self.registered
                .push((source, new))
                .map_err(|_| crate::Error::UNSUPPORTED)?;
        }
        Ok(())
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), i32> {
        if signal >= 128 {
            return Err(crate::Error::UNSUPPORTED);
        }
        self.updates += 1;
        if enable {
            self.signals |= 1 << signal;
        } else {
            self.signals &= !(1 << signal);
        }
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), i32> {
        self.waits += 1;
        self.last_timeout = Some(timeout);
        self.found.clear();
        if let Some(hook) = self.hook {
            hook(timeout);
        }
        if self.notifier.is_some_and(|n| n.is_signalled()) {
            let _ = self.found.push(Readiness::Wake);
            return Ok(());
        }
        if let Some(batch) = self.script.pop_front() {
            if let Some(c) = self.clock {
                c.advance(batch.sleep);
            }
            self.found = batch.found;
            return Ok(());
        }
        match (timeout, self.clock) {
            (Some(t), Some(c)) => {
                c.advance(t);
                Ok(())
            }
            (Some(_), None) => Ok(()),
            (None, _) => Err(WOULD_BLOCK_FOREVER),
        }
    }

    fn ready(&mut self, mut f: impl FnMut(Readiness)) {
        for r in self.found.iter() {
            f(*r);
        }
    }
}
