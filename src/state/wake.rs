//! The notify-pending decision (DESIGN rules 1-4 and 6), as plain state under the base lock.
//!
//! `polling`: the loop is in, or about to enter, a blocking wait. `pending`: a notification was
//! written and not yet consumed. A change notifies only if the loop is polling and nothing is
//! pending; the loop consumes (drain first) and then clears `pending`, both under the lock.

/// Counters of wake requests and what became of them. Every request ends as exactly one of
/// `writes`, `coalesced` or `awake`: `requests == writes + coalesced + awake`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WakeStats {
    /// Changes the loop must see (an add or delete that changes what it waits for, an
    /// activation that queued an event, a break or an exit), made under the lock by any
    /// thread. The loop thread's own changes, from its callbacks, count too (as `awake`):
    /// requests that had to reach a sleeping loop are `writes + coalesced`.
    pub requests: u64,
    /// Notifications written (or attempted; see `failures`): requests that found the loop
    /// blocked and nothing pending.
    pub writes: u64,
    /// Requests that found a notification already pending: coalesced into it.
    pub coalesced: u64,
    /// Requests made while the loop was awake (every request of the loop thread itself, and
    /// those of other threads while it runs callbacks): it looks again before it blocks, no
    /// write.
    pub awake: u64,
    /// Notification writes that failed.
    pub failures: u64,
    /// Blocking polls the loop entered.
    pub blocking_polls: u64,
    /// Spins before blocking the loop started (fixed or adaptive).
    pub spins: u64,
    /// Spins that saw a request (the loop went on without blocking).
    pub spin_hits: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Wake {
    polling: bool,
    pending: bool,
    /// A write failed and the loop has not woken since: an event queued meanwhile may have no
    /// notification behind it, so a retry must not be taken as covered (the fast path of an
    /// already-queued activation is off, and it requests a wake).
    failed: bool,
    /// A notification was consumed since the loop last returned from a wait.
    notified: bool,
    pub stats: WakeStats,
}

impl Wake {
    /// A change was made: returns `true` if the caller must write the notification (after
    /// releasing the lock).
    #[inline]
    pub fn request(&mut self) -> bool {
        self.stats.requests += 1;
        if !self.polling {
            self.stats.awake += 1;
            false
        } else if self.pending {
            self.stats.coalesced += 1;
            false
        } else {
            self.pending = true;
            self.stats.writes += 1;
            true
        }
    }

    /// The write that `request` asked for failed: clear the flag so the next change retries.
    pub fn write_failed(&mut self) {
        self.pending = false;
        self.failed = true;
        self.stats.failures += 1;
    }

    /// Whether the loop is in, or about to enter, a blocking wait.
    #[inline]
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// Whether a write failed since the loop last woke.
    #[inline]
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The loop is about to block.
    #[inline]
    pub fn enter_poll(&mut self) {
        self.polling = true;
        self.stats.blocking_polls += 1;
    }

    /// The loop returned from its wait.
    #[inline]
    pub fn leave_poll(&mut self) {
        self.polling = false;
        self.failed = false; // awake: it sees every queued event before it blocks again
        self.notified = false;
    }

    /// The loop consumed the notification (after draining it).
    #[inline]
    pub fn consumed(&mut self) {
        self.pending = false;
        self.notified = true;
    }

    /// Whether a notification was consumed since the loop last returned from a wait.
    #[inline]
    pub fn notified(&self) -> bool {
        self.notified
    }

    /// After fork: the child has a new notifier and no notification in flight.
    pub fn reset(&mut self) {
        self.polling = false;
        self.pending = false;
        self.failed = false;
        self.notified = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_to_a_polling_loop_with_nothing_pending() {
        let mut w = Wake::default();
        assert!(!w.request(), "loop awake: no write");
        w.enter_poll();
        assert!(w.request(), "loop blocked: write");
        assert!(!w.request(), "already pending: coalesced");
        assert!(!w.request());
        w.leave_poll();
        w.consumed();
        assert!(!w.request(), "awake again");
        w.enter_poll();
        assert!(w.request());
        w.write_failed();
        assert!(w.request(), "a failed write does not leave the flag stuck");
        let s = w.stats;
        assert_eq!(s.requests, 7);
        assert_eq!(s.writes, 3);
        assert_eq!(s.coalesced, 2);
        assert_eq!(s.awake, 2);
        assert_eq!(s.failures, 1);
        assert!(s.writes - s.failures <= s.blocking_polls);
    }
}
