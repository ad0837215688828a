//! The loop (libevent's `event_base_loop`): apply interest changes, wait, collect readiness and
//! due timers, run callbacks one priority level at a time, repeat.

use core::time::Duration;

use crate::event::{Fired, Key};
use crate::options::{Exit, RunFlags};
use crate::seam::{Callback, Clock, Config, Lock, Poller};
use crate::state::{BaseState, NO_TIME};
use crate::sync::{fence, spin_loop, Ordering};
use crate::Error;

use super::Base;

enum Step {
    Stop(Exit),
    /// Poll with this timeout; `polling` is already set if it blocks.
    Wait(Option<Duration>),
    /// Spin up to this long watching for requests (the activity snapshot is the second field),
    /// then block with the timeout.
    Spin(Duration, u32, Option<Duration>),
}

/// Marks the loop as not running when the run ends, by return or by a callback's panic, and
/// puts the poller back (under the same lock).
pub(crate) struct RunGuard<'a, C: Config> {
    base: &'a Base<C>,
    /// The base's poller, taken for the run (`None` if the run's caller holds it: a mock's
    /// guard).
    pub poller: Option<C::Poller>,
}

impl<C: Config> Drop for RunGuard<'_, C> {
    fn drop(&mut self) {
        let poller = self.poller.take();
        let waiters = self.base.with(|st| {
            if poller.is_some() {
                st.poller = poller;
            }
            // Timeouts added during the last pass start now (the time rule).
            st.start_timers(|| self.base.clock.now().as_nanos());
            st.ctl.running = false;
            st.pass = None;
            st.wake.leave_poll();
            st.spin.reset();
            st.waiters > 0
        });
        if waiters {
            C::Lock::wake_all(&self.base.state);
        }
    }
}

/// Holds a running callback; if the callback panics, puts the base back in order (the
/// callback goes back to its slot, the event stops being "running", waiters are woken).
struct JobGuard<'a, C: Config> {
    base: &'a Base<C>,
    idx: u32,
    finalizer: bool,
    cb: Option<C::Callback>,
}

impl<C: Config> Drop for JobGuard<'_, C> {
    #[inline]
    fn drop(&mut self) {
        // On the normal path the loop took the callback back: nothing to do, inline.
        if let Some(cb) = self.cb.take() {
            self.unwind(cb);
        }
    }
}

impl<C: Config> JobGuard<'_, C> {
    /// The callback panicked: put it back under the lock (the panic goes on afterwards).
    #[cold]
    #[inline(never)]
    fn unwind(&self, cb: C::Callback) {
        let base = self.base;
        let (rest, waiters) = base.with(|st| {
            let rest = st.end(&base.words, self.idx, cb, self.finalizer);
            (rest, st.waiters > 0)
        });
        drop(rest);
        if waiters {
            C::Lock::wake_all(&base.state);
        }
    }
}

impl<C: Config> Base<C> {
    /// Runs the loop until no event is pending or active, or a break or exit.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] if a run is in progress (or the loop owner has the poller out:
    /// [`with_poller`](Base::with_poller)); [`Error::Poll`] if the poller fails.
    /// A panic in a callback propagates to the caller; the base stays consistent and usable.
    pub fn run(&self) -> Result<Exit, Error> {
        self.run_with(RunFlags::UNTIL_EMPTY)
    }

