//! Every armed timeout of a base, keyed by slot index: the 4-ary heap, the dense per-slot
//! tables it needs (heap position, interval or deadline), and the common-timeout queues.
//!
//! The tables live apart from the event records so that a heap move writes 4 bytes into a
//! dense array (not into a 40-byte record: at a million timers that is the difference between
//! a cache hit and a miss per level), and so that events that never use a timeout pay nothing:
//! the tables grow only as far as the highest slot index that armed one needs (filled to the
//! room that growth allocated).
//!
//! Common timeouts (libevent's `event_base_init_common_timeout`): timers of one duration are
//! added in time order, so an add is an append to a FIFO, and only each queue's head sits in
//! the heap.
//!
//! Timeouts whose start is not read yet (the time rule, see [`Timers::arm_fresh`]) wait in
//! the fresh list, unordered: adding one is an append, deleting one a swap-remove, and the
//! loop's next clock reading moves them all into the heap at once ([`Timers::start_fresh`]).

use crate::seam::Buf;
use crate::Error;

use super::heap::{Entry, Heap};
use super::slots::{NIL, NO_TIME};

/// The most common-timeout queues a base holds.
pub(crate) const MAX_COMMON: usize = 255;

/// One common-timeout queue: its duration and its members (linked through [`Link`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Common {
    pub dur: u64,
    pub head: u32,
    pub tail: u32,
    pub len: u32,
}

/// A slot's membership in a common-timeout queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Link {
    /// Queue number + 1, or 0.
    pub q: u8,
    pub prev: u32,
    pub next: u32,
}

const UNLINKED: Link = Link {
    q: 0,
    prev: NIL,
    next: NIL,
};

/// A timer that fired: which slot, its deadline, and its common-timeout queue (+1, or 0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fired {
    pub idx: u32,
    pub at: u64,
    pub q: u8,
}

/// Marks a `pos` entry as a place in the fresh list (the low bits), not in the heap.
const FRESH: u32 = 1 << 31;

/// All timeouts of a base.
#[derive(Debug)]
pub(crate) struct Timers<HV, PV, TV, LV, CV> {
    heap: Heap<HV>,
    /// Per slot: heap position, `FRESH | place in fresh`, or `NIL`.
    pos: PV,
    /// Per slot: re-arm interval of a heap timer (`NO_TIME`: none), the timeout of a fresh
    /// one, or the deadline of a common-timeout member.
    time: TV,
    /// Slots whose timeout starts at the next clock reading, in no order.
    fresh: PV,
    /// Per slot: common-timeout links (grown only when common timeouts are used).
    link: LV,
    commons: CV,
}

