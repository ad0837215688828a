//! rouse on Linux, FreeBSD and macOS: the OS implementations of every seam of the
//! [`rouse_core`] core, and the friendly API that makes it a complete, thread-safe event loop.
//!
//! Three types, each offering exactly what its holder may do (newtypes with inherent methods,
//! as mio's `Poll`/`Registry` and tokio's `Runtime`/`Handle`):
//!
//! - [`Base`]: the loop owner. It runs the loop (`run*`), re-initializes after `fork()`,
//!   hands out [`Handle`]s, and does everything a handle does.
//! - [`Handle`] (`Send + Sync + Clone`): any thread adds, deletes, activates and frees
//!   events, finalizes them, and stops the loop (`loop_break`, `loop_exit`).
//! - [`Context`]: what a callback gets; a handle's operations plus `loop_continue`.
//!
//! Nothing reachable from a handle or a callback runs the loop, re-initializes the base or
//! touches its poller or notifier. A helper written once against [`BaseRef`] (what all three
//! share, borrowed with `.base_ref()`) serves all three.
//!
//! One name per concept in these docs: a *base* is one event loop (its events, their queues
//! and timers, its poller and notifier: libevent's `event_base`); [`Base`] owns one, and
//! [`Handle`], [`Context`] and [`BaseRef`] reach it with fewer rights. The *core base* is
//! [`rouse_core::Base`], the lock-generic loop inside every `Base` here. An *event* is one
//! registration named by a [`Key`]; a *source* is what I/O events watch (an fd).
//!
//! [`LocalBase`] is `Base<Local>`: the same API for one thread (no lock, no notifier, no
//! handle; neither `Send` nor `Sync`). Code generic over [`Flavor`] serves both;
//! [`LocalBase::local`](Base::local) adds closures that need not be `Send` (`Rc`, `RefCell`).
//! [`Builder`] sets priorities, dispatch limits, a forced poller ([`PollerKind`]) or notifier
//! ([`NotifierKind`]), and the spin before blocking: adaptive by default for [`Base`]
//! ([`Builder::adaptive_spin`], [`DEFAULT_ADAPTIVE_SPIN`]: it spins only while requests from
//! other threads arrive right after the loop went idle), fixed with
//! [`Builder::spin_before_block`], or off.
//!
//! [`testing::MockBase`] is `Base<testing::Mock>`: the same API on the core's mocks (a manual
//! clock, a scripted poller, the counting notifier), so code generic over [`Flavor`] is unit
//! tested unchanged, with mock sources standing in for fds and time moved by the test.
//!
//! ```
//! use std::time::Duration;
//! use rouse_std::Base;
//!
//! let base = Base::new()?;
//! let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
//! base.add_fd(&a, rouse_std::Interest::READ, |cx, fired| {
//!     assert!(fired.ready.contains(rouse_std::Ready::READ));
//!     cx.loop_break().unwrap();
//! })?;
//! let handle = base.handle();
//! std::thread::spawn(move || {
//!     std::io::Write::write_all(&mut b, b"x").unwrap();
//!     handle.add_timer(Duration::from_secs(10), |_, _| {}).unwrap(); // from another thread
//! });
//! assert_eq!(base.run()?, rouse_std::Exit::Break);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Callbacks
//!
//! Closures `FnMut(&Context<'_, F>, Fired) + Send + 'static`, on every flavor (so one generic
//! function serves both); on a local base, `base.local()` and `cx.local()` take closures that
//! are not `Send`. fds are borrowed (`&impl AsFd`) by [`Base::add_fd`], owned by [`Base::add_owned`]
//! (closed when the event is freed). The base's own fds (notifier, poller, signal pipe) are
//! refused as sources with `EINVAL`. A closure is always dropped outside the base lock, so its
//! `Drop` may use the base. State that several callbacks of one base share (a connection's
//! read and write events) goes into an `Arc<`[`LoopCell`]`>`: `Sync` without a lock, since it
//! is lent only to a [`Context`] of its base, and a `Context` never leaves the loop thread.
//!
//! # Priorities
//!
//! A base has `n` priorities ([`Builder::priorities`], default 1); 0 runs first, and an event
//! gets `n / 2` unless told otherwise. Every convenience constructor takes one through
//! [`with_priority`](Base::with_priority), on a base, a handle, a callback's context or a
//! channel: `base.with_priority(0).add_timer(after, callback)`,
//! `base.with_priority(0).channel(callback)` ([`WithPriority`]). An event made from an
//! [`Event`] takes it from [`Event::priority`]; [`set_priority`](Base::set_priority) changes
//! it later.
//!
//! **Dispatch limits** ([`Builder::dispatch_limits`]`(max_callbacks, max_interval, p)`) apply
//! to priorities "`p` and below", meaning every priority numerically `>= p` (as urgent as `p`
//! or less): after `max_callbacks` callbacks or `max_interval` of them at such a priority the
//! loop polls again before running more. Priorities `< p` (more urgent) are never limited.
//! With `p = 0` every priority is limited.
//!
//! # Timers and timeouts
//!
//! - **An I/O event with a timeout** (`add_event(Event::io(..), Some(t), ..)`) fires with
//!   `TIMEOUT` when nothing happened for `t`, and can fire with **`READ | TIMEOUT`**: input
//!   arrived while the timeout was due, and both reasons reach one run (`fired.ready` is the
//!   union of everything since the event was queued). Check `READ` first and handle the
//!   input; treat the run as a timeout only without it (`!fired.ready.contains(Ready::READ)`),
//!   or an idle connection that just spoke is dropped. A persistent event's timeout is
//!   re-armed every time it fires: from now when it fired for I/O, from the deadline when it
//!   timed out (`examples/chat_server.rs` drops idle clients this way).
//! - **Re-arming a timer whose expiry is already queued** (due, its callback not run yet: a
//!   callback earlier in the same pass calls [`add`](Base::add) with a new timeout) cancels the
//!   queued run: the timer runs once, at its new deadline. For an I/O event with a timeout
//!   that cancels the whole queued run, whatever else it was queued for (a level-triggered
//!   `READ` is reported again by the next poll).
//! - **When a timeout starts**: never before it has passed since the `add` (or `add_timer`,
//!   `add_event`, ...). Outside the loop's callbacks (no run in progress, or another thread
//!   while the loop sleeps) the add reads the clock. From a callback (or another thread while
//!   callbacks run) it reads no clock: the timeout starts at the loop's next reading, after
//!   the callbacks of that pass, so it is late by at most the time those callbacks still ran
//!   after the add. A timer added late in a long callback therefore does not fire early, as
//!   it would on a loop time cached before the callback (libevent, libev, libuv).
//! - **An interval that falls behind** ([`add_interval`](Base::add_interval); the loop was
//!   busy for longer than a period) runs once, late, and is re-armed one period from now: no
//!   burst of catch-up runs for the periods it missed. While it keeps up it is re-armed from
//!   its previous deadline, so it does not drift.
//!
//! ```
//! use std::time::Duration;
//! use rouse_std::{Base, Event, Interest, Ready};
//!
//! let base = Base::new()?;
//! let (rx, _tx) = std::os::unix::net::UnixStream::pair()?;
//! let idle = Duration::from_millis(5);
//! let ev = Event::io(rouse_std::source(&rx), Interest::READ).persist();
//! base.add_event(ev, Some(idle), |cx, fired| {
//!     if fired.ready.contains(Ready::READ) {
//!         // input (maybe with TIMEOUT too: it arrived at the deadline): read it
//!     } else {
//!         cx.loop_break().unwrap(); // TIMEOUT alone: idle
//!     }
//! })?;
//! base.run()?; // no input: breaks after `idle`
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Errors
//!
//! Everything returns `io::Result`. OS failures carry their errno; the rest carries the core's
//! [`Error`] as the inner error (`err.get_ref()` and `downcast_ref`), with these
//! kinds:
//!
//! | kind | when |
//! |---|---|
//! | `NotFound` | the key names no live event (stale: freed, or a one-shot that ran) |
//! | `NotConnected` | the base was dropped (closed): every call through a surviving handle |
//! | `ResourceBusy` | `run*` while the loop runs (another thread, or from a callback), `reinit_after_fork` likewise; retrying in a loop does not help, so it is not `WouldBlock` |
//! | `InvalidInput` | bad input: an fd out of range or the base's own, a signal that cannot be caught, a priority out of range, a foreign key, `reinit_after_fork` without a fork |
//! | `OutOfMemory` | storage exhausted |
//!
//! # Implementation notes
//!
//! Everything that performs syscalls is under `src/sys/`, one file per mechanism; the notify
//! protocol, the change list and the loop live once, in the core.

