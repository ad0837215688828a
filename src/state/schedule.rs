//! What is pending: events created and freed, added and deleted, and their place in the
//! per-source and per-signal lists (whose union is what the kernel should watch).

use core::time::Duration;

use crate::event::{Event, Kind, MAX_SIGNAL, MAX_SOURCE};
use crate::seam::{Config, Instant, Interest, Ready};
use crate::sync::{AtomicU32, Ordering};
use crate::Error;

use super::slots::{self, flag, kind, NIL, NO_TIME};
use super::{sources, word, BaseState, WordsOf};

impl<C: Config> BaseState<C> {
    /// Creates an event (not pending) and returns its slot and generation. On failure the
    /// callback is handed back, so the caller drops it after the lock is released.
    #[inline]
    pub fn create(
        &mut self,
        words: &WordsOf<C>,
        ev: Event,
        cb: C::Callback,
    ) -> Result<(u32, u32), (Error, C::Callback)> {
        match self.create_slot(words, &ev) {
            Ok((idx, gen)) => {
                let s = self.slot(idx);
                s.cb = Some(cb);
                Ok((idx, gen))
            }
            Err(e) => Err((e, cb)),
        }
    }

    #[inline]
    fn create_slot(&mut self, words: &WordsOf<C>, ev: &Event) -> Result<(u32, u32), Error> {
        if self.ctl.closed {
            return Err(Error::Closed);
        }
        let prio = ev.priority.unwrap_or(self.opts.priorities / 2);
        if prio >= self.opts.priorities {
            return Err(Error::Priority);
        }
        if ev.free_after_run && ev.persist {
            return Err(Error::Invalid);
        }
        let (what, source) = match ev.kind {
            Kind::Io(src, interest) => {
                if interest.kinds().is_empty() {
                    return Err(Error::EmptyInterest);
                }
                if src.id() > MAX_SOURCE {
                    return Err(Error::SourceRange);
                }
                (kind::IO | interest.bits() << kind::INTEREST_SHIFT, src.id())
            }
            Kind::Signal(n) => {
                if n == 0 || n > MAX_SIGNAL {
                    return Err(Error::SignalRange);
                }
                (kind::SIGNAL, n)
            }
            Kind::Timer => (kind::TIMER, 0),
            Kind::User => (kind::USER, 0),
        };
        let (idx, gen) = self.slots.alloc(words)?;
        if let Err(e) = self.slots.set_tag(idx, ev.tag) {
            self.slots.release(words, idx);
            return Err(e);
        }
        let s = self.slot(idx);
        s.what = what | if ev.persist { kind::PERSIST } else { 0 };
        s.source = source;
        s.prio = prio;
        if ev.free_after_run {
            s.flags |= flag::AUTOFREE;
        }
        Ok((idx, gen))
    }

    /// The next live event at or after slot `from` (for closing a base).
    pub fn next_live(&self, from: u32) -> Option<u32> {
        (from..self.slots.v.len() as u32).find(|&i| {
            let s = &self.slots.v[i as usize];
            s.kind() != kind::FREE && !s.has(flag::ZOMBIE | flag::FINALIZING)
        })
    }

    /// Frees an event. Returns its callback (to drop after the lock is released) and whether
    /// the loop must be woken. If its callback is running, the slot is released when it returns.
    pub fn free(&mut self, words: &WordsOf<C>, idx: u32) -> (Option<C::Callback>, bool) {
        let wake = self.unschedule(words, idx);
        if self.slot(idx).has(flag::RUNNING) {
            self.slot(idx).flags |= flag::ZOMBIE;
            slots::retire(words, idx);
            (None, wake)
        } else {
            let cb = self.slot(idx).cb.take();
            self.slots.release(words, idx);
            (cb, wake)
        }
    }

    /// Deletes the event and arranges for `fin` to run on the loop thread once its callback
    /// cannot run any more. Returns the replaced callback (to drop unlocked) and the wake need.
    pub fn finalize(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        fin: C::Callback,
    ) -> (Option<C::Callback>, bool) {
        let mut wake = self.unschedule(words, idx);
        slots::retire(words, idx);
        let s = self.slot(idx);
        s.flags |= flag::FINALIZING;
        let old = s.cb.replace(fin);
        if !s.has(flag::RUNNING) {
            wake |= self.enqueue(words, idx, Ready::FINALIZE);
        }
        (old, wake)
    }

