//! The process-wide signal registry and the per-poller self-pipe its handler writes to.
//!
//! Hand-written rather than `signal-hook-registry`: that crate's `unregister` only removes its
//! Rust-side hook and leaves its own handler installed, never restoring the previous disposition
//! (a removed `SIGTERM` hook leaves `SIGTERM` ignored), and its handler runs arbitrary closures
//! in signal context. We restore the saved disposition when the last subscriber of a signal
//! leaves, and our handler does nothing but atomics and `write(2)`.
//!
//! # Implementation notes
//!
//! - `TABLE[signo]` holds up to [`SLOTS`] subscribers: the write fd of a self-pipe plus a
//!   *pending* bit. The handler sets the bit and writes one byte (the signal number) unless the
//!   bit was already set; [`SignalPipe::drain`] reads the bytes, then clears the bits and reports
//!   them. A full pipe therefore never loses a signal: the bit is the truth, the byte only makes
//!   the pipe readable.
//! - Refcounts and saved `sigaction`s live under a `Mutex` the handler never touches.
//! - Before a write fd is closed, [`wait_for_handlers`] waits until no handler that may have
//!   read it from the table is still running, so a handler never writes into an fd number that
//!   was closed and reused for something else.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::{mem, ptr, thread};

use super::{fd, syscall};

/// Highest signal number the registry accepts (the core's `MAX_SIGNAL`).
const MAX_SIGNAL: usize = rouse_core::MAX_SIGNAL as usize;

/// Subscribers (self-pipes, i.e. bases) per signal.
pub(crate) const SLOTS: usize = 8;

/// A slot value: no subscriber.
const EMPTY: u64 = 0;
/// A slot value bit: the low 32 bits are a subscriber's write fd.
const OCCUPIED: u64 = 1 << 32;
/// A slot value bit: the signal arrived and its subscriber has not drained it yet.
const PENDING: u64 = 1 << 33;

/// `TABLE[signo][i]`: the `i`th subscriber of `signo` (index 0 unused), read by the handler.
static TABLE: [[AtomicU64; SLOTS]; MAX_SIGNAL + 1] =
    [const { [const { AtomicU64::new(EMPTY) }; SLOTS] }; MAX_SIGNAL + 1];

/// Handlers currently running, in any thread (see [`wait_for_handlers`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The process in which [`RUNNING`] is exact (0: no handler installed yet). A forked child
/// inherits the parent's count, which is stale if another parent thread was inside the handler
/// at the moment of `fork()`; [`SignalPipe::reinit_after_fork`] resets it.
static RUNNING_PID: AtomicU32 = AtomicU32::new(0);

/// Bookkeeping the handler never reads.
struct Registry {
    /// Subscribers per signal.
    count: [u32; MAX_SIGNAL + 1],
    /// The disposition replaced by our handler, while `count[signo] > 0`.
    saved: [Option<libc::sigaction>; MAX_SIGNAL + 1],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    count: [0; MAX_SIGNAL + 1],
    saved: [None; MAX_SIGNAL + 1],
});

fn registry() -> MutexGuard<'static, Registry> {
    // The registry is consistent between statements; a panic elsewhere cannot break it.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One past the highest signal number of this OS (`NSIG`).
fn os_nsig() -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let nsig = libc::SIGRTMAX() as usize + 1;
    // _SIG_MAXSIG is 128 (real-time signals 65..=126).
    #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
    let nsig = 129;
    #[cfg(target_os = "netbsd")]
    let nsig = 64;
    #[cfg(target_os = "openbsd")]
    let nsig = 33;
    // Apple's NSIG, and a conservative default for the rest.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
        target_os = "openbsd",
    )))]
    let nsig = 32;
    nsig
}

/// `Ok(index)` if `signo` is a signal number this OS and the core can both express.
fn check(signo: u32) -> io::Result<usize> {
    let s = signo as usize;
    if s == 0 || s > MAX_SIGNAL || s >= os_nsig() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(s)
}

/// The calling thread's `errno`.
fn errno_location() -> *mut libc::c_int {
    // SAFETY: each of these returns the address of the calling thread's `errno`; it takes no
    // arguments and is async-signal-safe (it is what the `errno` macro expands to).
    unsafe {
        #[cfg(any(target_os = "linux", target_os = "dragonfly", target_os = "emscripten"))]
        let p = libc::__errno_location();
        #[cfg(any(target_os = "android", target_os = "netbsd", target_os = "openbsd"))]
        let p = libc::__errno();
        #[cfg(any(target_vendor = "apple", target_os = "freebsd"))]
        let p = libc::__error();
        #[cfg(any(target_os = "illumos", target_os = "solaris"))]
        let p = libc::___errno();
        p
    }
}

