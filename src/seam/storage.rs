//! Where a base keeps its events: fixed capacity (no allocator) or growable (`alloc`).

use core::ops::{Deref, DerefMut};

use crate::sync::AtomicU32;

/// A family of containers a base stores its state in.
///
/// Every table of a base (event records, timer heap, per-source table, active queues, change
/// list) is a `Self::Vec<_>`, and the per-event activation words, which other threads read
/// without the lock, are one `Self::Words`. Pick [`Fixed<N>`] for a base that must not
/// allocate, or [`Growable`] (feature `alloc`) for one that scales to tens of thousands of
/// events.
pub trait Storage {
    /// A vector of `T`.
    type Vec<T>: Buf<T>;
    /// The activation words, one per event slot.
    type Words: Words;
}

/// A vector that may refuse to grow.
pub trait Buf<T>: Deref<Target = [T]> + DerefMut {
    /// An empty vector.
    fn new() -> Self;
    /// Appends `value`, or hands it back when full (or out of memory).
    fn try_push(&mut self, value: T) -> Result<(), T>;
    /// Removes the last element.
    fn pop(&mut self) -> Option<T>;
    /// Removes every element.
    fn clear(&mut self);
    /// Makes room for `total` elements in all, so that pushes up to that length cannot fail;
    /// `false` if that is beyond capacity (or memory).
    fn reserve_total(&mut self, total: usize) -> bool;
}

/// An array of atomic words indexed by event slot, readable by any thread without the base
/// lock, and grown only under it.
pub trait Words {
    /// No words yet.
    fn new() -> Self;
    /// The word of slot `i`, if it exists.
    fn get(&self, i: usize) -> Option<&AtomicU32>;
    /// Makes words `0..len` exist (all zero when new); `false` if that is beyond capacity.
    /// Called under the base lock only.
    fn reserve(&self, len: usize) -> bool;
}

/// Fixed capacity: at most `N` events (and source ids, signals and priorities below `N`),
/// all storage inline in the base, no allocator.
#[derive(Debug)]
pub struct Fixed<const N: usize>;

impl<const N: usize> Storage for Fixed<N> {
    type Vec<T> = heapless::Vec<T, N>;
    type Words = [AtomicU32; N];
}

impl<T, const N: usize> Buf<T> for heapless::Vec<T, N> {
    fn new() -> Self {
        heapless::Vec::new()
    }
    #[inline]
    fn try_push(&mut self, value: T) -> Result<(), T> {
        self.push(value)
    }
    #[inline]
    fn pop(&mut self) -> Option<T> {
        heapless::Vec::pop(self)
    }
    fn clear(&mut self) {
        heapless::Vec::clear(self)
    }
    fn reserve_total(&mut self, total: usize) -> bool {
        total <= N
    }
}

impl<const N: usize> Words for [AtomicU32; N] {
    fn new() -> Self {
        core::array::from_fn(|_| AtomicU32::new(0))
    }
    #[inline]
    fn get(&self, i: usize) -> Option<&AtomicU32> {
        <[AtomicU32]>::get(self, i)
    }
    fn reserve(&self, len: usize) -> bool {
        len <= N
    }
}

#[cfg(feature = "alloc")]
pub use growable::Growable;

#[cfg(feature = "alloc")]
mod growable {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use super::{Buf, Storage, Words};
    use crate::sync::AtomicU32;

    /// Growable storage on the heap (feature `alloc`): as many events as memory holds.
    #[derive(Debug)]
    pub struct Growable;

    impl Storage for Growable {
        type Vec<T> = Vec<T>;
        type Words = Buckets;
    }

    impl<T> Buf<T> for Vec<T> {
        fn new() -> Self {
            Vec::new()
        }
        #[inline]
        fn try_push(&mut self, value: T) -> Result<(), T> {
            if self.len() == self.capacity() && self.try_reserve(1).is_err() {
                return Err(value);
            }
            self.push(value);
            Ok(())
        }
        #[inline]
        fn pop(&mut self) -> Option<T> {
            Vec::pop(self)
        }
        fn clear(&mut self) {
            Vec::clear(self)
        }
        fn reserve_total(&mut self, total: usize) -> bool {
            total <= self.capacity() || self.try_reserve(total - self.len()).is_ok()
        }
    }

    const FIRST: usize = 64;
    const BUCKETS: usize = 26; // FIRST * (2^26 - 1) words: far beyond any fd limit

    /// Words in buckets of doubling size (64, 128, 256, ...): a bucket never moves once made,
    /// so readers need no lock, and no `unsafe` is needed to publish one (`spin::Once`).
    pub struct Buckets {
        buckets: [spin::Once<Box<[AtomicU32]>>; BUCKETS],
    }

    impl core::fmt::Debug for Buckets {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let n = self.buckets.iter().filter(|b| b.is_completed()).count();
            write!(f, "Buckets({n} allocated)")
        }
    }

    /// (bucket, offset) of word `i`.
    #[inline]
    fn locate(i: usize) -> (usize, usize) {
        let n = i / FIRST + 1;
        let b = (usize::BITS - 1 - n.leading_zeros()) as usize;
        (b, i - FIRST * ((1 << b) - 1))
    }

    impl Words for Buckets {
        fn new() -> Self {
            Buckets {
                buckets: core::array::from_fn(|_| spin::Once::new()),
            }
        }

        #[inline]
        fn get(&self, i: usize) -> Option<&AtomicU32> {
            let (b, off) = locate(i);
            self.buckets.get(b)?.get()?.get(off)
        }

        fn reserve(&self, len: usize) -> bool {
            if len == 0 {
                return true;
            }
            let (last, _) = locate(len - 1);
            let Some(top) = self.buckets.get(last) else {
                return false;
            };
            if top.is_completed() {
                return true; // buckets are made in order: every lower one exists too
            }
            for (b, bucket) in self.buckets.iter().enumerate().take(last + 1) {
                bucket.call_once(|| (0..FIRST << b).map(|_| AtomicU32::new(0)).collect());
            }
            true
        }
    }

    #[cfg(all(test, not(loom)))]
    mod tests {
        use super::*;
        use crate::sync::Ordering;

        #[test]
        fn buckets_cover_every_index_once() {
            let mut next = 0;
            for i in 0..5000 {
                let (b, off) = locate(i);
                assert!(off < FIRST << b, "offset {off} out of bucket {b}");
                if off == 0 {
                    assert_eq!(i, next);
                    next += FIRST << b;
                }
            }
            let w = Buckets::new();
            assert!(w.get(0).is_none());
            assert!(w.reserve(1000));
            for i in 0..1000 {
                w.get(i).unwrap().store(i as u32, Ordering::Relaxed);
            }
            for i in 0..1000 {
                assert_eq!(w.get(i).unwrap().load(Ordering::Relaxed), i as u32);
            }
        }
    }
}
