//! The two core configurations of `rouse-std` (its flavors): thread-safe and single-threaded.

use std::cell::Cell;

use rouse_core::{Config, Fired, Growable, NoLock};

use crate::clock::BaseClock;
use crate::lock::StdLock;
use crate::os::{LocalOs, Os, OsPoller};

/// The thread-safe flavor (the default of [`Base`](crate::Base)): [`StdLock`], the OS notifier
/// and poller, the monotonic clock, growable storage. Its base has [`Handle`](crate::Handle)s.
#[derive(Debug)]
pub struct Threaded;

/// The single-threaded flavor ([`LocalBase`](crate::LocalBase)): no lock, no notifier; its
/// base is neither `Send` nor `Sync` and has no handle.
#[derive(Debug)]
pub struct Local;

/// What the core stores as an event's callback in a thread-safe base (the facade wraps your
/// closure in one; you only meet this type when you drive the core yourself).
pub type Callback = Box<dyn FnMut(&rouse_core::Base<Threaded>, Fired) + Send>;

/// What the core stores as an event's callback in a single-threaded base: need not be `Send`.
pub type LocalCallback = Box<dyn FnMut(&rouse_core::Base<Local>, Fired)>;

thread_local! {
    static THREAD_MARK: Cell<u8> = const { Cell::new(0) };
}

/// The address of a thread-local: unique among running threads, and free to read.
fn thread_id() -> usize {
    THREAD_MARK.with(|m| m as *const Cell<u8> as usize)
}

impl Config for Threaded {
    type Lock = StdLock;
    type Notifier = Os;
    type Poller = OsPoller;
    type Clock = BaseClock;
    type Storage = Growable;
    type Callback = Callback;

    fn thread_id() -> usize {
        thread_id()
    }
}

impl Config for Local {
    type Lock = NoLock;
    type Notifier = LocalOs;
    type Poller = OsPoller;
    type Clock = BaseClock;
    type Storage = Growable;
    type Callback = LocalCallback;

    fn thread_id() -> usize {
        thread_id()
    }
}