    /// Blocks until something is active, runs the active callbacks, returns.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_once(&self) -> Result<Exit, Error> {
        self.run_with(RunFlags::ONCE)
    }

    /// Polls without blocking and runs everything that is or becomes active, then returns.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_nonblocking(&self) -> Result<Exit, Error> {
        self.run_with(RunFlags::NONBLOCK)
    }

    /// Runs until a break or an exit, even with no event pending.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_forever(&self) -> Result<Exit, Error> {
        self.run_with(RunFlags::FOREVER)
    }

    /// Runs the loop as `flags` say.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_with(&self, flags: RunFlags) -> Result<Exit, Error> {
        let mut run = self.start_run(true)?;
        let poller = run.poller.as_mut().expect("taken by start_run");
        self.run_on(poller, flags)
    }

    /// Marks the loop as running on this thread and, if `take`, takes the poller for the run.
    /// The run ends when the guard drops.
    pub(crate) fn start_run(&self, take: bool) -> Result<RunGuard<'_, C>, Error> {
        let me = C::thread_id();
        let poller = self.with(|st| {
            if st.ctl.running || (take && st.poller.is_none()) {
                return Err(Error::AlreadyRunning);
            }
            st.ctl.running = true;
            st.ctl.loop_thread = me;
            st.ctl.grid_from = NO_TIME;
            Ok(if take { st.poller.take() } else { None })
        })?;
        Ok(RunGuard { base: self, poller })
    }

    /// The loop, on `poller` (the base's, or a mock's wrapper of it), while a [`RunGuard`]
    /// marks the run.
    pub(crate) fn run_on(&self, poller: &mut impl Poller, flags: RunFlags) -> Result<Exit, Error> {
        loop {
            let step = self.with(|st| plan(st, &self.words, poller, flags, &self.clock));
            let waited = match step {
                Step::Stop(exit) => return Ok(exit),
                Step::Wait(t) => Some(poller.wait(t)),
                // `None`: a change arrived while spinning: run it now and poll next time round
                // (so I/O is still polled at least every other iteration).
                Step::Spin(spin, seen, t) => {
                    self.spin_then_commit(spin, seen, t).map(|t| poller.wait(t))
                }
            };
            let (batch, stop) = self.with(|st| {
                if st.wake.failed() {
                    self.wake_failed.store(0, Ordering::Relaxed);
                }
                st.wake.leave_poll();
                if waited.is_some() {
                    // Inline into the poller's loop: the handler is the per-event hot path.
                    poller.ready(
                        #[inline(always)]
                        |r| st.on_ready(&self.words, r, &self.notifier),
                    );
                }
                // The clock is read after the wait (and only if a deadline is armed, or the
                // adaptive spin times a blocking wait): a timer is due only if its deadline is
                // not after a time the poller had reached, so it never fires early.
                st.ctl.grid_from = NO_TIME;
                let mut timing = st.spin.timing();
                if timing && !st.wake.notified() {
                    st.spin.woke_unnotified(); // no evidence: no reading for it
                    timing = false;
                }
                if timing || st.next_deadline().is_some() {
                    let now = self.clock.now().as_nanos();
                    if timing {
                        st.spin.woke(now, true);
                    }
                    if st.next_deadline().is_some() {
                        st.expire(&self.words, now);
                        st.ctl.grid_from = st.next_deadline().unwrap_or(NO_TIME);
                    }
                }
                // What the last pass queued at its priority or below runs now, after this
                // poll and these timers: a self-activating event cannot starve them.
                st.promote_later();
                let batch = first_batch(st);
                let stop = if batch.is_none() { take_stop(st) } else { None };
                (batch, stop)
            });
            if let Some(Err(e)) = waited {
                return Err(Error::Poll(e));
            }
            if let Some(exit) = stop {
                return Ok(exit);
            }
            if let Some(batch) = batch {
                let (ran, stop, idle) = self.process_active(batch);
                if let Some(exit) = stop {
                    return Ok(exit);
                }
                if flags.once && ran > 0 && idle {
                    return Ok(Exit::Done);
                }
            } else if flags.nonblock {
                return Ok(Exit::Done);
            }
        }
    }

    /// Spins up to `spin` while no request is made, then commits to blocking: under the lock,
    /// if still nothing changed, sets `polling` (from then on a change writes the notifier).
    /// Returns the timeout to block with, or `None` if a change arrived (go round again).
    fn spin_then_commit(
        &self,
        spin: Duration,
        seen: u32,
        timeout: Option<Duration>,
    ) -> Option<Option<Duration>> {
        let start = self.clock.now();
        let end = start.saturating_add(spin);
        // A clock that does not move (a mock) still ends the spin: bound the iterations too.
        let max = (spin.as_nanos() / 2).clamp(16, 1 << 20) as u32;
        let mut i = 0u32;
        while self.activity.load(Ordering::Relaxed) == seen {
            i += 1;
            if i >= max || (i.is_multiple_of(16) && self.clock.now() >= end) {
                break;
            }
            spin_loop();
        }
        let now = self.clock.now();
        let spent = now.saturating_duration_since(start);
        self.with(|st| {
            let hit = st.wake.stats.requests as u32 != seen;
            st.wake.stats.spin_hits += u64::from(hit);
            if st.spin.adaptive() {
                st.spin
                    .spun(hit, u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX));
            }
            if hit {
                return None;
            }
            st.wake.enter_poll();
            if st.spin.adaptive() {
                st.spin.blocking(now.as_nanos());
            }
            Some(timeout.map(|t| t.saturating_sub(spent)))
        })
    }

    /// Runs callbacks of the highest priority that has any (one pass). After a level ran
    /// callbacks the loop polls again before lower levels (libevent's rule), so a newly active
    /// higher-priority event is never starved. During the pass, an activation of higher
    /// priority ends it after the current callback, and one at its priority or below waits
    /// for the next poll (`BaseState::enqueue`). Returns how many ran, a break or exit
    /// requested meanwhile (consumed: it ends this run), and whether nothing is left queued.
    fn process_active(&self, batch: Batch) -> (usize, Option<Exit>, bool) {
        let Batch {
            prio,
            max,
            limit_time,
        } = batch;
        let end = limit_time.map(|d| self.clock.now().saturating_add(d));
        let mut count = 0u32;
        let mut done: Option<(u32, C::Callback, bool)> = None;
        loop {
            let stop = count >= max || end.is_some_and(|end| self.clock.now() >= end);
            let (job, rest, waiters, end_state) = self.with(|st| {
                let rest = done
                    .take()
                    .and_then(|(idx, cb, fin)| st.end(&self.words, idx, cb, fin));
                let job = if stop || st.ctl.brk || st.ctl.cont {
                    None
                } else {
                    st.begin(&self.words, prio, &self.clock)
                };
                // While the pass runs, activations at `prio` or below wait for the next poll,
                // and one of higher priority ends the pass (`BaseState::enqueue`).
                st.pass = job.as_ref().map(|_| prio);
                let end_state = job.is_none().then(|| (take_stop(st), st.n_active == 0));
                (job, rest, st.waiters > 0, end_state)
            });
            drop(rest); // user state is dropped outside the lock
            if waiters {
                C::Lock::wake_all(&self.state);
            }
            let Some(job) = job else {
                let (stop, idle) = end_state.unwrap_or((None, false));
                return (count as usize, stop, idle);
            };
            // Pairs with the fence in `activate`: the word was cleared before this point, so an
            // activation that still saw it queued wrote its data before this callback reads.
            fence(Ordering::SeqCst);
            let fired = Fired {
                key: Key::new(self.id, job.idx, job.gen),
                ready: job.ready,
                tag: job.tag,
            };
            let mut guard = JobGuard {
                base: self,
                idx: job.idx,
                finalizer: job.finalizer,
                cb: Some(job.cb),
            };
            if let Some(cb) = guard.cb.as_mut() {
                cb.call(self, fired);
            }
            done = guard.cb.take().map(|cb| (job.idx, cb, job.finalizer));
            count += 1;
        }
    }
}

