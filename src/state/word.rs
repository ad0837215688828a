//! The activation word of a slot: `generation << 8 | ready bits`, one `AtomicU32` per slot.
//!
//! Written only under the base lock; read by any thread without it. Non-zero ready bits mean
//! "queued to run": that lets `activate` of an already-queued event return after one load,
//! with no lock and no syscall (the fast path of the notify protocol, rule 5).

/// Generations are 24 bits; a slot that reaches this one is never reused.
pub(crate) const RETIRED: u32 = (1 << 24) - 1;

#[inline]
pub(crate) const fn make(gen: u32, ready: u8) -> u32 {
    gen << 8 | ready as u32
}

#[inline]
pub(crate) const fn gen(word: u32) -> u32 {
    word >> 8
}

#[inline]
pub(crate) const fn ready(word: u32) -> u8 {
    word as u8
}

#[inline]
pub(crate) const fn next_gen(gen: u32) -> u32 {
    if gen >= RETIRED {
        RETIRED
    } else {
        gen + 1
    }
}
