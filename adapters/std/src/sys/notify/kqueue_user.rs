//! The kqueue `EVFILT_USER` notifier: a user event on the poller's own kqueue, no fd.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::{mem, ptr};

use crate::sys::{syscall, WakeSource};

/// The `EVFILT_USER` ident of the notifier, reserved: a poller must not register another
/// `EVFILT_USER` event with it. (kqueue keys events by ident *and* filter, so it cannot collide
/// with the fd idents of `EVFILT_READ`/`EVFILT_WRITE`; any other user events a poller adds must
/// avoid this one value.)
pub(crate) const WAKE_IDENT: usize = usize::MAX - 1;

/// A notifier on a kqueue `EVFILT_USER` event.
///
/// # Implementation notes
///
/// Registered with `EV_ADD | EV_CLEAR`; `notify` is one `kevent(2)` with `NOTE_TRIGGER`.
/// `EV_CLEAR` resets the event once the poller retrieves it, so there is nothing to drain.
/// The kqueue belongs to the poller: this notifier never closes it.
#[derive(Debug)]
pub(crate) struct KqueueUserNotifier {
    kq: AtomicI32,
}

/// Applies one change to the `WAKE_IDENT` user event of `kq`.
fn change(kq: RawFd, flags: u16, fflags: u32) -> io::Result<()> {
    // SAFETY: `kevent` is a plain C struct of integers and a pointer; all-zero is valid (a null
    // `udata`, zero `data`/`ext`).
    let mut ev: libc::kevent = unsafe { mem::zeroed() };
    ev.ident = WAKE_IDENT;
    ev.filter = libc::EVFILT_USER;
    ev.flags = flags;
    ev.fflags = fflags;
    loop {
        // One change from a live `ev`, no event list (errors come back as -1/errno), and a
        // null timeout that is never used since nothing is waited for.
        match syscall!(kevent(kq, &ev, 1, ptr::null_mut(), 0, ptr::null())) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

impl KqueueUserNotifier {
    /// Registers the user event on `kq` (`EV_ADD | EV_CLEAR`).
    pub(crate) fn new(kq: RawFd) -> io::Result<KqueueUserNotifier> {
        change(kq, libc::EV_ADD | libc::EV_CLEAR, 0)?;
        Ok(KqueueUserNotifier {
            kq: AtomicI32::new(kq),
        })
    }

    /// The kqueue the event lives on.
    pub(crate) fn kq(&self) -> RawFd {
        self.kq.load(SeqCst)
    }

    /// The user event; nothing to drain.
    pub(crate) fn wake_source(&self) -> WakeSource {
        WakeSource::KqueueUser { ident: WAKE_IDENT }
    }

    /// Triggers the event (`NOTE_TRIGGER`).
    pub(crate) fn notify(&self) -> io::Result<()> {
        change(self.kq(), 0, libc::NOTE_TRIGGER)
    }

    /// Nothing to do: `EV_CLEAR` resets the event when the poller retrieves it.
    pub(crate) fn drain(&self) {}

    /// Registers the event on the poller's new kqueue (a forked child does not inherit kqueues).
    pub(crate) fn reinit(&self, kq: RawFd) -> io::Result<()> {
        change(kq, libc::EV_ADD | libc::EV_CLEAR, 0)?;
        self.kq.store(kq, SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fd;

    /// Events pending on `kq`, without waiting.
    fn pending(kq: RawFd) -> Vec<usize> {
        // SAFETY: all-zero is a valid kevent (see `change`).
        let mut evs: [libc::kevent; 4] = unsafe { mem::zeroed() };
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // `evs` is a live array of 4 kevents; `zero` a live timespec.
        let n = syscall!(kevent(kq, ptr::null(), 0, evs.as_mut_ptr(), 4, &zero)).unwrap();
        evs[..n as usize].iter().map(|ev| ev.ident).collect()
    }

    #[test]
    fn notify_triggers_once() {
        let kq = syscall!(kqueue()).unwrap();
        let n = KqueueUserNotifier::new(kq).unwrap();
        assert_eq!(
            n.wake_source(),
            WakeSource::KqueueUser { ident: WAKE_IDENT }
        );
        assert_eq!(pending(kq), [] as [usize; 0]);
        n.notify().unwrap();
        n.notify().unwrap();
        assert_eq!(pending(kq), [WAKE_IDENT], "coalesced");
        assert_eq!(pending(kq), [] as [usize; 0], "EV_CLEAR: nothing to drain");
        n.notify().unwrap();
        assert_eq!(pending(kq), [WAKE_IDENT]);
        fd::close(kq);
    }

    #[test]
    fn reinit_moves_to_the_new_kqueue() {
        let old = syscall!(kqueue()).unwrap();
        let n = KqueueUserNotifier::new(old).unwrap();
        let new = syscall!(kqueue()).unwrap();
        n.reinit(new).unwrap();
        assert_eq!(n.kq(), new);
        n.notify().unwrap();
        assert_eq!(pending(new), [WAKE_IDENT]);
        assert_eq!(pending(old), [] as [usize; 0]);
        fd::close(old);
        fd::close(new);
    }
}
