//! The process-wide signal registry and the per-poller self-pipe its handler writes to.
//!
//! Hand-written rather than `signal-hook-registry`: that crate's `unregister` only removes its
//! Rust-side hook and leaves its own handler installed, never restoring the previous disposition
//! (a removed `SIGTERM` hook leaves `SIGTERM` ignored), and its handler runs arbitrary closures
//! in signal context. We restore the saved disposition when the last subscriber of a signal
//! leaves (if our handler is still the installed one), and our handler does nothing but
//! atomics, `write(2)` and a call of the handler it replaced.
//!
//! # Implementation notes
//!
//! - Which signals can be watched is decided once, by [`check_catchable`]: a number this OS has
//!   (at most [`max_signal`]), not reserved by the C library, and none of [`FORBIDDEN`].
//! - The fault signals ([`FAULTS`]) are reported only when sent by a process; one the CPU
//!   raised goes to the disposition ours replaced, or, if that was `SIG_DFL` or `SIG_IGN`, the
//!   handler restores `SIG_DFL` and returns: the faulting instruction runs again and ends the
//!   process as it would have without us (instead of faulting forever).
//! - `TABLE[signo]` holds up to [`SLOTS`] subscribers: the write fd of a self-pipe plus a
//!   *pending* bit. The handler sets the bit and writes one byte (the signal number) unless the
//!   bit was already set; [`SignalPipe::drain`] reads the bytes, then clears the bits and reports
//!   them. A full pipe therefore never loses a signal: the bit is the truth, the byte only makes
//!   the pipe readable.
//! - Chaining, as `signal-hook-registry` does: the disposition our handler replaced is kept
//!   (in atomics the handler reads) and called after our work: a `sa_sigaction` with the
//!   `siginfo_t` and context we got if it had `SA_SIGINFO`, else its `sa_handler`. `SIG_IGN`
//!   and `SIG_DFL` are not called: once watched, a signal's default action (terminate, stop)
//!   no longer happens, which is the point of watching it.
//! - Removal: when the last subscriber of a signal leaves, the saved disposition is restored
//!   only if the installed handler is still ours. If someone installed theirs over ours
//!   meanwhile, theirs stays, and ours stays callable (they may chain to it): it then reports
//!   to nobody and chains on. A later subscription in that state does not install ours over
//!   theirs again (if theirs chains to ours, that would be a loop); it is reported only if
//!   theirs chains to ours, or once ours, `SIG_DFL` or `SIG_IGN` is installed again.
//! - Refcounts, states and saved `sigaction`s live under a `Mutex` the handler never touches.
//! - Before a write fd is closed, [`wait_for_handlers`] waits until no handler that may have
//!   read it from the table is still running, so a handler never writes into an fd number that
//!   was closed and reused for something else. The same wait comes before the chained
//!   disposition of a signal is replaced.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::{mem, ptr, thread};

use super::{fd, syscall};

/// Size of the tables: the core's `MAX_SIGNAL` (no OS has more; see [`max_signal`]).
const MAX_SIGNAL: usize = rouse_core::MAX_SIGNAL as usize;

/// Signals never watched: `SIGKILL` and `SIGSTOP` cannot be caught.
pub(crate) const FORBIDDEN: [libc::c_int; 2] = [libc::SIGKILL, libc::SIGSTOP];

/// The fault signals: the CPU raises them at the faulting instruction, which a handler that
/// returns makes run again. Watched like any other signal when another process or thread sends
/// them (`kill(2)`, `raise(3)`, `sigqueue(3)`, `pthread_kill(3)`: nsd sends itself `SIGILL`);
/// a real fault is never reported (see [`handler`]).
pub(crate) const FAULTS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
];

/// Whether a delivery of fault signal was sent (by `kill`, `sigqueue`, `tgkill`/`pthread_kill`,
/// FreeBSD's `thr_kill`) rather than raised by the CPU. Any other `si_code` counts as a fault.
fn sent(code: libc::c_int) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    const SENT: [libc::c_int; 3] = [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL];
    // FreeBSD's and Apple's `SI_USER`, `SI_QUEUE` and FreeBSD's `SI_LWP`; 0 is no fault code
    // there either (older macOS reports `kill(2)` with 0).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    const SENT: [libc::c_int; 4] = [0, 0x10001, 0x10002, 0x10007];
    SENT.contains(&code)
}

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