/// The signal handler: for every subscriber of `signo`, mark the signal pending and make its
/// pipe readable. Async-signal-safe: only atomics, `write(2)` and `errno`.
extern "C" fn handler(signo: libc::c_int) {
    let errno = errno_location();
    // SAFETY: `errno` points to this thread's errno, valid for the thread's lifetime.
    let saved_errno = unsafe { *errno };
    RUNNING.fetch_add(1, SeqCst);
    if let Some(row) = usize::try_from(signo).ok().and_then(|s| TABLE.get(s)) {
        for slot in row {
            let mut v = slot.load(SeqCst);
            while v & OCCUPIED != 0 {
                if v & PENDING != 0 {
                    // Not drained yet: a byte is already there (or being written).
                    break;
                }
                match slot.compare_exchange_weak(v, v | PENDING, SeqCst, SeqCst) {
                    Ok(_) => {
                        write_byte(v as u32 as RawFd, signo as u8);
                        break;
                    }
                    Err(now) => v = now,
                }
            }
        }
    }
    RUNNING.fetch_sub(1, SeqCst);
    // SAFETY: as above.
    unsafe { *errno = saved_errno };
}

/// Writes one byte to a non-blocking fd; `EAGAIN` (full pipe, already readable) is ignored.
fn write_byte(fd: RawFd, byte: u8) {
    loop {
        // `&byte` is a live one-byte buffer; `fd` is open: see `wait_for_handlers`.
        match syscall!(write(fd, ptr::from_ref(&byte).cast(), 1)) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            _ => return,
        }
    }
}

/// Waits until no handler that could have read a slot cleared before this call still runs.
///
/// A handler increments [`RUNNING`] before it loads any slot; so if it loaded a slot's old
/// value, its increment precedes the clear, which precedes our loads here (all `SeqCst`), and
/// we wait for its decrement. In a forked child that has not reset the (possibly stale) count
/// yet, this does not wait.
fn wait_for_handlers() {
    if RUNNING_PID.load(SeqCst) != std::process::id() {
        return;
    }
    while RUNNING.load(SeqCst) != 0 {
        thread::yield_now();
    }
}

/// A self-pipe through which the signal handler reports signals to one poller.
#[derive(Debug)]
pub(crate) struct SignalPipe {
    read: RawFd,
    write: RawFd,
    /// Bit `signo - 1`: subscribed.
    subscribed: u128,
    /// `slot[signo]`: this pipe's index in `TABLE[signo]`, while subscribed.
    slot: [u8; MAX_SIGNAL + 1],
}

impl SignalPipe {
    /// A new pipe with no subscriptions.
    pub(crate) fn new() -> io::Result<SignalPipe> {
        let (read, write) = fd::pipe()?;
        Ok(SignalPipe {
            read,
            write,
            subscribed: 0,
            slot: [0; MAX_SIGNAL + 1],
        })
    }

    /// The read end: a poller watches it for readability, level-triggered.
    pub(crate) fn read_fd(&self) -> RawFd {
        self.read
    }

    /// Both ends (the base refuses them as user sources).
    pub(crate) fn fds(&self) -> [RawFd; 2] {
        [self.read, self.write]
    }

    /// The signal numbers this pipe is subscribed to, ascending.
    fn signals(&self) -> impl Iterator<Item = usize> {
        let mask = self.subscribed;
        (1..=MAX_SIGNAL).filter(move |&s| mask & (1 << (s - 1)) != 0)
    }

