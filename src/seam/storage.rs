//! Where a base keeps its events: fixed capacity (no allocator) or growable (`alloc`).

use core::ops::{Deref, DerefMut};

use crate::sync::AtomicU32;

/// A family of containers a base stores its state in.
///
/// Every table of a base (event records, timer heap, per-source table, active queues, change
/// list) is a `Self::Vec<_>`, the per-event activation words, which other threads read
/// without the lock, are one `Self::Words`, and the events' tags one `Self::Tags`. Pick [`Fixed<N>`] for a base that must not
/// allocate, or [`Growable`] (feature `alloc`) for one that scales to tens of thousands of
/// events.
///
/// Sealed: [`Fixed`] and [`Growable`] are the implementations (the loop relies on their exact
/// growth rules); more may come without a breaking change.
pub trait Storage: sealed::Sealed {
    /// A vector of `T`.
    type Vec<T>: Buf<T>;
    /// The activation words, one per event slot.
    type Words: Words;
    /// The events' [tags](crate::Event::tag), one per event slot.
    type Tags: Tags;
}

/// A vector that may refuse to grow (sealed: the storages' own vectors).
pub trait Buf<T>: Deref<Target = [T]> + DerefMut + sealed::Sealed {
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
    /// How many elements fit without growing.
    fn capacity(&self) -> usize;
    /// Appends copies of `value` until the length is `len` (nothing if it is already); `false`
    /// if that is beyond capacity (or memory), with nothing appended.
    fn fill_to(&mut self, len: usize, value: T) -> bool
    where
        T: Clone;
}

/// An array of atomic words indexed by event slot, readable by any thread without the base
/// lock, and grown only under it (sealed: the storages' own arrays).
pub trait Words: sealed::Sealed {
    /// No words yet.
    fn new() -> Self;
    /// The word of slot `i`, if it exists.
    fn get(&self, i: usize) -> Option<&AtomicU32>;
    /// Makes words `0..len` exist (all zero when new); `false` if that is beyond capacity.
    /// Called under the base lock only.
    fn reserve(&self, len: usize) -> bool;
}

/// The events' tags by slot, zero until set, kept under the base lock (sealed: the storages'
/// own tables). [`Growable`]'s takes memory only in the 4 KiB chunks where a slot was given
/// a non-zero tag, so a program that tags nothing pays nothing for them; [`Fixed`]'s is an
/// array of `N` words.
pub trait Tags: sealed::Sealed {
    /// No tags yet.
    fn new() -> Self;
    /// Slot `i`'s tag (0 if never set).
    fn get(&self, i: usize) -> usize;
    /// Sets slot `i`'s tag; `false` if it cannot be kept (beyond capacity).
    fn set(&mut self, i: usize, tag: usize) -> bool;
}

/// Keeps [`Storage`], [`Buf`], [`Words`] and [`Tags`] implemented by this crate only.
mod sealed {
    pub trait Sealed {}
    impl<const N: usize> Sealed for super::Fixed<N> {}
    impl<T, const N: usize> Sealed for heapless::Vec<T, N> {}
    impl<const N: usize> Sealed for [crate::sync::AtomicU32; N] {}
    impl<const N: usize> Sealed for [usize; N] {}
    #[cfg(feature = "alloc")]
    impl Sealed for super::Growable {}
    #[cfg(feature = "alloc")]
    impl Sealed for super::growable::TagChunks {}
    #[cfg(feature = "alloc")]
    impl<T> Sealed for alloc::vec::Vec<T> {}
    #[cfg(feature = "alloc")]
    impl Sealed for super::growable::Buckets {}
}

/// Fixed capacity: at most `N` events (and source ids, signals and priorities below `N`),
/// all storage inline in the base, no allocator.
#[derive(Debug)]
pub struct Fixed<const N: usize>;

