//! The timer heap: a 4-ary min-heap of `(deadline, slot)` pairs with the deadline stored
//! inline, so a comparison never chases a pointer; every move reports the entry's new
//! position (kept in a dense per-slot array), making remove and re-arm O(log n).
//!
//! (Cache-line-aligned sibling groups were tried and measured ~15% slower on a million
//! timers: more index arithmetic, and an over-aligned vector cannot grow in place.)
//!
//! Entries with equal deadlines leave in heap order, not insertion order. A 32-bit arm
//! sequence in the entry's padding as a tiebreak was measured on W4a (a million timers):
//! compared by short-circuit `||` it added ~10 branch mispredictions per timer, branch-free
//! it added 16% instructions, and as a cold call behind the equality test 6.8% instructions
//! and a few percent of wall time. Users who need add order for ties use a common timeout
//! (a FIFO).

use crate::seam::Buf;

/// One armed timeout: deadline (ns on the base's clock) and slot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub at: u64,
    pub idx: u32,
}

const D: usize = 4;

/// The heap. `pos(idx, p)` is called whenever the entry of slot `idx` lands at position `p`.
#[derive(Debug)]
pub(crate) struct Heap<V> {
    pub v: V,
}

impl<V: Buf<Entry>> Heap<V> {
    pub fn new() -> Self {
        Heap { v: V::new() }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.v.len()
    }

    #[inline]
    pub fn peek(&self) -> Option<Entry> {
        self.v.first().copied()
    }

    /// Inserts a timer and returns its position (0: it is the earliest); `Err` when the
    /// storage is full.
    #[inline(always)]
    pub fn push(&mut self, e: Entry, pos: &mut impl FnMut(u32, u32)) -> Result<usize, ()> {
        let i = self.v.len();
        self.v.try_push(e).map_err(|_| ())?;
        Ok(self.sift_up(i, e, pos))
    }

    /// Removes the entry at position `i` and returns it (the last one: a pop, no sift).
    #[inline]
    pub fn remove(&mut self, i: usize, pos: &mut impl FnMut(u32, u32)) -> Entry {
        let out = self.v[i];
        let last = self.v.pop().expect("heap position out of range");
        if i < self.v.len() {
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
        let out = *self.v.first()?;
        let last = self.v.pop().expect("not empty");
        let n = self.v.len();
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
            let m = self.v[c];
            self.v[hole] = m;
            pos(m.idx, hole as u32);
            hole = c;
        }
        self.sift_up(hole, last, pos);
        Some(out)
    }

    /// The child with the earliest deadline among `first..first + D` (clipped to `n`): a
    /// two-round tournament, which compiles to conditional moves.
    #[inline]
    fn min_child(&self, first: usize, n: usize) -> usize {
        if first + D <= n {
            let v = &self.v[first..first + D];
            let (a, b) = if v[1].at < v[0].at {
                (1, v[1].at)
            } else {
                (0, v[0].at)
            };
            let (c, d) = if v[3].at < v[2].at {
                (3, v[3].at)
            } else {
                (2, v[2].at)
            };
            first + if d < b { c } else { a }
        } else {
            let mut min = first;
            for c in first + 1..n {
                if self.v[c].at < self.v[min].at {
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
            idx: self.v[i].idx,
        };
        self.place(i, e, pos);
    }

    /// Puts `e` at hole `i`, moving it up or down as its deadline requires.
    fn place(&mut self, i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) {
        if i > 0 && e.at < self.v[(i - 1) / D].at {
            self.sift_up(i, e, pos);
        } else {
            self.sift_down(i, e, pos);
        }
    }

    #[inline(always)]
    fn sift_up(&mut self, mut i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) -> usize {
        while i > 0 {
            let parent = (i - 1) / D;
            let p = self.v[parent];
            if p.at <= e.at {
                break;
            }
            self.v[i] = p;
            pos(p.idx, i as u32);
            i = parent;
        }
        self.v[i] = e;
        pos(e.idx, i as u32);
        i
    }

    fn sift_down(&mut self, mut i: usize, e: Entry, pos: &mut impl FnMut(u32, u32)) {
        let n = self.v.len();
        loop {
            let first = D * i + 1;
            if first >= n {
                break;
            }
            let min = self.min_child(first, n);
            if e.at <= self.v[min].at {
                break;
            }
            let m = self.v[min];
            self.v[i] = m;
            pos(m.idx, i as u32);
            i = min;
        }
        self.v[i] = e;
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
    fn matches_an_ordered_set_model() {
        use core::cell::Cell;
        const N: usize = 256;
        const NONE: u32 = u32::MAX;
        let ops = if cfg!(miri) { 600 } else { 40_000 };
        let mut rng = Rng::new(42);
        let mut heap: Heap<Vec<Entry>> = Heap::new();
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
            for (p, e) in heap.v.iter().enumerate() {
                assert_eq!(at_pos[e.idx as usize].get(), p as u32, "position index");
                if p > 0 {
                    assert!(heap.v[(p - 1) / D].at <= e.at, "heap order");
                }
            }
        }
    }
}
