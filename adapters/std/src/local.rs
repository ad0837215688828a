//! The single-threaded base: no lock, no notifier, no handle, neither `Send` nor `Sync`.

use std::io;
use std::ops::Deref;

use rouse::{Exit, RunFlags};

use crate::config::LocalEvents;
use crate::os::running;
use crate::sys::poll::PollerKind;

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

    /// Runs the loop until no event is pending or active, or a break or exit.
    ///
    /// # Errors
    ///
    /// `WouldBlock` if called from one of its own callbacks; the poller's OS error.
    pub fn run(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::UNTIL_EMPTY)
    }

    /// Blocks until something is active, runs it, returns.
    ///
    /// # Errors
    ///
    /// As [`run`](LocalBase::run).
    pub fn run_once(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::ONCE)
    }

    /// Runs what is active without blocking, returns.
    ///
    /// # Errors
    ///
    /// As [`run`](LocalBase::run).
    pub fn run_nonblocking(&self) -> io::Result<Exit> {
        self.run_with(RunFlags::NONBLOCK)
    }

    /// Runs the loop as `flags` say.
    ///
    /// # Errors
    ///
    /// As [`run`](LocalBase::run).
    pub fn run_with(&self, flags: RunFlags) -> io::Result<Exit> {
        let mut poller = self.events.notifier().try_poller().ok_or_else(running)?;
        Ok(self.events.run_with(&mut *poller, flags)?)
    }

    /// After `fork()`, in the child: a new poller, every event registered again on the next
    /// run.
    ///
    /// # Errors
    ///
    /// The OS error of creating the poller; `WouldBlock` from inside a callback.
    pub fn reinit_after_fork(&self) -> io::Result<()> {
        self.events.notifier().reinit_after_fork()?;
        self.events.reinit();
        Ok(())
    }

    /// The poller chosen.
    pub fn poller_kind(&self) -> PollerKind {
        self.events.notifier().poller_kind()
    }
}

impl Drop for LocalBase {
    fn drop(&mut self) {
        self.events.close();
    }
}
