//! The core's error type.

use core::fmt;

/// Why an operation on a base failed. Nothing already registered is lost by a failed call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The key names no live event: it was freed (its generation is gone) or never issued.
    Stale,
    /// The key was issued by another base.
    Foreign,
    /// Fixed storage is full (or the allocator refused): no room for another event, timer,
    /// source or queue entry.
    Full,
    /// The priority is not below the base's number of priorities.
    Priority,
    /// An I/O event with no `READ`, `WRITE` or `CLOSED` interest.
    EmptyInterest,
    /// Events on one source disagree on edge-triggering, which the kernel keeps per source.
    EdgeConflict,
    /// The source id does not fit the base's source table (above
    /// [`MAX_SOURCE`](crate::MAX_SOURCE), or beyond a fixed storage's capacity).
    SourceRange,
    /// The signal number is zero or above [`MAX_SIGNAL`](crate::MAX_SIGNAL).
    SignalRange,
    /// The operation does not apply to this kind of event (a timeout on a finalizing event, a
    /// common timeout with a non-matching duration, ...).
    Invalid,
    /// `run` was called while the loop is already running (from a callback or another thread).
    AlreadyRunning,
    /// The base was closed ([`Base::close`](crate::Base::close)): it takes no more events.
    Closed,
    /// The notifier failed to write (code from [`Notify::notify`](crate::Notify::notify)). The
    /// change itself took effect; the pending flag was cleared so a later change wakes the loop.
    Notify(i32),
    /// The poller failed (code from the [`Poller`](crate::Poller)).
    Poll(i32),
}

impl Error {
    /// The code a seam returns for an operation it does not support.
    pub const UNSUPPORTED: i32 = -1;

    /// The code a [`Poller`](crate::Poller) returns from `wait(None)` when nothing could ever
    /// end the wait: no I/O source or signal is registered and its runtime has no notifier
    /// (a timers-only runtime whose loop was left with no deadline), or a test's script ran
    /// out. Returning it ends the run with [`Error::Poll`] instead of sleeping forever.
    /// ([`mock::WOULD_BLOCK_FOREVER`](crate::mock::WOULD_BLOCK_FOREVER) is this code.)
    pub const WOULD_BLOCK_FOREVER: i32 = -2;
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Stale => f.write_str("the key names no live event"),
            Error::Foreign => f.write_str("the key belongs to another base"),
            Error::Full => f.write_str("the base's storage is full"),
            Error::Priority => f.write_str("priority out of range"),
            Error::EmptyInterest => f.write_str("an I/O event needs READ, WRITE or CLOSED"),
            Error::EdgeConflict => {
                f.write_str("events on one source must agree on edge-triggering")
            }
            Error::SourceRange => f.write_str("source id out of range"),
            Error::SignalRange => f.write_str("signal number out of range"),
            Error::Invalid => f.write_str("operation not valid for this event"),
            Error::AlreadyRunning => f.write_str("the loop is already running"),
            Error::Closed => f.write_str("the base is closed"),
            Error::Notify(c) => write!(f, "waking the loop failed (code {c})"),
            Error::Poll(c) => write!(f, "the poller failed (code {c})"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// Seam failures keep their OS error code; the rest, with the message of [`Error`]'s
    /// `Display` (the `Error` itself is the `io::Error`'s inner error, for `downcast`):
    ///
    /// | `Error` | `io::ErrorKind` |
    /// |---|---|
    /// | `Stale` | `NotFound` |
    /// | `Closed` | `NotConnected` |
    /// | `AlreadyRunning` | `ResourceBusy` (never `WouldBlock`: retrying cannot help) |
    /// | `Full` | `OutOfMemory` |
    /// | misuse (`Foreign`, `Priority`, ...) | `InvalidInput` |
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind;
        let kind = match e {
            Error::Notify(code) | Error::Poll(code) if code > 0 => {
                return std::io::Error::from_raw_os_error(code)
            }
            Error::Stale => ErrorKind::NotFound,
            Error::Full => ErrorKind::OutOfMemory,
            Error::Closed => ErrorKind::NotConnected,
            Error::AlreadyRunning => ErrorKind::ResourceBusy,
            Error::Notify(_) | Error::Poll(_) => ErrorKind::Other,
            _ => ErrorKind::InvalidInput,
        };
        std::io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn seam_codes_are_distinct_and_shared_with_the_mock() {
        assert_ne!(Error::UNSUPPORTED, Error::WOULD_BLOCK_FOREVER);
        assert_eq!(crate::mock::WOULD_BLOCK_FOREVER, Error::WOULD_BLOCK_FOREVER);
    }
}
