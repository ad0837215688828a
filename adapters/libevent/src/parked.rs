//! A parked delete: one `event_del` of a timer per loop, held back until the loop is used.
//!
//! A timeout pushed back ("no activity for 30 s": `event_del`, then `event_add` of the same
//! event) costs rouse a delete and an add that undoes it. Instead `event_del` of a timer-only
//! event parks its key here and leaves the rouse event as it is, pending with its old
//! timeout (the struct's flags already say it is not pending). The next `event_add` of that
//! event takes the key back and re-arms the timeout: one rouse call. Any other use of the
//! loop first applies the parked delete ([`Parked::settle`]).
//!
//! Outside a run that `event_add` is parked in its turn ([`Parked::readd`]): the re-add, its
//! timeout and the clock reading it counts from (`READD`), applied as of that reading when
//! the loop is next used ([`Op::Readd`]); a delete that follows drops it again. A timeout
//! pushed back before the loop runs (or between runs) then costs no rouse call at all.
//!
//! The program cannot tell, because nothing reads rouse's view of the loop unsettled:
//! - every [`Loop`](crate::backend::Loop) call settles first, except the two that park and
//!   take back;
//! - rouse runs callbacks (and fires timers) only in a run, and a run settles before it
//!   starts ([`Parked::begin_run`]). During a run only the loop thread parks, from one of the
//!   program's callbacks, and it settles when that callback returns, before rouse goes on;
//! - an event that `event_active` queued is not parked: the re-add would leave it queued.
//!   (One that its timeout queued is: the re-add and the delete both take it off.)
//!
//! A parked delete is applied without waiting for a running callback (`delete_nowait`): it
//! was parked either outside a run, where no callback runs, or by the loop thread, whose
//! `event_del` never waits.
//!
//! The word holds `RUN` (a run is on), `HELD` (a key is parked, in the low 56 bits: its
//! slot index and 24-bit generation; the base is the loop's own), `READD` (what is parked is
//! its re-add) and `BUSY` (a thread is applying the parked operation, or parking a re-add's
//! timeout: others wait for it, so nothing overtakes it). A loop without
//! locking is used by one thread at a time, so its word is written with plain stores; so is
//! a loop with locking while the process has a single thread (`rouse_std::single_threaded`).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::backend::Key;

/// A run is on.
const RUN: u64 = 1 << 63;
/// A key is parked.
const HELD: u64 = 1 << 62;
/// A thread is applying the parked delete.
const BUSY: u64 = 1 << 61;
/// The parked key was added again (outside a run): what is parked is that re-add.
const READD: u64 = 1 << 60;
/// The parked key's slot index (low 32 bits) and generation (the next 24).
const KEY: u64 = (1 << 56) - 1;

/// What applying the parked operation does to the rouse event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Delete `Key` (without waiting).
    Delete(Key),
    /// Re-add `key` (pending, its timeout in the heap) with `timeout`, counted from `from`
    /// (the base clock's coarse reading when the program asked for it, in nanoseconds).
    Readd { key: Key, timeout: u64, from: u64 },
}

/// The parked delete of one loop.
#[derive(Debug)]
pub struct Parked {
    word: AtomicU64,
    /// A parked re-add's timeout and clock reading (nanoseconds): written by the thread that
    /// parks it while it holds the word (`BUSY`, or the only thread), read by the one that
    /// applies it.
    timeout: AtomicU64,
    from: AtomicU64,
    /// Other threads may use the loop at the same time (else plain stores suffice).
    shared: bool,
    /// The loop's id (the base of every key parked here).
    base: u32,
}

impl Parked {
    pub fn new(shared: bool, base: u32) -> Parked {
        Parked {
            word: AtomicU64::new(0),
            timeout: AtomicU64::new(0),
            from: AtomicU64::new(0),
            shared,
            base,
        }
    }

    /// `key` in the word's low 56 bits, if it is one of this loop's that fits.
    #[inline(always)]
    fn pack(&self, key: Key) -> Option<u64> {
        let [base, index, gen] = key.to_raw();
        (base == self.base && gen < 1 << 24).then_some(u64::from(index) | u64::from(gen) << 32)
    }

    #[inline(always)]
    fn unpack(&self, v: u64) -> Key {
        Key::from_raw([self.base, v as u32, ((v & KEY) >> 32) as u32])
    }

