#![cfg(not(miri))]
//! Signals that play well with others: uncatchable signals refused on every path, sent fault
//! signals reported,
//! the handler rouse replaced still called (chaining), a handler installed after rouse's never
//! overwritten when rouse's last event of the signal leaves.
//!
//! Dispositions are process-wide: every test holds [`serial`]'s lock, and puts back the
//! disposition it found.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::mem;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};

use rouse_core::{Event, Exit, Ready, RunFlags};
use rouse_std::Signal;
use util::{default_base, disposition, install, raise, restore, signals_serial};

/// Calls of [`plain`].
static PLAIN: AtomicU64 = AtomicU64::new(0);
extern "C" fn plain(_: libc::c_int) {
    PLAIN.fetch_add(1, SeqCst);
}
fn plain_addr() -> libc::sighandler_t {
    plain as extern "C" fn(libc::c_int) as libc::sighandler_t
}

/// Calls of [`with_info`] whose `siginfo_t` named the signal it was called for.
static WITH_INFO: AtomicU64 = AtomicU64::new(0);
extern "C" fn with_info(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel (or a handler chaining to us) passes a valid siginfo_t for `sig`.
    if !info.is_null() && unsafe { (*info).si_signo } == sig {
        WITH_INFO.fetch_add(1, SeqCst);
    }
}
fn with_info_addr() -> libc::sighandler_t {
    with_info as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t
}

/// A library installed after rouse that chains, as signal-hook does: counts, then calls the
/// handler it replaced (stored in [`CHAINER_PREV`], always an `SA_SIGINFO` one here: rouse's).
static CHAINER: AtomicU64 = AtomicU64::new(0);
static CHAINER_PREV: AtomicUsize = AtomicUsize::new(0);
extern "C" fn chainer(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    CHAINER.fetch_add(1, SeqCst);
    let prev = CHAINER_PREV.load(SeqCst);
    if prev != libc::SIG_DFL && prev != libc::SIG_IGN {
        // SAFETY: the test stores only an `SA_SIGINFO` handler's address here.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { mem::transmute(prev) };
        f(sig, info, ctx);
    }
}
fn chainer_addr() -> libc::sighandler_t {
    chainer as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t
}

#[test]
fn uncatchable_signals_are_refused_on_every_path() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    let counts = base.counts();
    let kill = disposition(libc::SIGKILL).sa_sigaction;
    for sig in [libc::SIGKILL, libc::SIGSTOP] {
        let e = base.add_signal(sig, |_, _| {}).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidInput,
            "add_signal({sig}): {e}"
        );
        let e = base
            .event(Event::signal(sig as u32), |_, _| {})
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "event({sig}): {e}");
        let e = base
            .add_event(Event::signal(sig as u32).persist(), None, |_, _| {})
            .unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidInput,
            "add_event({sig}): {e}"
        );
        let e = Signal::new(sig).unwrap_err();
        assert_eq!(
            e.kind(),
            io::ErrorKind::InvalidInput,
            "Signal::new({sig}): {e}"
        );
    }
    assert_eq!(base.counts(), counts, "nothing left behind");
    // Nothing was installed, now or by a later iteration.
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(disposition(libc::SIGKILL).sa_sigaction, kill);
    assert_eq!(
        base.poll_errors(),
        0,
        "no refusal left for the loop to report"
    );
    Ok(())
}

/// nsd sends itself `SIGILL` and watches it through libevent: a fault signal a process sends
/// runs its event like any other; the last event's delete restores the disposition.
#[test]
fn a_sent_fault_signal_runs_its_event() -> io::Result<()> {
    let _serial = signals_serial();
    let base = default_base()?;
    // Not SIGSEGV and SIGBUS here: Rust's runtime handles those (stack overflow) and, chained
    // to for a signal that is no guard-page hit, resets the disposition itself.
    for sig in [libc::SIGILL, libc::SIGFPE, libc::SIGTRAP] {
        let before = disposition(sig).sa_sigaction;
        let seen = std::sync::Arc::new(AtomicU64::new(0));
        let s = seen.clone();
        let key = base.add_signal(sig, move |_, fired| {
            assert_eq!(fired.ready, Ready::SIGNAL);
            s.fetch_add(1, SeqCst);
        })?;
        raise(sig);
        assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
        assert_eq!(seen.load(SeqCst), 1, "signal {sig}: its event ran once");
        base.delete(key)?;
        // The loop applies the change (and unsubscribes) at its next iteration.
        assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
        assert_eq!(
            disposition(sig).sa_sigaction,
            before,
            "signal {sig}: restored"
        );
    }
    Ok(())
}

