//! The base's state and every operation on it, knowing nothing of locks (the shape of
//! embassy-sync's `ChannelState`): [`Base`](crate::Base) wraps it in its `Lock` and runs these
//! operations inside the critical section.

pub(crate) mod heap;
pub(crate) mod queue;
pub(crate) mod slots;
pub(crate) mod sources;
pub(crate) mod timers;
pub(crate) mod wake;
pub(crate) mod word;

use core::time::Duration;

use crate::event::{Event, Kind, MAX_SIGNAL, MAX_SOURCE};
use crate::options::Options;
use crate::seam::{Buf, Clock, Config, Instant, Interest, Notify, Poller, Readiness, Ready};
use crate::seam::{Storage, Words};
use crate::sync::Ordering;
use crate::Error;

use queue::Queue;
use slots::{flag, kind, Slot, Slots, NIL, NO_TIME};
use sources::Table;
use wake::Wake;

pub(crate) type VecOf<C, T> = <<C as Config>::Storage as Storage>::Vec<T>;
pub(crate) type WordsOf<C> = <<C as Config>::Storage as Storage>::Words;
type SlotOf<C> = Slot<<C as Config>::Callback>;
type TableOf<C> = Table<VecOf<C, sources::Entry>, VecOf<C, u64>>;
type TimersOf<C> = timers::Timers<
    VecOf<C, heap::Entry>,
    VecOf<C, u32>,
    VecOf<C, u64>,
    VecOf<C, timers::Link>,
    VecOf<C, timers::Common>,
>;

/// Loop-control requests and the loop's own bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// `loop_break`: stop after the current callback (kept until a run consumes it).
    pub brk: bool,
    /// `loop_exit` deadline reached: stop after this iteration's callbacks.
    pub exit: bool,
    /// `loop_exit` deadline in ns, `NO_TIME` if none.
    pub exit_at: u64,
    /// `loop_continue`: stop running callbacks and poll again now.
    pub cont: bool,
    /// A `run` is in progress.
    pub running: bool,
    /// The thread running the loop.
    pub loop_thread: usize,
    /// `close` was called: no more events.
    pub closed: bool,
}

/// What the loop takes out of the state to run one callback with the lock released.
pub(crate) struct Job<F> {
    pub idx: u32,
    pub gen: u32,
    pub ready: Ready,
    pub cb: F,
    pub finalizer: bool,
}

/// Counts of events, for introspection and for "run until empty".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Events that exist (created and not freed).
    pub events: u32,
    /// Events that are pending (added).
    pub pending: u32,
    /// Events queued to run.
    pub active: u32,
    /// Armed timeouts.
    pub timers: u32,
}

/// The state behind the lock.
pub(crate) struct BaseState<C: Config> {
    pub slots: Slots<VecOf<C, SlotOf<C>>>,
    pub io: TableOf<C>,
    pub sig: TableOf<C>,
    pub queues: VecOf<C, Queue>,
    /// Events queued during a pass at the running priority or below: they run after the next
    /// poll and timer expiry (libevent's `active_later`), so a callback that re-activates
    /// itself cannot starve I/O, timers or signals.
    pub later: Queue,
    /// The priority whose callbacks the loop is running (a pass), or `None`.
    pub pass: Option<u8>,
    pub timers: TimersOf<C>,
    pub wake: Wake,
    pub ctl: Control,
    pub opts: Options,
    /// Slot whose callback is running, or `NIL`.
    pub current: u32,
    /// Threads blocked until a running callback returns.
    pub waiters: u32,
    pub n_pending: u32,
    pub n_active: u32,
    /// Interest changes the poller refused.
    pub poll_errors: u64,
    /// Times the change list was applied (the "iteration" of `Slot::out`).
    pub epoch: u32,
}

impl<C: Config> BaseState<C> {
    pub fn new(opts: Options) -> Result<Self, Error> {
        let mut queues = VecOf::<C, Queue>::new();
        for _ in 0..opts.priorities {
            queues.try_push(Queue::EMPTY).map_err(|_| Error::Full)?;
        }
        Ok(BaseState {
            slots: Slots::new(),
            io: Table::new(),
            sig: Table::new(),
            queues,
            later: Queue::EMPTY,
            pass: None,
            timers: timers::Timers::new(),
            wake: Wake::default(),
            ctl: Control {
                exit_at: NO_TIME,
                ..Control::default()
            },
            opts,
            current: NIL,
            waiters: 0,
            n_pending: 0,
            n_active: 0,
            poll_errors: 0,
            epoch: 0,
        })
    }

    pub fn counts(&self) -> Counts {
        Counts {
            events: self.slots.live,
            pending: self.n_pending,
            active: self.n_active,
            timers: self.timers.count(),
        }
    }

    #[inline]
    fn slot(&mut self, idx: u32) -> &mut SlotOf<C> {
        &mut self.slots.v[idx as usize]
    }

    // ----------------------------------------------------------------- create / free

    /// Creates an event (not pending) and returns its slot and generation. On failure the
    /// callback is handed back, so the caller drops it after the lock is released.
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