/// `CHAIN[signo]`: the handler address of the disposition ours replaced (`SIG_DFL`: none).
/// Written only while no handler can read it (see [`Registry::install`]).
static CHAIN: [AtomicUsize; MAX_SIGNAL + 1] =
    [const { AtomicUsize::new(libc::SIG_DFL) }; MAX_SIGNAL + 1];
/// `CHAIN_SIGINFO[signo]`: whether that disposition had `SA_SIGINFO`.
static CHAIN_SIGINFO: [AtomicBool; MAX_SIGNAL + 1] =
    [const { AtomicBool::new(false) }; MAX_SIGNAL + 1];

/// Handlers currently running, in any thread (see [`wait_for_handlers`]).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The process in which [`RUNNING`] is exact (0: no handler installed yet). A forked child
/// inherits the parent's count, which is stale if another parent thread was inside the handler
/// at the moment of `fork()`; [`SignalPipe::reinit_after_fork`] resets it.
static RUNNING_PID: AtomicU32 = AtomicU32::new(0);

/// Who holds a signal's disposition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not ours: we never installed our handler, or restored what it replaced.
    Free,
    /// Our handler is installed (as far as we know), replacing `saved`.
    Installed,
    /// Our handler was replaced by someone else's while we had subscribers; ours may still be
    /// called by theirs, and chains to `saved`.
    Orphaned,
}

/// Bookkeeping the handler never reads.
struct Registry {
    /// Subscribers per signal.
    count: [u32; MAX_SIGNAL + 1],
    state: [State; MAX_SIGNAL + 1],
    /// The disposition replaced by our handler, while not `Free`.
    saved: [Option<libc::sigaction>; MAX_SIGNAL + 1],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    count: [0; MAX_SIGNAL + 1],
    state: [State::Free; MAX_SIGNAL + 1],
    saved: [None; MAX_SIGNAL + 1],
});

fn registry() -> MutexGuard<'static, Registry> {
    // The registry is consistent between statements; a panic elsewhere cannot break it.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The highest signal number of this OS, the one limit every path checks against (through
/// [`check_catchable`]): Linux's `SIGRTMAX`, FreeBSD's `_SIG_MAXSIG` (128: its real-time
/// signals are 65..=126), NetBSD's 63, OpenBSD's and Apple's 31.
pub(crate) fn max_signal() -> u32 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let max = libc::SIGRTMAX() as u32;
    #[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
    let max = 128;
    #[cfg(target_os = "netbsd")]
    let max = 63;
    // Apple's and OpenBSD's NSIG - 1, and a conservative default for the rest.
    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "netbsd",
    )))]
    let max = 31;
    max.min(rouse_core::MAX_SIGNAL)
}

/// Whether `signo` is reserved by the C library for its own use (threads, timers): glibc's and
/// musl's signals between 31 and `SIGRTMIN`, FreeBSD's `SIGTHR` and `SIGLIBRT`.
fn reserved(signo: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return signo > 31 && signo < libc::SIGRTMIN() as u32;
    #[cfg(target_os = "freebsd")]
    return signo == libc::SIGTHR as u32 || signo == libc::SIGLIBRT as u32;
    #[allow(unreachable_code)]
    {
        let _ = signo;
        false
    }
}

/// `Ok` if `signo` can be watched: a signal of this OS (1..=[`max_signal`]), not reserved by
/// the C library, and not one of [`FORBIDDEN`]. Every way to watch a signal checks this.
///
/// # Errors
///
/// `InvalidInput`, saying which rule `signo` breaks.
pub(crate) fn check_catchable(signo: u32) -> io::Result<()> {
    let why = if signo == 0 || signo > max_signal() {
        "no such signal on this OS"
    } else if FORBIDDEN.iter().any(|&s| s as u32 == signo) {
        "cannot be watched (SIGKILL and SIGSTOP cannot be caught)"
    } else if reserved(signo) {
        "reserved by the C library"
    } else {
        return Ok(());
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("signal {signo}: {why}"),
    ))
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

