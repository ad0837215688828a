//! The pipe notifier: one byte per notification through a non-blocking pipe.

use std::io;
use std::os::fd::RawFd;

use crate::sys::fd::{self, FdPair};
use crate::sys::WakeSource;

/// A notifier on a pipe, both ends `O_NONBLOCK | O_CLOEXEC`.
///
/// # Implementation notes
///
/// [`fd::pipe`]; `notify` writes one byte, `EAGAIN` (full pipe) means already readable.
/// Always drained (`read(2)` until `EAGAIN`).
#[derive(Debug)]
pub(crate) struct PipeNotifier(FdPair);

impl PipeNotifier {
    /// A new, empty pipe.
    pub(crate) fn new() -> io::Result<PipeNotifier> {
        Ok(PipeNotifier(FdPair::new(fd::pipe()?)))
    }

    /// The read end.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.0.read()
    }

    /// The write end.
    pub(crate) fn write_fd(&self) -> RawFd {
        self.0.write()
    }

    /// Readability of the read end; always drained.
    pub(crate) fn wake_source(&self) -> WakeSource {
        self.0.wake_source()
    }

    /// Writes one byte; a full pipe is success.
    pub(crate) fn notify(&self) -> io::Result<()> {
        fd::write_byte(self.write_fd())
    }

    /// Reads until `EAGAIN`.
    pub(crate) fn drain(&self) {
        fd::drain(self.read_fd());
    }

    /// Replaces both ends with a new pipe (in a forked child) and closes the old ones.
    pub(crate) fn reinit(&self) -> io::Result<()> {
        self.0.replace(fd::pipe()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::notify::tests::{assert_nonblock_cloexec, readable};
    use crate::sys::syscall;

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
