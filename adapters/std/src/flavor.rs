//! What a flavor of base is: a core configuration plus how its loop reaches the poller.

use std::io;
use std::os::fd::RawFd;

use rouse_core::{Exit, RunFlags};

use crate::config::{Local, Threaded};
use crate::os::{running, OsPoller};
use crate::sys::notify::NotifierKind;
use crate::sys::poll::PollerKind;

type CoreBase<F> = rouse_core::Base<F>;

/// A flavor of [`Base`](crate::Base): the core configuration it runs on ([`Threaded`],
/// [`Local`]) and how its loop gets its poller. Code generic over `F: Flavor` runs on every
/// flavor:
///
/// ```
/// use std::time::Duration;
/// use rouse_std::{Base, Flavor, LocalBase};
///
/// fn tick<F: Flavor>(base: &Base<F>) -> std::io::Result<()> {
///     base.add_timer(Duration::from_millis(1), |cx, _| cx.loop_break().unwrap())?;
///     base.run()?;
///     Ok(())
/// }
/// tick(&Base::new()?)?;
/// tick(&LocalBase::new_local()?)?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Generic code adds `Send` closures (the bound every flavor accepts); a [`LocalBase`]'s
/// callbacks may also capture `Rc`/`RefCell` through [`LocalBase::local`](crate::Base::local).
///
/// Sealed: the flavors are rouse-std's. A flavor names a core [`Config`](rouse_core::Config)
/// plus the loop-owner operations only the [`Base`](crate::Base) of that flavor performs (run
/// with the poller, re-init after `fork`, which fds the base owns).
///
/// [`LocalBase`]: crate::LocalBase
pub trait Flavor: rouse_core::Config + sealed::Os + 'static {}

impl Flavor for Threaded {}
impl Flavor for Local {}

pub(crate) mod sealed {
    use super::*;

    /// The loop-owner half of a flavor (not reachable outside the crate).
    pub trait Os: rouse_core::Config + Sized {
        /// The core callback of a `Send` closure.
        fn boxed(
            f: impl FnMut(&CoreBase<Self>, rouse_core::Fired) + Send + 'static,
        ) -> Self::Callback;
        /// Runs the loop with the poller (`ResourceBusy` if it runs already).
        fn run(core: &CoreBase<Self>, flags: RunFlags) -> io::Result<Exit>;
        /// Re-makes the poller and notifier, then the core forgets its registrations and
        /// any notification in flight. Only after a fork (the caller checked the pid).
        fn reinit(core: &CoreBase<Self>) -> io::Result<()>;
        /// Whether `fd` is one of the base's own (notifier, poller, signal pipe).
        fn owns_fd(core: &CoreBase<Self>, fd: RawFd) -> bool;
        /// Applies the queued interest changes now if the loop is not running (installs a
        /// signal handler at once).
        fn apply_now(core: &CoreBase<Self>);
        /// The poller chosen.
        fn poller_kind(core: &CoreBase<Self>) -> PollerKind;
        /// The notifier chosen (`None`: the flavor has none).
        fn notifier_kind(core: &CoreBase<Self>) -> Option<NotifierKind>;
        /// Interest-change syscalls so far (`None` while the loop runs).
        fn interest_syscalls(core: &CoreBase<Self>) -> Option<u64>;
        /// The OS half, for `Debug` (its fds).
        fn os_debug(core: &CoreBase<Self>) -> &dyn std::fmt::Debug;
        /// The clock's name in dumps ("precise", "coarse", "manual").
        fn clock_name(core: &CoreBase<Self>) -> &'static str;
    }
}

impl sealed::Os for Threaded {
    #[inline]
    fn boxed(f: impl FnMut(&CoreBase<Self>, rouse_core::Fired) + Send + 'static) -> Self::Callback {
        Box::new(f)
    }

    fn run(core: &CoreBase<Self>, flags: RunFlags) -> io::Result<Exit> {
        core.notifier().running_here();
        Ok(core.run_with(flags)?)
    }

    fn reinit(core: &CoreBase<Self>) -> io::Result<()> {
        core.notifier().reinit_after_fork(core)?;
        // SAFETY: the caller saw a new pid (this is a forked child) and the poller was free
        // (no loop runs: a run holds it); a thread the child may have started meanwhile can at
        // most find its next run re-register everything.
        unsafe { core.reinit() };
        Ok(())
    }

    fn owns_fd(core: &CoreBase<Self>, fd: RawFd) -> bool {
        core.notifier().owns_fd(fd)
    }

    fn apply_now(core: &CoreBase<Self>) {
        core.apply_changes();
    }

    fn poller_kind(core: &CoreBase<Self>) -> PollerKind {
        core.notifier().poller_kind()
    }

    fn notifier_kind(core: &CoreBase<Self>) -> Option<NotifierKind> {
        Some(core.notifier().notifier_kind())
    }

    fn interest_syscalls(core: &CoreBase<Self>) -> Option<u64> {
        core.with_poller(|p| p.syscalls()).ok()
    }

    fn clock_name(core: &CoreBase<Self>) -> &'static str {
        if core.clock().is_coarse() {
            "coarse"
        } else {
            "precise"
        }
    }

    fn os_debug(core: &CoreBase<Self>) -> &dyn std::fmt::Debug {
        core.notifier()
    }
}

impl sealed::Os for Local {
    #[inline]
    fn boxed(f: impl FnMut(&CoreBase<Self>, rouse_core::Fired) + Send + 'static) -> Self::Callback {
        Box::new(f)
    }

    fn run(core: &CoreBase<Self>, flags: RunFlags) -> io::Result<Exit> {
        Ok(core.run_with(flags)?)
    }

    fn reinit(core: &CoreBase<Self>) -> io::Result<()> {
        core.with_poller(OsPoller::reinit_after_fork)
            .map_err(|_| running())??;
        // SAFETY: the caller saw a new pid (this is a forked child) and the poller was free
        // (no loop runs: a run holds it); no other thread reaches a local base.
        unsafe { core.reinit() };
        Ok(())
    }

    fn owns_fd(core: &CoreBase<Self>, fd: RawFd) -> bool {
        core.notifier().owns_fd(fd)
    }

    fn apply_now(core: &CoreBase<Self>) {
        core.apply_changes();
    }

    fn poller_kind(core: &CoreBase<Self>) -> PollerKind {
        core.notifier().poller_kind()
    }

    fn notifier_kind(_: &CoreBase<Self>) -> Option<NotifierKind> {
        None
    }

    fn interest_syscalls(core: &CoreBase<Self>) -> Option<u64> {
        core.with_poller(|p| p.syscalls()).ok()
    }

    fn clock_name(core: &CoreBase<Self>) -> &'static str {
        if core.clock().is_coarse() {
            "coarse"
        } else {
            "precise"
        }
    }

    fn os_debug(core: &CoreBase<Self>) -> &dyn std::fmt::Debug {
        core.notifier()
    }
}
