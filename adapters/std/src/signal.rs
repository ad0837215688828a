//! Signal numbers as a type: named constants for the signals a program watches, checked
//! construction for the rest.

use std::fmt;
use std::io;

use crate::sys::signal::check_catchable;

/// A signal an event can watch: a signal of this OS that can be caught (not `SIGKILL` or
/// `SIGSTOP`, nor one the C library reserves).
///
/// The fault signals (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, `SIGTRAP`) can be watched for
/// the deliveries a process sends (`kill(2)`, `raise(3)`, `sigqueue(3)`, `pthread_kill(3)`).
/// One the CPU raises at a faulting instruction is never reported: it goes to the handler
/// that was installed before rouse's, and if there was none, the default action is restored,
/// so the instruction that faults again ends the process as it would have without rouse.
///
/// ```
/// use rouse_std::Signal;
/// assert_eq!(Signal::TERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::new(Signal::INT.as_raw())?, Signal::INT);
/// assert!(Signal::new(0).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

impl Signal {
    /// `SIGHUP`: the controlling terminal hung up; by convention, reload the configuration.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// `SIGINT`: interrupt from the keyboard (Ctrl-C).
    pub const INT: Signal = Signal(libc::SIGINT);
    /// `SIGQUIT`: quit from the keyboard (Ctrl-\).
    pub const QUIT: Signal = Signal(libc::SIGQUIT);
    /// `SIGABRT`: `abort(3)` (which still ends the process after the handler returns).
    pub const ABRT: Signal = Signal(libc::SIGABRT);
    /// `SIGALRM`: a timer of `alarm(2)` or `setitimer(ITIMER_REAL)` expired.
    pub const ALRM: Signal = Signal(libc::SIGALRM);
    /// `SIGTERM`: a polite request to terminate.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// `SIGUSR1`: user-defined.
    pub const USR1: Signal = Signal(libc::SIGUSR1);
    /// `SIGUSR2`: user-defined.
    pub const USR2: Signal = Signal(libc::SIGUSR2);
    /// `SIGCHLD`: a child process stopped or ended.
    pub const CHLD: Signal = Signal(libc::SIGCHLD);
    /// `SIGPIPE`: a write to a pipe or socket with no reader.
    pub const PIPE: Signal = Signal(libc::SIGPIPE);
    /// `SIGWINCH`: the terminal window changed size.
    pub const WINCH: Signal = Signal(libc::SIGWINCH);
    /// `SIGCONT`: continued after a stop.
    pub const CONT: Signal = Signal(libc::SIGCONT);
    /// `SIGTSTP`: stop from the keyboard (Ctrl-Z).
    pub const TSTP: Signal = Signal(libc::SIGTSTP);
    /// `SIGTTIN`: a background process read from its terminal.
    pub const TTIN: Signal = Signal(libc::SIGTTIN);
    /// `SIGTTOU`: a background process wrote to its terminal.
    pub const TTOU: Signal = Signal(libc::SIGTTOU);
    /// `SIGURG`: urgent (out-of-band) data on a socket.
    pub const URG: Signal = Signal(libc::SIGURG);
    /// `SIGIO`: I/O is possible on an fd set up for it (`O_ASYNC`).
    pub const IO: Signal = Signal(libc::SIGIO);
    /// `SIGXCPU`: the CPU time limit was exceeded.
    pub const XCPU: Signal = Signal(libc::SIGXCPU);
    /// `SIGXFSZ`: the file size limit was exceeded.
    pub const XFSZ: Signal = Signal(libc::SIGXFSZ);
    /// `SIGVTALRM`: a timer of `setitimer(ITIMER_VIRTUAL)` expired.
    pub const VTALRM: Signal = Signal(libc::SIGVTALRM);
    /// `SIGPROF`: a timer of `setitimer(ITIMER_PROF)` expired.
    pub const PROF: Signal = Signal(libc::SIGPROF);

