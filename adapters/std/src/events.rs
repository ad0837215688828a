//! The friendly layer over the core's events: closures as callbacks, fds borrowed through
//! `AsFd`, `Duration` timeouts, `io::Result` everywhere.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;

use rouse_core::{Event, Fired, Interest, Key, Source};

use crate::config::{Events, LocalEvents};
use crate::sys::notify::NotifierKind;
use crate::sys::poll::PollerKind;

/// The source of a borrowed fd (always valid: a `BorrowedFd` is never `-1`).
pub fn source(fd: impl AsFd) -> Source {
    Source::new(fd.as_fd().as_raw_fd() as u32)
}

/// The source of a raw fd.
///
/// # Errors
///
/// `InvalidInput` for a negative fd or one at or above the hard `RLIMIT_NOFILE` (no such fd
/// can be open; the base's per-fd table would grow to it for nothing).
pub fn raw_source(fd: RawFd) -> io::Result<Source> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd}: {what}"));
    let id = u32::try_from(fd).map_err(|_| bad("negative file descriptor"))?;
    if u64::from(id) >= fd_limit(false) && u64::from(id) >= fd_limit(true) {
        return Err(bad("above the process's hard RLIMIT_NOFILE"));
    }
    Ok(Source::new(id))
}

/// The hard `RLIMIT_NOFILE` (capped at `MAX_SOURCE + 1`), cached; `refresh` reads it again (a
/// privileged process may have raised it since).
fn fd_limit(refresh: bool) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static LIMIT: AtomicU64 = AtomicU64::new(0);
    let cached = LIMIT.load(Relaxed);
    if cached != 0 && !refresh {
        return cached;
    }
    read_fd_limit(&LIMIT)
}

#[cold]
fn read_fd_limit(cache: &std::sync::atomic::AtomicU64) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0;
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux and macOS, i64 on FreeBSD
    let limit = if ok && rl.rlim_max != libc::RLIM_INFINITY {
        (rl.rlim_max as u64).min(u64::from(rouse_core::MAX_SOURCE) + 1)
    } else {
        u64::from(rouse_core::MAX_SOURCE) + 1
    };
    cache.store(limit, Relaxed);
    limit
}

/// Checks a signal number: a real, catchable signal of this OS (the rule is
/// [`check_catchable`](crate::sys::signal::check_catchable)'s).
fn check_signal(signo: i32) -> io::Result<u32> {
    let n = u32::try_from(signo).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signo}: no such signal on this OS"),
        )
    })?;
    crate::sys::signal::check_catchable(n)?;
    Ok(n)
}

/// Checks the signal number of a signal event (the generic `Event::signal` path).
fn check_event(event: &Event) -> io::Result<()> {
    match event.kind() {
        rouse_core::Kind::Signal(n) => crate::sys::signal::check_catchable(n),
        _ => Ok(()),
    }
}

