//! Which `struct event` each rouse slot of a base belongs to: slot index -> address, read
//! without a lock (every callback looks its event up here, so its rouse callback captures
//! nothing and needs no heap chunk), plus the address side the reuse check needs.

use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

use rouse_std::rouse_core::Lock;
use rouse_std::{StdCell, StdLock};

use crate::backend::{Key, Loop};

/// Entries of the first chunk; chunk `k` has `FIRST << k`.
const FIRST: usize = 256;
/// Chunks: room for `FIRST * (2^CHUNKS - 1)` slots, more than rouse's slot indices reach.
const CHUNKS: usize = 24;

/// Slot index -> `struct event` address (0: none), grow-only chunks of atomics: readers load
/// without a lock, writers are serialized by the caller's registration of the slot (one
/// writer per slot at a time) and grow under `grow`.
pub struct Index {
    chunks: [AtomicPtr<AtomicUsize>; CHUNKS],
    grow: Mutex<()>,
}

/// Chunk and offset of slot `i`.
#[inline(always)]
fn place(i: usize) -> (usize, usize) {
    let j = i / FIRST + 1;
    let k = (usize::BITS - 1 - j.leading_zeros()) as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

fn chunk_layout(k: usize) -> std::alloc::Layout {
    std::alloc::Layout::array::<AtomicUsize>(FIRST << k).expect("chunk layout")
}

impl Default for Index {
    fn default() -> Index {
        Index {
            chunks: [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS],
            grow: Mutex::new(()),
        }
    }
}

impl Index {
    /// The entry of slot `i`, if its chunk exists.
    #[inline(always)]
    fn entry(&self, i: usize) -> Option<&AtomicUsize> {
        let (k, off) = place(i);
        let c = self.chunks.get(k)?.load(Ordering::Acquire);
        // SAFETY: a non-null chunk pointer is a live allocation of `FIRST << k` entries,
        // published once and freed only by `drop`; `off < FIRST << k` by `place`.
        (!c.is_null()).then(|| unsafe { &*c.add(off) })
    }

    /// The address recorded for slot `i` (0: none).
    #[inline(always)]
    pub fn get(&self, i: u32) -> usize {
        self.entry(i as usize)
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    /// Records `addr` for slot `i` (its registration is being made).
    pub fn set(&self, i: u32, addr: usize) {
        let i = i as usize;
        let e = match self.entry(i) {
            Some(e) => e,
            None => self.grow_to(i),
        };
        e.store(addr, Ordering::Release);
    }

    /// Clears slot `i` if it still records `addr`.
    pub fn clear(&self, i: u32, addr: usize) {
        if let Some(e) = self.entry(i as usize) {
            let _ = e.compare_exchange(addr, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    #[cold]
    fn grow_to(&self, i: usize) -> &AtomicUsize {
        let (k, _) = place(i);
        assert!(k < CHUNKS, "slot index {i} beyond the address index");
        let _g = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        if self.chunks[k].load(Ordering::Acquire).is_null() {
            // Zeroed by the allocator (fresh pages for a large chunk stay untouched, so
            // unused entries cost no memory); all zeros is a valid `AtomicUsize`.
            // SAFETY: a non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(chunk_layout(k)) } as *mut AtomicUsize;
            if p.is_null() {
                std::alloc::handle_alloc_error(chunk_layout(k));
            }
            self.chunks[k].store(p, Ordering::Release);
        }
        self.entry(i).expect("chunk just made")
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        for (k, c) in self.chunks.iter_mut().enumerate() {
            let p = *c.get_mut();
            if !p.is_null() {
                // SAFETY: allocated by `grow_to` with this layout.
                unsafe { std::alloc::dealloc(p as *mut u8, chunk_layout(k)) };
            }
        }
    }
}

/// A multiplicative hash for addresses (SipHash costs more than the map's work here).
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 ^ (n as u64 >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// `struct event` address -> rouse key of one base's caller-allocated events: finds the slot a
/// freed-and-reused `struct event` left behind (so memory the program frees after `event_del`
/// leaks no slot once reused). `event_free` releases the slot of an `event_new` event itself,
/// so none is ever left behind at its address.
#[derive(Default)]
pub struct ByAddr(HashMap<usize, Key, std::hash::BuildHasherDefault<AddrHasher>>);

impl ByAddr {
    /// Records `key`'s caller-allocated event at `addr`.
    pub fn insert(&mut self, key: Key, addr: usize) {
        self.0.insert(addr, key);
    }

    /// Forgets `key`'s event at `addr`, if recorded.
    pub fn remove(&mut self, key: Key, addr: usize) {
        if self.0.get(&addr) == Some(&key) {
            self.0.remove(&addr);
        }
    }

    /// Takes the key registered for `addr`.
    pub fn take(&mut self, addr: usize) -> Option<Key> {
        self.0.remove(&addr)
    }
}

/// Both sides for one base.
pub struct Addrs {
    /// Slot index -> address, lock-free.
    pub index: Index,
    /// Address -> key, for caller-allocated events (under rouse-std's lock, which takes no
    /// atomic read-modify-write while the process has one thread: every registration of a
    /// caller-allocated event goes through it).
    by_addr: StdCell<ByAddr>,
}

impl Default for Addrs {
    fn default() -> Addrs {
        Addrs {
            index: Index::default(),
            by_addr: StdLock::new(ByAddr::default()),
        }
    }
}

impl Addrs {
    /// Records `key`'s event at `addr` in the index (under the event's lock, before its
    /// registration is visible: its callback can find it from the first run).
    pub fn record(&self, key: Key, addr: usize) {
        self.index.set(Loop::index(key), addr);
    }

    /// Records `key`'s caller-allocated event at `addr` on the address side.
    pub fn remember(&self, key: Key, addr: usize) {
        StdLock::with(&self.by_addr, |m| m.insert(key, addr));
    }

    /// Forgets `key`'s event (before its slot is freed, so a new event in that slot is never
    /// forgotten instead).
    pub fn forget(&self, key: Key) {
        let i = Loop::index(key);
        let addr = self.index.get(i);
        if addr == 0 {
            return;
        }
        StdLock::with(&self.by_addr, |m| m.remove(key, addr));
        self.index.clear(i, addr);
    }

    /// The address of slot `index`'s event.
    pub fn addr(&self, index: u32) -> Option<usize> {
        Some(self.index.get(index)).filter(|&a| a != 0)
    }

    /// Takes the slot registered for caller-allocated `addr` (and forgets its index entry).
    pub fn take_addr(&self, addr: usize) -> Option<Key> {
        let k = StdLock::with(&self.by_addr, |m| m.take(addr))?;
        self.index.clear(Loop::index(k), addr);
        Some(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_cover_every_index_once() {
        let mut next = (0, 0);
        for i in 0..FIRST * 40 {
            let p = place(i);
            assert_eq!(p, next, "index {i}");
            next = if p.1 + 1 == FIRST << p.0 {
                (p.0 + 1, 0)
            } else {
                (p.0, p.1 + 1)
            };
        }
    }

    #[test]
    fn index_grows_and_clears_only_its_own_address() {
        let ix = Index::default();
        assert_eq!(ix.get(5), 0);
        for i in [0u32, 255, 256, 767, 768, 100_000] {
            ix.set(i, i as usize + 1);
        }
        for i in [0u32, 255, 256, 767, 768, 100_000] {
            assert_eq!(ix.get(i), i as usize + 1);
        }
        ix.clear(256, 999);
        assert_eq!(ix.get(256), 257, "another address is not cleared");
        ix.clear(256, 257);
        assert_eq!(ix.get(256), 0);
    }
}
