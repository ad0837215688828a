//! rouse: a libevent-class event loop, as a `#![no_std]` core you can embed anywhere.
//!
//! # Embed rouse in your runtime in three steps
//!
//! 1. **Implement the seams you need**: a [`Notify`] that wakes your loop thread, a
//!    [`Poller`] it blocks in, a [`Clock`]; they fail with a [`SeamError`] (an OS error number,
//!    `UNSUPPORTED`, `WOULD_BLOCK_FOREVER`, or your own code; [`SeamErrorKind`] to match). (Or take the [`mock`]s, which this
//!    example does.)
//! 2. **Name them in a [`Config`]**, with a [`Lock`] ([`SpinLock`] across cores, [`NoLock`] on
//!    one thread), a [`Storage`] ([`Fixed`] capacity, no allocator; or `Growable`) and a
//!    callback type.
//! 3. **Create a [`Base`] with your notifier, poller and clock, add events, and run it**: the
//!    base owns the poller, and a run takes it for its whole length.
//!
//! ```
//! use core::time::Duration;
//! use rouse_core::{mock, Base, Config, Event, Exit, Fired, Fixed, Interest, Options, Readiness,
//!             Ready, Source, SpinLock};
//!
//! // 1. The seams: here the shipped mocks (a counting notifier, a manual clock, and a
//! //    scripted poller linked to both).
//! static CLOCK: mock::ManualClock = mock::ManualClock::new();
//! static NOTIFIER: mock::Notifier = mock::Notifier::new();
//!
//! // 2. The config.
//! struct Rt;
//! impl Config for Rt {
//!     type Lock = SpinLock;
//!     type Notifier = &'static mock::Notifier;
//!     type Poller = mock::Poller;
//!     type Clock = &'static mock::ManualClock;
//!     type Storage = Fixed<16>; // 16 events, no allocator
//!     type Callback = fn(&Base<Rt>, Fired);
//!     fn thread_id() -> usize {
//!         0 // one core
//!     }
//! }
//!
//! // 3. A base (what `Base::new_mock` does for a mock config), an event, a run.
//! let poller = mock::Poller::new(&NOTIFIER, &CLOCK);
//! let base: Base<Rt> = Base::new(&NOTIFIER, poller, &CLOCK, Options::new()).unwrap();
//! let uart = Source::new(3);
//! let rx = base
//!     .new_event(Event::io(uart, Interest::READ), |base, fired| {
//!         assert_eq!(fired.ready, Ready::READ);
//!         base.loop_exit(None).unwrap(); // stop after this iteration
//!     })
//!     .unwrap();
//! base.add(rx, Some(Duration::from_secs(1))).unwrap();
//!
//! // Script the base's poller (a test's hold on it), then run.
//! base.with_poller(|p| {
//!     p.script(Duration::from_millis(10), &[Readiness::Io(uart, Ready::READ)]);
//! })
//! .unwrap();
//! assert_eq!(base.run(), Ok(Exit::Exit));
//! // Applied before the wait:
//! assert_eq!(base.with_poller(|p| p.registered(uart)), Ok(Interest::READ));
//! assert_eq!(CLOCK.now_nanos(), 10_000_000);
//! ```
//!
//! # What the core holds
//!
//! An event [`Base`] holds events — I/O readiness of a source, timers, signals, user events
//! activated by hand — and runs their callbacks from per-priority active queues. Any thread may
//! add, delete or activate events while the loop thread sleeps in its poller; such a change
//! wakes the loop through a [`Notify`]er, and a pending flag coalesces any number of wake
//! requests into one write.
//!
//! The core owns all the logic (event storage, queues, timers, the loop, the notify protocol)
//! and is generic over the seams a runtime supplies. `rouse-std` supplies them for Linux,
//! FreeBSD and macOS (eventfd/pipe/kqueue, epoll/kqueue/poll, OS locks); on bare metal or in a
//! custom runtime you supply your own. [`mock`] ships a counting notifier, a scripted poller
//! and a manual clock, with which the whole loop runs deterministically in a unit test: the
//! mock poller keeps time as a real one does and is linked to the base's notifier
//! ([`Base::new_mock`], [`Base::mock_poller`]), and bounded runs ([`Base::run_until_idle`], [`Base::advance`]) end
//! when the test's script does.
//!
//! # How the loop dispatches
//!
//! Each iteration applies the queued interest changes, waits in the poller (not at all if
//! something is queued), queues what the poller found and the timers that are due, and runs
//! the callbacks of the highest priority that has any (lower number first, FIFO within a
//! priority). Then it polls again before it looks at lower priorities, so a newly active
//! higher-priority event is never starved (libevent's rule). Within that:
//!
//! - **Preemption**: a callback (or another thread) that activates an event of *higher*
//!   priority than the one running ends the pass after the current callback: the loop polls
//!   and starts again from the highest priority (libevent's `event_continue`).
//! - **No starvation by re-activation**: an event queued during a pass at the running
//!   priority or below runs after the next poll and timer expiry, not in the same pass
//!   (libevent's `active_later`): a callback that re-activates itself runs once per
//!   iteration and cannot starve I/O, timers or signals. (libevent runs such an event again
//!   in the same pass, forever.)
//! - **When a timeout starts** (never early): [`Base::add`] with a timeout, called while no
//!   run is in progress or from another thread while the loop sleeps in its poller, reads the
//!   clock: the timer is due `timeout` after the add. Called while the loop runs callbacks
//!   (from a callback, or from another thread meanwhile), it reads no clock: the timeout
//!   starts at the loop's next clock reading, taken after the add — once the pass's callbacks
//!   have run and the loop plans its next wait, or when the run returns. Either way a timer
//!   never fires before `timeout` has passed since its add; one added during a pass is late
//!   by at most the time the loop still spent in that pass's callbacks after the add (plus,
//!   as every timer, the poller's wake-up). (libevent, libev and libuv start it at a loop
//!   time cached before the callbacks: a timer added late in a long callback fires early by
//!   that time's age.) [`Base::add_common`] reads the clock at every add.
//! - **Dispatch limits** ([`Options::dispatch_limits`]) bound the callbacks and time of one
//!   pass at priorities `from_priority` and below (numerically at least it).
//! - **Delete**: [`Base::delete`] of a live event that is not pending succeeds (libevent's
//!   `event_del`). From another thread while the event's callback runs, it removes the event
//!   first and then waits for the callback to return: once it returns, the callback is not
//!   running and will not run again.
//!
//! # The notify protocol
//!
//! State under the base lock: `polling` (the loop is about to block, or blocked) and `pending`
//! (a notification was written and not consumed).
//!
//! 1. A thread that changes what the loop must do changes the state under the lock, then, if
//!    the loop is polling and nothing is pending, sets `pending` and writes the notification
//!    after releasing the lock.
//! 2. The loop never notifies itself: changes made while it is awake are seen when it
//!    re-examines its state under the lock before blocking again.
//! 3. The loop consumes a notification (drains the notifier) and *then* clears `pending`, both
//!    under the lock, and re-examines its state before it blocks again.
//! 4. A failed write clears `pending` again and reports [`Error::Notify`].
//! 5. Activating an already-queued event costs one fence and one atomic load: no lock, no
//!    syscall.
//! 6. At most one notification is outstanding per base; writes never exceed blocking polls.
//!    [`Base::wake_stats`] counts requests (from every thread, the loop's own included),
//!    writes, coalesced requests and requests made while the loop was awake.
//!
//! The protocol is model-checked with loom (`tests/loom_notify.rs`).
//!
//! # Features
//!
//! - `alloc` (default): [`Growable`] storage, [`mock::BoxedMock`], and a mock poller without
//!   fixed limits.
//! - `std`: `From<Error> for std::io::Error`, and real thread identities for the mock configs
//!   ([`mock::thread_id`]) (implies `alloc`).
//! - `critical-section`: `CriticalSectionLock`, the lock for a base that interrupt handlers
//!   use (bare metal; see its docs for which lock to pick where).

#![no_std]
#![deny(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod base;
mod error;
mod event;
pub mod mock;
mod options;
mod seam;
mod state;
mod sync;
#[cfg(test)]
mod testing;

pub use base::{Base, CommonTimeout, EventInfo};
pub use error::{Error, SeamError, SeamErrorKind};
pub use event::{Event, Fired, Key, Kind, MAX_SIGNAL, MAX_SOURCE};
pub use options::{Exit, Options, RunFlags};
#[cfg(feature = "critical-section")]
pub use seam::CriticalSectionLock;
#[cfg(feature = "alloc")]
pub use seam::Growable;
pub use seam::{
    Buf, Callback, Clock, Config, Fixed, Instant, Interest, Lock, NoLock, NoLockCell, NoNotifier,
    Notify, Poller, Readiness, Ready, Source, SpinLock, Storage, Tags, Words,
};
pub use state::wake::WakeStats;
pub use state::Counts;