macro_rules! events_ext {
    ($(#[$m:meta])* $Ext:ident for $Events:ty, [$($send:tt)*]) => {
        $(#[$m])*
        pub trait $Ext {
            /// Creates an event with `callback`; not pending until added (`event_new`).
            ///
            /// # Errors
            ///
            /// What [`rouse_core::Base::new_event`] returns, as `io::Error`.
            fn event<F>(&self, event: Event, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// Creates an event and makes it pending (`event_new` + `event_add`). On failure
            /// nothing is left behind.
            ///
            /// # Errors
            ///
            /// What creating or adding returns.
            fn add_event<F>(&self, event: Event, timeout: Option<Duration>, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// A persistent event for `interest` on `fd`, pending at once. The fd is only
            /// borrowed: delete the event before closing it.
            ///
            /// # Errors
            ///
            /// As [`add_event`](Self::add_event).
            fn add_fd<F>(&self, fd: impl AsFd, interest: Interest, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// A persistent event for `interest` on `fd`, which the event owns: the callback
            /// gets it as `&mut T`, and it is dropped (closed) when the event is freed — after
            /// the loop can no longer report it, so nothing has to be ordered by hand.
            ///
            /// # Errors
            ///
            /// As [`add_event`](Self::add_event) (`fd` is dropped on failure).
            fn add_owned<T, F>(&self, fd: T, interest: Interest, callback: F) -> io::Result<Key>
            where
                T: AsFd $($send)* + 'static,
                F: FnMut(&$Events, Fired, &mut T) $($send)* + 'static;

            /// A one-shot timer firing once `after` has passed; it frees itself after it ran
            /// (libevent's `event_base_once`), or when deleted.
            ///
            /// # Errors
            ///
            /// As [`add_event`](Self::add_event).
            fn add_timer<F>(&self, after: Duration, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// A persistent timer firing every `every` (re-armed from its previous deadline).
            ///
            /// # Errors
            ///
            /// As [`add_event`](Self::add_event).
            fn add_interval<F>(&self, every: Duration, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// A persistent event for signal `signo`. Its handler is installed at once if the
            /// loop is not running, else by the loop right away (the add wakes it).
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a signal that cannot be caught; as
            /// [`add_event`](Self::add_event).
            fn add_signal<F>(&self, signo: i32, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// A persistent user event, pending (so it keeps `run` going) and activated by hand
            /// with [`rouse_core::Base::activate`] from any thread.
            ///
            /// # Errors
            ///
            /// As [`add_event`](Self::add_event).
            fn add_user<F>(&self, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static;

            /// Deletes the event without waiting and runs `finalizer` on the loop thread once
            /// its callback cannot run any more (`event_finalize`); the event is then freed.
            ///
            /// # Errors
            ///
            /// What [`rouse_core::Base::finalize`] returns.
            fn finalize_with<F>(&self, key: Key, finalizer: F) -> io::Result<()>
            where
                F: FnOnce(&$Events) $($send)* + 'static;

            /// The poller this base uses.
            fn poller_kind(&self) -> PollerKind;
        }

        impl $Ext for $Events {
            fn event<F>(&self, event: Event, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                check_event(&event)?;
                Ok(self.new_event(event, Box::new(callback))?)
            }

            fn add_event<F>(&self, event: Event, timeout: Option<Duration>, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                check_event(&event)?;
                let key = self.new_event(event, Box::new(callback))?;
                if let Err(e) = self.add(key, timeout) {
                    let _ = self.free(key);
                    return Err(e.into());
                }
                Ok(key)
            }

            fn add_fd<F>(&self, fd: impl AsFd, interest: Interest, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                self.add_event(Event::io(source(fd), interest).persist(), None, callback)
            }

            fn add_owned<T, F>(&self, fd: T, interest: Interest, callback: F) -> io::Result<Key>
            where
                T: AsFd $($send)* + 'static,
                F: FnMut(&$Events, Fired, &mut T) $($send)* + 'static,
            {
                let src = source(&fd);
                let (mut fd, mut callback) = (fd, callback);
                self.add_event(Event::io(src, interest).persist(), None, move |events, fired| {
                    callback(events, fired, &mut fd)
                })
            }

            fn add_timer<F>(&self, after: Duration, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                self.add_event(Event::timer().free_after_run(), Some(after), callback)
            }

            fn add_interval<F>(&self, every: Duration, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                self.add_event(Event::timer().persist(), Some(every), callback)
            }

            fn add_signal<F>(&self, signo: i32, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                let n = check_signal(signo)?;
                let key = self.add_event(Event::signal(n).persist(), None, callback)?;
                if let Some(mut poller) = self.notifier().try_poller() {
                    self.apply_changes(&mut *poller);
                }
                Ok(key)
            }

            fn add_user<F>(&self, callback: F) -> io::Result<Key>
            where
                F: FnMut(&$Events, Fired) $($send)* + 'static,
            {
                self.add_event(Event::user().persist(), None, callback)
            }

            fn finalize_with<F>(&self, key: Key, finalizer: F) -> io::Result<()>
            where
                F: FnOnce(&$Events) $($send)* + 'static,
            {
                let mut f = Some(finalizer);
                Ok(self.finalize(
                    key,
                    Box::new(move |events, _| {
                        if let Some(f) = f.take() {
                            f(events)
                        }
                    }),
                )?)
            }

            fn poller_kind(&self) -> PollerKind {
                self.notifier().poller_kind()
            }
        }
    };
}

events_ext!(
    /// The std methods of a thread-safe base's [`Events`]: reach them through
    /// [`Base`](crate::Base), [`Handle`](crate::Handle) or a callback's `&Events`.
    EventsExt for Events, [+ Send]
);

events_ext!(
    /// The std methods of a single-threaded base's [`LocalEvents`].
    LocalEventsExt for LocalEvents, []
);

/// Which notifier a thread-safe base uses.
pub trait NotifierKindExt {
    /// The notifier chosen for this base (after fallbacks).
    fn notifier_kind(&self) -> NotifierKind;
}

impl NotifierKindExt for Events {
    fn notifier_kind(&self) -> NotifierKind {
        self.notifier().notifier_kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_signals_are_checked() {
        assert!(raw_source(-1).is_err());
        assert_eq!(raw_source(7).unwrap(), Source::new(7));
        assert!(check_signal(libc::SIGKILL).is_err());
        assert!(check_signal(libc::SIGSTOP).is_err());
        assert!(check_signal(0).is_err());
        assert!(check_signal(999).is_err());
        assert_eq!(check_signal(libc::SIGUSR1).unwrap(), libc::SIGUSR1 as u32);
    }
}