/// Our handler's address, as `sigaction` reports it.
fn handler_addr() -> libc::sighandler_t {
    handler as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t
}

/// The signal handler (`SA_SIGINFO`): for every subscriber of `signo`, mark the signal pending
/// and make its pipe readable; then call the disposition ours replaced. Async-signal-safe:
/// only atomics, `write(2)`, `sigaction(2)` and `errno`, no allocation, no `io::Error`.
///
/// A fault signal the CPU raised (not [`sent`]) is reported to nobody: it goes to the
/// disposition ours replaced, and if that was `SIG_DFL` or `SIG_IGN`, `SIG_DFL` is restored
/// before returning, so the instruction that faults again gets the default action.
extern "C" fn handler(signo: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let errno = errno_location();
    // SAFETY: `errno` points to this thread's errno, valid for the thread's lifetime.
    let saved_errno = unsafe { *errno };
    // SAFETY: with `SA_SIGINFO` the kernel passes a valid `siginfo_t` (null only if someone
    // calls the handler by hand: then there is no code to read, and it counts as sent).
    let fault = FAULTS.contains(&signo) && !info.is_null() && !sent(unsafe { (*info).si_code });
    RUNNING.fetch_add(1, SeqCst);
    let index = usize::try_from(signo).ok().filter(|&s| s <= MAX_SIGNAL);
    let mut chain = (libc::SIG_DFL, false);
    if let Some(s) = index {
        for slot in TABLE[s].iter().filter(|_| !fault) {
            let mut v = slot.load(SeqCst);
            while v & OCCUPIED != 0 {
                if v & PENDING != 0 {
                    // Not drained yet: a byte is already there (or being written).
                    break;
                }
                match slot.compare_exchange_weak(v, v | PENDING, SeqCst, SeqCst) {
                    Ok(_) => {
                        write_byte(errno, v as u32 as RawFd, signo as u8);
                        break;
                    }
                    Err(now) => v = now,
                }
            }
        }
        // Read while counted in RUNNING: `install` waits for us before replacing it.
        chain = (CHAIN[s].load(SeqCst), CHAIN_SIGINFO[s].load(SeqCst));
    }
    RUNNING.fetch_sub(1, SeqCst);
    // SAFETY: as above. Restored before chaining: the next handler sees the interrupted
    // code's errno, as if it had been called by the kernel.
    unsafe { *errno = saved_errno };
    if fault && matches!(chain.0, libc::SIG_DFL | libc::SIG_IGN) {
        // SAFETY: all-zero bytes are a valid `sigaction` (SIG_DFL, empty mask, no flags), and
        // `sigaction(2)` is async-signal-safe. On return the instruction faults again, now
        // with the default action (the kernel forces it even if the signal was ignored).
        unsafe {
            let dfl: libc::sigaction = mem::zeroed();
            libc::sigaction(signo, &dfl, ptr::null_mut());
        }
        return;
    }
    // Called outside the RUNNING window: it may never return (exit, longjmp).
    call_chain(chain, signo, info, ctx);
}

/// Calls the disposition our handler replaced (`SIG_DFL` and `SIG_IGN`: nothing) with the
/// arguments our handler got.
fn call_chain(
    chain: (libc::sighandler_t, bool),
    signo: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    match chain {
        (libc::SIG_DFL | libc::SIG_IGN, _) => {}
        (f, true) => {
            // SAFETY: `f` is the `sa_sigaction` of a disposition the kernel reported with
            // `SA_SIGINFO`, so it has this signature; we pass the arguments we were given.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { mem::transmute(f) };
            f(signo, info, ctx);
        }
        (f, false) => {
            // SAFETY: `f` is the `sa_handler` of a disposition the kernel reported without
            // `SA_SIGINFO`, so it takes the signal number only.
            let f: extern "C" fn(libc::c_int) = unsafe { mem::transmute(f) };
            f(signo);
        }
    }
}

