//! Common timeouts: many timers of one duration kept in a FIFO (libevent's
//! `event_base_init_common_timeout`). Deadlines of one duration are added in time order, so an
//! add is an append (O(1)) and only each queue's head sits in the timer heap.

use crate::seam::{Buf, Config};
use crate::Error;

use super::slots::NIL;
use super::timer::Entry;
use super::BaseState;

/// The most common-timeout queues a base holds.
pub(crate) const MAX_COMMON: usize = 255;

/// One queue: its duration and its members, linked through `Slot::ct_prev/ct_next`, each with
/// its deadline in `Slot::time`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Common {
    pub dur: u64,
    pub head: u32,
    pub tail: u32,
    pub len: u32,
}

impl<C: Config> BaseState<C> {
    /// The queue for duration `dur` (ns), made on first use.
    pub fn common_timeout(&mut self, dur: u64) -> Result<u8, Error> {
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

    /// Inserts `idx` with deadline `at` into queue `ct` (from the tail: deadlines of one
    /// duration arrive in order, so this is an append). Returns whether the heap's earliest
    /// deadline moved. The caller reserved one heap entry.
    pub(super) fn arm_common(&mut self, idx: u32, ct: u8, at: u64) -> bool {
        let slots = &mut self.slots.v;
        let q = &mut self.commons[ct as usize];
        slots[idx as usize].ct = ct + 1;
        slots[idx as usize].time = at;
        let mut after = q.tail;
        while after != NIL && slots[after as usize].time > at {
            after = slots[after as usize].ct_prev;
        }
        let before = if after == NIL {
            q.head
        } else {
            slots[after as usize].ct_next
        };
        slots[idx as usize].ct_prev = after;
        slots[idx as usize].ct_next = before;
        if before == NIL {
            q.tail = idx;
        } else {
            slots[before as usize].ct_prev = idx;
        }
        q.len += 1;
        if after != NIL {
            slots[after as usize].ct_next = idx;
            return false;
        }
        // New head: it replaces the old head in the heap.
        let old = q.head;
        q.head = idx;
        let mut moved = false;
        if old != NIL && slots[old as usize].timer != NIL {
            let pos = slots[old as usize].timer;
            moved |= pos == 0;
            self.heap
                .remove(pos as usize, &mut |i, p| slots[i as usize].timer = p);
            slots[old as usize].timer = NIL;
        }
        let _ = self
            .heap
            .push(Entry { at, idx }, &mut |i, p| slots[i as usize].timer = p);
        moved | (slots[idx as usize].timer == 0)
    }

    /// Removes `idx` from its queue. Returns whether the heap's earliest deadline moved.
    pub(super) fn disarm_common(&mut self, idx: u32) -> bool {
        let slots = &mut self.slots.v;
        let ct = slots[idx as usize].ct - 1;
        let q = &mut self.commons[ct as usize];
        let (prev, next) = (slots[idx as usize].ct_prev, slots[idx as usize].ct_next);
        if next == NIL {
            q.tail = prev;
        } else {
            slots[next as usize].ct_prev = prev;
        }
        let mut moved = false;
        if prev == NIL {
            q.head = next;
            let pos = slots[idx as usize].timer;
            if pos != NIL {
                moved = pos == 0;
                self.heap
                    .remove(pos as usize, &mut |i, p| slots[i as usize].timer = p);
            }
            if next != NIL {
                let at = slots[next as usize].time;
                let _ = self.heap.push(Entry { at, idx: next }, &mut |i, p| {
                    slots[i as usize].timer = p
                });
            }
        } else {
            slots[prev as usize].ct_next = next;
        }
        q.len -= 1;
        let s = &mut slots[idx as usize];
        s.ct = 0;
        s.timer = NIL;
        s.ct_prev = NIL;
        s.ct_next = NIL;
        moved
    }

    /// The head of queue `ct` fired (its heap entry is already popped): unlink it and put the
    /// next member in the heap.
    pub(super) fn ct_pop_head(&mut self, ct: u8) {
        let slots = &mut self.slots.v;
        let q = &mut self.commons[ct as usize];
        let idx = q.head;
        let next = slots[idx as usize].ct_next;
        q.head = next;
        q.len -= 1;
        if next == NIL {
            q.tail = NIL;
        } else {
            slots[next as usize].ct_prev = NIL;
            let at = slots[next as usize].time;
            let _ = self.heap.push(Entry { at, idx: next }, &mut |i, p| {
                slots[i as usize].timer = p
            });
        }
        let s = &mut slots[idx as usize];
        s.ct = 0;
        s.ct_prev = NIL;
        s.ct_next = NIL;
    }
}