    // ------------------------------------------------------------------ add / delete

    /// Makes the event pending, with an optional new timeout. Returns the wake need.
    pub fn add(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        timeout: Option<Duration>,
        now: impl FnOnce() -> Instant,
    ) -> Result<bool, Error> {
        let s = &self.slots.v[idx as usize];
        if s.has(flag::FINALIZING) {
            return Err(Error::Invalid);
        }
        // Everything that can fail is checked before anything changes.
        if timeout.is_some() {
            self.timers.reserve(idx, false)?;
        }
        let mut wake = false;
        if !s.has(flag::PENDING) {
            wake |= self.link(idx)?;
            self.slot(idx).flags |= flag::PENDING;
            self.n_pending += 1;
        }
        if let Some(d) = timeout {
            let w = slots::words_load(words, idx);
            if Ready::from_bits_truncate(word::ready(w)).contains(Ready::TIMEOUT) {
                // Active only because of a timeout that the new one replaces.
                self.dequeue(words, idx);
            }
            wake |= self.timers.disarm(idx);
            let interval = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            let at = now().saturating_add(d).as_nanos();
            wake |= self.timers.arm(idx, at, interval);
        }
        Ok(wake)
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
    pub fn delete(&mut self, words: &WordsOf<C>, idx: u32) -> bool {
        self.unschedule(words, idx)
    }

    /// Removes the event from every list: source/signal, timers, active queue.
    fn unschedule(&mut self, words: &WordsOf<C>, idx: u32) -> bool {
        let mut wake = false;
        if self.slot(idx).has(flag::PENDING) {
            wake |= self.unlink(idx);
            wake |= self.timers.disarm(idx);
            self.slot(idx).flags &= !flag::PENDING;
            self.n_pending -= 1;
            if self.n_pending == 0 {
                wake = true; // the loop may have to return for lack of events
            }
        }
        self.dequeue(words, idx);
        wake
    }

    /// Links a newly pending event into its source or signal list. Returns whether the kernel
    /// interest must change (the loop must apply it).
    fn link(&mut self, idx: u32) -> Result<bool, Error> {
        let s = &self.slots.v[idx as usize];
        let (k, source) = (s.kind(), s.source);
        let came_back = s.out == self.epoch.wrapping_add(1);
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
            // come back for free (the delete+add re-arm idiom); otherwise the loop registers
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

    // -------------------------------------------------------------------- timers

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

    // --------------------------------------------------------------- active queues

    /// Queues the event with `ready` (or adds `ready` to its pending reasons). Returns whether
    /// it was newly queued (and the loop must therefore be woken if it sleeps).
    pub fn enqueue(&mut self, words: &WordsOf<C>, idx: u32, ready: Ready) -> bool {
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
    fn dequeue(&mut self, words: &WordsOf<C>, idx: u32) {
        let Some(w) = words.get(idx as usize) else {
            return;
        };
        let cur = w.load(Ordering::Relaxed);
        if word::ready(cur) == 0 {
            return;
        }
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
    pub fn begin(
        &mut self,
        words: &WordsOf<C>,
        prio: u8,
        clock: &impl Clock,
    ) -> Option<Job<C::Callback>> {
        loop {
            let idx = self.queues[prio as usize].pop_front(&mut self.slots.v)?;
            self.n_active -= 1;
            let w = words.get(idx as usize)?;
            let cur = w.load(Ordering::Relaxed);
            w.store(word::make(word::gen(cur), 0), Ordering::Relaxed);
            let ready = Ready::from_bits_truncate(word::ready(cur));
            let s = &self.slots.v[idx as usize];
            let finalizer = s.has(flag::FINALIZING);
            if !finalizer {
                if !s.persistent() {
                    self.unschedule(words, idx);
                } else if s.has(flag::PENDING)
                    && !ready.contains(Ready::TIMEOUT)
                    && self.timers.armed(idx)
                {
                    let now = clock.now().as_nanos();
                    self.timers.rearm_from_now(idx, now);
                }
            }
            let s = self.slot(idx);
            let Some(cb) = s.cb.take() else {
                continue; // no callback to run (cannot happen outside a poisoned state)
            };
            s.flags |= flag::RUNNING;
            self.current = idx;
            return Some(Job {
                idx,
                gen: word::gen(cur),
                ready,
                cb,
                finalizer,
            });
        }
    }

    /// Puts a job's callback back after it ran (or releases what must go). Returns a callback
    /// to drop after the lock is released, if any.
    pub fn end(
        &mut self,
        words: &WordsOf<C>,
        idx: u32,
        cb: C::Callback,
        finalizer: bool,
    ) -> Option<C::Callback> {
        self.current = NIL;
        let flags = {
            let s = self.slot(idx);
            s.flags &= !flag::RUNNING;
            s.flags
        };
        let has = |f: u8| flags & f != 0;
        let queued = word::ready(slots::words_load(words, idx)) != 0;
        let done_once = has(flag::AUTOFREE) && !has(flag::PENDING | flag::FINALIZING) && !queued;
        if has(flag::ZOMBIE) || (finalizer && has(flag::FINALIZING)) || done_once {
            // Freed meanwhile, a finalizer that ran, or `free_after_run` with nothing more to
            // do: release the slot; the callback is dropped by the caller, unlocked.
            self.slots.release(words, idx);
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

    // ------------------------------------------------------------------ readiness

    /// Handles one report of the poller.
    pub fn on_ready(&mut self, words: &WordsOf<C>, r: Readiness, notifier: &impl Notify) {
        match r {
            Readiness::Io(src, ready) => self.activate_source(words, src.id(), ready),
            Readiness::Signal(n) => {
                let mut cur = self.sig.get(n).head().unwrap_or(NIL);
                while cur != NIL {
                    let next = self.slots.v[cur as usize].src_next;
                    self.enqueue(words, cur, Ready::SIGNAL);
                    cur = next;
                }
            }
            Readiness::Wake => {
                // Drain first, clear second (DESIGN rule 3): a request that sees `pending` set
                // after this point is covered by a new write.
                notifier.consume();
                self.wake.consumed();
            }
        }
    }

    fn activate_source(&mut self, words: &WordsOf<C>, id: u32, ready: Ready) {
        let mut cur = self.io.get(id).head().unwrap_or(NIL);
        while cur != NIL {
            let s = &self.slots.v[cur as usize];
            let next = s.src_next;
            let kinds = Interest::from_bits_truncate(s.interest_bits()).as_ready();
            let r = if ready.contains(Ready::ERROR) {
                kinds | Ready::ERROR
            } else {
                ready & kinds
            };
            if !r.is_empty() {
                self.enqueue(words, cur, r);
            }
            cur = next;
        }
    }

    /// Applies every queued interest change to the poller. A change the poller refuses
    /// activates the source's events with `ERROR` (their next I/O call reports the cause).
    pub fn apply_changes(&mut self, words: &WordsOf<C>, poller: &mut impl Poller) {
        self.epoch = self.epoch.wrapping_add(1);
        let mut refused = false;
        self.io.take_changes(|t, id| {
            let e = t.get(id);
            let (old, new) = (e.kernel(), e.want());
            if old == new {
                return;
            }
            // An unknown registration: delete whatever is there, or register afresh.
            let old_arg = match (old == sources::UNKNOWN, new.is_empty()) {
                (true, true) => Interest::READ | Interest::WRITE | Interest::CLOSED,
                (true, false) => Interest::NONE,
                _ => old,
            };
            let done = poller
                .update(crate::seam::Source::new(id), old_arg, new)
                .is_ok();
            if let Ok(e) = t.entry(id) {
                // A refused change: the kernel has nothing (a failed modify is undone by the
                // poller). The dirty bit, cleared for every entry of the pass, marks it for
                // `report_refused` (it is not on the list: not retried).
                e.set_kernel(if done { new } else { Interest::NONE });
                e.set_dirty(!done);
                refused |= !done;
            }
        });
        self.sig.take_changes(|t, n| {
            let e = t.get(n);
            let (old, new) = (e.kernel(), e.want());
            if old == new {
                return;
            }
            let done = poller.watch_signal(n, !new.is_empty()).is_ok();
            if let Ok(e) = t.entry(n) {
                e.set_kernel(if done { new } else { Interest::NONE });
                e.set_dirty(!done);
                refused |= !done;
            }
        });
        if refused {
            self.report_refused(words);
        }
    }

    /// Activates with `ERROR` the events of every source the poller refused in this pass
    /// (marked dirty but off the list): their next I/O call reports the cause.
    #[cold]
    fn report_refused(&mut self, words: &WordsOf<C>) {
        for id in 0..self.io.v.len() as u32 {
            if self.io.get(id).dirty() {
                self.io.v[id as usize].set_dirty(false);
                self.poll_errors += 1;
                self.activate_source(words, id, Ready::ERROR);
            }
        }
        for n in 0..self.sig.v.len() as u32 {
            let e = self.sig.get(n);
            if e.dirty() {
                self.sig.v[n as usize].set_dirty(false);
                self.poll_errors += 1;
                let mut cur = e.head().unwrap_or(NIL);
                while cur != NIL {
                    let next = self.slots.v[cur as usize].src_next;
                    self.enqueue(words, cur, Ready::SIGNAL | Ready::ERROR);
                    cur = next;
                }
            }
        }
    }

    /// After fork: no notification in flight, and every registration must be made again on the
    /// new poller.
    pub fn reinit(&mut self) {
        self.wake.reset();
        // A run (and its running callback, and threads waiting for it) in a thread that did
        // not survive the fork.
        self.ctl.running = false;
        if self.current != NIL {
            // Its callback went with that thread: the event stays, without a callback.
            let idx = self.current;
            self.slot(idx).flags &= !flag::RUNNING;
            self.current = NIL;
        }
        self.waiters = 0;
        self.io.forget_kernel();
        self.sig.forget_kernel();
    }

    /// Whether there is anything that keeps `run` going (pending or queued events).
    #[inline]
    pub fn has_events(&self) -> bool {
        self.n_pending > 0 || self.n_active > 0
    }
}
