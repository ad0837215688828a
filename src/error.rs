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
    /// The notifier failed to write (why, from [`Notify::notify`](crate::Notify::notify)). The
    /// change itself took effect; the pending flag was cleared so a later change wakes the loop.
    Notify(SeamError),
    /// The poller failed (why, from the [`Poller`](crate::Poller)).
    Poll(SeamError),
}

/// Why a seam — a [`Notify`](crate::Notify) or a [`Poller`](crate::Poller) implementation —
/// failed. The base carries it to the caller in [`Error::Notify`] or [`Error::Poll`].
///
/// An OS-backed seam reports the OS error number ([`os`](SeamError::os)); one with no OS says
/// what it cannot do ([`UNSUPPORTED`](SeamError::UNSUPPORTED),
/// [`WOULD_BLOCK_FOREVER`](SeamError::WOULD_BLOCK_FOREVER)) or passes its own code
/// ([`other`](SeamError::other)). [`kind`](SeamError::kind) says which, as an enum to match.
///
/// A newtype of 4 bytes (as `std::io::Error` packs its kinds), so that [`Error`] stays 8
/// bytes and `Result<(), Error>` is returned in a register on every call of the base.
///
/// ```
/// use rouse_core::{Error, SeamError, SeamErrorKind};
///
/// let e = Error::Poll(SeamError::os(4)); // EINTR on Linux
/// assert_eq!(e.seam(), Some(SeamError::os(4)));
/// assert_eq!(SeamError::os(4).kind(), SeamErrorKind::Os(4));
/// assert_eq!(SeamError::os(4).raw_os_error(), Some(4));
/// assert_eq!(SeamError::UNSUPPORTED.raw_os_error(), None);
/// assert!(matches!(e, Error::Poll(e) if e.kind() == SeamErrorKind::Os(4)));
/// assert!(matches!(Error::Poll(SeamError::UNSUPPORTED), Error::Poll(SeamError::UNSUPPORTED)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeamError(i32);

/// What a [`SeamError`] is, to match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SeamErrorKind {
    /// An OS error number (`errno`, positive), as `std::io::Error::raw_os_error` gives it.
    Os(i32),
    /// The seam does not support the operation: a poller without I/O sources refusing an
    /// `update`, one without signals refusing `watch_signal` (the base then activates the
    /// affected events with [`Ready::ERROR`](crate::Ready::ERROR)).
    Unsupported,
    /// [`Poller::wait`](crate::Poller::wait) was asked to wait with no timeout but nothing
    /// could ever end the wait: no I/O source or signal is registered and its runtime has no
    /// notifier (a timers-only runtime whose loop was left with no deadline), or a test's
    /// script ran out. Returning it ends the run with [`Error::Poll`] instead of sleeping
    /// forever.
    WouldBlockForever,
    /// A failure specific to the runtime, with its own code (a device status, a mock's
    /// reason: [`mock::STALE_OLD_INTEREST`](crate::mock::STALE_OLD_INTEREST), ...).
    Other(u16),
}

/// Where [`SeamError::other`] codes start (below every errno, `UNSUPPORTED` and
/// `WOULD_BLOCK_FOREVER`).
const OTHER: i32 = -(1 << 16);

impl SeamError {
    /// [`SeamErrorKind::Unsupported`].
    pub const UNSUPPORTED: SeamError = SeamError(-1);
    /// [`SeamErrorKind::WouldBlockForever`].
    pub const WOULD_BLOCK_FOREVER: SeamError = SeamError(-2);

    /// OS error number `errno` ([`SeamErrorKind::Os`]). An errno is positive: a zero or
    /// negative one (no error number at all) is `other(0)`.
    #[inline]
    pub const fn os(errno: i32) -> SeamError {
        if errno > 0 {
            SeamError(errno)
        } else {
            SeamError::other(0)
        }
    }

