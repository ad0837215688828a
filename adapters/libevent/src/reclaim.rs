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
//! When: after each registration of a caller-allocated event, a counter; once it reaches
//! the base's number of events at the last look (at least [`MIN_LOOK`]), a look at rouse's
//! counts, and a pass over the events only if at least half of them are idle. So the idle
//! events left behind stay below the number in use (plus [`MIN_LOOK`]), a base whose events
//! are mostly pending (a million timers) makes no pass, and each pass is paid for by as
//! many registrations as it visits events.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::abi::Event;
use crate::backend::Loop;

/// Tag bit of a caller-allocated `struct event` (an 8-aligned address leaves it free).
pub const CALLER: usize = 1;

/// Registrations of caller-allocated events before the first look.
pub const MIN_LOOK: usize = 4096;

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
}

impl Default for Reclaim {
    fn default() -> Reclaim {
        Reclaim {
            made: AtomicUsize::new(0),
            next: AtomicUsize::new(MIN_LOOK),
        }
    }
}

impl Reclaim {
    /// Counts a registration of a caller-allocated event of `lp`, and looks when due.
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
        self.made.store(0, Ordering::Relaxed);
        let (events, pending, active) = lp.counts();
        let idle = events.saturating_sub(pending.saturating_add(active));
        let freed = if idle.saturating_mul(2) >= events && idle > 0 {
            lp.free_idle(|tag| tag & CALLER != 0)
        } else {
            0
        };
        let (after, _, _) = lp.counts();
        self.next
            .store((after as usize).max(MIN_LOOK), Ordering::Relaxed);
        freed
    }
}
