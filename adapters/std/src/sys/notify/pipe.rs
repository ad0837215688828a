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
    crate::sys::notify::tests::byte_stream_notifier_tests!(super::PipeNotifier);
}