    /// Whether another thread may use the word now: a loop with locking, in a process that
    /// has more than one thread (while it has one, nothing races this thread: plain stores
    /// suffice, as for a loop without locking; `rouse_std::single_threaded`).
    #[inline(always)]
    fn raced(&self) -> bool {
        self.shared && !rouse_std::single_threaded()
    }

    /// Replaces `v` with `new` (fails if the word changed meanwhile).
    #[inline(always)]
    fn swap(&self, v: u64, new: u64) -> bool {
        if !self.raced() {
            self.word.store(new, Ordering::Relaxed);
            return true;
        }
        self.word
            .compare_exchange(v, new, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Parks the delete of `key`, a timer-only event: true if it is parked (the caller does
    /// not delete it now). A parked re-add of `key` itself is dropped instead (the delete
    /// undoes it: the rouse event was left as it was). Refused while another operation is
    /// parked, and during a run unless `in_callback` (the caller is the loop thread in a
    /// program's callback).
    #[inline(always)]
    pub fn park(&self, key: Key, in_callback: impl FnOnce() -> bool) -> bool {
        let Some(k) = self.pack(key) else {
            return false;
        };
        let v = self.word.load(Ordering::Relaxed);
        if v == HELD | READD | k {
            return self.swap(v, HELD | k);
        }
        if v & (HELD | BUSY) != 0 || (v & RUN != 0 && !in_callback()) {
            return false;
        }
        self.swap(v, v | HELD | k)
    }

    /// Parks a re-add of `key` with `timeout` (nanoseconds) where its delete is parked,
    /// outside a run: the rouse event, still pending, is left as it is until the loop is
    /// used, and a delete that follows drops the re-add again. `now` reads the base's clock
    /// (coarse reading, nanoseconds): the timeout counts from then. Returns that reading, or
    /// `None` if nothing of `key`'s is parked here (or a run is on): the caller adds it.
    #[inline(always)]
    pub fn readd(&self, key: Key, timeout: u64, now: impl FnOnce() -> u64) -> Option<u64> {
        // The word first: an add with nothing parked (most) pays one load and a test.
        let v = self.word.load(Ordering::Relaxed);
        if v & (HELD | READD | BUSY | RUN) != HELD || Some(v) != self.pack(key).map(|k| HELD | k) {
            return None;
        }
        let from = now();
        if self.raced() {
            // Held (`BUSY`) while the timeout is written: whoever applies it reads both.
            self.word
                .compare_exchange(v, BUSY, Ordering::Acquire, Ordering::Relaxed)
                .ok()?;
        }
        self.timeout.store(timeout, Ordering::Relaxed);
        self.from.store(from, Ordering::Relaxed);
        self.word.store(v | READD, Ordering::Release);
        Some(from)
    }

    /// Settles, except that a parked delete of `key` itself is dropped, not applied (true):
    /// the caller is about to add `key` again, which re-arms it (and if that fails, deletes
    /// it after all).
    #[inline(always)]
    pub fn take_back(&self, key: Key, apply: impl FnOnce(Op)) -> bool {
        let v = self.word.load(Ordering::Relaxed);
        if v & (HELD | BUSY) == 0 {
            return false;
        }
        if let Some(k) = self.pack(key) {
            if v & !RUN == HELD | k && self.swap(v, v & RUN) {
                return true;
            }
        }
        self.settle_slow(apply);
        false
    }

    /// Applies the parked operation, if there is one.
    #[inline(always)]
    pub fn settle(&self, apply: impl FnOnce(Op)) {
        if self.word.load(Ordering::Acquire) & (HELD | BUSY) != 0 {
            self.settle_slow(apply);
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_slow(&self, apply: impl FnOnce(Op)) {
        let mut spins = 0u32;
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v & BUSY != 0 {
                // Another thread applies it (or parks a re-add): wait until it is done.
                spins += 1;
                if spins.is_multiple_of(64) {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            if v & HELD == 0 {
                return;
            }
            if self.swap(v, (v & RUN) | BUSY) {
                let key = self.unpack(v);
                apply(if v & READD != 0 {
                    Op::Readd {
                        key,
                        timeout: self.timeout.load(Ordering::Relaxed),
                        from: self.from.load(Ordering::Relaxed),
                    }
                } else {
                    Op::Delete(key)
                });
                // Nothing else changes the word while it is busy.
                self.word.store(v & RUN, Ordering::Release);
                return;
            }
        }
    }

    /// A run starts (on the thread that claimed it): settles, and marks the run, at once.
    pub fn begin_run(&self, apply: impl Fn(Op)) {
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v & (HELD | BUSY) != 0 {
                self.settle_slow(&apply);
                continue;
            }
            if self.swap(v, v | RUN) {
                return;
            }
        }
    }

    /// The run [`begin_run`](Parked::begin_run) marked ended.
    pub fn end_run(&self, apply: impl FnOnce(Op)) {
        // Only this thread parks during a run, from callbacks, and each settles on return:
        // nothing is parked now, unless a callback unwound past its settle.
        self.settle(apply);
        if self.raced() {
            self.word.fetch_and(!RUN, Ordering::AcqRel);
        } else {
            self.word.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn key(index: u32, gen: u32) -> Key {
        Key::from_raw([7, index, gen])
    }

    #[test]
    fn a_parked_delete_is_taken_back_by_its_key_and_applied_for_any_other_use() {
        for shared in [false, true] {
            let p = Parked::new(shared, 7);
            let applied = RefCell::new(Vec::new());
            let apply = |op: Op| applied.borrow_mut().push(op);
            assert!(p.park(key(3, 9), || false));
            // One at a time.
            assert!(!p.park(key(4, 1), || false));
            // Another key's add applies it.
            assert!(!p.take_back(key(4, 1), apply));
            assert_eq!(*applied.borrow(), [Op::Delete(key(3, 9))]);
            // Its own add drops it; the same index with another generation does not.
            assert!(p.park(key(3, 9), || false));
            assert!(!p.take_back(key(3, 10), apply));
            assert_eq!(applied.borrow().len(), 2);
            assert!(p.park(key(3, 9), || false));
            assert!(p.take_back(key(3, 9), apply));
            p.settle(apply);
            assert_eq!(applied.borrow().len(), 2, "taken back, nothing to apply");
            // Another base's key, a generation past 24 bits: not parked.
            assert!(!p.park(Key::from_raw([8, 3, 9]), || false));
            assert!(!p.park(key(3, 1 << 24), || false));
            p.settle(apply);
            assert_eq!(applied.borrow().len(), 2);
        }
    }

    #[test]
    fn a_readd_of_the_parked_key_is_parked_and_a_delete_drops_it_again() {
        for shared in [false, true] {
            let p = Parked::new(shared, 7);
            let applied = RefCell::new(Vec::new());
            let apply = |op: Op| applied.borrow_mut().push(op);
            // Nothing parked, or another key's delete: not parked, the caller adds.
            assert_eq!(p.readd(key(3, 9), 5, || 100), None);
            assert!(p.park(key(3, 9), || false));
            assert_eq!(p.readd(key(4, 1), 5, || 100), None);
            assert_eq!(p.readd(key(3, 10), 5, || 100), None);
            // Its own: parked, from the reading taken now.
            assert_eq!(p.readd(key(3, 9), 5, || 100), Some(100));
            // Added again while a re-add is parked: the caller adds (no second re-add).
            assert_eq!(p.readd(key(3, 9), 6, || 101), None);
            // A delete drops the re-add; the re-add after it counts from its own reading.
            assert!(p.park(key(3, 9), || false));
            assert_eq!(p.readd(key(3, 9), 7, || 102), Some(102));
            assert!(applied.borrow().is_empty(), "nothing applied yet");
            // Any use of the loop applies it, as asked, once.
            p.settle(apply);
            assert_eq!(
                *applied.borrow(),
                [Op::Readd {
                    key: key(3, 9),
                    timeout: 7,
                    from: 102
                }]
            );
            p.settle(apply);
            assert_eq!(applied.borrow().len(), 1);
            // An add of the key with a re-add parked applies it first (and does not take
            // it back: there is no delete to drop).
            assert!(p.park(key(3, 9), || false));
            assert_eq!(p.readd(key(3, 9), 8, || 103), Some(103));
            assert!(!p.take_back(key(3, 9), apply));
            assert!(matches!(applied.borrow()[1], Op::Readd { timeout: 8, .. }));
            // A run applies it before it starts, and none is parked during a run.
            assert!(p.park(key(3, 9), || false));
            assert_eq!(p.readd(key(3, 9), 9, || 104), Some(104));
            p.begin_run(apply);
            assert_eq!(applied.borrow().len(), 3);
            assert!(p.park(key(3, 9), || true));
            assert_eq!(p.readd(key(3, 9), 9, || 105), None, "not during a run");
            assert!(p.take_back(key(3, 9), apply));
            p.end_run(apply);
            assert_eq!(applied.borrow().len(), 3);
        }
    }

    #[test]
    fn a_run_settles_first_and_parks_only_from_callbacks() {
        for shared in [false, true] {
            let p = Parked::new(shared, 7);
            let applied = RefCell::new(Vec::new());
            let apply = |op: Op| applied.borrow_mut().push(op);
            assert!(p.park(key(1, 1), || false));
            p.begin_run(apply);
            assert_eq!(
                *applied.borrow(),
                [Op::Delete(key(1, 1))],
                "applied before the run"
            );
            assert!(!p.park(key(2, 1), || false), "not outside a callback");
            assert!(p.park(key(2, 1), || true), "from a callback");
            p.settle(apply);
            assert_eq!(applied.borrow().len(), 2);
            assert!(p.park(key(2, 1), || true));
            p.end_run(apply);
            assert_eq!(
                applied.borrow().len(),
                3,
                "a run never ends with one parked"
            );
            assert!(p.park(key(5, 1), || false), "the run is over");
        }
    }

    #[test]
    fn concurrent_settles_apply_a_parked_delete_once_and_before_they_return() {
        use std::sync::atomic::AtomicU32;
        use std::sync::{Arc, Barrier};
        for round in 0..200 {
            let p = Arc::new(Parked::new(true, 7));
            let applied = Arc::new(AtomicU32::new(0));
            assert!(p.park(key(1, 1), || false));
            let readd = round % 2 == 1;
            if readd {
                assert_eq!(p.readd(key(1, 1), 5, || 6), Some(6));
            }
            let want = if readd {
                Op::Readd {
                    key: key(1, 1),
                    timeout: 5,
                    from: 6,
                }
            } else {
                Op::Delete(key(1, 1))
            };
            let go = Arc::new(Barrier::new(3));
            let threads: Vec<_> = (0..3)
                .map(|i| {
                    let (p, applied, go) = (p.clone(), applied.clone(), go.clone());
                    std::thread::spawn(move || {
                        if i < 2 {
                            go.wait();
                        }
                        let apply = |op| {
                            assert_eq!(op, want);
                            applied.fetch_add(1, Ordering::SeqCst);
                        };
                        match i {
                            0 => p.settle(apply),
                            1 => assert!(!p.take_back(key(9, 1), apply)),
                            _ => {
                                go.wait();
                                p.begin_run(apply);
                                p.end_run(apply);
                            }
                        }
                        // Whoever applied it, it is applied by the time any of them returns.
                        assert_eq!(applied.load(Ordering::SeqCst), 1);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(applied.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn a_readd_parked_by_one_thread_is_applied_whole_by_another() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let p = Arc::new(Parked::new(true, 7));
        let done = Arc::new(AtomicBool::new(false));
        let parker = {
            let (p, done) = (p.clone(), done.clone());
            std::thread::spawn(move || {
                let mut readds = 0;
                for n in 1..20_000u64 {
                    if p.park(key(1, 1), || false) && p.readd(key(1, 1), n, || n).is_some() {
                        readds += 1;
                    }
                }
                done.store(true, Ordering::SeqCst);
                readds
            })
        };
        let mut seen = 0;
        let mut apply = |op| match op {
            Op::Readd { timeout, from, .. } => {
                assert_eq!(timeout, from, "a torn re-add");
                seen += 1;
            }
            Op::Delete(k) => assert_eq!(k, key(1, 1)),
        };
        while !done.load(Ordering::SeqCst) {
            p.settle(&mut apply);
        }
        p.settle(&mut apply);
        let readds = parker.join().unwrap();
        assert!(readds > 0, "the parker never parked a re-add");
        assert!(seen <= readds);
    }
}
