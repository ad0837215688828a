//! The single-threaded base: no lock, no notifier, no handle, neither `Send` nor `Sync`.

use std::io;
use std::ops::Deref;

use crate::config::LocalEvents;

/// A base for one thread (libevent's `EVENT_BASE_FLAG_NOLOCK`): cheaper (no lock, no
/// notifier fd), and the compiler keeps it on its thread — there is no handle type, and it is
/// neither `Send` nor `Sync`:
///
/// ```compile_fail
/// let base = rouse_std::Builder::new().build_local().unwrap();
/// std::thread::spawn(move || drop(base)); // error: `LocalBase` cannot be sent between threads
/// ```
///
/// Build it with [`Builder::build_local`](crate::Builder::build_local).
#[derive(Debug)]
pub struct LocalBase {
    events: LocalEvents,
}

impl Deref for LocalBase {
    type Target = LocalEvents;
    fn deref(&self) -> &LocalEvents {
        &self.events
    }
}

impl LocalBase {
    pub(crate) fn from_events(events: LocalEvents) -> LocalBase {
        LocalBase { events }
    }

    /// A single-threaded base with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`](crate::Builder::build).
    pub fn new() -> io::Result<LocalBase> {
        crate::Builder::new().build_local()
    }
}

crate::run::loop_methods!(LocalBase);

impl Drop for LocalBase {
    fn drop(&mut self) {
        self.events.close();
    }
}