    /// The signal numbered `signo` on this OS (real-time signals included: Linux's
    /// `SIGRTMIN..=SIGRTMAX`, FreeBSD's 65..=126).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a number that is no signal of this OS, one reserved by the C library
    /// (glibc's 32 and 33), `SIGKILL` and `SIGSTOP`.
    pub fn new(signo: i32) -> io::Result<Signal> {
        let n = u32::try_from(signo).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {signo}: no such signal on this OS"),
            )
        })?;
        check_catchable(n)?;
        Ok(Signal(signo))
    }

    /// The signal number, as `libc` spells it.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// The signal's name (`"SIGTERM"`), if it is one of the named constants.
    pub fn name(self) -> Option<&'static str> {
        NAMES.iter().find(|(s, _)| *s == self).map(|&(_, n)| n)
    }
}

const NAMES: [(Signal, &str); 21] = [
    (Signal::HUP, "SIGHUP"),
    (Signal::INT, "SIGINT"),
    (Signal::QUIT, "SIGQUIT"),
    (Signal::ABRT, "SIGABRT"),
    (Signal::ALRM, "SIGALRM"),
    (Signal::TERM, "SIGTERM"),
    (Signal::USR1, "SIGUSR1"),
    (Signal::USR2, "SIGUSR2"),
    (Signal::CHLD, "SIGCHLD"),
    (Signal::PIPE, "SIGPIPE"),
    (Signal::WINCH, "SIGWINCH"),
    (Signal::CONT, "SIGCONT"),
    (Signal::TSTP, "SIGTSTP"),
    (Signal::TTIN, "SIGTTIN"),
    (Signal::TTOU, "SIGTTOU"),
    (Signal::URG, "SIGURG"),
    (Signal::IO, "SIGIO"),
    (Signal::XCPU, "SIGXCPU"),
    (Signal::XFSZ, "SIGXFSZ"),
    (Signal::VTALRM, "SIGVTALRM"),
    (Signal::PROF, "SIGPROF"),
];

impl fmt::Display for Signal {
    /// The name (`SIGTERM`), or `signal N` for an unnamed one (a real-time signal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "Signal({})", self.0),
        }
    }
}

impl From<Signal> for i32 {
    fn from(s: Signal) -> i32 {
        s.0
    }
}

impl TryFrom<i32> for Signal {
    type Error = io::Error;
    fn try_from(signo: i32) -> io::Result<Signal> {
        Signal::new(signo)
    }
}

/// What `add_signal` takes: a [`Signal`] (`Signal::TERM`), or a raw signal number
/// (`libc::SIGTERM`), checked as [`Signal::new`] checks it. Sealed.
pub trait IntoSignal: sealed::Sealed {
    /// The signal.
    ///
    /// # Errors
    ///
    /// As [`Signal::new`].
    fn into_signal(self) -> io::Result<Signal>;
}

impl IntoSignal for Signal {
    #[inline]
    fn into_signal(self) -> io::Result<Signal> {
        Ok(self)
    }
}

impl IntoSignal for i32 {
    #[inline]
    fn into_signal(self) -> io::Result<Signal> {
        Signal::new(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Signal {}
    impl Sealed for i32 {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_signal_is_catchable_and_distinct() {
        for (i, &(s, name)) in NAMES.iter().enumerate() {
            assert_eq!(Signal::new(s.as_raw()).unwrap(), s, "{name}");
            assert_eq!(s.to_string(), name);
            assert_eq!(format!("{s:?}"), name);
            assert!(NAMES[..i].iter().all(|&(t, _)| t != s), "{name} twice");
        }
    }

    #[test]
    fn uncatchable_signals_and_non_signals_are_refused_fault_signals_are_not() {
        for signo in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGTRAP,
        ] {
            assert_eq!(Signal::new(signo).unwrap().as_raw(), signo);
        }
        for signo in [
            libc::SIGKILL,
            libc::SIGSTOP,
            0,
            -1,
            i32::MIN,
            i32::MAX,
            crate::sys::signal::max_signal() as i32 + 1,
        ] {
            let e = Signal::new(signo).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{signo}: {e}");
        }
    }

    #[test]
    fn real_time_signals_are_unnamed_but_valid() {
        let max = crate::sys::signal::max_signal() as i32;
        #[cfg(any(target_os = "linux", target_os = "freebsd"))]
        {
            let s = Signal::new(max - 2).unwrap();
            assert_eq!(s.name(), None);
            assert_eq!(s.to_string(), format!("signal {}", max - 2));
            assert_eq!(format!("{s:?}"), format!("Signal({})", max - 2));
        }
        let _ = max;
    }
}