    /// The runtime's own code `code` ([`SeamErrorKind::Other`]).
    #[inline]
    pub const fn other(code: u16) -> SeamError {
        SeamError(OTHER - code as i32)
    }

    /// What it is.
    #[inline]
    pub const fn kind(self) -> SeamErrorKind {
        match self.0 {
            n if n > 0 => SeamErrorKind::Os(n),
            -1 => SeamErrorKind::Unsupported,
            -2 => SeamErrorKind::WouldBlockForever,
            n => SeamErrorKind::Other((OTHER - n) as u16),
        }
    }

    /// The OS error number, if this is one.
    #[inline]
    pub const fn raw_os_error(self) -> Option<i32> {
        match self.kind() {
            SeamErrorKind::Os(code) => Some(code),
            _ => None,
        }
    }
}

impl fmt::Debug for SeamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            SeamErrorKind::Os(n) => write!(f, "SeamError::os({n})"),
            SeamErrorKind::Unsupported => f.write_str("SeamError::UNSUPPORTED"),
            SeamErrorKind::WouldBlockForever => f.write_str("SeamError::WOULD_BLOCK_FOREVER"),
            SeamErrorKind::Other(n) => write!(f, "SeamError::other({n})"),
        }
    }
}

impl fmt::Display for SeamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            SeamErrorKind::Os(code) => write!(f, "OS error {code}"),
            SeamErrorKind::Unsupported => f.write_str("not supported by this runtime"),
            SeamErrorKind::WouldBlockForever => {
                f.write_str("the wait could never end (no source, signal, notifier or deadline)")
            }
            SeamErrorKind::Other(code) => write!(f, "runtime error {code}"),
        }
    }
}

impl core::error::Error for SeamError {}

#[cfg(feature = "std")]
impl From<SeamError> for std::io::Error {
    /// An OS error keeps its code (`from_raw_os_error`); `UNSUPPORTED` is
    /// `ErrorKind::Unsupported`; the rest are `ErrorKind::Other`, with the `SeamError` as the
    /// inner error.
    fn from(e: SeamError) -> std::io::Error {
        match e.kind() {
            SeamErrorKind::Os(code) => std::io::Error::from_raw_os_error(code),
            SeamErrorKind::Unsupported => std::io::Error::new(std::io::ErrorKind::Unsupported, e),
            _ => std::io::Error::other(e),
        }
    }
}

#[cfg(feature = "std")]
impl From<std::io::Error> for SeamError {
    /// The OS error code; an error without one is `UNSUPPORTED` if its kind says so,
    /// `other(0)` otherwise.
    fn from(e: std::io::Error) -> SeamError {
        match e.raw_os_error() {
            Some(code) => SeamError::os(code),
            None if e.kind() == std::io::ErrorKind::Unsupported => SeamError::UNSUPPORTED,
            None => SeamError::other(0),
        }
    }
}

