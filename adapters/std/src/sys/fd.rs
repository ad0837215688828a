//! Small fd helpers shared by the mechanisms.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

use super::{syscall, WakeSource};

/// Sets `O_NONBLOCK` and `FD_CLOEXEC` on `fd`.
pub(crate) fn set_nonblock_cloexec(fd: RawFd) -> io::Result<()> {
    let fl = syscall!(fcntl(fd, libc::F_GETFL))?;
    syscall!(fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK))?;
    let fdfl = syscall!(fcntl(fd, libc::F_GETFD))?;
    syscall!(fcntl(fd, libc::F_SETFD, fdfl | libc::FD_CLOEXEC))?;
    Ok(())
}

/// Reads from a non-blocking `fd` until `EAGAIN` (or EOF), discarding the bytes.
pub(crate) fn drain(fd: RawFd) {
    let mut buf = [0u8; 256];
    loop {
        match syscall!(read(fd, buf.as_mut_ptr().cast(), buf.len())) {
            Ok(n) if n > 0 => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => return,
        }
    }
}

/// Closes `fd`, ignoring errors (there is nothing to do about them).
pub(crate) fn close(fd: RawFd) {
    if fd >= 0 {
        let _ = syscall!(close(fd));
    }
}

/// Creates a pipe, both ends `O_NONBLOCK | O_CLOEXEC`: `(read, write)`.
///
/// # Implementation notes
///
/// `pipe2(2)` where it exists; on Apple systems `pipe(2)` then `fcntl(2)`.
pub(crate) fn pipe() -> io::Result<(RawFd, RawFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    #[cfg(not(target_vendor = "apple"))]
    {
        // `fds` is a live array of two fds, as pipe2 requires.
        syscall!(pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC))?;
    }
    #[cfg(target_vendor = "apple")]
    {
        // `fds` is a live array of two fds, as pipe requires.
        syscall!(pipe(fds.as_mut_ptr()))?;
        if let Err(e) = set_nonblock_cloexec(fds[0]).and(set_nonblock_cloexec(fds[1])) {
            close(fds[0]);
            close(fds[1]);
            return Err(e);
        }
    }
    Ok((fds[0], fds[1]))
}

/// Writes one byte to a non-blocking fd; `EINTR` is retried, `EAGAIN` (already readable) is
/// success.
pub(crate) fn write_byte(fd: RawFd) -> io::Result<()> {
    let byte = 1u8;
    loop {
        // `byte` is a live one-byte buffer.
        match syscall!(write(fd, std::ptr::from_ref(&byte).cast(), 1)) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// A read end and a write end (a pipe, a socketpair), kept in atomics so that `replace` can
/// swap them through `&self` after `fork()` (only one thread exists in a fresh child); both
/// are closed on drop.
#[derive(Debug)]
pub(crate) struct FdPair {
    read: AtomicI32,
    write: AtomicI32,
}

impl FdPair {
    pub(crate) fn new((read, write): (RawFd, RawFd)) -> FdPair {
        FdPair {
            read: AtomicI32::new(read),
            write: AtomicI32::new(write),
        }
    }

    pub(crate) fn read(&self) -> RawFd {
        self.read.load(SeqCst)
    }

    pub(crate) fn write(&self) -> RawFd {
        self.write.load(SeqCst)
    }

    /// Readability of the read end, to be drained (`edge_ok: false`: a byte stream must not
    /// be left full while edge-triggered, or no write produces an edge).
    pub(crate) fn wake_source(&self) -> WakeSource {
        WakeSource::Fd {
            fd: self.read(),
            edge_ok: false,
        }
    }

    /// Swaps in a new pair and closes the old one.
    pub(crate) fn replace(&self, (read, write): (RawFd, RawFd)) {
        close(self.read.swap(read, SeqCst));
        close(self.write.swap(write, SeqCst));
    }
}

impl Drop for FdPair {
    fn drop(&mut self) {
        close(*self.read.get_mut());
        close(*self.write.get_mut());
    }
}
