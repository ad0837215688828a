//! rouse on Linux, FreeBSD and macOS: the OS implementations of every seam of the
//! [`rouse_core`] core, and the friendly API that makes it a complete, thread-safe event loop.
//!
//! - [`Base`]: a thread-safe base that owns the loop; [`Handle`]s (`Send + Sync + Clone`) let
//!   other threads add, delete and activate events and stop the loop.
//! - [`LocalBase`]: a single-threaded base (no lock, no notifier) that cannot leave its thread.
//! - [`Builder`]: priorities, dispatch limits, a forced poller ([`PollerKind`]: epoll,
//!   kqueue, poll(2)) or notifier ([`NotifierKind`]: kqueue `EVFILT_USER`, eventfd, pipe,
//!   socketpair).
//! - [`EventsExt`]: closures as callbacks, fds borrowed through `AsFd`, `Duration`
//!   timeouts, `io::Result` everywhere (core errors convert with `?`).
//!
//! ```
//! use std::time::Duration;
//! use rouse_std::{Base, EventsExt};
//!
//! let base = Base::new()?;
//! let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
//! base.add_fd(&a, rouse_core::Interest::READ, |events, fired| {
//!     assert!(fired.ready.contains(rouse_core::Ready::READ));
//!     events.loop_break().unwrap();
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
//! # Implementation notes
//!
//! Everything that performs syscalls is under `src/sys/`, one file per mechanism; the notify
//! protocol, the change list and the loop live once, in the core.

#![deny(unsafe_op_in_unsafe_fn, rust_2018_idioms, missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(unix))]
compile_error!("rouse-std supports Unix (Linux, FreeBSD, macOS and other BSDs)");

mod base;
mod channel;
mod clock;
mod config;
mod events;
mod local;
mod lock;
mod os;
mod run;
mod signal;
mod sys;

pub use base::{Base, Builder, Handle, DEFAULT_SPIN};
pub use channel::{SendError, Sender};
pub use clock::MonotonicClock;
pub use config::{Callback, Events, Local, LocalCallback, LocalEvents, Threaded};
pub use events::{raw_source, source, EventsExt, LocalEventsExt, NotifierKindExt};
pub use local::LocalBase;
pub use lock::{StdCell, StdLock};
pub use os::{LocalOs, Os};
pub use signal::Signal;
pub use sys::notify::NotifierKind;
pub use sys::poll::PollerKind;

/// The core crate, re-exported.
pub use rouse_core;

/// The README's code, compiled and run as doctests so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