#[test]
fn the_replaced_handler_is_still_called() -> io::Result<()> {
    let _serial = signals_serial();
    // A plain `sa_handler` before rouse's.
    let sig = libc::SIGUSR1;
    let saved = install(sig, plain_addr(), false);
    let base = default_base()?;
    let runs = std::sync::Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, fired| {
        assert_eq!(fired.ready, Ready::SIGNAL);
        r.fetch_add(1, SeqCst);
    })?;
    assert_ne!(
        disposition(sig).sa_sigaction,
        plain_addr(),
        "rouse's handler installed"
    );
    let before = PLAIN.load(SeqCst);
    raise(sig);
    assert_eq!(
        PLAIN.load(SeqCst),
        before + 1,
        "the previous handler was chained to"
    );
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 1, "and the event ran");
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(disposition(sig).sa_sigaction, plain_addr(), "restored");
    restore(sig, &saved);

    // An `SA_SIGINFO` handler gets the signal's siginfo_t through the chain.
    let sig = libc::SIGWINCH;
    let saved = install(sig, with_info_addr(), true);
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    let before = WITH_INFO.load(SeqCst);
    raise(sig);
    assert_eq!(
        WITH_INFO.load(SeqCst),
        before + 1,
        "chained with its siginfo_t"
    );
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 2);
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    let now = disposition(sig);
    assert_eq!(now.sa_sigaction, with_info_addr(), "restored");
    assert_ne!(now.sa_flags & libc::SA_SIGINFO, 0, "with its flags");
    restore(sig, &saved);

    // `SIG_IGN` before rouse's: nothing to call, the event still runs.
    let saved = install(sig, libc::SIG_IGN, false);
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    raise(sig);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 3);
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(disposition(sig).sa_sigaction, libc::SIG_IGN, "restored");
    restore(sig, &saved);
    Ok(())
}

#[test]
fn a_handler_installed_after_ours_survives_our_removal() -> io::Result<()> {
    let _serial = signals_serial();
    let sig = libc::SIGUSR2;
    let original = disposition(sig);
    let base = default_base()?;
    let runs = std::sync::Arc::new(AtomicU64::new(0));
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    let ours = disposition(sig);
    assert_ne!(ours.sa_sigaction, libc::SIG_DFL);

    // Another library installs its own over ours, without chaining.
    let replaced = install(sig, plain_addr(), false);
    assert_eq!(replaced.sa_sigaction, ours.sa_sigaction);
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(
        disposition(sig).sa_sigaction,
        plain_addr(),
        "the other library's handler was wiped"
    );
    // Watched again: ours is not put over theirs.
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    assert_eq!(disposition(sig).sa_sigaction, plain_addr());
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(disposition(sig).sa_sigaction, plain_addr());

    // They put back what they replaced (ours): rouse owns it again, and restores on removal.
    restore(sig, &replaced);
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    raise(sig);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 1);
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(
        disposition(sig).sa_sigaction,
        original.sa_sigaction,
        "restored"
    );

    // A library that chains (as signal-hook does) installed over ours: our events still hear
    // the signal through it; once they are gone, its handler stays, and calling ours (as it
    // still does) is harmless.
    let r = runs.clone();
    let key = base.add_signal(sig, move |_, _| {
        r.fetch_add(1, SeqCst);
    })?;
    let theirs = install(sig, chainer_addr(), true);
    CHAINER_PREV.store(theirs.sa_sigaction, SeqCst);
    let chained = CHAINER.load(SeqCst);
    raise(sig);
    assert_eq!(CHAINER.load(SeqCst), chained + 1);
    assert_eq!(base.run_with(RunFlags::ONCE_NONBLOCK)?, Exit::Done);
    assert_eq!(runs.load(SeqCst), 2, "reported through the chain");
    base.free(key)?;
    assert_eq!(base.run_with(RunFlags::NONBLOCK)?, Exit::Empty);
    assert_eq!(
        disposition(sig).sa_sigaction,
        chainer_addr(),
        "theirs stays"
    );
    // Ours, called by theirs, chains on to what it replaced: `SIG_DFL`, which is not called
    // (else this process would end here).
    raise(sig);
    assert_eq!(CHAINER.load(SeqCst), chained + 2);
    assert_eq!(runs.load(SeqCst), 2);
    restore(sig, &original);
    Ok(())
}