    /// Makes the event pending, with an optional new timeout. Returns the wake need and the
    /// deadline armed (`NO_TIME`: none, or none known yet: the time rule).
    ///
    /// `w` is the slot's activation word.
    pub fn add(
        &mut self,
        w: &AtomicU32,
        idx: u32,
        timeout: Option<Duration>,
        now: impl FnOnce() -> Instant,
    ) -> Result<(bool, u64), Error> {
        let s = &self.slots.v[idx as usize];
        let (flags, has_source) = (s.flags, s.has_source());
        if flags & flag::FINALIZING != 0 {
            return Err(Error::Invalid);
        }
        // Everything that can fail is checked before anything changes.
        if timeout.is_some() {
            self.timers.reserve(idx, false)?;
        }
        let mut wake = false;
        let mut armed = NO_TIME;
        if flags & flag::PENDING == 0 {
            if has_source {
                wake |= self.link(idx)?;
            }
            self.slot(idx).flags = flags | flag::PENDING;
            self.n_pending += 1;
        }
        if let Some(d) = timeout {
            let ready = word::ready(w.load(Ordering::Relaxed));
            if Ready::from_bits_truncate(ready).contains(Ready::TIMEOUT) {
                // Active only because of a timeout that the new one replaces.
                self.dequeue_at(w, idx);
            }
            let interval = crate::seam::duration_nanos(d);
            if self.ctl.running && !self.wake.polling() {
                // The time rule: while the loop runs callbacks, no clock reading here. The
                // timeout starts at the loop's next reading (`start_timers`: before it plans
                // its wait, or when the run ends), which comes after this add: never early,
                // late by at most the rest of the pass. The request makes a loop that spins
                // before blocking go round and take that reading.
                self.timers.disarm(idx);
                self.timers.arm_fresh(idx, interval);
                wake = true;
            } else {
                // No run, or the loop sleeps with a timeout computed without this timer:
                // read the clock, and wake the loop if the earliest deadline moved (an
                // armed timeout moves in place).
                let at = now().as_nanos().saturating_add(interval);
                wake |= self.timers.rearm(idx, at, interval);
                armed = at;
            }
        }
        // With no run in progress there is no loop to tell: the next run plans from scratch.
        Ok((wake && self.ctl.running, armed))
    }

    /// Starts the timeouts added since the last clock reading (the time rule): `now` is read
    /// only if there are any. Returns the reading, if one was taken.
    #[inline]
    pub fn start_timers(&mut self, now: impl FnOnce() -> u64) -> Option<u64> {
        if !self.timers.has_fresh() {
            return None;
        }
        let now = now();
        self.timers.start_fresh(now);
        Some(now)
    }

    /// Makes the event pending with a common timeout.
    pub fn add_common(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        ct: u8,
        now: Instant,
    ) -> Result<bool, Error> {
        let s = &self.slots.v[idx as usize];
        if s.has(flag::FINALIZING) || !self.timers.has_common(ct) {
            return Err(Error::Invalid);
        }
        self.timers.reserve(idx, true)?;
        let mut wake = false;
        if !s.has(flag::PENDING) {
            wake |= self.link(idx)?;
            self.slot(idx).flags |= flag::PENDING;
            self.n_pending += 1;
        }
        let w = slots::words_load(words, idx);
        if Ready::from_bits_truncate(word::ready(w)).contains(Ready::TIMEOUT) {
            self.dequeue(words, idx);
        }
        wake |= self.timers.disarm(idx);
        let at = now
            .as_nanos()
            .saturating_add(self.timers.common_duration(ct));
        wake |= self.timers.arm_common(idx, ct, at);
        Ok(wake)
    }

    /// Whether the event is freed when deleted (`Event::free_after_run`).
    pub fn frees_on_delete(&self, idx: u32) -> bool {
        self.slots.v[idx as usize].has(flag::AUTOFREE)
    }

    /// Makes the event non-pending and takes it off its active queue (libevent's
    /// `event_del`; nothing to do for an event that is neither). Returns the wake need.
    /// `w` is the slot's activation word.
    #[inline(always)]
    pub fn delete(&mut self, w: &AtomicU32, idx: u32) -> bool {
        let wake = self.unpend(idx);
        self.dequeue_at(w, idx);
        wake
    }

