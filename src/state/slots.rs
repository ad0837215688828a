//! Event records in one table, reached by index, reused through a free list; each slot's
//! generation and pending readiness live in its atomic word (see [`word`](super::word)).

use crate::event::Key;
use crate::seam::{Buf, Tags, Words};
use crate::sync::{AtomicU32, Ordering};
use crate::Error;

use super::word;

/// "No slot": the end of every index-linked list.
pub(crate) const NIL: u32 = u32::MAX;
/// Slot indices stay below this, so a source-table head fits in 23 bits.
pub(crate) const MAX_SLOTS: u32 = (1 << 23) - 1;
/// `Slot::time` when the event has no timeout.
pub(crate) const NO_TIME: u64 = u64::MAX;

/// What kind of event a slot holds (`Slot::what`, low 3 bits).
pub(crate) mod kind {
    pub const FREE: u8 = 0;
    pub const IO: u8 = 1;
    pub const SIGNAL: u8 = 2;
    pub const TIMER: u8 = 3;
    pub const USER: u8 = 4;
    pub const MASK: u8 = 7;
    /// `Slot::what` bit: stays pending after firing.
    pub const PERSIST: u8 = 8;
    /// `Slot::what` bits 4..8: the I/O interest (`Interest` bits).
    pub const INTEREST_SHIFT: u8 = 4;
}

/// Lifecycle flags (`Slot::flags`).
pub(crate) mod flag {
    /// Added: in its source/signal list (if any) and counted as pending.
    pub const PENDING: u8 = 1;
    /// Its callback is out of the slot, running on the loop thread.
    pub const RUNNING: u8 = 2;
    /// `finalize` was called: the slot holds the finalizer, the key is already stale.
    pub const FINALIZING: u8 = 4;
    /// Freed while its callback ran: released when the callback returns.
    pub const ZOMBIE: u8 = 8;
    /// Freed after its callback runs, or when deleted (`Event::free_after_run`).
    pub const AUTOFREE: u8 = 16;
    /// Queued during a pass at the running priority or below: on the base's `later` list,
    /// moved to its active queue after the next poll (see `BaseState::enqueue`).
    pub const LATER: u8 = 32;
}

/// One event record: only what dispatch touches (40 bytes with a boxed-closure callback).
/// Timeouts live in [`Timers`](super::timers::Timers), keyed by the same index.
#[derive(Debug)]
pub(crate) struct Slot<F> {
    /// The callback; `None` while it runs (or in a free slot).
    pub cb: Option<F>,
    /// The source id (I/O) or signal number.
    pub source: u32,
    /// Next event on the same source or signal.
    pub src_next: u32,
    /// Active-queue links; `q_next` also links the free list.
    pub q_prev: u32,
    pub q_next: u32,
    /// Kind, persistence and interest (see [`kind`]).
    pub what: u8,
    /// Lifecycle flags (see [`flag`]).
    pub flags: u8,
    /// Priority.
    pub prio: u8,
    /// `apply epoch + 1` of the iteration in which this event was the last to leave its
    /// source (0: never): only the same event may re-enter without a fresh registration.
    pub out: u32,
}

impl<F> Slot<F> {
    pub(crate) const EMPTY: Slot<F> = Slot {
        cb: None,
        source: 0,
        src_next: NIL,
        q_prev: NIL,
        q_next: NIL,
        what: kind::FREE,
        flags: 0,
        prio: 0,
        out: 0,
    };

    #[inline]
    pub fn kind(&self) -> u8 {
        self.what & kind::MASK
    }

    /// Whether the event watches a source or a signal (is in a per-source or per-signal list
    /// while pending).
    #[inline]
    pub fn has_source(&self) -> bool {
        matches!(self.kind(), kind::IO | kind::SIGNAL)
    }

    #[inline]
    pub fn persistent(&self) -> bool {
        self.what & kind::PERSIST != 0
    }

