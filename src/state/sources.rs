//! Per-source and per-signal tables: the events on each source, the interest the kernel should
//! have (`want`) and the interest it has (`kernel`), and the change list of entries whose two
//! differ. Changes reach the poller only when the loop applies the list, so a delete+add of
//! the same interest within one iteration never reaches the kernel.

use crate::seam::{Buf, Interest};
use crate::Error;

const HEAD_BITS: u32 = 23;
const HEAD_MASK: u32 = (1 << HEAD_BITS) - 1;
const WANT_SHIFT: u32 = HEAD_BITS;
const KERNEL_SHIFT: u32 = HEAD_BITS + 4;
const DIRTY: u32 = 1 << 31;

/// "No event" as a 23-bit head.
pub(crate) const NIL_HEAD: u32 = HEAD_MASK;

/// The `kernel` value of a source whose registration the base cannot know (see
/// `BaseState::link`): `EDGE` with no readiness kind, which no real registration is. The loop
/// resolves it with an explicit delete or a fresh add.
pub(crate) const UNKNOWN: Interest = Interest::EDGE;

/// One source's entry packed in 32 bits: head event (23) | want (4) | kernel (4) | dirty (1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry(u32);

impl Entry {
    pub const EMPTY: Entry = Entry(NIL_HEAD);

    /// The first event on this source (a slot index), or `None`.
    #[inline]
    pub fn head(self) -> Option<u32> {
        let h = self.0 & HEAD_MASK;
        (h != NIL_HEAD).then_some(h)
    }

    #[inline]
    pub fn set_head(&mut self, head: Option<u32>) {
        let h = head.unwrap_or(NIL_HEAD);
        debug_assert!(h <= HEAD_MASK);
        self.0 = (self.0 & !HEAD_MASK) | h;
    }

    #[inline]
    pub fn want(self) -> Interest {
        Interest::from_bits_truncate((self.0 >> WANT_SHIFT) as u8 & 0xf)
    }

    #[inline]
    pub fn set_want(&mut self, i: Interest) {
        self.0 = (self.0 & !(0xf << WANT_SHIFT)) | (i.bits() as u32) << WANT_SHIFT;
    }

    #[inline]
    pub fn kernel(self) -> Interest {
        Interest::from_bits_truncate((self.0 >> KERNEL_SHIFT) as u8 & 0xf)
    }

    #[inline]
    pub fn set_kernel(&mut self, i: Interest) {
        self.0 = (self.0 & !(0xf << KERNEL_SHIFT)) | (i.bits() as u32) << KERNEL_SHIFT;
    }

    #[inline]
    pub fn dirty(self) -> bool {
        self.0 & DIRTY != 0
    }

    #[inline]
    pub fn set_dirty(&mut self, d: bool) {
        if d {
            self.0 |= DIRTY
        } else {
            self.0 &= !DIRTY
        }
    }
}

/// Entries per summary bit.
const BLOCK: usize = 64;

/// A table of entries indexed by id. The change list is the entries' own dirty bits, plus a
/// summary with one bit per block of 64 entries, so the loop visits only blocks with changes
/// (and the list costs 1/512 byte per source instead of 4).
#[derive(Debug)]
pub(crate) struct Table<V, S> {
    pub v: V,
    summary: S,
    /// Whether some summary bit is set (an iteration with no change skips the scan).
    marked: bool,
}

impl<V: Buf<Entry>, S: Buf<u64>> Table<V, S> {
    pub fn new() -> Self {
        Table {
            v: V::new(),
            summary: S::new(),
            marked: false,
        }
    }

    /// The entry of `id` (empty if the table never reached it).
    #[inline]
    pub fn get(&self, id: u32) -> Entry {
        self.v.get(id as usize).copied().unwrap_or(Entry::EMPTY)
    }

    /// The entry of `id`, growing the table (and its summary) to reach it.
    #[inline]
    pub fn entry(&mut self, id: u32) -> Result<&mut Entry, Error> {
        // The usual case inline (every add, delete and change of a watched source): the
        // entry exists.
        if (id as usize) >= self.v.len() {
            self.grow_to(id)?;
        }
        Ok(&mut self.v[id as usize])
    }

    /// Grows the table (and its summary) to reach `id`.
    #[cold]
    #[inline(never)]
    fn grow_to(&mut self, id: u32) -> Result<(), Error> {
        let need = id as usize + 1;
        let words = need.div_ceil(BLOCK * 64);
        if !self.v.reserve_total(need) || !self.summary.reserve_total(words) {
            return Err(Error::SourceRange);
        }
        // Cannot fail: room was reserved above.
        if self.v.fill_to(need, Entry::EMPTY) && self.summary.fill_to(words, 0) {
            Ok(())
        } else {
            Err(Error::SourceRange)
        }
    }

