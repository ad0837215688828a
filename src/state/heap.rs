//! The timer heap: a 4-ary min-heap of `(deadline, slot)` pairs with the deadline stored
//! inline, so a comparison never chases a pointer; every move reports the entry's new
//! position (kept in a dense per-slot array), making remove and re-arm O(log n).
//!
//! The four children of a node are one 64-byte [`Group`], aligned to a cache line: choosing
//! the smallest child costs one cache miss, not two (the root sits alone in the last lane of
//! group 0, so that every sibling group fills exactly one line).

use crate::seam::Buf;

/// One armed timeout: deadline (ns on the base's clock) and slot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub at: u64,
    pub idx: u32,
}

const D: usize = 4;
/// Position `i` of the heap is lane `(i + SHIFT) % 4` of group `(i + SHIFT) / 4`.
const SHIFT: usize = D - 1;

/// Four sibling entries on one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
pub(crate) struct Group([Entry; D]);

const HOLE: Entry = Entry { at: 0, idx: 0 };

/// The heap. `pos(idx, p)` is called whenever the entry of slot `idx` lands at position `p`.
#[derive(Debug)]
pub(crate) struct Heap<V> {
    groups: V,
    len: usize,
}

impl<V: Buf<Group>> Heap<V> {
    pub fn new() -> Self {
        Heap {
            groups: V::new(),
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `n` entries in all, so that pushes up to that length cannot fail.
    pub fn reserve_total(&mut self, n: usize) -> bool {
        self.groups.reserve_total((n + SHIFT).div_ceil(D))
    }

    #[inline]
    fn get(&self, i: usize) -> Entry {
        let p = i + SHIFT;
        self.groups[p / D].0[p % D]
    }

    #[inline]
    fn set(&mut self, i: usize, e: Entry) {
        let p = i + SHIFT;
        self.groups[p / D].0[p % D] = e;
    }

    /// The entry at position `i`.
    #[inline]
    pub fn at(&self, i: usize) -> Entry {
        debug_assert!(i < self.len);
        self.get(i)
    }

    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        (self.len > 0).then(|| self.get(0))
    }

    /// Inserts a timer; `Err` when the storage is full.
    pub fn push(&mut self, e: Entry, pos: &mut impl FnMut(u32, u32)) -> Result<(), ()> {
        let i = self.len;
        if (i + SHIFT) / D >= self.groups.len() {
            self.groups.try_push(Group([HOLE; D])).map_err(|_| ())?;
        }
        self.len += 1;
        self.sift_up(i, e, pos);
        Ok(())
    }

    /// Takes the last entry off the end.
    #[inline]
    fn take_last(&mut self) -> Entry {
        self.len -= 1;
        let e = self.get(self.len);
        if (self.len + SHIFT).is_multiple_of(D) {
            self.groups.pop(); // the last group is empty now
        }
        e
    }

    /// Removes the entry at position `i` and returns it.
    pub fn remove(&mut self, i: usize, pos: &mut impl FnMut(u32, u32)) -> Entry {
        let out = self.get(i);
        let last = self.take_last();
        if i < self.len {
            self.place(i, last, pos);
        }
        out
    }

    /// Removes and returns the earliest entry.
    ///
    /// Bottom-up (Floyd): the hole at the root moves down along the smaller children to a
    /// leaf, then the last entry is placed there and sifted up. The last entry almost always
    /// belongs near the bottom, so this saves the compare against it at every level.
    #[inline]
    pub fn pop(&mut self, pos: &mut impl FnMut(u32, u32)) -> Option<Entry> {
        let out = self.peek()?;
        let last = self.take_last();
        let n = self.len;
        if n == 0 {
            return Some(out);
        }
        let mut hole = 0;
        loop {
            let first = D * hole + 1;
            if first >= n {
                break;
            }
            let c = self.min_child(first, n);
            let m = self.get(c);
            self.set(hole, m);
            pos(m.idx, hole as u32);
            hole = c;
        }
        self.sift_up(hole, last, pos);
        Some(out)
    }

    /// The child with the earliest deadline among `first..first + D` (clipped to `n`): with
    /// all four present, a two-round tournament over one cache line (conditional moves).
    #[inline]
    fn min_child(&self, first: usize, n: usize) -> usize {
        if first + D <= n {
            let g = &self.groups[(first + SHIFT) / D].0;
            let (a, b) = if g[1].at < g[0].at {
                (1, g[1].at)
            } else {
                (0, g[0].at)
            };
            let (c, d) = if g[3].at < g[2].at {
                (3, g[3].at)
            } else {
                (2, g[2].at)
            };
            first + if d < b { c } else { a }
        } else {
            let mut min = first;
            for c in first + 1..n {
                if self.get(c).at < self.get(min).at {
                    min = c;
                }
            }
            min
        }
    }

    /// Changes the deadline of the entry at position `i`.
    pub fn update(&mut self, i: usize, at: u64, pos: &mut impl FnMut(u32, u32)) {
        let e = Entry {
            at,
            idx: self.get(i).idx,
        };
        self.place(i, e, pos);
    }

    /// Puts `e` at hole `i`, moving it up or down as its deadline requires.
    fn place(&mut self, i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) {
        if i > 0 && e.at < self.get((i - 1) / D).at {
            self.sift_up(i, e, pos);
        } else {
            self.sift_down(i, e, pos);
        }
    }

    fn sift_up(&mut self, mut i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) {
        while i > 0 {
            let parent = (i - 1) / D;
            let p = self.get(parent);
            if p.at <= e.at {
                break;
            }
            self.set(i, p);
            pos(p.idx, i as u32);
            i = parent;
        }
        self.set(i, e);
        pos(e.idx, i as u32);
    }

    fn sift_down(&mut self, mut i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) {
        let n = self.len;
        loop {
            let first = D * i + 1;
            if first >= n {
                break;
            }
            let min = self.min_child(first, n);
            let m = self.get(min);
            if e.at <= m.at {
                break;
            }
            self.set(i, m);
            pos(m.idx, i as u32);
            i = min;
        }
        self.set(i, e);
        pos(e.idx, i as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    extern crate std;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// Random push/pop/remove/update against a `BTreeSet` model; positions checked each step.
    #[test]
    fn sibling_groups_are_cache_lines() {
        assert_eq!(core::mem::size_of::<Group>(), 64);
        assert_eq!(core::mem::align_of::<Group>(), 64);
        // The children of position i are positions 4i+1..=4i+4: one group.
        for i in 0..100 {
            let first = (D * i + 1 + SHIFT) / D;
            let last = (D * i + D + SHIFT) / D;
            assert_eq!(first, last);
            assert_eq!((D * i + 1 + SHIFT) % D, 0);
        }
    }

    #[test]
    fn matches_an_ordered_set_model() {
        use core::cell::Cell;
        const N: usize = 256;
        const NONE: u32 = u32::MAX;
        let ops = if cfg!(miri) { 600 } else { 40_000 };
        let mut rng = Rng::new(42);
        let mut heap: Heap<Vec<Group>> = Heap::new();
        let at_pos: Vec<Cell<u32>> = (0..N).map(|_| Cell::new(NONE)).collect();
        let mut model: BTreeSet<(u64, u32)> = BTreeSet::new();
        let mut deadline = [0u64; N];
        let mut pos = |i: u32, p: u32| at_pos[i as usize].set(p);
        for step in 0..ops {
            let idx = rng.below(N as u64) as u32;
            let here = at_pos[idx as usize].get();
            match rng.below(4) {
                0 if here == NONE => {
                    let at = rng.below(1000);
                    heap.push(Entry { at, idx }, &mut pos).unwrap();
                    model.insert((at, idx));
                    deadline[idx as usize] = at;
                }
                1 => {
                    let got = heap.pop(&mut pos);
                    let min = model.first().copied();
                    assert_eq!(got.map(|e| e.at), min.map(|m| m.0), "step {step}");
                    if let Some(e) = got {
                        assert!(model.remove(&(e.at, e.idx)), "popped an unknown entry");
                        at_pos[e.idx as usize].set(NONE);
                    }
                }
                2 if here != NONE => {
                    let e = heap.remove(here as usize, &mut pos);
                    assert_eq!(e.idx, idx);
                    assert!(model.remove(&(deadline[idx as usize], idx)));
                    at_pos[idx as usize].set(NONE);
                }
                3 if here != NONE => {
                    let at = rng.below(1000);
                    heap.update(here as usize, at, &mut pos);
                    assert!(model.remove(&(deadline[idx as usize], idx)));
                    model.insert((at, idx));
                    deadline[idx as usize] = at;
                }
                _ => {}
            }
            assert_eq!(heap.len(), model.len());
            for p in 0..heap.len() {
                let e = heap.at(p);
                assert_eq!(at_pos[e.idx as usize].get(), p as u32, "position index");
                if p > 0 {
                    assert!(heap.at((p - 1) / D).at <= e.at, "heap order");
                }
            }
        }
    }
}
