//! libevent 2.1's core C API on rouse: a shared object with the soname
//! `libevent_core-2.1.so.7` exporting every function of libevent 2.1.12's `event2/event.h`,
//! `event2/event_compat.h`, `event2/thread.h` and `event2/util.h`, so an unmodified program
//! linked against libevent runs on rouse through `LD_LIBRARY_PATH`
//! (`scripts/libevent-lib.sh DIR` lays the libraries out).
//!
//! - [`backend`]: every call into rouse (porting to a new rouse API is one file).
//! - [`abi`]: `struct event`'s public layout and libevent's constants.
//! - `base`, `event`, `compat`, `misc`, `util`: the exports, grouped as the headers group them.
//!
//! Bad input (NULL, an unassigned or zeroed event, a freed or foreign base) returns -1/NULL
//! and is reported through the log callback; no panic unwinds into C.

#![deny(unsafe_op_in_unsafe_fn, rust_2018_idioms)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The exports are C functions documented by libevent's headers.
#![allow(missing_docs, clippy::missing_safety_doc)]

pub mod abi;
pub mod backend;
mod base;
mod cells;
mod compat;
mod event;
mod log;
mod misc;
mod parked;
mod reclaim;
mod util;
