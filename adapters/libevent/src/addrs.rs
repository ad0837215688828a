//! Which `struct event` each rouse slot of a base belongs to: slot index -> address, read
//! without a lock (every callback looks its event up here, so its rouse callback captures
//! nothing and needs no heap chunk), plus the address side the reuse check needs.

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
        let i = i as usize;
        if i < FIRST {
            // The first chunk, as every small base's slots: no chunk arithmetic.
            let c = self.chunks[0].load(Ordering::Acquire);
            if c.is_null() {
                return 0;
            }
            // SAFETY: as in `entry`: a published chunk of `FIRST` entries, `i < FIRST`.
            return unsafe { &*c.add(i) }.load(Ordering::Acquire);
        }
        self.entry(i).map_or(0, |e| e.load(Ordering::Acquire))
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

/// `struct event` address -> rouse key of one base's caller-allocated events: finds the slot a
/// freed-and-reused `struct event` left behind (so memory the program frees after `event_del`
/// leaks no slot once reused). `event_free` releases the slot of an `event_new` event itself,
/// so none is ever left behind at its address.
///
/// Open addressing with linear probing over a power-of-two table at most half full, removal
/// by backward shift (no tombstones): a first `event_add` of a caller-allocated event makes
/// one insert and its `event_assign` one lookup, each a multiply and a probe or two. An entry
/// is 16 bytes (the keys of one base share their base word, kept once): the table is most of
/// what a base touches per caller-allocated event, and every page of it is a page fault.
#[derive(Default)]
pub struct ByAddr {
    slots: Table,
    len: usize,
    /// The base word of every key recorded (one base's).
    base: u32,
}

/// One recorded event: its address (0: empty) and its key's index and generation.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    addr: usize,
    index: u32,
    gen: u32,
}

/// Entries per chunk of a [`Table`]: 64 KiB, under glibc's mmap threshold (128 KiB).
const TABLE_CHUNK: usize = 4096;

/// [`ByAddr`]'s array, in chunks of at most 64 KiB. Each growth makes a new table and frees
/// the old one; freed as one large array, that was an mmapped chunk, and glibc raises its
/// mmap threshold to the size of every mmapped chunk freed: the process's later large
/// vectors (the base's slot and timer tables among them) then came from the heap, where
/// growing copies them instead of remapping. In chunks the table stays on the heap, which
/// also reuses the old table's (already faulted-in) memory for the next one. Measured on
/// 100 000 first adds of caller-allocated timers (medians of 21 runs): 490 -> 460 ns each
/// without a lock, 502 -> 470 with one; 6 600 page faults instead of 7 630, and half the
/// bytes copied by `realloc`, for 68 more instructions per add (the chunk lookups).
#[derive(Default)]
struct Table {
    chunks: Vec<Vec<Entry>>,
    len: usize,
}

impl Table {
    /// `n` empty entries (`n` a power of two).
    fn new(n: usize) -> Table {
        let per = n.min(TABLE_CHUNK);
        Table {
            chunks: (0..n / per).map(|_| vec![Entry::default(); per]).collect(),
            len: n,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.chunks.iter().flatten().copied()
    }
}

impl std::ops::Index<usize> for Table {
    type Output = Entry;
    #[inline]
    fn index(&self, i: usize) -> &Entry {
        &self.chunks[i / TABLE_CHUNK][i % TABLE_CHUNK]
    }
}

impl std::ops::IndexMut<usize> for Table {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Entry {
        &mut self.chunks[i / TABLE_CHUNK][i % TABLE_CHUNK]
    }
}

impl ByAddr {
    #[inline]
    fn home(&self, addr: usize) -> usize {
        let bits = self.slots.len().trailing_zeros();
        // Fibonacci hashing of the address (events are 8-aligned: the low bits say nothing).
        (((addr >> 3) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    /// The place of `addr`, or of the empty entry ending its probe.
    #[inline]
    fn find(&self, addr: usize) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = self.home(addr);
        while self.slots[i].addr != 0 && self.slots[i].addr != addr {
            i = (i + 1) & mask;
        }
        i
    }

    fn entry(key: Key, addr: usize) -> Entry {
        let [_, index, gen] = key.to_raw();
        Entry { addr, index, gen }
    }

    /// Records `key`'s caller-allocated event at `addr`.
    pub fn insert(&mut self, key: Key, addr: usize) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        self.base = key.to_raw()[0];
        let i = self.find(addr);
        if self.slots[i].addr == 0 {
            self.len += 1;
        }
        self.slots[i] = Self::entry(key, addr);
    }

    #[cold]
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, Table::new(n));
        for e in old.entries() {
            if e.addr != 0 {
                let i = self.find(e.addr);
                self.slots[i] = e;
            }
        }
    }

    /// Removes the entry at `i` and closes the gap (backward shift).
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.slots.len() - 1;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let a = self.slots[j].addr;
            if a == 0 {
                break;
            }
            // `j`'s entry may move back to `i` unless its home lies in (i, j] (cyclically).
            let h = self.home(a);
            let stays = if i <= j {
                i < h && h <= j
            } else {
                i < h || h <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = Entry::default();
        self.len -= 1;
    }

    /// Forgets `key`'s event at `addr`, if recorded.
    pub fn remove(&mut self, key: Key, addr: usize) {
        if self.len == 0 {
            return;
        }
        let i = self.find(addr);
        if self.slots[i] == Self::entry(key, addr) && self.base == key.to_raw()[0] {
            self.remove_at(i);
        }
    }

    /// Takes the key registered for `addr`.
    pub fn take(&mut self, addr: usize) -> Option<Key> {
        if self.len == 0 {
            return None;
        }
        let i = self.find(addr);
        let e = self.slots[i];
        if e.addr != addr {
            return None;
        }
        self.remove_at(i);
        Some(Key::from_raw([self.base, e.index, e.gen]))
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
    fn the_address_map_agrees_with_a_hash_map() {
        // Random inserts, takes and removes over a small address range (so probes collide
        // and wrap), checked against std's map after every step; then over a range large
        // enough for a table of several chunks (probes cross chunk boundaries).
        for (range, steps) in [(3000u64, 200_000u32), (40_000, 300_000)] {
            let chunks = random_walk(range, steps);
            assert!(range < 10_000 || chunks > 4, "{chunks} chunks");
        }
    }

    /// [`the_address_map_agrees_with_a_hash_map`]'s walk; returns the chunks it ended with.
    fn random_walk(range: u64, steps: u32) -> usize {
        let mut m = ByAddr::default();
        let mut want: std::collections::HashMap<usize, [u32; 3]> = Default::default();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let addr = 8 * (1 + (x % range) as usize);
            let key = Key::from_raw([7, step, (x >> 32) as u32]);
            match x % 3 {
                0 => {
                    m.insert(key, addr);
                    want.insert(addr, key.to_raw());
                }
                1 => assert_eq!(
                    m.take(addr).map(|k| k.to_raw()),
                    want.remove(&addr),
                    "take at step {step}"
                ),
                _ => {
                    if let Some(&k) = want.get(&addr) {
                        m.remove(Key::from_raw(k), addr);
                        want.remove(&addr);
                    }
                }
            }
            assert_eq!(m.len, want.len(), "step {step}");
        }
        let chunks = m.slots.chunks.len();
        for (a, k) in want {
            assert_eq!(m.take(a).map(|k| k.to_raw()), Some(k));
        }
        assert_eq!(m.len, 0);
        chunks
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