    /// Removes the event from every list: source/signal, timers, active queue.
    pub(super) fn unschedule(&mut self, words: &WordsOf<C>, idx: u32) -> bool {
        let wake = self.unpend(idx);
        self.dequeue(words, idx);
        wake
    }

    /// Makes the event non-pending: off its source or signal list and its timer. Returns the
    /// wake need.
    #[inline(always)]
    pub(super) fn unpend(&mut self, idx: u32) -> bool {
        let s = self.slot(idx);
        if !s.has(flag::PENDING) {
            return false;
        }
        s.flags &= !flag::PENDING;
        let mut wake = s.has_source() && self.unlink(idx);
        wake |= self.timers.disarm(idx);
        self.n_pending -= 1;
        // With no events left the loop may have to return for lack of them; with no run in
        // progress there is no loop to tell: the next run plans from scratch.
        (wake || self.n_pending == 0) && self.ctl.running
    }

    /// Links a newly pending event into its source or signal list. Returns whether the kernel
    /// interest must change (the loop must apply it).
    fn link(&mut self, idx: u32) -> Result<bool, Error> {
        let s = &self.slots.v[idx as usize];
        let (k, source) = (s.kind(), s.source);
        let came_back = !self.opts.reregister_on_rearm && s.out == self.epoch.wrapping_add(1);
        let interest = match k {
            kind::IO => Interest::from_bits_truncate(s.interest_bits()),
            kind::SIGNAL => Interest::READ,
            _ => return Ok(false),
        };
        let table = if k == kind::IO {
            &mut self.io
        } else {
            &mut self.sig
        };
        let e = table.entry(source)?;
        if e.head().is_some()
            && e.want().contains(Interest::EDGE) != interest.contains(Interest::EDGE)
        {
            return Err(Error::EdgeConflict);
        }
        if k == kind::IO && e.want().is_empty() && !e.kernel().is_empty() && !came_back {
            // Every event left this source in this iteration and another one enters: its fd
            // may have been closed and the number reused by a new file, which the kernel does
            // not watch — or not, and the kernel still has it. Only the event that left may
            // come back for free (the delete+add re-arm idiom; not with
            // `Options::reregister_on_rearm`, for programs that reuse an event across a
            // close of its fd); otherwise the loop registers
            // afresh (the poller heals a registration that still exists), or, if this event
            // leaves again too, deletes explicitly.
            e.set_kernel(sources::UNKNOWN);
        }
        let head = e.head();
        e.set_head(Some(idx));
        let want = e.want() | interest;
        table.set_want(source, want);
        self.slots.v[idx as usize].src_next = head.unwrap_or(NIL);
        Ok(want != table.get(source).kernel())
    }

    /// Unlinks an event from its source or signal list; returns whether the interest changed.
    fn unlink(&mut self, idx: u32) -> bool {
        let (what, source) = {
            let s = &self.slots.v[idx as usize];
            (s.kind(), s.source)
        };
        let table = match what {
            kind::IO => &mut self.io,
            kind::SIGNAL => &mut self.sig,
            _ => return false,
        };
        let Ok(e) = table.entry(source) else {
            return false;
        };
        let old_want = e.want();
        // Walk the (short) list: remove idx, recompute the union of the rest.
        let slots = &mut self.slots.v;
        let mut want = Interest::NONE;
        let mut prev = NIL;
        let mut cur = e.head().unwrap_or(NIL);
        while cur != NIL {
            let next = slots[cur as usize].src_next;
            if cur == idx {
                if prev == NIL {
                    e.set_head((next != NIL).then_some(next));
                } else {
                    slots[prev as usize].src_next = next;
                }
            } else {
                want |= if what == kind::IO {
                    Interest::from_bits_truncate(slots[cur as usize].interest_bits())
                } else {
                    Interest::READ
                };
                prev = cur;
            }
            cur = next;
        }
        slots[idx as usize].src_next = NIL;
        if want.is_empty() && what == kind::IO {
            slots[idx as usize].out = self.epoch.wrapping_add(1);
        }
        table.set_want(source, want);
        want != old_want && want != table.get(source).kernel()
    }
}
