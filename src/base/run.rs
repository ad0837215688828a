//! The loop (libevent's `event_base_loop`): apply interest changes, wait, collect readiness and
//! due timers, run callbacks one priority level at a time, repeat.

use core::time::Duration;

use crate::event::{Fired, Key};
use crate::options::{Exit, RunFlags};
use crate::seam::{Callback, Clock, Config, Lock, Poller};
use crate::state::BaseState;
use crate::sync::{fence, Ordering};
use crate::Error;

use super::Base;

enum Step {
    Stop(Exit),
    Wait(Option<Duration>),
}

/// Marks the loop as not running when the run ends, by return or by a callback's panic.
struct RunGuard<'a, C: Config>(&'a Base<C>);

impl<C: Config> Drop for RunGuard<'_, C> {
    fn drop(&mut self) {
        let waiters = self.0.with(|st| {
            st.ctl.running = false;
            st.wake.leave_poll();
            st.waiters > 0
        });
        if waiters {
            C::Lock::wake_all(&self.0.state);
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
    fn drop(&mut self) {
        if let Some(cb) = self.cb.take() {
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
}

impl<C: Config> Base<C> {
    /// Runs the loop until no event is pending or active, or a break or exit.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] if a run is in progress; [`Error::Poll`] if the poller fails.
    /// A panic in a callback propagates to the caller; the base stays consistent and usable.
    pub fn run(&self, poller: &mut impl Poller) -> Result<Exit, Error> {
        self.run_with(poller, RunFlags::UNTIL_EMPTY)
    }

    /// Blocks until something is active, runs the active callbacks, returns.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_once(&self, poller: &mut impl Poller) -> Result<Exit, Error> {
        self.run_with(poller, RunFlags::ONCE)
    }

    /// Polls without blocking and runs everything that is or becomes active, then returns.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_nonblocking(&self, poller: &mut impl Poller) -> Result<Exit, Error> {
        self.run_with(poller, RunFlags::NONBLOCK)
    }

    /// Runs until a break or an exit, even with no event pending.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_forever(&self, poller: &mut impl Poller) -> Result<Exit, Error> {
        self.run_with(poller, RunFlags::FOREVER)
    }

    /// Runs the loop as `flags` say.
    ///
    /// # Errors
    ///
    /// As [`run`](Base::run).
    pub fn run_with(&self, poller: &mut impl Poller, flags: RunFlags) -> Result<Exit, Error> {
        let me = C::thread_id();
        self.with(|st| {
            if st.ctl.running {
                return Err(Error::AlreadyRunning);
            }
            st.ctl.running = true;
            st.ctl.loop_thread = me;
            Ok(())
        })?;
        let _running = RunGuard(self);
        loop {
            let now = self.clock.now().as_nanos();
            let step = self.with(|st| plan(st, &self.words, poller, flags, now));
            let timeout = match step {
                Step::Stop(exit) => return Ok(exit),
                Step::Wait(t) => t,
            };
            let waited = poller.wait(timeout);
            // Read the clock after the wait: a timer is due only if its deadline is not after
            // a time the poller had already reached, so it never fires early.
            let now = self.clock.now().as_nanos();
            let active = self.with(|st| {
                st.wake.leave_poll();
                poller.ready(|r| st.on_ready(&self.words, r, &self.notifier));
                st.expire(&self.words, now);
                st.n_active > 0
            });
            waited.map_err(Error::Poll)?;
            if active {
                let ran = self.process_active();
                if flags.once && ran > 0 && self.with(|st| st.n_active == 0) {
                    return Ok(Exit::Done);
                }
            } else if flags.nonblock {
                return Ok(Exit::Done);
            }
        }
    }

    /// Runs callbacks of the highest priority that has any, and returns how many ran. After a
    /// level ran callbacks the loop polls again before lower levels (libevent's rule), so a
    /// newly active higher-priority event is never starved.
    fn process_active(&self) -> usize {
        let Some((prio, max, limit_time)) = self.with(|st| {
            let prio = st.first_active_priority()?;
            let limited = prio >= st.opts.limit_from;
            let max = if limited {
                st.opts.max_callbacks
            } else {
                u32::MAX
            };
            let time = if limited { st.opts.max_interval } else { None };
            Some((prio, max, time))
        }) else {
            return 0;
        };
        let end = limit_time.map(|d| self.clock.now().saturating_add(d));
        let mut count = 0u32;
        let mut done: Option<(u32, C::Callback, bool)> = None;
        loop {
            let stop = count >= max || end.is_some_and(|end| self.clock.now() >= end);
            let (job, rest, waiters) = self.with(|st| {
                let rest = done
                    .take()
                    .and_then(|(idx, cb, fin)| st.end(&self.words, idx, cb, fin));
                let job = if stop || st.ctl.brk || st.ctl.cont {
                    None
                } else {
                    st.begin(&self.words, prio, &self.clock)
                };
                (job, rest, st.waiters > 0)
            });
            drop(rest); // user state is dropped outside the lock
            if waiters {
                C::Lock::wake_all(&self.state);
            }
            let Some(job) = job else {
                return count as usize;
            };
            // Pairs with the fence in `activate`: the word was cleared before this point, so an
            // activation that still saw it queued wrote its data before this callback reads.
            fence(Ordering::SeqCst);
            let fired = Fired {
                key: Key {
                    base: self.id,
                    index: job.idx,
                    gen: job.gen,
                },
                ready: job.ready,
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

/// The locked part of an iteration before the wait: control requests, interest changes, the
/// timeout, and the `polling` flag (set only if the loop is going to block).
fn plan<C: Config>(
    st: &mut BaseState<C>,
    words: &crate::state::WordsOf<C>,
    poller: &mut impl Poller,
    flags: RunFlags,
    now: u64,
) -> Step {
    st.ctl.cont = false;
    if st.ctl.brk {
        st.ctl.brk = false;
        return Step::Stop(Exit::Break);
    }
    if st.ctl.exit {
        st.ctl.exit = false;
        return Step::Stop(Exit::Exit);
    }
    st.apply_changes(words, poller);
    if !flags.forever && !st.has_events() && st.next_deadline().is_none() {
        return Step::Stop(Exit::Empty);
    }
    let timeout = if flags.nonblock || st.n_active > 0 {
        Some(Duration::ZERO)
    } else {
        st.next_deadline()
            .map(|at| Duration::from_nanos(at.saturating_sub(now)))
    };
    if timeout != Some(Duration::ZERO) {
        st.wake.enter_poll();
    }
    Step::Wait(timeout)
}
