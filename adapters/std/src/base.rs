//! The thread-safe base, its cross-thread handle, and the builder of both kinds of base.

use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use rouse_core::Options;

use crate::clock::MonotonicClock;
use crate::config::Events;
use crate::local::LocalBase;
use crate::os::{LocalOs, Os};
use crate::sys::notify::NotifierKind;
use crate::sys::poll::PollerKind;

/// How to build a base (libevent's `event_config`).
///
/// Without a forced kind, the poller is epoll (Linux) or kqueue (BSD, macOS), and the notifier
/// follows libevent's order: kqueue `EVFILT_USER`, eventfd, pipe, socketpair, falling back to
/// the next when creation fails with `EMFILE`, `ENFILE` or `ENOSYS`. Like libevent's
/// `EVENT_NO*` variables, `ROUSE_POLLER` (`epoll`, `kqueue`, `poll`) and `ROUSE_NOTIFIER`
/// (`kqueue-user`, `eventfd`, `pipe`, `socketpair`) force a kind unless
/// [`ignore_env`](Builder::ignore_env) is set; the test suite runs once per forced fallback
/// that way.
///
/// ```
/// use rouse_std::{Builder, NotifierKind, PollerKind};
/// let base = Builder::new()
///     .priorities(3)
///     .poller(PollerKind::Poll)
///     .notifier(NotifierKind::Pipe)
///     .build()?;
/// assert_eq!(base.poller_kind(), PollerKind::Poll);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    options: Options,
    notifier: Option<NotifierKind>,
    poller: Option<PollerKind>,
    ignore_env: bool,
}

/// How long the loop spins before it blocks, by default (see
/// [`Builder::spin_before_block`]).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(SPIN_US);
const SPIN_US: u64 = 3;

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            options: Options::new().spin_before_block(DEFAULT_SPIN),
            notifier: None,
            poller: None,
            ignore_env: false,
        }
    }
}

impl Builder {
    /// The defaults: one priority, no dispatch limits, default poller and notifier, and a
    /// [`DEFAULT_SPIN`] spin before blocking.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Before blocking in its poller, the loop spins up to `spin` with `polling` still false:
    /// a change made meanwhile (a worker answering right after the loop went idle) is picked
    /// up with no notification write and no sleep/wake-up (a context switch costs several
    /// microseconds). Zero disables it. See [`rouse_core::Options::spin_before_block`].
    pub fn spin_before_block(mut self, spin: Duration) -> Builder {
        self.options = self.options.spin_before_block(spin);
        self
    }

    /// The number of priorities (1..=255).
    pub fn priorities(mut self, n: u8) -> Builder {
        self.options = self.options.priorities(n);
        self
    }

    /// See [`rouse_core::Options::dispatch_limits`].
    pub fn dispatch_limits(
        mut self,
        max_callbacks: u32,
        max_interval: Option<Duration>,
        from_priority: u8,
    ) -> Builder {
        self.options = self
            .options
            .dispatch_limits(max_callbacks, max_interval, from_priority);
        self
    }

    /// Uses exactly this notifier (an error if it cannot be created).
    pub fn notifier(mut self, kind: NotifierKind) -> Builder {
        self.notifier = Some(kind);
        self
    }

    /// Uses exactly this poller.
    pub fn poller(mut self, kind: PollerKind) -> Builder {
        self.poller = Some(kind);
        self
    }

    /// Ignores `ROUSE_POLLER` and `ROUSE_NOTIFIER`.
    pub fn ignore_env(mut self) -> Builder {
        self.ignore_env = true;
        self
    }

    fn env<T>(&self, var: &str, parse: fn(&str) -> Option<T>) -> io::Result<Option<T>> {
        if self.ignore_env {
            return Ok(None);
        }
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => parse(&v).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{var}={v}: unknown kind"),
                )
            }),
            _ => Ok(None),
        }
    }

    fn poller_choice(&self) -> io::Result<Option<PollerKind>> {
        match self.poller {
            Some(k) => Ok(Some(k)),
            None => self.env("ROUSE_POLLER", PollerKind::from_name),
        }
    }

    /// Builds a thread-safe base.
    ///
    /// # Errors
    ///
    /// The OS error of the poller or notifier (after fallbacks); `InvalidInput` for bad options
    /// or an unknown kind in the environment.
    pub fn build(self) -> io::Result<Base> {
        let notifier = match self.notifier {
            Some(k) => Some(k),
            None => self.env("ROUSE_NOTIFIER", NotifierKind::from_name)?,
        };
        let os = Os::new(self.poller_choice()?, notifier)?;
        let events = rouse_core::Base::new(os, MonotonicClock, self.options)?;
        Ok(Base {
            events: Arc::new(events),
        })
    }

    /// Builds a single-threaded base: no lock, no notifier, and no way to reach it from
    /// another thread (it is neither `Send` nor `Sync`, and has no handle).
    ///
    /// # Errors
    ///
    /// As [`build`](Builder::build).
    pub fn build_local(self) -> io::Result<LocalBase> {
        let os = LocalOs::new(self.poller_choice()?)?;
        let events = rouse_core::Base::new(os, MonotonicClock, self.options)?;
        Ok(LocalBase::from_events(events))
    }
}

/// A thread-safe event base: owns the loop. [`handle`](Base::handle)s let other threads add,
/// delete and activate events and stop the loop while it sleeps in its poller.
///
/// It dereferences to [`Events`], the core base: its methods and those of
/// [`EventsExt`](crate::EventsExt) are the API.
///
/// ```
/// use std::time::Duration;
/// use rouse_std::{Base, EventsExt};
///
/// let base = Base::new()?;
/// let handle = base.handle();
/// let user = base.add_user(|events, _| events.loop_break().unwrap())?;
/// let t = std::thread::spawn(move || handle.activate(user, rouse_core::Ready::USER));
/// base.run()?; // sleeps until the other thread activates `user`
/// t.join().unwrap()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// Dropping the base closes it ([`rouse_core::Base::close`]): every event is freed and calls
/// through remaining handles fail with an error.
#[derive(Debug)]
pub struct Base {
    events: Arc<Events>,
}

/// A cross-thread handle to a [`Base`]: `Send + Sync + Clone`. It dereferences to [`Events`]
/// (add, delete, activate, break, exit); running the loop is the base's.
#[derive(Clone, Debug)]
pub struct Handle {
    events: Arc<Events>,
}

impl Deref for Base {
    type Target = Events;
    fn deref(&self) -> &Events {
        &self.events
    }
}

impl Deref for Handle {
    type Target = Events;
    fn deref(&self) -> &Events {
        &self.events
    }
}

impl Base {
    /// A base with the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Base> {
        Builder::new().build()
    }

    /// A builder.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> Handle {
        Handle {
            events: self.events.clone(),
        }
    }

    /// The events (the core base) behind this base.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The notifier chosen.
    pub fn notifier_kind(&self) -> NotifierKind {
        self.events.notifier().notifier_kind()
    }

    /// Interest-change syscalls issued so far (`None` while the loop runs); see
    /// [`Os::interest_syscalls`].
    pub fn interest_syscalls(&self) -> Option<u64> {
        self.events.notifier().interest_syscalls()
    }

    /// A human-readable dump of every event and the wake counters.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "poller {}, notifier {}\n",
            self.poller_kind().name(),
            self.notifier_kind().name()
        );
        let _ = self.events.dump(&mut s);
        s
    }
}

crate::run::loop_methods!(Base);

impl Drop for Base {
    fn drop(&mut self) {
        // Frees every event now: their callbacks may hold handles (a cycle through the Arc).
        self.events.close();
    }
}