impl<HV, PV, TV, LV, CV> Timers<HV, PV, TV, LV, CV>
where
    HV: Buf<Entry>,
    PV: Buf<u32>,
    TV: Buf<u64>,
    LV: Buf<Link>,
    CV: Buf<Common>,
{
    pub fn new() -> Self {
        Timers {
            heap: Heap::new(),
            pos: PV::new(),
            time: TV::new(),
            fresh: PV::new(),
            link: LV::new(),
            commons: CV::new(),
        }
    }

    /// Makes room to arm a timeout for slot `idx` (`common`: in a common-timeout queue), so
    /// that arming it cannot fail.
    #[inline(always)]
    pub fn reserve(&mut self, idx: u32, common: bool) -> Result<(), Error> {
        // The usual case, every add after the first few: room everywhere already (`time`
        // grows with `pos`).
        if !common
            && (idx as usize) < self.pos.len()
            && self.heap.len() < self.heap.v.capacity()
            && self.fresh.len() < self.fresh.capacity()
        {
            debug_assert!((idx as usize) < self.time.len());
            return Ok(());
        }
        self.reserve_slow(idx, common)
    }

    #[cold]
    #[inline(never)]
    fn reserve_slow(&mut self, idx: u32, common: bool) -> Result<(), Error> {
        let need = idx as usize + 1;
        let mut ok = self.heap.v.reserve_total(self.heap.len() + 1)
            && self.fresh.reserve_total(self.fresh.len() + 1)
            && self.pos.reserve_total(need)
            && self.time.reserve_total(need)
            && (!common || self.link.fill_to(need, UNLINKED));
        if ok {
            // Fill the per-slot tables to the room they have (the vector's growth already
            // doubled it), so the next slots' first timeouts take the fast path: one call
            // here per doubling, not per new slot. Memory stays what was allocated.
            let len = need.max(self.pos.capacity().min(self.time.capacity()));
            ok = self.pos.fill_to(len, NIL) && self.time.fill_to(len, NO_TIME);
        }
        ok.then_some(()).ok_or(Error::Full)
    }

    /// Armed timeouts.
    pub fn count(&self) -> u32 {
        let members: u32 = self.commons.iter().map(|c| c.len).sum();
        let heads = self.commons.iter().filter(|c| c.head != NIL).count() as u32;
        self.heap.len() as u32 + members - heads + self.fresh.len() as u32
    }

    #[inline]
    fn queue_of(&self, idx: u32) -> u8 {
        self.link.get(idx as usize).map_or(0, |l| l.q)
    }

    /// Whether slot `idx` has a timeout armed.
    #[inline]
    pub fn armed(&self, idx: u32) -> bool {
        self.pos.get(idx as usize).is_some_and(|p| *p != NIL) || self.queue_of(idx) != 0
    }

    /// Its armed deadline (`None` also for a fresh timeout, whose start is not read yet).
    pub fn deadline(&self, idx: u32) -> Option<u64> {
        if self.queue_of(idx) != 0 {
            return Some(self.time[idx as usize]);
        }
        let p = *self.pos.get(idx as usize)?;
        (p != NIL && p & FRESH == 0).then(|| self.heap.v[p as usize].at)
    }

    /// Whether some timeout waits for the next clock reading to start.
    #[inline]
    pub fn has_fresh(&self) -> bool {
        !self.fresh.is_empty()
    }

    /// Arms slot `idx`'s timeout of `timeout` ns without a start: it starts at the next
    /// clock reading, [`start_fresh`](Timers::start_fresh) (so it is due no earlier than
    /// `timeout` after this call). Room was reserved.
    #[inline]
    pub fn arm_fresh(&mut self, idx: u32, timeout: u64) {
        self.time[idx as usize] = timeout;
        self.pos[idx as usize] = FRESH | self.fresh.len() as u32;
        let _ = self.fresh.try_push(idx);
    }

    /// Starts every fresh timeout at `now`: each moves into the heap, due `timeout` later.
    pub fn start_fresh(&mut self, now: u64) {
        let pos = &mut self.pos;
        let time = &self.time;
        for &idx in self.fresh.iter() {
            let at = now.saturating_add(time[idx as usize]);
            let _ = self
                .heap
                .push(Entry { at, idx }, &mut |i, p| pos[i as usize] = p);
        }
        self.fresh.clear();
    }

    /// Takes slot `idx` off the fresh list (a swap-remove: the last member takes its place).
    #[inline]
    fn remove_fresh(&mut self, idx: u32, p: u32) {
        let k = (p & !FRESH) as usize;
        let last = self.fresh.pop().expect("fresh position out of range");
        if last != idx {
            self.fresh[k] = last;
            self.pos[last as usize] = p;
        }
        self.pos[idx as usize] = NIL;
    }

    /// The earliest deadline.
    #[inline]
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.at)
    }

    /// Arms a heap timeout at `at`; `interval` is kept for a persistent re-arm. Returns whether
    /// it became the earliest. Room was reserved.
    #[inline(always)]
    pub fn arm(&mut self, idx: u32, at: u64, interval: u64) -> bool {
        self.time[idx as usize] = interval;
        self.push(idx, at)
    }

    /// [`disarm`](Timers::disarm) then [`arm`](Timers::arm): a timeout already in the heap
    /// moves in place (one sift, not a removal and an insertion). Returns whether the
    /// earliest deadline moved. Room was reserved.
    #[inline(always)]
    pub fn rearm(&mut self, idx: u32, at: u64, interval: u64) -> bool {
        if self.queue_of(idx) != 0 {
            let moved = self.unlink(idx);
            return self.arm(idx, at, interval) | moved;
        }
        match self.pos.get(idx as usize) {
            Some(&p) if p != NIL && p & FRESH == 0 => {
                self.time[idx as usize] = interval;
                if self.heap.v[p as usize].at == at {
                    // The deadline it has (a timeout pushed back within one tick of a coarse
                    // clock): the heap stays as it is.
                    return false;
                }
                let pos = &mut self.pos;
                self.heap
                    .update(p as usize, at, &mut |i, q| pos[i as usize] = q);
                p == 0 || self.pos[idx as usize] == 0
            }
            Some(&p) if p != NIL => {
                self.remove_fresh(idx, p); // not in the heap: the earliest deadline stays
                self.arm(idx, at, interval)
            }
            _ => self.arm(idx, at, interval),
        }
    }

    #[inline(always)]
    fn push(&mut self, idx: u32, at: u64) -> bool {
        let pos = &mut self.pos;
        self.heap
            .push(Entry { at, idx }, &mut |i, p| pos[i as usize] = p)
            == Ok(0)
    }

    /// Takes slot `idx`, at `pos` entry `p` (not `NIL`), off the heap or the fresh list.
    #[inline(always)]
    fn remove_from_heap(&mut self, idx: u32, p: u32) -> bool {
        if p & FRESH != 0 {
            self.remove_fresh(idx, p);
            return false; // not in the heap: the earliest deadline stays
        }
        let pos = &mut self.pos;
        self.heap
            .remove(p as usize, &mut |i, p| pos[i as usize] = p);
        self.pos[idx as usize] = NIL;
        p == 0
    }

    /// [`remove_from_heap`](Timers::remove_from_heap) if slot `idx` is in the heap or the
    /// fresh list.
    fn remove_if_armed(&mut self, idx: u32) -> bool {
        let p = self.pos[idx as usize];
        p != NIL && self.remove_from_heap(idx, p)
    }

    /// Disarms slot `idx`'s timeout. Returns whether the earliest deadline moved.
    #[inline(always)]
    pub fn disarm(&mut self, idx: u32) -> bool {
        if self.queue_of(idx) != 0 {
            return self.unlink(idx);
        }
        match self.pos.get(idx as usize) {
            Some(&p) if p != NIL => self.remove_from_heap(idx, p),
            _ => false,
        }
    }

    /// Takes the earliest timer off if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<Fired> {
        let top = self.heap.peek()?;
        if top.at > now || top.at == NO_TIME {
            return None;
        }
        let pos = &mut self.pos;
        self.heap.pop(&mut |i, p| pos[i as usize] = p);
        self.pos[top.idx as usize] = NIL;
        let q = self.queue_of(top.idx);
        if q != 0 {
            self.unlink(top.idx);
        }
        Some(Fired {
            idx: top.idx,
            at: top.at,
            q,
        })
    }

    /// Re-arms a persistent timeout that fired at `f.at`: one interval after it, or after
    /// `now` if the loop fell behind, and never due again within this pass.
    pub fn rearm_after(&mut self, f: Fired, now: u64) {
        let interval = if f.q != 0 {
            self.commons[f.q as usize - 1].dur
        } else {
            self.time[f.idx as usize]
        };
        if interval == NO_TIME {
            return;
        }
        let mut next = f.at.saturating_add(interval);
        if next <= now {
            next = now.saturating_add(interval).max(now.saturating_add(1));
        }
        if next == NO_TIME {
            return; // the end of time: `Duration::MAX` means never
        }
        if f.q != 0 {
            self.arm_common(f.idx, f.q - 1, next);
        } else {
            self.push(f.idx, next);
        }
    }

    /// Re-arms an armed timeout to one interval from `now` (a persistent event that fired for
    /// another reason, as libevent does).
    pub fn rearm_from_now(&mut self, idx: u32, now: u64) {
        let q = self.queue_of(idx);
        if q != 0 {
            self.unlink(idx);
            let at = now.saturating_add(self.commons[q as usize - 1].dur);
            self.arm_common(idx, q - 1, at);
        } else if let Some(&p) = self.pos.get(idx as usize) {
            // A fresh timeout starts later than `now` anyway: left as it is.
            if p != NIL && p & FRESH == 0 {
                let at = now.saturating_add(self.time[idx as usize]);
                let pos = &mut self.pos;
                self.heap
                    .update(p as usize, at, &mut |i, p| pos[i as usize] = p);
            }
        }
    }

    // ------------------------------------------------------------- common timeouts

    /// The queue for duration `dur` (ns), made on first use.
    pub fn common(&mut self, dur: u64) -> Result<u8, Error> {
        if let Some(i) = self.commons.iter().position(|c| c.dur == dur) {
            return Ok(i as u8);
        }
        if self.commons.len() >= MAX_COMMON {
            return Err(Error::Full);
        }
        let c = Common {
            dur,
            head: NIL,
            tail: NIL,
            len: 0,
        };
        self.commons.try_push(c).map_err(|_| Error::Full)?;
        Ok((self.commons.len() - 1) as u8)
    }

    /// Whether `q` names a queue.
    pub fn has_common(&self, q: u8) -> bool {
        (q as usize) < self.commons.len()
    }

    /// The duration of queue `q`.
    pub fn common_duration(&self, q: u8) -> u64 {
        self.commons[q as usize].dur
    }

    /// Inserts `idx` with deadline `at` into queue `q`, walking from the tail (deadlines of one
    /// duration arrive in order, so this is an append). Returns whether the earliest deadline
    /// moved. Room was reserved.
    pub fn arm_common(&mut self, idx: u32, q: u8, at: u64) -> bool {
        self.time[idx as usize] = at;
        let c = self.commons[q as usize];
        let mut after = c.tail;
        while after != NIL && self.time[after as usize] > at {
            after = self.link[after as usize].prev;
        }
        let before = if after == NIL {
            c.head
        } else {
            self.link[after as usize].next
        };
        self.link[idx as usize] = Link {
            q: q + 1,
            prev: after,
            next: before,
        };
        let c = &mut self.commons[q as usize];
        c.len += 1;
        if before == NIL {
            c.tail = idx;
        } else {
            self.link[before as usize].prev = idx;
        }
        if after != NIL {
            self.link[after as usize].next = idx;
            return false;
        }
        // A new head: it replaces the old head in the heap.
        let old = c.head;
        c.head = idx;
        let mut moved = false;
        if old != NIL {
            moved |= self.remove_if_armed(old);
        }
        moved | self.push(idx, at)
    }

    /// Takes `idx` out of its queue (and the heap, if it was the head). Returns whether the
    /// earliest deadline moved.
    fn unlink(&mut self, idx: u32) -> bool {
        let l = self.link[idx as usize];
        let c = &mut self.commons[l.q as usize - 1];
        c.len -= 1;
        if l.next == NIL {
            c.tail = l.prev;
        } else {
            self.link[l.next as usize].prev = l.prev;
        }
        let mut moved = false;
        if l.prev == NIL {
            c.head = l.next;
            moved = self.remove_if_armed(idx);
            if l.next != NIL {
                let at = self.time[l.next as usize];
                moved |= self.push(l.next, at);
            }
        } else {
            self.link[l.prev as usize].next = l.next;
        }
        self.link[idx as usize] = UNLINKED;
        moved
    }
}
