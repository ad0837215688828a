//! Looking inside a base: counts, wake counters, per-event state, a debug dump.

use core::fmt;

use crate::event::Key;
use crate::seam::{Clock, Config, Instant, Interest, Ready, Source};
use crate::state::slots::{flag, kind, words_load};
use crate::state::wake::WakeStats;
use crate::state::{word, Counts};
use crate::Error;

use super::Base;

/// A snapshot of one event, for introspection and debugging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventInfo {
    /// Its key.
    pub key: Key,
    /// What it is about.
    pub kind: crate::event::Kind,
    /// Whether it stays pending after firing.
    pub persistent: bool,
    /// Its priority.
    pub priority: u8,
    /// Pending (added).
    pub pending: bool,
    /// Queued to run, with these reasons (empty: not queued).
    pub queued: Ready,
    /// Its callback is running now.
    pub running: bool,
    /// Its armed deadline, if any. A timeout added since the loop last read its clock starts
    /// when the snapshot is taken (the time rule in the crate docs).
    pub deadline: Option<Instant>,
    /// Its [`tag`](crate::Event::tag).
    pub tag: usize,
}

impl<C: Config> Base<C> {
    /// Counts of events (existing, pending, active, armed timers).
    pub fn counts(&self) -> Counts {
        self.with(|st| st.counts())
    }

    /// The wake counters (see [`WakeStats`]): every change the loop must see, from any thread
    /// — the loop thread's own changes from callbacks included — and what became of it: a
    /// notification written, coalesced into a pending one, or nothing needed because the loop
    /// was awake (`requests == writes + coalesced + awake`); failed writes, and blocking polls.
    /// The requests that had to reach a sleeping loop are `writes + coalesced`. An activation
    /// of an already-queued event takes the lock-free fast path and is not counted (counting it
    /// would cost a shared write).
    pub fn wake_stats(&self) -> WakeStats {
        self.with(|st| st.wake.stats)
    }

    /// Threads blocked in [`delete`](Base::delete) or [`free`](Base::free) now, waiting for
    /// the event's running callback to return (a test can wait for this to be sure a delete
    /// from another thread is blocked).
    pub fn waiters(&self) -> u32 {
        self.with(|st| st.waiters)
    }

    /// Interest changes the poller refused so far (each activated the source's events with
    /// [`Ready::ERROR`]).
    pub fn poll_errors(&self) -> u64 {
        self.with(|st| st.poll_errors)
    }

    /// A snapshot of the event.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`].
    pub fn info(&self, key: Key) -> Result<EventInfo, Error> {
        self.with(|st| {
            let idx = self.check(st, key)?;
            // A deadline is only known once its timeout started: start the fresh ones now
            // (a reading after their adds, as the loop's would be).
            st.start_timers(|| self.clock.now().as_nanos());
            Ok(info_of(st, &self.words, self.id, idx))
        })
    }

    /// Whether the event is pending.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`].
    pub fn is_pending(&self, key: Key) -> Result<bool, Error> {
        self.info(key).map(|i| i.pending)
    }

    /// Calls `f` with a snapshot of every live event, in slot order. `f` runs under the base
    /// lock: it must not call the base.
    pub fn for_each_event(&self, mut f: impl FnMut(EventInfo)) {
        self.with(|st| {
            st.start_timers(|| self.clock.now().as_nanos());
            for idx in 0..st.slots.v.len() as u32 {
                let s = &st.slots.v[idx as usize];
                if s.kind() == kind::FREE || s.has(flag::FINALIZING) || s.has(flag::ZOMBIE) {
                    continue;
                }
                f(info_of(st, &self.words, self.id, idx));
            }
        })
    }

    /// Writes a human-readable dump of every event (libevent's `event_base_dump_events`).
    ///
    /// # Errors
    ///
    /// What `w` returns.
    pub fn dump(&self, w: &mut impl fmt::Write) -> fmt::Result {
        let c = self.counts();
        let s = self.wake_stats();
        writeln!(
            w,
            "base {}: {} events, {} pending, {} active, {} timers; wakes: {} requests, {} writes, {} coalesced",
            self.id, c.events, c.pending, c.active, c.timers, s.requests, s.writes, s.coalesced
        )?;
        let mut r = Ok(());
        self.for_each_event(|e| {
            if r.is_ok() {
                r = writeln!(w, "  {e:?}");
            }
        });
        r
    }
}

fn info_of<C: Config>(
    st: &crate::state::BaseState<C>,
    words: &crate::state::WordsOf<C>,
    base: u32,
    idx: u32,
) -> EventInfo {
    let s = &st.slots.v[idx as usize];
    let w = words_load(words, idx);
    let kind = match s.kind() {
        kind::IO => crate::event::Kind::Io(
            Source::new(s.source),
            Interest::from_bits_truncate(s.interest_bits()),
        ),
        kind::SIGNAL => crate::event::Kind::Signal(s.source),
        kind::TIMER => crate::event::Kind::Timer,
        _ => crate::event::Kind::User,
    };
    let deadline = st.timers.deadline(idx).map(Instant::from_nanos);
    EventInfo {
        key: Key::new(base, idx, word::gen(w)),
        kind,
        persistent: s.persistent(),
        priority: s.prio,
        pending: s.has(flag::PENDING),
        queued: Ready::from_bits_truncate(word::ready(w)),
        running: s.has(flag::RUNNING),
        deadline,
        tag: st.slots.tag(idx),
    }
}
