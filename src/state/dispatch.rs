//! What runs: due timers, the per-priority active queues (and the list of what a pass
//! queued for after the next poll), and taking a callback out to run and putting it back.

use crate::seam::{Clock, Config, Ready, Words};
use crate::sync::{AtomicU32, Ordering};
use crate::Error;

use super::slots::{self, flag, NIL, NO_TIME};
use super::{word, BaseState, Job, SlotOf, WordsOf};

impl<C: Config> BaseState<C> {
    /// The earliest deadline the loop must wake for (timers and `loop_exit`).
    pub fn next_deadline(&self) -> Option<u64> {
        let t = self
            .timers
            .next_deadline()
            .unwrap_or(NO_TIME)
            .min(self.ctl.exit_at);
        (t != NO_TIME).then_some(t)
    }

    /// Activates every timer due at `now` (never one due later). A persistent one is re-armed
    /// at once from its previous deadline.
    pub fn expire(&mut self, words: &WordsOf<C>, now: u64) {
        if self.ctl.exit_at != NO_TIME && self.ctl.exit_at <= now {
            self.ctl.exit_at = NO_TIME;
            self.ctl.exit = true;
        }
        while let Some(fired) = self.timers.pop_due(now) {
            if self.slots.v[fired.idx as usize].persistent() {
                self.timers.rearm_after(fired, now);
            }
            self.enqueue(words, fired.idx, Ready::TIMEOUT);
        }
    }

    /// Queues the event with `ready` (or adds `ready` to its pending reasons). Returns whether
    /// it was newly queued (and the loop must therefore be woken if it sleeps).
    #[inline]
    pub fn enqueue(&mut self, words: &WordsOf<C>, idx: u32, ready: Ready) -> bool {
        self.enqueue_inline(words, idx, ready)
    }

    /// [`enqueue`](Self::enqueue), always inline: for the per-event hot path (the readiness
    /// handler, inlined into the poller's `ready` loop).
    #[inline(always)]
    pub(super) fn enqueue_inline(&mut self, words: &WordsOf<C>, idx: u32, ready: Ready) -> bool {
        let Some(w) = words.get(idx as usize) else {
            return false;
        };
        let cur = w.load(Ordering::Relaxed);
        let bits = word::ready(cur) | ready.bits();
        w.store(word::make(word::gen(cur), bits), Ordering::Relaxed);
        if word::ready(cur) != 0 {
            return false;
        }
        let prio = self.slots.v[idx as usize].prio;
        match self.pass {
            // During a pass, at the running priority or below: after the next poll (rule 4).
            Some(running) if prio >= running => {
                self.later.push_back(&mut self.slots.v, idx);
                self.slots.v[idx as usize].flags |= flag::LATER;
            }
            // Of higher priority than the running one: the pass stops after this callback and
            // the loop starts again from the highest priority (libevent's `event_continue`).
            Some(_) => {
                self.queues[prio as usize].push_back(&mut self.slots.v, idx);
                self.ctl.cont = true;
            }
            None => self.queues[prio as usize].push_back(&mut self.slots.v, idx),
        }
        self.n_active += 1;
        true
    }

    /// Moves the events queued during the last pass (at its priority or below) to their
    /// active queues, in the order they were queued. The loop calls it after each poll and
    /// timer expiry.
    #[inline]
    pub fn promote_later(&mut self) {
        while let Some(idx) = self.later.pop_front(&mut self.slots.v) {
            let s = &mut self.slots.v[idx as usize];
            s.flags &= !flag::LATER;
            let prio = s.prio as usize;
            self.queues[prio].push_back(&mut self.slots.v, idx);
        }
    }

    /// Takes the event off its active queue, if it is on one.
    pub(super) fn dequeue(&mut self, words: &WordsOf<C>, idx: u32) {
        if let Some(w) = words.get(idx as usize) {
            self.dequeue_at(w, idx);
        }
    }

    /// [`dequeue`](BaseState::dequeue) with the slot's activation word `w` at hand: the check
    /// inline (most deletes find the event not queued), the removal out of line.
    #[inline(always)]
    pub(super) fn dequeue_at(&mut self, w: &AtomicU32, idx: u32) {
        let cur = w.load(Ordering::Relaxed);
        if word::ready(cur) != 0 {
            self.dequeue_queued(w, cur, idx);
        }
    }

    /// The rest of [`dequeue_at`](BaseState::dequeue_at): `cur` is the word, with readiness.
    #[inline(never)]
    fn dequeue_queued(&mut self, w: &AtomicU32, cur: u32, idx: u32) {
        w.store(word::make(word::gen(cur), 0), Ordering::Relaxed);
        let s = &mut self.slots.v[idx as usize];
        if s.has(flag::LATER) {
            s.flags &= !flag::LATER;
            self.later.remove(&mut self.slots.v, idx);
        } else {
            let prio = s.prio as usize;
            self.queues[prio].remove(&mut self.slots.v, idx);
        }
        self.n_active -= 1;
    }