#![deny(unsafe_op_in_unsafe_fn, rust_2018_idioms, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(unix))]
compile_error!("rouse-std supports Unix (Linux, FreeBSD, macOS and other BSDs)");

mod api;
mod base;
mod channel;
mod clock;
mod config;
mod context;
mod events;
mod flavor;
mod local;
mod lock;
mod loop_cell;
mod os;
mod signal;
mod sys;
pub mod testing;

pub use api::WithPriority;
pub use base::{Base, Builder, Handle, LocalBase, DEFAULT_ADAPTIVE_SPIN};
pub use channel::{SendError, Sender};
pub use clock::{BaseClock, MonotonicClock};
pub use config::{Callback, Local, LocalCallback, Threaded};
pub use context::{BaseRef, Context};
pub use events::{raw_source, source};
pub use flavor::Flavor;
pub use local::LocalApi;
pub use lock::{single_threaded, StdCell, StdLock};
pub use loop_cell::LoopCell;
pub use os::{LocalOs, Os, OsPoller};
pub use signal::{IntoSignal, Signal};
pub use sys::notify::NotifierKind;
pub use sys::poll::PollerKind;

/// The core's types this crate's API uses, re-exported: a std user depends on `rouse-std`
/// alone (`use rouse_std::{Base, Interest, Ready};`), with no second dependency to keep in
/// step. The seam traits (`Poller`, `Notify`, `Lock`, `Clock`, `Config`, ...) are for
/// custom runtimes and stay in [`rouse_core`].
pub use rouse_core::{
    CommonTimeout, Counts, Error, Event, EventInfo, Exit, Fired, Instant, Interest, Key, Kind,
    Ready, RunFlags, SeamError, SeamErrorKind, Source, WakeStats, MAX_SIGNAL, MAX_SOURCE,
};

/// The core crate, re-exported.
pub use rouse_core;

/// The README's code, compiled and run as doctests so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
