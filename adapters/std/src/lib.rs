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
//! touches its poller or notifier. A helper written once against [`Events`] (what all three
//! share, borrowed with `.events()`) serves all three.
//!
//! [`LocalBase`] is `Base<Local>`: the same API for one thread (no lock, no notifier, no
//! handle; neither `Send` nor `Sync`). Code generic over [`Flavor`] serves both;
//! [`LocalBase::local`](Base::local) adds closures that need not be `Send` (`Rc`, `RefCell`).
//! [`Builder`] sets priorities, dispatch limits, a forced poller ([`PollerKind`]) or notifier
//! ([`NotifierKind`]), and the opt-in spin before blocking.
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
//! base.add_fd(&a, rouse_core::Interest::READ, |cx, fired| {
//!     assert!(fired.ready.contains(rouse_core::Ready::READ));
//!     cx.loop_break().unwrap();
//! })?;
//! let handle = base.handle();
//! std::thread::spawn(move || {
//!     std::io::Write::write_all(&mut b, b"x").unwrap();
//!     handle.add_timer(Duration::from_secs(10), |_, _| {}).unwrap(); // from another thread
//! });
//! assert_eq!(base.run()?, rouse_core::Exit::Break);
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
//! `Drop` may use the base.
//!
//! # Errors
//!
//! Everything returns `io::Result`. OS failures carry their errno; the rest carries the core's
//! [`rouse_core::Error`] as the inner error (`err.get_ref()` and `downcast_ref`), with these
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
mod os;
mod signal;
mod sys;
pub mod testing;

pub use base::{Base, Builder, Handle, LocalBase};
pub use channel::{SendError, Sender};
pub use clock::MonotonicClock;
pub use config::{Callback, Local, LocalCallback, Threaded};
pub use context::{Context, Events};
pub use events::{raw_source, source};
pub use flavor::Flavor;
pub use local::LocalApi;
pub use lock::{StdCell, StdLock};
pub use os::{LocalOs, Os};
pub use signal::{IntoSignal, Signal};
pub use sys::notify::NotifierKind;
pub use sys::poll::PollerKind;

/// The core crate, re-exported.
pub use rouse_core;

/// The README's code, compiled and run as doctests so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