    /// Changes the priority of an event that is not queued.
    pub fn set_priority(&mut self, words: &WordsOf<C>, idx: u32, prio: u8) -> Result<(), Error> {
        if prio >= self.opts.priorities {
            return Err(Error::Priority);
        }
        if word::ready(slots::words_load(words, idx)) != 0 {
            return Err(Error::Invalid);
        }
        self.slot(idx).prio = prio;
        Ok(())
    }

    /// The highest priority with queued events.
    pub fn first_active_priority(&self) -> Option<u8> {
        if self.n_active == 0 {
            return None;
        }
        self.queues
            .iter()
            .position(|q| !q.is_empty())
            .map(|p| p as u8)
    }

    /// Takes the next event off queue `prio` and prepares it to run: a one-shot event stops
    /// being pending, a persistent timeout is re-armed, the callback is taken out of the slot.
    #[inline(always)]
    pub fn begin(
        &mut self,
        words: &WordsOf<C>,
        prio: u8,
        clock: &impl Clock,
    ) -> Option<Job<C::Callback>> {
        loop {
            // One borrow of the slot table as a slice for the whole step: its length stays
            // in a register, so the slot's index is checked against it once.
            let slots: &mut [SlotOf<C>] = &mut self.slots.v;
            let idx = self.queues[prio as usize].pop_front(slots)?;
            self.n_active -= 1;
            let w = words.get(idx as usize)?;
            let cur = w.load(Ordering::Relaxed);
            w.store(word::make(word::gen(cur), 0), Ordering::Relaxed);
            let ready = Ready::from_bits_truncate(word::ready(cur));
            let s = &slots[idx as usize];
            let finalizer = s.has(flag::FINALIZING);
            let s = if finalizer {
                &mut slots[idx as usize]
            } else if !s.persistent() {
                // Off its lists; its word was cleared above, so it is off the queue.
                self.unpend(idx);
                self.slot(idx)
            } else {
                if s.has(flag::PENDING) && !ready.contains(Ready::TIMEOUT) && self.timers.armed(idx)
                {
                    let now = clock.now().as_nanos();
                    self.timers.rearm_from_now(idx, now);
                }
                &mut slots[idx as usize]
            };
            let Some(cb) = s.cb.take() else {
                continue; // no callback to run (cannot happen outside a poisoned state)
            };
            s.flags |= flag::RUNNING;
            let tag = self.slots.tag(idx);
            self.current = idx;
            return Some(Job {
                idx,
                gen: word::gen(cur),
                ready,
                cb,
                finalizer,
                tag,
            });
        }
    }

    /// Puts a job's callback back after it ran (or releases what must go). Returns a callback
    /// to drop after the lock is released, if any.
    #[inline(always)]
    pub fn end(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        cb: C::Callback,
        finalizer: bool,
    ) -> Option<C::Callback> {
        self.current = NIL;
        let s = self.slot(idx);
        s.flags &= !flag::RUNNING;
        // The common case, one flag test: not freed, finalized or auto-freed meanwhile (a
        // finalizer job always has FINALIZING): the callback goes back to its slot.
        if s.flags & (flag::ZOMBIE | flag::FINALIZING | flag::AUTOFREE) == 0 {
            s.cb = Some(cb);
            return None;
        }
        self.end_special(words, idx, cb, finalizer)
    }

    /// [`end`](Self::end) for a slot freed, finalized or auto-freed while its callback ran.
    #[inline(never)]
    fn end_special(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        cb: C::Callback,
        finalizer: bool,
    ) -> Option<C::Callback> {
        let flags = self.slot(idx).flags;
        let has = |f: u8| flags & f != 0;
        let w = words.get(idx as usize);
        let queued = w.is_some_and(|w| word::ready(w.load(Ordering::Relaxed)) != 0);
        let done_once = has(flag::AUTOFREE) && !has(flag::PENDING | flag::FINALIZING) && !queued;
        if has(flag::ZOMBIE) || (finalizer && has(flag::FINALIZING)) || done_once {
            // Freed meanwhile, a finalizer that ran, or `free_after_run` with nothing more to
            // do: release the slot; the callback is dropped by the caller, unlocked.
            self.slots.release_at(w, idx);
            return Some(cb);
        }
        if has(flag::FINALIZING) {
            // finalize() was called while the callback ran: drop it, run the finalizer next.
            self.enqueue(words, idx, Ready::FINALIZE);
            return Some(cb);
        }
        self.slot(idx).cb = Some(cb);
        None
    }
}
