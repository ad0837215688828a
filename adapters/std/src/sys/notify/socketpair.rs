//! The socketpair notifier: one byte per notification through an `AF_UNIX` stream pair.

use std::io;
use std::os::fd::RawFd;

use crate::sys::fd::{self, FdPair};
use crate::sys::{syscall, WakeSource};

/// A notifier on a connected `AF_UNIX`/`SOCK_STREAM` pair, both ends non-blocking and
/// close-on-exec; `fds[0]` is read, `fds[1]` written.
///
/// # Implementation notes
///
/// `socketpair(2)` with `SOCK_NONBLOCK | SOCK_CLOEXEC` where it exists; on Apple systems plain
/// `socketpair(2)`, then `fcntl(2)` and `SO_NOSIGPIPE`. `notify` sends one byte (with
/// `MSG_NOSIGNAL` elsewhere); `EAGAIN` (full buffer) means already readable. Always drained.
#[derive(Debug)]
pub(crate) struct SocketPairNotifier(FdPair);

/// Creates the pair: `(read, write)`.
fn open() -> io::Result<(RawFd, RawFd)> {
    let mut fds: [RawFd; 2] = [-1, -1];
    #[cfg(not(target_vendor = "apple"))]
    {
        let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // `fds` is a live array of two fds, as socketpair requires.
        syscall!(socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()))?;
    }
    #[cfg(target_vendor = "apple")]
    {
        // `fds` is a live array of two fds, as socketpair requires.
        syscall!(socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM,
            0,
            fds.as_mut_ptr()
        ))?;
        let on: libc::c_int = 1;
        let setup = fd::set_nonblock_cloexec(fds[0])
            .and(fd::set_nonblock_cloexec(fds[1]))
            .and(
                // `on` is a live c_int, its size passed alongside.
                syscall!(setsockopt(
                    fds[1],
                    libc::SOL_SOCKET,
                    libc::SO_NOSIGPIPE,
                    std::ptr::from_ref(&on).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ))
                .map(drop),
            );
        if let Err(e) = setup {
            fd::close(fds[0]);
            fd::close(fds[1]);
            return Err(e);
        }
    }
    Ok((fds[0], fds[1]))
}

impl SocketPairNotifier {
    /// A new, empty pair.
    pub(crate) fn new() -> io::Result<SocketPairNotifier> {
        Ok(SocketPairNotifier(FdPair::new(open()?)))
    }

    /// The end the poller watches.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.0.read()
    }

    /// The end `notify` writes.
    pub(crate) fn write_fd(&self) -> RawFd {
        self.0.write()
    }

    /// Readability of the read end; always drained.
    pub(crate) fn wake_source(&self) -> WakeSource {
        self.0.wake_source()
    }

    /// Sends one byte; a full buffer is success.
    pub(crate) fn notify(&self) -> io::Result<()> {
        #[cfg(target_vendor = "apple")]
        return fd::write_byte(self.write_fd());
        #[cfg(not(target_vendor = "apple"))]
        {
            let byte = 1u8;
            loop {
                // `byte` is a live one-byte buffer.
                let sent = syscall!(send(
                    self.write_fd(),
                    std::ptr::from_ref(&byte).cast(),
                    1,
                    libc::MSG_NOSIGNAL
                ));
                match sent {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Reads until `EAGAIN`.
    pub(crate) fn drain(&self) {
        fd::drain(self.read_fd());
    }

    /// Replaces both ends with a new pair (in a forked child) and closes the old ones.
    pub(crate) fn reinit(&self) -> io::Result<()> {
        self.0.replace(open()?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::sys::notify::tests::byte_stream_notifier_tests!(super::SocketPairNotifier);
}