    /// Reports `signo` through this pipe. The first subscription of a signal in the process
    /// installs the handler (`SA_RESTART`), saving the previous disposition. Idempotent.
    ///
    /// # Errors
    ///
    /// `EINVAL` for 0, a number above `MAX_SIGNAL` or the OS's `NSIG`, and for
    /// `SIGKILL`/`SIGSTOP` (from `sigaction`); an error if the signal already has [`SLOTS`]
    /// subscribers.
    pub(crate) fn subscribe(&mut self, signo: u32) -> io::Result<()> {
        let s = check(signo)?;
        let bit = 1u128 << (s - 1);
        if self.subscribed & bit != 0 {
            return Ok(());
        }
        let mut reg = registry();
        // Slots change only under the registry lock: a slot seen empty here stays empty.
        let row = &TABLE[s];
        let i = row
            .iter()
            .position(|slot| slot.load(SeqCst) == EMPTY)
            .ok_or_else(|| {
                io::Error::other(format!("signal {signo} already has {SLOTS} subscribers"))
            })?;
        // Publish first: a signal arriving right after the handler is installed finds us.
        row[i].store(OCCUPIED | u64::from(self.write as u32), SeqCst);
        if reg.count[s] == 0 {
            match install(s) {
                Ok(old) => reg.saved[s] = Some(old),
                Err(e) => {
                    // Our handler is not installed for `s`: nothing can have read the slot.
                    row[i].store(EMPTY, SeqCst);
                    return Err(e);
                }
            }
        }
        reg.count[s] += 1;
        self.subscribed |= bit;
        self.slot[s] = i as u8;
        Ok(())
    }

    /// Stops reporting `signo`. The last subscriber in the process restores the disposition
    /// saved by the first. Idempotent. A signal that arrived before may still make the pipe
    /// readable once; [`drain`](Self::drain) no longer reports it.
    pub(crate) fn unsubscribe(&mut self, signo: u32) -> io::Result<()> {
        let Ok(s) = check(signo) else { return Ok(()) };
        let bit = 1u128 << (s - 1);
        if self.subscribed & bit == 0 {
            return Ok(());
        }
        let mut reg = registry();
        TABLE[s][usize::from(self.slot[s])].store(EMPTY, SeqCst);
        self.subscribed &= !bit;
        reg.count[s] -= 1;
        if reg.count[s] == 0 {
            if let Some(old) = reg.saved[s].take() {
                // `old` is a disposition the kernel gave us; null: no old action wanted.
                syscall!(sigaction(s as libc::c_int, &old, ptr::null_mut()))?;
            }
        }
        Ok(())
    }

    /// Reads every pending byte, then calls `f` once for each subscribed signal that arrived
    /// since the last drain, in ascending order.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(u32)) {
        let mut buf = [0u8; 128];
        loop {
            // `buf` is a live buffer of `buf.len()` bytes.
            match syscall!(read(self.read, buf.as_mut_ptr().cast(), buf.len())) {
                Ok(n) if n as usize == buf.len() => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Short read, EOF or EAGAIN: empty for now. A byte written later makes the
                // pipe readable again; its pending bit is cleared below or by the next drain.
                _ => break,
            }
        }
        // Bytes first, bits second: a signal arriving in between is reported now and leaves a
        // byte behind (a spurious wake), never a bit with an empty pipe.
        for s in self.signals() {
            let old = TABLE[s][usize::from(self.slot[s])].fetch_and(!PENDING, SeqCst);
            if old & PENDING != 0 {
                f(s as u32);
            }
        }
    }

    /// In a forked child, whose pipe is shared with the parent: switches to a new pipe *in
    /// place*. The registry slots that held the old write fd now hold the new one, so
    /// subscriptions, refcounts and dispositions are unchanged (the handler stays installed,
    /// with no window for the default disposition). Signals pending in the old pipe belong to
    /// the parent and are dropped. Then closes the child's copies of the old fds.
    ///
    /// Takes no lock: call it while the child is single-threaded, right after `fork()`.
    pub(crate) fn reinit_after_fork(&mut self) -> io::Result<()> {
        let (read, write) = fd::pipe()?;
        let pid = std::process::id();
        let owner = RUNNING_PID.load(SeqCst);
        if owner != 0 && owner != pid {
            // The only thread of the child is here, not in the handler: the inherited count
            // may be stale (another parent thread inside the handler at fork) and is really 0.
            RUNNING.store(0, SeqCst);
            RUNNING_PID.store(pid, SeqCst);
        }
        let new = OCCUPIED | u64::from(write as u32);
        for s in self.signals() {
            let slot = &TABLE[s][usize::from(self.slot[s])];
            let mut v = slot.load(SeqCst);
            // Only this pipe writes this slot (besides the handler setting PENDING).
            while let Err(now) = slot.compare_exchange_weak(v, new, SeqCst, SeqCst) {
                v = now;
            }
        }
        let (old_read, old_write) = (self.read, self.write);
        self.read = read;
        self.write = write;
        wait_for_handlers();
        fd::close(old_read);
        fd::close(old_write);
        Ok(())
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for s in self.signals() {
            let _ = self.unsubscribe(s as u32);
        }
        wait_for_handlers();
        fd::close(self.read);
        fd::close(self.write);
    }
}

