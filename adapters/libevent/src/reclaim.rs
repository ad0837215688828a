//! Which `struct event` a rouse event belongs to, and reclaiming the rouse events of
//! caller-allocated `struct event`s the program freed.
//!
//! Every rouse event is tagged with the address of its `struct event` ([`tag_of`]): its
//! callback finds the struct from the tag rouse hands it, so it captures nothing and needs
//! no heap chunk, and `event_base_foreach_event` finds every event's struct the same way.
//!
//! A caller-allocated `struct event` (`event_assign`) may be freed by the program once it is
//! neither pending nor active, without a call: its rouse event then stays behind, idle, and
//! nothing refers to it any more. Such events are tagged [`CALLER`], and [`Reclaim`] frees
//! the idle ones now and then (rouse's `free_idle`, which never takes a pending, queued or
//! running event). A `struct event` that is still alive and whose rouse event was reclaimed
//! gets a new one on its next `event_add` or `event_active`: its state in the struct then
//! names a stale key, which rouse refuses (`Stale`), and the call makes the event afresh.
//!
//! When: before each registration of a caller-allocated event, a counter; once it reaches
//! the base's number of events at the last look (at least [`MIN_LOOK`]), a look at rouse's
//! counts, and a pass over the events only if at least half of them are idle. So the idle
//! events left behind stay below the number in use (plus [`MIN_LOOK`]), a base whose events
//! are mostly pending (a million timers) makes no pass, and each pass is paid for by as
//! many registrations as it visits events. The look comes before the registration, so a
//! thread never reclaims the one it is about to add; one look runs at a time.
//!
//! Another thread's registration made but not yet added is idle, and a look may reclaim it:
//! that call then finds its key stale and makes the event afresh ([`ATTEMPTS`] in all; to
//! fail, the window between each of its registrations and its add would have to span
//! another [`MIN_LOOK`] registrations, every time).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::abi::Event;
use crate::backend::Loop;

/// Tag bit of a caller-allocated `struct event` (an 8-aligned address leaves it free).
pub const CALLER: usize = 1;

/// Registrations of caller-allocated events before the first look.
pub const MIN_LOOK: usize = 4096;

/// Registrations a call makes at most when each goes stale under it (reclaimed, or re-made
/// by another thread) before it can use it.
pub const ATTEMPTS: usize = 8;

/// The tag of `ev`'s rouse event.
#[inline]
pub fn tag_of(ev: *mut Event, caller_allocated: bool) -> usize {
    ev as usize | if caller_allocated { CALLER } else { 0 }
}

/// The `struct event` a tag names.
#[inline(always)]
pub fn event_of(tag: usize) -> *mut Event {
    (tag & !CALLER) as *mut Event
}

/// When to look for idle caller-allocated events of one base.
pub struct Reclaim {
    /// Registrations of caller-allocated events since the last look.
    made: AtomicUsize,
    /// How many make the next look.
    next: AtomicUsize,
    /// A look is running.
    looking: AtomicBool,
}

impl Default for Reclaim {
    fn default() -> Reclaim {
        Reclaim {
            made: AtomicUsize::new(0),
            next: AtomicUsize::new(MIN_LOOK),
            looking: AtomicBool::new(false),
        }
    }
}

impl Reclaim {
    /// Counts a registration of a caller-allocated event of `lp` about to be made, and looks
    /// when due.
    #[inline]
    pub fn made(&self, lp: &Loop) {
        // A load and a store, no read-modify-write: a count lost between two threads only
        // delays the next look.
        let made = self.made.load(Ordering::Relaxed) + 1;
        self.made.store(made, Ordering::Relaxed);
        if made >= self.next.load(Ordering::Relaxed) {
            self.look(lp);
        }
    }

    /// Frees the idle caller-allocated events of `lp` if at least half of its events are
    /// idle; returns how many it freed.
    #[cold]
    #[inline(never)]
    pub fn look(&self, lp: &Loop) -> usize {
        if self.looking.swap(true, Ordering::Acquire) {
            return 0; // another thread's look runs
        }
        // Another thread's look may have ended just now (and reset the count).
        if self.made.load(Ordering::Relaxed) < self.next.load(Ordering::Relaxed) {
            self.looking.store(false, Ordering::Release);
            return 0;
        }
        self.made.store(0, Ordering::Relaxed);
        let (events, pending, active) = lp.counts();
        let idle = events.saturating_sub(pending.saturating_add(active));
        let freed = if idle.saturating_mul(2) >= events && idle > 0 {
            lp.free_idle(|tag| tag & CALLER != 0)
        } else {
            0
        };
        let after = (events as usize).saturating_sub(freed);
        self.next.store(after.max(MIN_LOOK), Ordering::Relaxed);
        self.looking.store(false, Ordering::Release);
        freed
    }
}
