//! Small fd helpers shared by the mechanisms.

use std::io;
use std::os::fd::RawFd;

use super::syscall;

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