/// Installs [`handler`] for `signo`, returning the disposition it replaces.
fn install(signo: usize) -> io::Result<libc::sigaction> {
    // SAFETY: `sigaction` is a plain C struct (integers, a sigset and a function address) for
    // which all-zero bytes are valid (SIG_DFL, empty mask, no flags).
    let mut act: libc::sigaction = unsafe { mem::zeroed() };
    act.sa_sigaction = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
    act.sa_flags = libc::SA_RESTART;
    // `act.sa_mask` is a live sigset_t.
    syscall!(sigemptyset(&mut act.sa_mask))?;
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    let _ = RUNNING_PID.compare_exchange(0, std::process::id(), SeqCst, SeqCst);
    // `act` and `old` are live sigaction structs; `handler` is async-signal-safe.
    syscall!(sigaction(signo as libc::c_int, &act, &mut old))?;
    Ok(old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(pipe: &mut SignalPipe) -> Vec<u32> {
        let mut got = Vec::new();
        pipe.drain(|s| got.push(s));
        got
    }

    fn raise(signo: libc::c_int) {
        // The handler runs on this thread before `raise` returns.
        syscall!(raise(signo)).unwrap();
    }

    fn current_handler(signo: libc::c_int) -> libc::sighandler_t {
        // SAFETY: all-zero is a valid sigaction (see `install`).
        let mut old: libc::sigaction = unsafe { mem::zeroed() };
        syscall!(sigaction(signo, ptr::null(), &mut old)).unwrap();
        old.sa_sigaction
    }

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        syscall!(poll(&mut p, 1, 0)).unwrap() == 1
    }

    #[test]
    fn raised_signal_is_reported_once_per_drain() {
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(libc::SIGUSR1 as u32).unwrap();
        pipe.subscribe(libc::SIGUSR1 as u32).unwrap(); // idempotent
        assert!(!readable(pipe.read_fd()));
        raise(libc::SIGUSR1);
        assert!(readable(pipe.read_fd()));
        // The byte is the signal number.
        let mut b = 0u8;
        assert_eq!(
            syscall!(read(pipe.read_fd(), ptr::from_mut(&mut b).cast(), 1)).unwrap(),
            1
        );
        assert_eq!(b, libc::SIGUSR1 as u8);
        raise(libc::SIGUSR1); // coalesced with the first: pending already set
        assert_eq!(drained(&mut pipe), [libc::SIGUSR1 as u32]);
        assert!(!readable(pipe.read_fd()));
        assert_eq!(drained(&mut pipe), [] as [u32; 0]);
        raise(libc::SIGUSR1);
        assert_eq!(drained(&mut pipe), [libc::SIGUSR1 as u32]);
    }

    #[test]
    fn every_subscribed_pipe_gets_the_signal() {
        let mut a = SignalPipe::new().unwrap();
        let mut b = SignalPipe::new().unwrap();
        a.subscribe(libc::SIGUSR2 as u32).unwrap();
        b.subscribe(libc::SIGUSR2 as u32).unwrap();
        raise(libc::SIGUSR2);
        assert_eq!(drained(&mut a), [libc::SIGUSR2 as u32]);
        assert_eq!(drained(&mut b), [libc::SIGUSR2 as u32]);
        // One leaves; the other still hears it.
        a.unsubscribe(libc::SIGUSR2 as u32).unwrap();
        a.unsubscribe(libc::SIGUSR2 as u32).unwrap(); // idempotent
        raise(libc::SIGUSR2);
        assert_eq!(drained(&mut a), [] as [u32; 0]);
        assert_eq!(drained(&mut b), [libc::SIGUSR2 as u32]);
    }

    extern "C" fn test_handler(_: libc::c_int) {}

    #[test]
    fn last_unsubscribe_restores_previous_handler() {
        let sig = libc::SIGWINCH;
        // SAFETY: all-zero is a valid sigaction (see `install`).
        let mut act: libc::sigaction = unsafe { mem::zeroed() };
        act.sa_sigaction = test_handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        syscall!(sigaction(sig, &act, ptr::null_mut())).unwrap();

        let ours = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let mut a = SignalPipe::new().unwrap();
        let mut b = SignalPipe::new().unwrap();
        a.subscribe(sig as u32).unwrap();
        b.subscribe(sig as u32).unwrap();
        assert_eq!(current_handler(sig), ours);
        raise(sig);
        assert_eq!(drained(&mut a), [sig as u32]);
        a.unsubscribe(sig as u32).unwrap();
        assert_eq!(current_handler(sig), ours, "b still subscribed");
        drop(b); // Drop unsubscribes the last one
        assert_eq!(
            current_handler(sig),
            test_handler as extern "C" fn(libc::c_int) as usize
        );

        act.sa_sigaction = libc::SIG_DFL;
        syscall!(sigaction(sig, &act, ptr::null_mut())).unwrap();
    }

    #[test]
    fn invalid_signals_fail() {
        let mut pipe = SignalPipe::new().unwrap();
        for sig in [libc::SIGKILL, libc::SIGSTOP] {
            let e = pipe.subscribe(sig as u32).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
            assert_eq!(registry().count[sig as usize], 0);
            assert!(TABLE[sig as usize]
                .iter()
                .all(|slot| slot.load(SeqCst) == EMPTY));
        }
        for sig in [0, os_nsig() as u32, rouse_core::MAX_SIGNAL + 1] {
            assert_eq!(
                pipe.subscribe(sig).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
        }
        assert_eq!(pipe.subscribed, 0);
    }

    #[test]
    fn at_most_slots_subscribers_per_signal() {
        // Never raised: only the table is exercised.
        let sig = libc::SIGVTALRM as u32;
        let mut pipes: Vec<SignalPipe> = (0..=SLOTS).map(|_| SignalPipe::new().unwrap()).collect();
        for p in &mut pipes[..SLOTS] {
            p.subscribe(sig).unwrap();
            p.subscribe(sig).unwrap();
        }
        assert!(pipes[SLOTS].subscribe(sig).is_err());
        pipes[0].unsubscribe(sig).unwrap();
        pipes[SLOTS].subscribe(sig).unwrap();
        drop(pipes);
        assert_eq!(current_handler(sig as libc::c_int), libc::SIG_DFL);
    }

    #[test]
    fn reinit_after_fork_swaps_the_pipe_in_place() {
        let sig = libc::SIGURG;
        let ours = handler as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(sig as u32).unwrap();
        let (old_read, old_write) = (pipe.read, pipe.write);
        // Keep the old fd numbers from being reused, to tell old from new.
        let keep = syscall!(dup(old_read)).unwrap();
        raise(sig); // pending in the old pipe: dropped by the reinit
        pipe.reinit_after_fork().unwrap();
        assert_ne!(pipe.read, old_read);
        assert_ne!(pipe.write, old_write);
        assert_eq!(current_handler(sig), ours);
        assert_eq!(registry().count[sig as usize], 1);
        assert_eq!(drained(&mut pipe), [] as [u32; 0]);
        raise(sig);
        assert!(readable(pipe.read_fd()));
        assert_eq!(drained(&mut pipe), [sig as u32]);
        // The old pipe got nothing after the swap: only the byte from before.
        let mut buf = [0u8; 8];
        assert_eq!(
            syscall!(read(keep, buf.as_mut_ptr().cast(), buf.len())).unwrap(),
            1
        );
        fd::close(keep);
        drop(pipe);
        assert_eq!(current_handler(sig), libc::SIG_DFL);
    }

    #[test]
    fn reinit_in_a_forked_child_keeps_delivery() {
        let sig = libc::SIGPROF;
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(sig as u32).unwrap();
        // SAFETY: the child only makes async-signal-safe calls (pipe2/pipe+fcntl, atomics,
        // raise, read, close, getpid) and no allocation, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                if pipe.reinit_after_fork().is_err() {
                    return 2;
                }
                // SAFETY: async-signal-safe.
                unsafe { libc::raise(sig) };
                let mut got = 0;
                pipe.drain(|s| got = s);
                if got != sig as u32 {
                    return 3;
                }
                0
            })();
            // SAFETY: ends the child without running the parent's destructors or atexit.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        syscall!(waitpid(pid, &mut status, 0)).unwrap();
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
        // The child's reinit did not disturb the parent's pipe.
        assert_eq!(drained(&mut pipe), [] as [u32; 0]);
        raise(sig);
        assert_eq!(drained(&mut pipe), [sig as u32]);
    }
}
