//! What a flavor of base is: a core configuration plus how its loop reaches the poller.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use rouse_core::{Exit, Interest, Poller, Readiness, RunFlags, SeamError, Source};

use crate::config::{Local, Threaded};
use crate::os::{running, OwnFds};
use crate::sys::notify::NotifierKind;
use crate::sys::poll::{AnyPoller, PollerKind};

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
    }
}

/// The poller as the loop uses it: refreshes the base's record of its own fds when the
/// poller makes its signal pipe (on the first signal watched).
struct Tracked<'a> {
    poller: &'a mut AnyPoller,
    own: &'a OwnFds,
}

impl Poller for Tracked<'_> {
    #[inline]
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
        self.poller.update(source, old, new)
    }

    #[inline]
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        self.poller.reset(source, new)
    }

    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let r = self.poller.watch_signal(signal, enable);
        self.own.refresh(self.poller);
        r
    }

    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError> {
        self.poller.wait(timeout)
    }

    #[inline]
    fn ready(&mut self, f: impl FnMut(Readiness)) {
        self.poller.ready(f)
    }
}

macro_rules! os_flavor {
    ($F:ty, $notifier_kind:expr) => {
        impl sealed::Os for $F {
            #[inline]
            fn boxed(
                f: impl FnMut(&CoreBase<Self>, rouse_core::Fired) + Send + 'static,
            ) -> Self::Callback {
                Box::new(f)
            }

            fn run(core: &CoreBase<Self>, flags: RunFlags) -> io::Result<Exit> {
                let os = core.notifier();
                let mut poller = os.try_poller().ok_or_else(running)?;
                let mut tracked = Tracked {
                    poller: &mut poller,
                    own: os.own_fds(),
                };
                Ok(core.run_with(&mut tracked, flags)?)
            }

            fn reinit(core: &CoreBase<Self>) -> io::Result<()> {
                core.notifier().reinit_after_fork()?;
                // SAFETY: the caller saw a new pid (this is a forked child) and the poller was
                // free (no loop runs: a run holds it); a thread the child may have started
                // meanwhile can at most find its next run re-register everything.
                unsafe { core.reinit() };
                Ok(())
            }

            fn owns_fd(core: &CoreBase<Self>, fd: RawFd) -> bool {
                core.notifier().owns_fd(fd)
            }

            fn apply_now(core: &CoreBase<Self>) {
                let os = core.notifier();
                if let Some(mut poller) = os.try_poller() {
                    let mut tracked = Tracked {
                        poller: &mut poller,
                        own: os.own_fds(),
                    };
                    core.apply_changes(&mut tracked);
                }
            }

            fn poller_kind(core: &CoreBase<Self>) -> PollerKind {
                core.notifier().poller_kind()
            }

            fn notifier_kind(core: &CoreBase<Self>) -> Option<NotifierKind> {
                let f: fn(&CoreBase<Self>) -> Option<NotifierKind> = $notifier_kind;
                f(core)
            }

            fn interest_syscalls(core: &CoreBase<Self>) -> Option<u64> {
                core.notifier().interest_syscalls()
            }

            fn os_debug(core: &CoreBase<Self>) -> &dyn std::fmt::Debug {
                core.notifier()
            }
        }
    };
}

os_flavor!(Threaded, |core| Some(core.notifier().notifier_kind()));
os_flavor!(Local, |_| None);
