//! What the poller reports and what it is told: readiness into activations, the change
//! list into interest updates (and refused updates into `ERROR` activations).

use crate::seam::{Config, Interest, Notify, Poller, Readiness, Ready};

use super::slots::NIL;
use super::{sources, BaseState, WordsOf};

impl<C: Config> BaseState<C> {
    /// Handles one report of the poller. Always inline: the I/O case is the per-event hot path
    /// (into the poller's `ready` loop); signals and wakes are out of line.
    #[inline(always)]
    pub fn on_ready(&mut self, words: &WordsOf<C>, r: Readiness, notifier: &impl Notify) {
        match r {
            Readiness::Io(src, ready) => self.activate_source(words, src.id(), ready),
            Readiness::Signal(n) => self.activate_signal(words, n),
            Readiness::Wake => self.consume_wake(notifier),
        }
    }

    #[inline(never)]
    fn activate_signal(&mut self, words: &WordsOf<C>, n: u32) {
        let mut cur = self.sig.get(n).head().unwrap_or(NIL);
        while cur != NIL {
            let next = self.slots.v[cur as usize].src_next;
            self.enqueue(words, cur, Ready::SIGNAL);
            cur = next;
        }
    }

    #[inline(never)]
    fn consume_wake(&mut self, notifier: &impl Notify) {
        // Drain first, clear second (DESIGN rule 3): a request that sees `pending` set after
        // this point is covered by a new write.
        notifier.consume();
        self.wake.consumed();
    }

    #[inline(always)]
    fn activate_source(&mut self, words: &WordsOf<C>, id: u32, ready: Ready) {
        let mut cur = self.io.get(id).head().unwrap_or(NIL);
        while cur != NIL {
            let s = &self.slots.v[cur as usize];
            let next = s.src_next;
            let kinds = Interest::from_bits_truncate(s.interest_bits()).as_ready();
            let r = if ready.contains(Ready::ERROR) {
                kinds | Ready::ERROR
            } else {
                ready & kinds
            };
            if !r.is_empty() {
                self.enqueue_inline(words, cur, r);
            }
            cur = next;
        }
    }

    /// Applies every queued interest change to the poller. A change the poller refuses
    /// activates the source's events with `ERROR` (their next I/O call reports the cause).
    pub fn apply_changes(&mut self, words: &WordsOf<C>, poller: &mut impl Poller) {
        self.epoch = self.epoch.wrapping_add(1);
        let mut refused = false;
        self.io.take_changes(|t, id| {
            let e = t.get(id);
            let (old, new) = (e.kernel(), e.want());
            if old == new {
                return;
            }
            let source = crate::seam::Source::new(id);
            // An unknown registration: the poller makes it `new`, whatever it is now.
            let done = if old == sources::UNKNOWN {
                poller.reset(source, new)
            } else {
                poller.update(source, old, new)
            }
            .is_ok();
            if let Ok(e) = t.entry(id) {
                // A refused change: the kernel has nothing (a failed modify is undone by the
                // poller). The dirty bit, cleared for every entry of the pass, marks it for
                // `report_refused` (it is not on the list: not retried).
                e.set_kernel(if done { new } else { Interest::NONE });
                e.set_dirty(!done);
                refused |= !done;
            }
        });
        self.sig.take_changes(|t, n| {
            let e = t.get(n);
            let (old, new) = (e.kernel(), e.want());
            if old == new {
                return;
            }
            let done = poller.watch_signal(n, !new.is_empty()).is_ok();
            if let Ok(e) = t.entry(n) {
                e.set_kernel(if done { new } else { Interest::NONE });
                e.set_dirty(!done);
                refused |= !done;
            }
        });
        if refused {
            self.report_refused(words);
        }
    }

    /// Activates with `ERROR` the events of every source the poller refused in this pass
    /// (marked dirty but off the list): their next I/O call reports the cause.
    #[cold]
    fn report_refused(&mut self, words: &WordsOf<C>) {
        for id in 0..self.io.v.len() as u32 {
            if self.io.get(id).dirty() {
                self.io.v[id as usize].set_dirty(false);
                self.poll_errors += 1;
                self.activate_source(words, id, Ready::ERROR);
            }
        }
        for n in 0..self.sig.v.len() as u32 {
            let e = self.sig.get(n);
            if e.dirty() {
                self.sig.v[n as usize].set_dirty(false);
                self.poll_errors += 1;
                let mut cur = e.head().unwrap_or(NIL);
                while cur != NIL {
                    let next = self.slots.v[cur as usize].src_next;
                    self.enqueue(words, cur, Ready::SIGNAL | Ready::ERROR);
                    cur = next;
                }
            }
        }
    }
}
