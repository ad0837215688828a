//! The pipe notifier: one byte per notification through a non-blocking pipe.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

use crate::sys::{fd, syscall, WakeSource};

/// A notifier on a pipe, both ends `O_NONBLOCK | O_CLOEXEC`.
///
/// # Implementation notes
///
/// `pipe2(2)` where it exists; on Apple systems `pipe(2)` then `fcntl(2)`. `notify` writes one
/// byte; `EAGAIN` (full pipe) means already readable. Always drained (`read(2)` until
/// `EAGAIN`): a pipe must not be left full while edge-triggered, or no write produces an edge.
#[derive(Debug)]
pub(crate) struct PipeNotifier {
    read: AtomicI32,
    write: AtomicI32,
}

/// Creates a pipe, both ends `O_NONBLOCK | O_CLOEXEC`: `(read, write)`.
fn open() -> io::Result<(RawFd, RawFd)> {
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
        if let Err(e) = fd::set_nonblock_cloexec(fds[0]).and(fd::set_nonblock_cloexec(fds[1])) {
            fd::close(fds[0]);
            fd::close(fds[1]);
            return Err(e);
        }
    }
    Ok((fds[0], fds[1]))
}

/// Writes one byte to a non-blocking fd; `EAGAIN` (already readable) is success.
pub(super) fn write_byte(fd: RawFd) -> io::Result<()> {
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

impl PipeNotifier {
    /// A new, empty pipe.
    pub(crate) fn new() -> io::Result<PipeNotifier> {
        let (read, write) = open()?;
        Ok(PipeNotifier {
            read: AtomicI32::new(read),
            write: AtomicI32::new(write),
        })
    }

    /// The read end.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read.load(SeqCst)
    }

    /// The write end.
    pub(crate) fn write_fd(&self) -> RawFd {
        self.write.load(SeqCst)
    }

    /// Readability of the read end; always drained.
    pub(crate) fn wake_source(&self) -> WakeSource {
        WakeSource::Fd {
            fd: self.read_fd(),
            edge_ok: false,
        }
    }

    /// Writes one byte; a full pipe is success.
    pub(crate) fn notify(&self) -> io::Result<()> {
        write_byte(self.write_fd())
    }

    /// Reads until `EAGAIN`.
    pub(crate) fn drain(&self) {
        fd::drain(self.read_fd());
    }

    /// Replaces both ends with a new pipe (in a forked child) and closes the old ones.
    pub(crate) fn reinit(&self) -> io::Result<()> {
        let (read, write) = open()?;
        fd::close(self.read.swap(read, SeqCst));
        fd::close(self.write.swap(write, SeqCst));
        Ok(())
    }
}

impl Drop for PipeNotifier {
    fn drop(&mut self) {
        fd::close(*self.read.get_mut());
        fd::close(*self.write.get_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::notify::tests::{assert_nonblock_cloexec, readable};

    #[test]
    fn notify_then_drain() {
        let n = PipeNotifier::new().unwrap();
        assert!(!readable(n.read_fd()));
        for _ in 0..1000 {
            n.notify().unwrap();
        }
        assert!(readable(n.read_fd()));
        n.drain();
        assert!(!readable(n.read_fd()));
        assert_eq!(
            n.wake_source(),
            WakeSource::Fd {
                fd: n.read_fd(),
                edge_ok: false
            }
        );
    }

    #[test]
    fn full_pipe_is_success() {
        let n = PipeNotifier::new().unwrap();
        // Far more than any pipe buffer (64 KiB on Linux): later writes hit EAGAIN.
        for _ in 0..100_000 {
            n.notify().unwrap();
        }
        assert!(readable(n.read_fd()));
        n.drain();
        assert!(!readable(n.read_fd()));
        n.notify().unwrap();
        assert!(readable(n.read_fd()));
    }

    #[test]
    fn flags_and_reinit() {
        let n = PipeNotifier::new().unwrap();
        assert_nonblock_cloexec(n.read_fd());
        assert_nonblock_cloexec(n.write_fd());
        n.notify().unwrap();
        let (r, w) = (n.read_fd(), n.write_fd());
        let keep = syscall!(dup(r)).unwrap(); // keeps the old numbers apart from the new
        n.reinit().unwrap();
        assert_ne!(n.read_fd(), r);
        assert_ne!(n.write_fd(), w);
        assert_nonblock_cloexec(n.read_fd());
        assert_nonblock_cloexec(n.write_fd());
        assert!(!readable(n.read_fd()), "the new pipe starts empty");
        n.notify().unwrap();
        assert!(readable(n.read_fd()));
        fd::close(keep);
    }
}