impl Error {
    /// The seam's error, for [`Error::Notify`] and [`Error::Poll`].
    #[inline]
    pub const fn seam(self) -> Option<SeamError> {
        match self {
            Error::Notify(e) | Error::Poll(e) => Some(e),
            _ => None,
        }
    }
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
            Error::Notify(e) => write!(f, "waking the loop failed: {e}"),
            Error::Poll(e) => write!(f, "the poller failed: {e}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<Error> for std::io::Error {
    /// Seam failures as [`SeamError`] converts them (an OS error keeps its code:
    /// `from_raw_os_error`); the rest with the message of [`Error`]'s `Display` (the `Error`
    /// itself is the `io::Error`'s inner error, for `downcast`):
    ///
    /// | `Error` | `io::ErrorKind` |
    /// |---|---|
    /// | `Notify(e)`, `Poll(e)`, `e` an OS error `n` | the kind of OS error `n` |
    /// | `Notify(UNSUPPORTED)`, `Poll(UNSUPPORTED)` | `Unsupported` |
    /// | other seam errors | `Other` |
    /// | `Stale` | `NotFound` |
    /// | `Closed` | `NotConnected` |
    /// | `AlreadyRunning` | `ResourceBusy` (never `WouldBlock`: retrying cannot help) |
    /// | `Full` | `OutOfMemory` |
    /// | misuse (`Foreign`, `Priority`, ...) | `InvalidInput` |
    fn from(e: Error) -> std::io::Error {
        use std::io::ErrorKind;
        if let Some(seam) = e.seam() {
            if let Some(code) = seam.raw_os_error() {
                return std::io::Error::from_raw_os_error(code);
            }
        }
        let kind = match e {
            Error::Notify(SeamError::UNSUPPORTED) | Error::Poll(SeamError::UNSUPPORTED) => {
                ErrorKind::Unsupported
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
    use super::{Error, SeamError, SeamErrorKind};

    #[test]
    fn seam_errors_display_their_cause() {
        use core::fmt::Write;
        let mut s = heapless::String::<96>::new();
        write!(s, "{}", Error::Poll(SeamError::WOULD_BLOCK_FOREVER)).unwrap();
        assert!(
            s.starts_with("the poller failed: the wait could never end"),
            "{s}"
        );
        s.clear();
        write!(s, "{}", Error::Notify(SeamError::os(11))).unwrap();
        assert_eq!(s, "waking the loop failed: OS error 11");
        s.clear();
        write!(s, "{:?}", Error::Poll(SeamError::other(7))).unwrap();
        assert_eq!(s, "Poll(SeamError::other(7))");
        assert_eq!(Error::Stale.seam(), None);
    }

    #[test]
    fn seam_errors_keep_their_kind_and_stay_small() {
        for k in [
            SeamErrorKind::Os(1),
            SeamErrorKind::Os(i32::MAX),
            SeamErrorKind::Unsupported,
            SeamErrorKind::WouldBlockForever,
            SeamErrorKind::Other(0),
            SeamErrorKind::Other(u16::MAX),
        ] {
            let e = match k {
                SeamErrorKind::Os(n) => SeamError::os(n),
                SeamErrorKind::Unsupported => SeamError::UNSUPPORTED,
                SeamErrorKind::WouldBlockForever => SeamError::WOULD_BLOCK_FOREVER,
                SeamErrorKind::Other(n) => SeamError::other(n),
            };
            assert_eq!(e.kind(), k);
        }
        assert_eq!(SeamError::os(0).kind(), SeamErrorKind::Other(0));
        assert_eq!(SeamError::os(-3).kind(), SeamErrorKind::Other(0));
        // The base returns `Result<(), Error>` from every call: it must stay in a register.
        assert_eq!(core::mem::size_of::<Error>(), 8);
        assert_eq!(core::mem::size_of::<Result<(), Error>>(), 8);
    }

    #[cfg(feature = "std")]
    #[test]
    fn seam_errors_map_to_io_errors() {
        use std::io::{self, ErrorKind};
        let e = io::Error::from(Error::Poll(SeamError::os(9)));
        assert_eq!(e.raw_os_error(), Some(9));
        let e = io::Error::from(Error::Notify(SeamError::UNSUPPORTED));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert_eq!(
            e.get_ref().and_then(|i| i.downcast_ref::<Error>()),
            Some(&Error::Notify(SeamError::UNSUPPORTED))
        );
        let e = io::Error::from(Error::Poll(SeamError::WOULD_BLOCK_FOREVER));
        assert_eq!(e.kind(), ErrorKind::Other);
        assert_eq!(
            io::Error::from(SeamError::UNSUPPORTED).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            SeamError::from(io::Error::from_raw_os_error(24)),
            SeamError::os(24)
        );
        assert_eq!(
            SeamError::from(io::Error::from(ErrorKind::Unsupported)),
            SeamError::UNSUPPORTED
        );
        assert_eq!(SeamError::from(io::Error::other("x")), SeamError::other(0));
    }
}