    #[inline]
    pub fn interest_bits(&self) -> u8 {
        self.what >> kind::INTEREST_SHIFT
    }

    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// The slot table, the events' tags beside it, and the free list.
///
/// The tags are a table of their own (the slot stays 40 bytes, a size whose index scaling is
/// one instruction on x86-64; 48 took one more per access, and cost every program 8 bytes
/// per event whether it tags or not).
#[derive(Debug)]
pub(crate) struct Slots<V, T> {
    pub v: V,
    /// Each live slot's [`Event::tag`](crate::Event::tag) (set by every creation, so a free
    /// slot's is left as it was).
    tags: T,
    free: u32,
    pub live: u32,
}

impl<F, V: Buf<Slot<F>>, T: Tags> Slots<V, T>
where
    V: core::ops::DerefMut<Target = [Slot<F>]>,
{
    pub fn new() -> Self {
        Slots {
            v: V::new(),
            tags: T::new(),
            free: NIL,
            live: 0,
        }
    }

    /// Takes a free slot (or a new one) and returns its index and key generation.
    #[inline]
    pub fn alloc<W: Words>(&mut self, words: &W) -> Result<(u32, u32), Error> {
        // One word lookup either way: a reused slot's generation is read, a new one's set.
        let (idx, gen) = if self.free != NIL {
            let idx = self.free;
            self.free = self.v[idx as usize].q_next;
            self.v[idx as usize].q_next = NIL;
            (idx, word::gen(words_load(words, idx)))
        } else {
            let idx = self.v.len() as u32;
            if idx >= MAX_SLOTS || !words.reserve(idx as usize + 1) {
                return Err(Error::Full);
            }
            self.v.try_push(Slot::EMPTY).map_err(|_| Error::Full)?;
            let w = words.get(idx as usize).ok_or(Error::Full)?;
            w.store(word::make(1, 0), Ordering::Relaxed);
            (idx, 1)
        };
        self.live += 1;
        Ok((idx, gen))
    }

    /// Slot `idx`'s tag.
    #[inline(always)]
    pub fn tag(&self, idx: u32) -> usize {
        self.tags.get(idx as usize)
    }

    /// Gives live slot `idx` its tag.
    pub fn set_tag(&mut self, idx: u32, tag: usize) -> Result<(), Error> {
        if self.tags.set(idx as usize, tag) {
            Ok(())
        } else {
            Err(Error::Full)
        }
    }

    /// Returns slot `idx` to the free list: its generation moves on, so every key to it is
    /// stale from now on. The caller has unlinked it from every list and taken its callback.
    pub fn release<W: Words>(&mut self, words: &W, idx: u32) {
        self.release_at(words.get(idx as usize), idx);
    }

    /// [`release`](Slots::release) with the slot's activation word (if it has one) at hand.
    #[inline(always)]
    pub fn release_at(&mut self, w: Option<&AtomicU32>, idx: u32) {
        // `retire`, keeping the new generation.
        let retired = w.is_some_and(|w| {
            let gen = word::next_gen(word::gen(w.load(Ordering::Relaxed)));
            w.store(word::make(gen, 0), Ordering::Relaxed);
            gen == word::RETIRED
        });
        self.v[idx as usize] = Slot::EMPTY;
        self.live -= 1;
        if !retired {
            self.v[idx as usize].q_next = self.free;
            self.free = idx;
        }
    }

    /// The index of `key`'s slot if the key is live, and the slot's activation word.
    #[inline]
    pub fn check_at<'w, W: Words>(
        &self,
        words: &'w W,
        key: Key,
    ) -> Result<(u32, &'w AtomicU32), Error> {
        let index = key.index();
        let w = words.get(index as usize).ok_or(Error::Stale)?;
        if word::gen(w.load(Ordering::Relaxed)) != key.gen() || index as usize >= self.v.len() {
            return Err(Error::Stale);
        }
        Ok((index, w))
    }
}

/// Moves slot `idx` to its next generation (keys to it go stale), clearing its readiness.
pub(crate) fn retire<W: Words>(words: &W, idx: u32) {
    if let Some(w) = words.get(idx as usize) {
        let gen = word::gen(w.load(Ordering::Relaxed));
        w.store(word::make(word::next_gen(gen), 0), Ordering::Relaxed);
    }
}

#[inline]
pub(crate) fn words_load<W: Words>(words: &W, idx: u32) -> u32 {
    words
        .get(idx as usize)
        .map_or(0, |w| w.load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    type V = heapless::Vec<Slot<()>, 4>;
    type T = [usize; 4];

    #[test]
    fn keys_go_stale_and_slots_are_reused() {
        let words: [AtomicU32; 4] = Words::new();
        let mut s: Slots<V, T> = Slots::new();
        let (a, ga) = s.alloc(&words).unwrap();
        let ka = Key::new(0, a, ga);
        assert_eq!(s.check_at(&words, ka).map(|(i, _)| i), Ok(a));
        s.release(&words, a);
        assert!(matches!(s.check_at(&words, ka), Err(Error::Stale)));
        let (b, gb) = s.alloc(&words).unwrap();
        assert_eq!(b, a, "free slot reused");
        assert_ne!(gb, ga);
        for _ in 0..3 {
            s.alloc(&words).unwrap();
        }
        assert_eq!(s.alloc(&words), Err(Error::Full));
        assert_eq!(s.live, 4);
    }

    #[test]
    fn a_tag_is_what_the_slots_creation_set() {
        let words: [AtomicU32; 4] = Words::new();
        let mut s: Slots<V, T> = Slots::new();
        let (a, _) = s.alloc(&words).unwrap();
        let (b, _) = s.alloc(&words).unwrap();
        s.set_tag(a, 0).unwrap();
        assert_eq!((s.tag(a), s.tag(b)), (0, 0));
        s.set_tag(b, 9).unwrap();
        assert_eq!((s.tag(a), s.tag(b)), (0, 9));
        s.release(&words, b);
        let (c, _) = s.alloc(&words).unwrap();
        assert_eq!(c, b, "the slot is reused");
        s.set_tag(c, 0).unwrap();
        assert_eq!(s.tag(c), 0, "a creation sets the tag, zero too");
    }
}

#[cfg(all(test, feature = "alloc"))]
mod layout {
    use super::Slot;
    extern crate std;

    #[test]
    fn slot_is_40_bytes_with_a_boxed_closure() {
        type Cb = alloc::boxed::Box<dyn FnMut() + Send>;
        // 24 bytes of bookkeeping plus the two-word box: 40 on 64-bit, 32 on 32-bit targets.
        let expected = 24 + 2 * core::mem::size_of::<usize>();
        assert_eq!(core::mem::size_of::<Slot<Cb>>(), expected);
        if cfg!(target_pointer_width = "64") {
            assert_eq!(expected, 40);
        }
    }
}