    #[inline]
    fn mark(&mut self, id: usize) {
        let block = id / BLOCK;
        self.summary[block / 64] |= 1 << (block % 64);
        self.marked = true;
    }

    /// Sets what the kernel should watch for `id`; marks the entry for the loop if that now
    /// differs from what it watches. Returns whether the entry is (now) marked.
    pub fn set_want(&mut self, id: u32, want: Interest) -> bool {
        let Ok(e) = self.entry(id) else {
            return false;
        };
        e.set_want(want);
        if e.want() != e.kernel() && !e.dirty() {
            e.set_dirty(true);
            self.mark(id as usize);
        }
        self.get(id).dirty()
    }

    /// Takes the marked entries off the list: calls `f` with the id of each (its dirty bit
    /// already cleared), in id order.
    #[inline]
    pub fn take_changes(&mut self, mut f: impl FnMut(&mut Self, u32)) {
        if !self.marked {
            return;
        }
        self.marked = false;
        for w in 0..self.summary.len() {
            while self.summary[w] != 0 {
                let bit = self.summary[w].trailing_zeros() as usize;
                self.summary[w] &= !(1 << bit);
                let start = (w * 64 + bit) * BLOCK;
                let end = (start + BLOCK).min(self.v.len());
                for id in start..end {
                    if self.v[id].dirty() {
                        self.v[id].set_dirty(false);
                        f(self, id as u32);
                    }
                }
            }
        }
    }

    /// Marks what the kernel has as unknown for every entry that is or was watched (after
    /// fork: the poller is a new one, or the old one re-made in place): the loop resets each
    /// (`Poller::reset`) to what it should watch.
    pub fn forget_kernel(&mut self, unknown: Interest) {
        for id in 0..self.v.len() {
            let e = &mut self.v[id];
            let watched = !e.want().is_empty() || !e.kernel().is_empty();
            e.set_kernel(if watched { unknown } else { Interest::NONE });
            e.set_dirty(false);
            if watched {
                e.set_dirty(true);
                self.mark(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    #[test]
    fn entry_fields_do_not_overlap() {
        let mut e = Entry::EMPTY;
        assert_eq!(e.head(), None);
        e.set_head(Some(NIL_HEAD - 1));
        e.set_want(Interest::READ | Interest::EDGE);
        e.set_kernel(Interest::WRITE | Interest::CLOSED);
        e.set_dirty(true);
        assert_eq!(e.head(), Some(NIL_HEAD - 1));
        assert_eq!(e.want(), Interest::READ | Interest::EDGE);
        assert_eq!(e.kernel(), Interest::WRITE | Interest::CLOSED);
        assert!(e.dirty());
        e.set_head(None);
        e.set_dirty(false);
        assert_eq!(e.head(), None);
        assert_eq!(e.want(), Interest::READ | Interest::EDGE);
        assert!(!e.dirty());
    }

    fn changes(t: &mut Table<Vec<Entry>, Vec<u64>>) -> Vec<u32> {
        let mut out = Vec::new();
        t.take_changes(|_, id| out.push(id));
        out
    }

    #[test]
    fn a_change_that_is_undone_leaves_nothing_to_apply() {
        let mut t: Table<Vec<Entry>, Vec<u64>> = Table::new();
        assert!(t.set_want(7, Interest::READ));
        assert_eq!(changes(&mut t), [7]);
        t.entry(7).unwrap().set_kernel(Interest::READ);
        // delete + add within one iteration
        assert!(t.set_want(7, Interest::NONE));
        t.set_want(7, Interest::READ);
        assert_eq!(changes(&mut t), [7], "listed once");
        let e = t.get(7);
        assert_eq!(e.want(), e.kernel(), "nothing for the kernel to do");
        assert_eq!(
            changes(&mut t),
            [] as [u32; 0],
            "the list is empty after a pass"
        );
    }

    #[test]
    fn changes_across_many_blocks_are_all_visited_in_order() {
        let mut t: Table<Vec<Entry>, Vec<u64>> = Table::new();
        let ids = [0u32, 63, 64, 4095, 4096, 9_999, 70_000];
        for &id in ids.iter().rev() {
            t.set_want(id, Interest::WRITE);
        }
        assert_eq!(changes(&mut t), ids);
        for &id in &ids {
            assert!(!t.get(id).dirty());
        }
    }

    #[test]
    fn fixed_table_refuses_ids_beyond_capacity() {
        let mut t: Table<heapless::Vec<Entry, 4>, heapless::Vec<u64, 4>> = Table::new();
        assert!(t.entry(3).is_ok());
        assert_eq!(t.entry(4), Err(Error::SourceRange));
    }
}
