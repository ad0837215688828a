//! Per-priority FIFO active queues, linked through the slots (O(1) push, pop and removal).

use super::slots::{Slot, NIL};

/// One priority's queue: head and tail slot indices.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    pub head: u32,
    pub tail: u32,
}

impl Queue {
    pub const EMPTY: Queue = Queue {
        head: NIL,
        tail: NIL,
    };

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head == NIL
    }

    #[inline]
    pub fn push_back<F>(&mut self, slots: &mut [Slot<F>], idx: u32) {
        slots[idx as usize].q_prev = self.tail;
        slots[idx as usize].q_next = NIL;
        if self.tail == NIL {
            self.head = idx;
        } else {
            slots[self.tail as usize].q_next = idx;
        }
        self.tail = idx;
    }

    #[inline]
    pub fn remove<F>(&mut self, slots: &mut [Slot<F>], idx: u32) {
        let (prev, next) = (slots[idx as usize].q_prev, slots[idx as usize].q_next);
        if prev == NIL {
            self.head = next;
        } else {
            slots[prev as usize].q_next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            slots[next as usize].q_prev = prev;
        }
        slots[idx as usize].q_prev = NIL;
        slots[idx as usize].q_next = NIL;
    }

    #[inline]
    pub fn pop_front<F>(&mut self, slots: &mut [Slot<F>]) -> Option<u32> {
        let idx = self.head;
        if idx == NIL {
            return None;
        }
        // `remove` of the head: its `q_prev` is already NIL.
        let next = slots[idx as usize].q_next;
        self.head = next;
        if next == NIL {
            self.tail = NIL;
        } else {
            slots[next as usize].q_prev = NIL;
        }
        slots[idx as usize].q_next = NIL;
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Rng;
    extern crate std;
    use std::collections::VecDeque;
    use std::vec::Vec;

    fn slots(n: usize) -> Vec<Slot<()>> {
        (0..n).map(|_| Slot::EMPTY).collect()
    }

    /// Random push/pop/remove against a `VecDeque` model.
    #[test]
    fn matches_a_deque_model() {
        const N: usize = 64;
        let ops = if cfg!(miri) { 500 } else { 20_000 };
        let mut rng = Rng::new(0x5eed);
        let mut s = slots(N);
        let mut q = Queue::EMPTY;
        let mut model: VecDeque<u32> = VecDeque::new();
        for _ in 0..ops {
            match rng.below(3) {
                0 => {
                    let idx = rng.below(N as u64) as u32;
                    if !model.contains(&idx) {
                        q.push_back(&mut s, idx);
                        model.push_back(idx);
                    }
                }
                1 => assert_eq!(q.pop_front(&mut s), model.pop_front()),
                _ => {
                    if !model.is_empty() {
                        let at = rng.below(model.len() as u64) as usize;
                        let idx = model.remove(at).unwrap();
                        q.remove(&mut s, idx);
                    }
                }
            }
            assert_eq!(q.is_empty(), model.is_empty());
        }
        let mut rest = Vec::new();
        while let Some(i) = q.pop_front(&mut s) {
            rest.push(i);
        }
        assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
    }
}
