//! The Linux `eventfd(2)` notifier: one fd holding a 64-bit counter.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};

use crate::sys::{fd, syscall, WakeSource};

/// A notifier on an eventfd (`EFD_NONBLOCK | EFD_CLOEXEC`).
///
/// # Implementation notes
///
/// `notify` adds 1 to the counter with `write(2)`; a level-triggered registration is drained
/// with one 8-byte `read(2)`, which resets the counter. An edge-triggered registration
/// (`EPOLLET`) needs no drain: epoll reports an edge on every write. Should the counter ever
/// saturate (`EAGAIN`), `notify` resets it and writes again, so an edge is still produced
/// (mio's approach).
#[derive(Debug)]
pub(crate) struct EventFdNotifier {
    fd: AtomicI32,
}

fn open() -> io::Result<RawFd> {
    syscall!(eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC))
}

impl EventFdNotifier {
    /// A new eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<EventFdNotifier> {
        Ok(EventFdNotifier {
            fd: AtomicI32::new(open()?),
        })
    }

    /// The eventfd.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.load(SeqCst)
    }

    /// Readability of the eventfd; edge-triggered registration needs no drain.
    pub(crate) fn wake_source(&self) -> WakeSource {
        WakeSource::Fd {
            fd: self.fd(),
            edge_ok: true,
        }
    }

    fn write(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // `one` is a live 8-byte buffer, as eventfd writes require.
            match syscall!(write(self.fd(), std::ptr::from_ref(&one).cast(), 8)) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds 1 to the counter; on a saturated counter (`EAGAIN`) resets it and adds again.
    pub(crate) fn notify(&self) -> io::Result<()> {
        match self.write() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.drain();
                match self.write() {
                    // Saturated again by another writer in between: readable anyway.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                    r => r,
                }
            }
            r => r,
        }
    }

    /// Resets the counter to zero (one `read(2)`; `EAGAIN` when already zero).
    pub(crate) fn drain(&self) {
        let mut counter: u64 = 0;
        loop {
            // `counter` is a live 8-byte buffer, as eventfd reads require.
            match syscall!(read(self.fd(), std::ptr::from_mut(&mut counter).cast(), 8)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return,
            }
        }
    }

    /// Replaces the eventfd with a new one (in a forked child) and closes the old.
    pub(crate) fn reinit(&self) -> io::Result<()> {
        let new = open()?;
        fd::close(self.fd.swap(new, SeqCst));
        Ok(())
    }
}

impl Drop for EventFdNotifier {
    fn drop(&mut self) {
        fd::close(*self.fd.get_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::notify::tests::{assert_nonblock_cloexec, readable};

    #[test]
    fn notify_then_drain() {
        let n = EventFdNotifier::new().unwrap();
        assert!(!readable(n.fd()));
        for _ in 0..1000 {
            n.notify().unwrap();
        }
        assert!(readable(n.fd()));
        n.drain();
        assert!(!readable(n.fd()));
        n.drain(); // empty: EAGAIN, no block
        assert_eq!(
            n.wake_source(),
            WakeSource::Fd {
                fd: n.fd(),
                edge_ok: true
            }
        );
    }

    #[test]
    fn saturated_counter_still_notifies() {
        let n = EventFdNotifier::new().unwrap();
        let max: u64 = u64::MAX - 1;
        syscall!(write(n.fd(), std::ptr::from_ref(&max).cast(), 8)).unwrap();
        // A plain write of 1 would now fail with EAGAIN.
        n.notify().unwrap();
        assert!(readable(n.fd()));
        let mut counter: u64 = 0;
        syscall!(read(n.fd(), std::ptr::from_mut(&mut counter).cast(), 8)).unwrap();
        assert_eq!(counter, 1, "reset, then one write");
    }

    #[test]
    fn flags_and_reinit() {
        let n = EventFdNotifier::new().unwrap();
        assert_nonblock_cloexec(n.fd());
        n.notify().unwrap();
        let old = n.fd();
        let keep = syscall!(dup(old)).unwrap(); // keeps the old number from being reused
        n.reinit().unwrap();
        assert_ne!(n.fd(), old);
        assert_nonblock_cloexec(n.fd());
        assert!(!readable(n.fd()), "the new eventfd starts at zero");
        n.notify().unwrap();
        assert!(readable(n.fd()));
        fd::close(keep);
    }
}