/// Writes one byte to a non-blocking fd from the handler: raw `write(2)`, `EINTR` retried, any
/// other failure (`EAGAIN`: a full pipe is readable already) ignored. `errno` is the thread's.
fn write_byte(errno: *mut libc::c_int, fd: RawFd, byte: u8) {
    loop {
        // SAFETY: `&byte` is a live one-byte buffer; `fd` is open (see `wait_for_handlers`).
        let n = unsafe { libc::write(fd, ptr::from_ref(&byte).cast(), 1) };
        // SAFETY: `errno` points to this thread's errno.
        if n == -1 && unsafe { *errno } == libc::EINTR {
            continue;
        }
        return;
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

/// In a forked child: the inherited [`RUNNING`] count may be stale (another parent thread was
/// inside the handler at fork); the only thread of the child is not, so it is really 0.
fn reset_running_after_fork() {
    let pid = std::process::id();
    let owner = RUNNING_PID.load(SeqCst);
    if owner != 0 && owner != pid {
        RUNNING.store(0, SeqCst);
        RUNNING_PID.store(pid, SeqCst);
    }
}

/// The disposition of `signo` now.
fn current(signo: usize) -> io::Result<libc::sigaction> {
    // SAFETY: `sigaction` is a plain C struct (integers, a sigset and a function address) for
    // which all-zero bytes are valid (SIG_DFL, empty mask, no flags).
    let mut cur: libc::sigaction = unsafe { mem::zeroed() };
    // A null new action only queries; `cur` is a live sigaction.
    syscall!(sigaction(signo as libc::c_int, ptr::null(), &mut cur))?;
    Ok(cur)
}

/// Points `signo`'s chain at `act` (never at our own handler: that would recurse). Only while
/// no handler can read it: ours is not installed for `signo`, and [`wait_for_handlers`] has
/// returned since it last was (or it is being set before the first install).
fn set_chain(signo: usize, act: &libc::sigaction) {
    let f = act.sa_sigaction;
    let f = if f == handler_addr() {
        libc::SIG_DFL
    } else {
        f
    };
    CHAIN[signo].store(f, SeqCst);
    CHAIN_SIGINFO[signo].store(act.sa_flags & libc::SA_SIGINFO != 0, SeqCst);
}

impl Registry {
    /// The first subscriber of `signo` in the process arrives: make sure our handler is
    /// installed, unless someone else's replaced it (see the module notes).
    fn first(&mut self, s: usize) -> io::Result<()> {
        match self.state[s] {
            State::Installed => Ok(()),
            State::Orphaned => {
                let cur = current(s)?;
                match cur.sa_sigaction {
                    f if f == handler_addr() => self.state[s] = State::Installed,
                    libc::SIG_DFL | libc::SIG_IGN => {
                        // Nobody chains to ours any more: a fresh install, chaining to this.
                        self.saved[s] = None;
                        self.state[s] = State::Free;
                        return self.install(s);
                    }
                    _ => {} // theirs may chain to ours: do not install ours over it
                }
                Ok(())
            }
            State::Free => self.install(s),
        }
    }

    /// Installs [`handler`] for `signo` (`SA_SIGINFO | SA_RESTART`), chaining to and saving the
    /// disposition it replaces.
    fn install(&mut self, s: usize) -> io::Result<()> {
        // SAFETY: all-zero is a valid sigaction (see `current`).
        let mut act: libc::sigaction = unsafe { mem::zeroed() };
        act.sa_sigaction = handler_addr();
        act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // `act.sa_mask` is a live sigset_t.
        syscall!(sigemptyset(&mut act.sa_mask))?;
        // A handler invocation from an earlier install may still be reading the chain.
        wait_for_handlers();
        // The chain is set before ours is installed: a signal right after finds it.
        let cur = current(s)?;
        set_chain(s, &cur);
        let _ = RUNNING_PID.compare_exchange(0, std::process::id(), SeqCst, SeqCst);
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { mem::zeroed() };
        // `act` and `old` are live sigaction structs; `handler` is async-signal-safe.
        syscall!(sigaction(s as libc::c_int, &act, &mut old))?;
        if old.sa_sigaction != cur.sa_sigaction || old.sa_flags != cur.sa_flags {
            // Changed by another thread between the two calls (without this registry).
            set_chain(s, &old);
        }
        self.saved[s] = Some(old);
        self.state[s] = State::Installed;
        Ok(())
    }

    /// The last subscriber of `signo` in the process left: restore the saved disposition if the
    /// installed one is still ours.
    fn last(&mut self, s: usize) -> io::Result<()> {
        if self.state[s] == State::Free {
            return Ok(());
        }
        let cur = current(s)?;
        if cur.sa_sigaction != handler_addr() {
            // Someone else's: keep it (and keep ours chaining, for theirs may call it).
            self.state[s] = State::Orphaned;
            return Ok(());
        }
        if let Some(old) = self.saved[s] {
            // `old` is a disposition the kernel gave us; null: no old action wanted.
            syscall!(sigaction(s as libc::c_int, &old, ptr::null_mut()))?;
        }
        self.saved[s] = None;
        self.state[s] = State::Free;
        Ok(())
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

    /// The write end, which the registry's slots name.
    pub(crate) fn write_fd(&self) -> RawFd {
        self.write
    }

    /// The signal numbers this pipe is subscribed to, ascending.
    fn signals(&self) -> impl Iterator<Item = usize> {
        let mask = self.subscribed;
        (1..=MAX_SIGNAL).filter(move |&s| mask & (1 << (s - 1)) != 0)
    }

    /// Reports `signo` through this pipe. The first subscription of a signal in the process
    /// installs the handler (`SA_SIGINFO | SA_RESTART`), which chains to the previous
    /// disposition. Idempotent.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a signal [`check_catchable`] refuses; an error if the signal already
    /// has [`SLOTS`] subscribers; the error of `sigaction`.
    pub(crate) fn subscribe(&mut self, signo: u32) -> io::Result<()> {
        check_catchable(signo)?;
        let s = signo as usize;
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
            if let Err(e) = reg.first(s) {
                // Our handler is not installed for `s` (or was already, harmlessly): a
                // handler that read the slot wrote to our open pipe.
                row[i].store(EMPTY, SeqCst);
                return Err(e);
            }
        }
        reg.count[s] += 1;
        self.subscribed |= bit;
        self.slot[s] = i as u8;
        Ok(())
    }

    /// Stops reporting `signo`. The last subscriber in the process restores the disposition
    /// our handler replaced, if ours is still installed. Idempotent. A signal that arrived
    /// before may still make the pipe readable once; [`drain`](Self::drain) no longer reports
    /// it.
    pub(crate) fn unsubscribe(&mut self, signo: u32) -> io::Result<()> {
        if check_catchable(signo).is_err() {
            return Ok(());
        }
        let s = signo as usize;
        let bit = 1u128 << (s - 1);
        if self.subscribed & bit == 0 {
            return Ok(());
        }
        let mut reg = registry();
        TABLE[s][usize::from(self.slot[s])].store(EMPTY, SeqCst);
        self.subscribed &= !bit;
        reg.count[s] -= 1;
        if reg.count[s] == 0 {
            reg.last(s)?;
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
        let mut new = SignalPipe::adopt(self.read, self.write)?;
        // `new` found exactly our slots; take its fds, leave it nothing to close.
        self.read = mem::replace(&mut new.read, -1);
        self.write = mem::replace(&mut new.write, -1);
        debug_assert_eq!(new.subscribed, self.subscribed);
        new.subscribed = 0;
        Ok(())
    }

    /// In a forked child: a new pipe that takes over, in place, every registry slot naming the
    /// inherited pipe `(read, write)` (its subscriptions, refcounts and dispositions stay as
    /// they are), then closes the child's copies of `read` and `write`. For a pipe whose owner
    /// cannot be used any more (it was in the hands of a thread that did not survive the fork):
    /// only its fd numbers are needed.
    ///
    /// Takes no lock: call it while the child is single-threaded, right after `fork()`.
    ///
    /// # Errors
    ///
    /// The error of creating the new pipe; the inherited one is then left as it was.
    pub(crate) fn adopt(read: RawFd, write: RawFd) -> io::Result<SignalPipe> {
        let mut pipe = SignalPipe::new()?;
        reset_running_after_fork();
        let old = u64::from(write as u32);
        let new = OCCUPIED | u64::from(pipe.write as u32);
        for (s, row) in TABLE.iter().enumerate().skip(1) {
            for (i, slot) in row.iter().enumerate() {
                let mut v = slot.load(SeqCst);
                // Only the inherited pipe's owner writes these slots (besides the handler
                // setting PENDING), and it is not running: the fd cannot change under us.
                while v & OCCUPIED != 0 && v & 0xffff_ffff == old {
                    match slot.compare_exchange_weak(v, new, SeqCst, SeqCst) {
                        Ok(_) => {
                            pipe.subscribed |= 1 << (s - 1);
                            pipe.slot[s] = i as u8;
                            break;
                        }
                        Err(now) => v = now,
                    }
                }
            }
        }
        wait_for_handlers();
        fd::close(read);
        fd::close(write);
        Ok(pipe)
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

        let ours = handler_addr();
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
        let mut refused: Vec<u32> = FORBIDDEN.iter().map(|&s| s as u32).collect();
        refused.extend([0, max_signal() + 1, rouse_core::MAX_SIGNAL + 1, u32::MAX]);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        refused.extend(32..libc::SIGRTMIN() as u32);
        for sig in refused {
            let e = pipe.subscribe(sig).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "signal {sig}: {e}");
            assert_eq!(check_catchable(sig).unwrap_err().kind(), e.kind());
            if let Some(row) = TABLE.get(sig as usize) {
                assert_eq!(registry().count[sig as usize], 0);
                assert!(row.iter().all(|slot| slot.load(SeqCst) == EMPTY));
            }
        }
        assert_eq!(pipe.subscribed, 0);
    }

    #[test]
    fn the_limit_is_the_os_and_reaches_real_time_signals() {
        assert!(max_signal() <= rouse_core::MAX_SIGNAL);
        assert!(check_catchable(max_signal()).is_ok());
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(max_signal(), libc::SIGRTMAX() as u32);
            assert!(check_catchable(libc::SIGRTMIN() as u32).is_ok());
        }
        #[cfg(target_os = "freebsd")]
        {
            // FreeBSD's real-time signals are 65 (SIGRTMIN) ..= 126 (SIGRTMAX).
            assert_eq!(max_signal(), 128);
            assert!(check_catchable(65).is_ok() && check_catchable(126).is_ok());
        }
        #[cfg(target_vendor = "apple")]
        assert_eq!(max_signal(), 31);
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
        let ours = handler_addr();
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

    /// Executes an instruction the CPU refuses (`SIGILL`, raised by the CPU).
    #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
    fn illegal_instruction() {
        // SAFETY: the instruction only traps; the test runs it in a forked child that the
        // trap ends.
        unsafe {
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            std::arch::asm!("ud2");
            #[cfg(target_arch = "aarch64")]
            std::arch::asm!("udf #0");
        }
    }

    #[test]
    fn a_sent_fault_signal_is_reported_and_a_cpu_fault_still_ends_the_process() {
        let sig = libc::SIGILL;
        let mut pipe = SignalPipe::new().unwrap();
        pipe.subscribe(sig as u32).unwrap();
        // Sent (`raise` is `tgkill`): reported, and the process goes on.
        raise(sig);
        assert_eq!(drained(&mut pipe), [sig as u32]);
        #[cfg(any(target_arch = "x86_64", target_arch = "x86", target_arch = "aarch64"))]
        {
            // SAFETY: the child runs one trapping instruction and `_exit`s if it survives.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                illegal_instruction();
                // SAFETY: ends the child without the parent's destructors (not reached when
                // the fault ends it, as it must).
                unsafe { libc::_exit(7) };
            }
            let mut status = 0;
            syscall!(waitpid(pid, &mut status, 0)).unwrap();
            assert!(
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == sig,
                "the child's fault must end it by SIGILL (status {status:#x})"
            );
            // The child's fault was not reported (its pipe is the parent's too).
            assert_eq!(drained(&mut pipe), [] as [u32; 0]);
        }
        pipe.unsubscribe(sig as u32).unwrap();
        assert_eq!(current_handler(sig), libc::SIG_DFL);
    }
}