/// The priority level the loop runs next, and its limits.
struct Batch {
    prio: u8,
    max: u32,
    limit_time: Option<Duration>,
}

fn first_batch<C: Config>(st: &BaseState<C>) -> Option<Batch> {
    let prio = st.first_active_priority()?;
    let limited = prio >= st.opts.limit_from;
    Some(Batch {
        prio,
        max: if limited {
            st.opts.max_callbacks
        } else {
            u32::MAX
        },
        limit_time: if limited { st.opts.max_interval } else { None },
    })
}

/// Consumes a pending break or exit request.
fn take_stop<C: Config>(st: &mut BaseState<C>) -> Option<Exit> {
    if st.ctl.brk {
        st.ctl.brk = false;
        Some(Exit::Break)
    } else if st.ctl.exit {
        st.ctl.exit = false;
        Some(Exit::Exit)
    } else {
        None
    }
}

/// The locked part of an iteration before the wait: control requests, interest changes, the
/// timeout, and the `polling` flag (set only if the loop is going to block).
fn plan<C: Config>(
    st: &mut BaseState<C>,
    words: &crate::state::WordsOf<C>,
    poller: &mut impl Poller,
    flags: RunFlags,
    clock: &impl Clock,
) -> Step {
    st.ctl.cont = false;
    if let Some(exit) = take_stop(st) {
        return Step::Stop(exit);
    }
    st.apply_changes(words, poller);
    // The timeouts added since the last reading start now, before the wait is planned.
    let read = st.start_timers(|| clock.now().as_nanos());
    if !flags.forever && !st.has_events() && st.next_deadline().is_none() {
        return Step::Stop(Exit::Empty);
    }
    let timeout = if flags.nonblock || st.n_active > 0 {
        Some(Duration::ZERO)
    } else {
        st.next_deadline().map(|at| {
            let now = read.unwrap_or_else(|| clock.now().as_nanos());
            // A deadline already past is due now, unless it waited through the last
            // wake-up's expiry and fell due since, while callbacks ran: that one waits for
            // its grid point like any other, so the timers of one grid step share a wake-up
            // rather than each costing a poll without a wait. Rounding up a timeout added
            // since would make one that started late wait for the next grid point (with a
            // coarse clock, whose reading at the add lags, every short timeout would).
            if at <= now && at < st.ctl.grid_from {
                Duration::ZERO
            } else {
                Duration::from_nanos(on_grid(at, st.opts.timer_slack).saturating_sub(now))
            }
        })
    };
    if timeout == Some(Duration::ZERO) {
        return Step::Wait(timeout);
    }
    // The fixed spin, or what the adaptive one says now (one clock reading, only if adaptive;
    // the same reading marks the start of the blocking wait it times).
    let now = st.spin.sample().then(|| clock.now().as_nanos());
    let spin = match now {
        Some(now) => Duration::from_nanos(st.spin.plan(now)),
        None if st.spin.adaptive() => Duration::ZERO,
        None => st.opts.spin,
    };
    let spin = timeout.map_or(spin, |t| t.min(spin));
    if !spin.is_zero() {
        st.wake.stats.spins += 1;
        return Step::Spin(spin, st.wake.stats.requests as u32, timeout);
    }
    st.wake.enter_poll();
    if let Some(now) = now {
        st.spin.blocking(now);
    }
    Step::Wait(timeout)
}

/// `at` moved up to the next multiple of `slack` (itself if it is one, or if `slack` is 0):
/// where a wait for deadline `at` ends ([`Options::timer_slack`](crate::Options::timer_slack)).
#[inline]
fn on_grid(at: u64, slack: u64) -> u64 {
    if slack == 0 {
        return at;
    }
    match at % slack {
        0 => at,
        r => at.saturating_add(slack - r),
    }
}