impl<const N: usize> Storage for Fixed<N> {
    type Vec<T> = heapless::Vec<T, N>;
    type Words = [AtomicU32; N];
    type Tags = [usize; N];
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
    #[inline]
    fn capacity(&self) -> usize {
        N
    }
    fn fill_to(&mut self, len: usize, value: T) -> bool
    where
        T: Clone,
    {
        len <= self.len() || self.resize(len, value).is_ok()
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

impl<const N: usize> Tags for [usize; N] {
    fn new() -> Self {
        [0; N]
    }
    #[inline]
    fn get(&self, i: usize) -> usize {
        <[usize]>::get(self, i).copied().unwrap_or(0)
    }
    #[inline]
    fn set(&mut self, i: usize, tag: usize) -> bool {
        match <[usize]>::get_mut(self, i) {
            Some(t) => {
                *t = tag;
                true
            }
            None => tag == 0,
        }
    }
}

#[cfg(feature = "alloc")]
pub use growable::Growable;

#[cfg(feature = "alloc")]
mod growable {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use super::{Buf, Storage, Tags, Words};
    use crate::sync::AtomicU32;

    /// Growable storage on the heap (feature `alloc`): as many events as memory holds (up to
    /// 8 Mi).
    #[derive(Debug)]
    pub struct Growable;

    impl Storage for Growable {
        type Vec<T> = Vec<T>;
        type Words = Buckets;
        type Tags = TagChunks;
    }

    /// Tags per chunk: one 4 KiB page.
    const TAG_CHUNK: usize = 512;

    /// Tags in page-sized chunks, made when a slot in them is first given a non-zero tag
    /// (never moved, so growing copies nothing: a flat vector's doublings left their old
    /// copies resident, 4-8 bytes per event in rouse-libevent's W5).
    #[derive(Debug, Default)]
    pub struct TagChunks {
        chunks: Vec<Option<Box<[usize; TAG_CHUNK]>>>,
    }

    impl Tags for TagChunks {
        fn new() -> Self {
            TagChunks { chunks: Vec::new() }
        }

        #[inline]
        fn get(&self, i: usize) -> usize {
            match self.chunks.get(i / TAG_CHUNK) {
                Some(Some(c)) => c[i % TAG_CHUNK],
                _ => 0,
            }
        }

        #[inline]
        fn set(&mut self, i: usize, tag: usize) -> bool {
            if let Some(Some(chunk)) = self.chunks.get_mut(i / TAG_CHUNK) {
                chunk[i % TAG_CHUNK] = tag;
                return true;
            }
            tag == 0 || self.set_in_new_chunk(i, tag) // a missing chunk reads as zeros
        }
    }

    impl TagChunks {
        #[cold]
        fn set_in_new_chunk(&mut self, i: usize, tag: usize) -> bool {
            let c = i / TAG_CHUNK;
            if self.chunks.len() <= c {
                if self.chunks.try_reserve(c + 1 - self.chunks.len()).is_err() {
                    return false;
                }
                self.chunks.resize_with(c + 1, || None);
            }
            let mut chunk: Box<[usize; TAG_CHUNK]> = alloc::vec![0usize; TAG_CHUNK]
                .into_boxed_slice()
                .try_into()
                .expect("TAG_CHUNK tags");
            chunk[i % TAG_CHUNK] = tag;
            self.chunks[c] = Some(chunk);
            true
        }
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
        #[inline]
        fn capacity(&self) -> usize {
            Vec::capacity(self)
        }
        fn fill_to(&mut self, len: usize, value: T) -> bool
        where
            T: Clone,
        {
            if len <= self.len() {
                return true;
            }
            if !self.reserve_total(len) {
                return false;
            }
            self.resize(len, value);
            true
        }
    }

    /// Words per chunk: one 4 KiB page.
    const CHUNK: usize = 1024;
    /// Chunks per directory.
    const MID: usize = 256;
    /// Directories: `TOP * MID * CHUNK` = 8 Mi words, the most slots a base has.
    const TOP: usize = 32;

    // Fixed-length arrays, so that indexing by `% CHUNK` / `% MID` needs no bounds check.
    type Chunk = Box<[AtomicU32; CHUNK]>;
    type Dir = Box<[spin::Once<Chunk>; MID]>;

    /// Words in page-sized chunks under a two-level directory: a chunk never moves once made,
    /// so readers need no lock, and no `unsafe` is needed to publish one (`spin::Once`). At
    /// most one chunk is allocated ahead of need. The first chunk (slots below `CHUNK`, where
    /// most bases live) hangs off the table itself: one `Once` to test instead of two, and no
    /// directory to go through.
    pub struct Buckets {
        first: spin::Once<Chunk>,
        top: [spin::Once<Dir>; TOP],
    }

    impl core::fmt::Debug for Buckets {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            let dirs = self.top.iter().filter(|d| d.is_completed()).count();
            let first = self.first.is_completed();
            write!(f, "Buckets(first chunk: {first}, {dirs} directories)")
        }
    }

    impl Buckets {
        /// Chunk `c` (0: `first`; the directories' entry 0 of directory 0 is never used).
        #[inline]
        fn chunk(&self, c: usize) -> Option<&Chunk> {
            if c == 0 {
                return self.first.get();
            }
            self.chunk_in_dirs(c)
        }

        #[inline]
        fn chunk_in_dirs(&self, c: usize) -> Option<&Chunk> {
            self.top.get(c / MID)?.get()?[c % MID].get()
        }
    }

    fn new_chunk() -> Chunk {
        let v: Box<[AtomicU32]> = (0..CHUNK).map(|_| AtomicU32::new(0)).collect();
        v.try_into().expect("CHUNK words")
    }

    impl Words for Buckets {
        fn new() -> Self {
            Buckets {
                first: spin::Once::new(),
                top: core::array::from_fn(|_| spin::Once::new()),
            }
        }

        #[inline]
        fn get(&self, i: usize) -> Option<&AtomicU32> {
            Some(&self.chunk(i / CHUNK)?[i % CHUNK])
        }

        #[inline]
        fn reserve(&self, len: usize) -> bool {
            // The usual case, inline: the chunk of the last word is there.
            len == 0 || self.chunk((len - 1) / CHUNK).is_some() || self.reserve_slow(len)
        }
    }

    impl Buckets {
        #[cold]
        #[inline(never)]
        fn reserve_slow(&self, len: usize) -> bool {
            let last = (len - 1) / CHUNK;
            if last >= TOP * MID {
                return false;
            }
            self.first.call_once(new_chunk);
            for c in 1..=last {
                let dir = self.top[c / MID].call_once(|| {
                    let v: Box<[spin::Once<Chunk>]> = (0..MID).map(|_| spin::Once::new()).collect();
                    v.try_into().expect("MID entries")
                });
                dir[c % MID].call_once(new_chunk);
            }
            true
        }
    }

    #[cfg(all(test, not(rouse_loom)))]
    mod tests {
        use super::*;
        use crate::sync::Ordering;

        #[test]
        fn tags_take_chunks_only_where_a_slot_is_tagged() {
            let mut t = TagChunks::new();
            assert_eq!(t.get(5), 0);
            assert!(t.set(100_000, 0), "a zero tag needs no chunk");
            assert!(t.chunks.is_empty());
            for (i, tag) in [(0, 1), (511, 2), (512, 3), (100_000, 4)] {
                assert!(t.set(i, tag));
            }
            for (i, tag) in [
                (0, 1),
                (511, 2),
                (512, 3),
                (100_000, 4),
                (1, 0),
                (99_999, 0),
            ] {
                assert_eq!(t.get(i), tag, "slot {i}");
            }
            let made = t.chunks.iter().filter(|c| c.is_some()).count();
            assert_eq!(made, 3, "chunks 0, 1 and the one of slot 100 000");
            assert!(t.set(100_000, 0));
            assert_eq!(t.get(100_000), 0);
        }

        #[test]
        fn words_exist_exactly_as_reserved() {
            let w = Buckets::new();
            assert!(w.get(0).is_none());
            assert!(w.reserve(1000));
            for i in 0..1000 {
                w.get(i).unwrap().store(i as u32, Ordering::Relaxed);
            }
            for i in 0..1000 {
                assert_eq!(w.get(i).unwrap().load(Ordering::Relaxed), i as u32);
            }
            assert!(w.get(CHUNK).is_none(), "one chunk made, no more");
            assert!(w.reserve(CHUNK + 1), "a second chunk, in the directories");
            assert!(w.get(CHUNK).is_some() && w.get(2 * CHUNK).is_none());
            w.get(CHUNK).unwrap().store(7, Ordering::Relaxed);
            assert_eq!(w.get(CHUNK).unwrap().load(Ordering::Relaxed), 7);
            assert_eq!(w.get(999).unwrap().load(Ordering::Relaxed), 999);
            assert!(!w.reserve(CHUNK * MID * TOP + 1), "beyond the most slots");
            if cfg!(miri) {
                return; // the rest makes a quarter million words: too slow interpreted
            }
            assert!(w.reserve(CHUNK * MID + 5), "a second directory");
            assert!(w.get(CHUNK * MID + 4).is_some());
            assert!(w.get(5).is_some(), "earlier chunks stay");
        }
    }
}
