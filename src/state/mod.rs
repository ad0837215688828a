//! The base's state and every operation on it, knowing nothing of locks (the shape of
//! embassy-sync's `ChannelState`): [`Base`](crate::Base) wraps it in its `Lock` and runs these
//! operations inside the critical section.
//!
//! The state is here; its operations, one concern a file: `schedule` (create, free, add,
//! delete: what is pending), `dispatch` (due timers, active queues, a callback's run),
//! `readiness` (what the poller reports, and the change list it is told).

mod dispatch;
pub(crate) mod heap;
pub(crate) mod queue;
mod readiness;
mod schedule;
pub(crate) mod slots;
pub(crate) mod sources;
pub(crate) mod spin;
pub(crate) mod timers;
pub(crate) mod wake;
pub(crate) mod word;

use crate::options::Options;
use crate::seam::{Buf, Config, Interest, Ready, Storage};
use crate::Error;

use queue::Queue;
pub(crate) use slots::NO_TIME;
use slots::{flag, Slot, Slots, NIL};
use sources::Table;
use spin::SpinGate;
use wake::Wake;

pub(crate) type VecOf<C, T> = <<C as Config>::Storage as Storage>::Vec<T>;
pub(crate) type WordsOf<C> = <<C as Config>::Storage as Storage>::Words;
type TagsOf<C> = <<C as Config>::Storage as Storage>::Tags;
type SlotOf<C> = Slot<<C as Config>::Callback>;
type TableOf<C> = Table<VecOf<C, sources::Entry>, VecOf<C, u64>>;
type TimersOf<C> = timers::Timers<
    VecOf<C, heap::Entry>,
    VecOf<C, u32>,
    VecOf<C, u64>,
    VecOf<C, timers::Link>,
    VecOf<C, timers::Common>,
>;

/// Loop-control requests and the loop's own bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// `loop_break`: stop after the current callback (kept until a run consumes it).
    pub brk: bool,
    /// `loop_exit` deadline reached: stop after this iteration's callbacks.
    pub exit: bool,
    /// `loop_exit` deadline in ns, `NO_TIME` if none.
    pub exit_at: u64,
    /// The earliest deadline still pending after this run's last timer expiry (`NO_TIME` if
    /// that wake-up read no clock, none was left, or the run has not waited yet). A deadline
    /// at or after it that is due when the next wait is planned fell due while callbacks
    /// ran: with timer slack it waits for its grid point
    /// ([`Options::timer_slack`](crate::Options::timer_slack)). An earlier one was added
    /// since and started late (a coarse clock's lagging reading): it is due at once.
    pub grid_from: u64,
    /// `loop_continue`: stop running callbacks and poll again now.
    pub cont: bool,
    /// A `run` is in progress.
    pub running: bool,
    /// The thread running the loop.
    pub loop_thread: usize,
    /// `close` was called: no more events.
    pub closed: bool,
}

/// What the loop takes out of the state to run one callback with the lock released.
pub(crate) struct Job<F> {
    pub idx: u32,
    pub gen: u32,
    pub ready: Ready,
    pub cb: F,
    pub finalizer: bool,
    pub tag: usize,
}

/// Counts of events, for introspection and for "run until empty".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Events that exist (created and not freed).
    pub events: u32,
    /// Events that are pending (added).
    pub pending: u32,
    /// Events queued to run.
    pub active: u32,
    /// Armed timeouts.
    pub timers: u32,
}

/// The state behind the lock.
pub(crate) struct BaseState<C: Config> {
    pub slots: Slots<VecOf<C, SlotOf<C>>, TagsOf<C>>,
    pub io: TableOf<C>,
    pub sig: TableOf<C>,
    pub queues: VecOf<C, Queue>,
    /// Events queued during a pass at the running priority or below: they run after the next
    /// poll and timer expiry (libevent's `active_later`), so a callback that re-activates
    /// itself cannot starve I/O, timers or signals.
    pub later: Queue,
    /// The priority whose callbacks the loop is running (a pass), or `None`.
    pub pass: Option<u8>,
    pub timers: TimersOf<C>,
    pub wake: Wake,
    /// The adaptive spin before blocking (unused with a fixed spin or none).
    pub spin: SpinGate,
    pub ctl: Control,
    pub opts: Options,
    /// Slot whose callback is running, or `NIL`.
    pub current: u32,
    /// Threads blocked until a running callback returns.
    pub waiters: u32,
    pub n_pending: u32,
    pub n_active: u32,
    /// Interest changes the poller refused.
    pub poll_errors: u64,
    /// Times the change list was applied (the "iteration" of `Slot::out`).
    pub epoch: u32,
    /// The poller, while no run (or loop owner's `with_poller`) has it out.
    pub poller: Option<C::Poller>,
}

impl<C: Config> BaseState<C> {
    pub fn new(opts: Options, poller: C::Poller) -> Result<Self, Error> {
        let mut queues = VecOf::<C, Queue>::new();
        for _ in 0..opts.priorities {
            queues.try_push(Queue::EMPTY).map_err(|_| Error::Full)?;
        }
        Ok(BaseState {
            slots: Slots::new(),
            io: Table::new(),
            sig: Table::new(),
            queues,
            later: Queue::EMPTY,
            pass: None,
            timers: timers::Timers::new(),
            wake: Wake::default(),
            spin: SpinGate::new(u64::try_from(opts.adaptive_spin.as_nanos()).unwrap_or(u64::MAX)),
            ctl: Control {
                exit_at: NO_TIME,
                grid_from: NO_TIME,
                ..Control::default()
            },
            opts,
            current: NIL,
            waiters: 0,
            n_pending: 0,
            n_active: 0,
            poll_errors: 0,
            epoch: 0,
            poller: Some(poller),
        })
    }

    pub fn counts(&self) -> Counts {
        Counts {
            events: self.slots.live,
            pending: self.n_pending,
            active: self.n_active,
            timers: self.timers.count(),
        }
    }

    #[inline]
    fn slot(&mut self, idx: u32) -> &mut SlotOf<C> {
        &mut self.slots.v[idx as usize]
    }

    /// After fork: no notification in flight, and every registration must be made again on the
    /// new poller.
    pub fn reinit(&mut self) {
        self.wake.reset();
        self.spin.reset();
        // A run (and its running callback, and threads waiting for it) in a thread that did
        // not survive the fork.
        self.ctl.running = false;
        if self.current != NIL {
            // Its callback went with that thread: the event stays, without a callback.
            let idx = self.current;
            self.slot(idx).flags &= !flag::RUNNING;
            self.current = NIL;
        }
        self.waiters = 0;
        self.io.forget_kernel(sources::UNKNOWN);
        self.sig.forget_kernel(Interest::NONE);
    }

    /// Whether there is anything that keeps `run` going (pending or queued events).
    #[inline]
    pub fn has_events(&self) -> bool {
        self.n_pending > 0 || self.n_active > 0
    }
}
