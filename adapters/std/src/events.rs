//! Sources of fds, and the checks every event creation goes through.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use rouse_core::Source;

/// The source of a borrowed fd (always valid: a `BorrowedFd` is never `-1`). The fd is only
/// borrowed: delete its events before closing it.
pub fn source(fd: &(impl AsFd + ?Sized)) -> Source {
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
/// [`check_catchable`](crate::sys::signal::check_catchable)'s). Every path that creates a
/// signal event goes through it.
pub(crate) fn check_signal(signo: i32) -> io::Result<u32> {
    let n = u32::try_from(signo).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signo}: no such signal on this OS"),
        )
    })?;
    crate::sys::signal::check_catchable(n)?;
    Ok(n)
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
