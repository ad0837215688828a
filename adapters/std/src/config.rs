//! The two core configurations of `rouse-std`: thread-safe and single-threaded.

use std::cell::Cell;

use rouse_core::{Config, Fired, Growable, NoLock};

use crate::clock::MonotonicClock;
use crate::lock::StdLock;
use crate::os::{LocalOs, Os};

/// The core config of a thread-safe base: [`StdLock`], the OS notifier and poller, the
/// monotonic clock, growable storage, and `FnMut + Send` callbacks.
#[derive(Debug)]
pub struct Threaded;

/// The core config of a single-threaded base: no lock, callbacks need not be `Send`; its base
/// is neither `Send` nor `Sync`.
#[derive(Debug)]
pub struct Local;

/// The events of a thread-safe base: what callbacks, [`Base`](crate::Base) and
/// [`Handle`](crate::Handle) operate on (the core's [`rouse_core::Base`], with the methods of
/// [`EventsExt`](crate::EventsExt) added).
pub type Events = rouse_core::Base<Threaded>;

/// The events of a single-threaded base.
pub type LocalEvents = rouse_core::Base<Local>;

/// A callback of a thread-safe base.
pub type Callback = Box<dyn FnMut(&Events, Fired) + Send>;

/// A callback of a single-threaded base.
pub type LocalCallback = Box<dyn FnMut(&LocalEvents, Fired)>;

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
    type Clock = MonotonicClock;
    type Storage = Growable;
    type Callback = Callback;

    fn thread_id() -> usize {
        thread_id()
    }
}

impl Config for Local {
    type Lock = NoLock;
    type Notifier = LocalOs;
    type Clock = MonotonicClock;
    type Storage = Growable;
    type Callback = LocalCallback;

    fn thread_id() -> usize {
        thread_id()
    }
}
