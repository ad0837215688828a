//! The operations [`Base`](crate::Base), [`Handle`](crate::Handle) and
//! [`Context`](crate::Context) share: written once here (generic over the flavor), exposed as
//! inherent methods of each by [`shared_api!`].

use std::io;
use std::time::Duration;

use rouse_core::{Event, Fired, Key, Kind};

use crate::config::{Local, LocalCallback};
use crate::context::Context;
use crate::events::check_signal;
use crate::flavor::Flavor;

type CoreBase<F> = rouse_core::Base<F>;

/// `EINVAL` (`InvalidInput`): an fd of the base itself (notifier, poller, signal pipe).
fn own_fd() -> io::Error {
    io::Error::from_raw_os_error(libc::EINVAL)
}

/// Creates an event, after the checks every path goes through: not one of the base's own
/// fds, a catchable signal.
#[inline]
pub(crate) fn event<F: Flavor>(
    core: &CoreBase<F>,
    event: Event,
    callback: F::Callback,
) -> io::Result<Key> {
    check_event(core, event)?;
    Ok(core.new_event(event, callback)?)
}

/// What the core cannot check: the base's own fds as sources, signal numbers the OS refuses.
fn check_event<F: Flavor>(core: &CoreBase<F>, event: Event) -> io::Result<()> {
    match event.kind() {
        Kind::Io(src, _) if i32::try_from(src.id()).is_ok_and(|fd| F::owns_fd(core, fd)) => {
            return Err(own_fd());
        }
        Kind::Signal(n) => {
            let n = i32::try_from(n).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "signal number out of range")
            })?;
            check_signal(n)?;
        }
        _ => {} // timers, user events (`Kind` is non-exhaustive)
    }
    Ok(())
}

/// Creates and adds; on failure nothing is left behind.
pub(crate) fn add_event<F: Flavor>(
    core: &CoreBase<F>,
    ev: Event,
    timeout: Option<Duration>,
    callback: F::Callback,
) -> io::Result<Key> {
    check_event(core, ev)?;
    let key = core.new_event_added(ev, timeout, callback)?;
    if matches!(ev.kind(), Kind::Signal(_)) {
        // Installs the handler now if the loop is not running (a running loop does it on its
        // next iteration: the add woke it).
        F::apply_now(core);
    }
    Ok(key)
}

/// Wraps a `Send` closure of the facade into the core's callback.
pub(crate) fn wrap<F: Flavor>(
    mut f: impl FnMut(&Context<'_, F>, Fired) + Send + 'static,
) -> F::Callback {
    F::boxed(move |core: &CoreBase<F>, fired| f(&Context::new(core), fired))
}

/// Wraps any closure of a single-threaded base into its core callback.
pub(crate) fn wrap_local(mut f: impl FnMut(&Context<'_, Local>, Fired) + 'static) -> LocalCallback {
    Box::new(move |core: &CoreBase<Local>, fired| f(&Context::new(core), fired))
}

/// Implements the shared operations as inherent methods of `$Ty`, which has a
/// `fn core(&self) -> &rouse_core::Base<F>`.
macro_rules! shared_api {
    (impl[$($gen:tt)*] $Self:ty, $Ty:ident, $F:ty, $wrap:path, [$($send:tt)*]) => {
        impl<$($gen)*> $Self {
            /// Creates an event with `callback`; it is not pending until
            #[doc = concat!("[`add`](", stringify!($Ty), "::add)ed (libevent's `event_new`).")]
            ///
            /// # Errors
            ///
            /// `InvalidInput` for an I/O event on one of the base's own fds (`EINVAL`), a
            /// signal that cannot be caught, an empty interest, a priority out of range; as
            /// the crate docs' error table says for the rest.
            #[inline]
            pub fn event<C>(&self, event: rouse_core::Event, callback: C) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                $crate::api::event(self.core(), event, $wrap(callback))
            }

            /// Creates an event and makes it pending (`event_new` + `event_add`). On failure
            /// nothing is left behind.
            ///
            /// # Errors
            ///
            #[doc = concat!("What [`event`](", stringify!($Ty), "::event) and [`add`](", stringify!($Ty), "::add) return.")]
            pub fn add_event<C>(
                &self,
                event: rouse_core::Event,
                timeout: Option<std::time::Duration>,
                callback: C,
            ) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                $crate::api::add_event(self.core(), event, timeout, $wrap(callback))
            }

            $crate::api::constructors!(plain, $Ty, $F, [$($send)*], concat!("Its priority is the base's default (half its number of priorities); [`with_priority`](", stringify!($Ty), "::with_priority) sets another."));

            /// The convenience constructors (`add_fd`, `add_owned`, `add_timer`, `add_interval`,
            /// `add_signal`, `add_user`), giving their events `priority` (0 runs first):
            #[doc = concat!("`", stringify!($Ty), ".with_priority(0).add_timer(after, callback)`.")]
            /// A priority out of range is refused when the event is made (`InvalidInput`).
            pub fn with_priority(&self, priority: u8) -> $crate::WithPriority<'_, Self> {
                $crate::WithPriority { target: self, priority }
            }

            /// Makes the event pending (`event_add`); with `Some(timeout)` its timeout is
            /// (re-)armed to fire `timeout` from now, with `None` an armed one is kept. A zero
            /// timeout fires at the next iteration; `Duration::MAX` never fires. Re-arming an
            /// event whose timeout has expired but whose callback has not run yet cancels that
            /// queued run: it runs once, at the new deadline.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key, `NotConnected` once the base is closed; see the
            /// crate docs' error table.
            pub fn add(&self, key: rouse_core::Key, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
                Ok(self.core().add(key, timeout)?)
            }

            #[doc = concat!("[`add`](", stringify!($Ty), "::add) with `Some(timeout)`, returning the deadline armed (on the")]
            /// base's clock: [`MonotonicClock::to_std`](crate::MonotonicClock::to_std) converts
            /// it), or `None` when the timeout starts at the loop's next clock reading (added from
            /// a callback). For a caller that shows the deadline, instead of reading the clock
            /// again.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add`](", stringify!($Ty), "::add).")]
            #[inline]
            pub fn add_timed(&self, key: rouse_core::Key, timeout: std::time::Duration) -> std::io::Result<Option<rouse_core::Instant>> {
                Ok(self.core().add_timed(key, timeout)?)
            }

            #[doc = concat!("[`add_timed`](", stringify!($Ty), "::add_timed) with the timeout counted from `from`, an earlier")]
            #[doc = concat!("reading of [`now_coarse`](", stringify!($Ty), "::now_coarse) (taken when the add was asked for: a caller")]
            /// that held the add back applies it as of then). From a callback it is `add_timed`.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add`](", stringify!($Ty), "::add).")]
            pub fn add_timed_from(&self, key: rouse_core::Key, timeout: std::time::Duration, from: rouse_core::Instant) -> std::io::Result<Option<rouse_core::Instant>> {
                Ok(self.core().add_timed_from(key, timeout, from)?)
            }

            /// Makes the event pending with common timeout `ct` (O(1) for many timers of one
            #[doc = concat!("duration; see [`common_timeout`](", stringify!($Ty), "::common_timeout)).")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add`](", stringify!($Ty), "::add); `InvalidInput` for a common timeout of another base.")]
            pub fn add_common(&self, key: rouse_core::Key, ct: rouse_core::CommonTimeout) -> std::io::Result<()> {
                Ok(self.core().add_common(key, ct)?)
            }

            /// The common timeout of duration `d` (made on first use, at most 255 per base).
            ///
            /// # Errors
            ///
            /// `OutOfMemory` past 255; `NotConnected` once the base is closed.
            pub fn common_timeout(&self, d: std::time::Duration) -> std::io::Result<rouse_core::CommonTimeout> {
                Ok(self.core().common_timeout(d)?)
            }

            /// Makes the event non-pending and takes it off the active queue (`event_del`).
            /// From another thread while its callback runs, waits until the callback returned.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once
            /// the base is closed.
            pub fn delete(&self, key: rouse_core::Key) -> std::io::Result<()> {
                Ok(self.core().delete(key)?)
            }

            /// Like [`delete`](Self::delete), but never waits (`event_del_noblock`): the event is
            /// non-pending and off the active queue when this returns, and the key stays valid.
            /// A callback running on another thread right now may still be running (it does not
            /// start again unless the event is added or activated again); use `delete` or
            /// `finalize_with` when it must be over.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once the base is closed.
            pub fn delete_nowait(&self, key: rouse_core::Key) -> std::io::Result<()> {
                Ok(self.core().delete_nowait(key)?)
            }

            /// Deletes the event and frees it: the key is stale from now on (`event_free`).
            ///
            #[doc = concat!("Waits for a running callback like [`delete`](", stringify!($Ty), "::delete).")]
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once the base is closed.
            pub fn free(&self, key: rouse_core::Key) -> std::io::Result<()> {
                Ok(self.core().free(key)?)
            }

            /// Frees every idle event (not pending, queued, running or finalizing) whose
            /// [`tag`](rouse_core::Event::tag) `select` accepts; returns how many. Their keys
            /// are stale from then on; an event that is busy, or becomes so meanwhile, stays.
            /// For reclaiming events a program may have lost track of (one pass over every
            /// event; `select` runs under the base's lock and must not call the base).
            pub fn free_idle(&self, select: impl FnMut(usize) -> bool) -> usize {
                self.core().free_idle(select)
            }

            /// Deletes the event without waiting and runs `finalizer` on the loop thread once
            /// its callback cannot run any more (`event_finalize`); the event is then freed.
            /// It never blocks, so it cannot deadlock against a lock the callback waits for.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once the base is closed.
            pub fn finalize_with(
                &self,
                key: rouse_core::Key,
                finalizer: impl FnOnce(&$crate::Context<'_, $F>) $($send)* + 'static,
            ) -> std::io::Result<()> {
                let mut f = Some(finalizer);
                let fin = $wrap(move |cx: &$crate::Context<'_, $F>, _| {
                    if let Some(f) = f.take() {
                        f(cx)
                    }
                });
                Ok(self.core().finalize(key, fin)?)
            }

            /// Queues the event to run with `ready` (`event_active`); empty means
            /// [`Ready::USER`](crate::Ready::USER). If it is already queued with these
            /// reasons, this costs a fence and a load: no lock, no syscall. The callback
            /// starts after this call and sees every write made before it.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once the base is closed; the OS
            /// error of the notification write (the activation itself took effect).
            #[inline]
            pub fn activate(&self, key: rouse_core::Key, ready: rouse_core::Ready) -> std::io::Result<()> {
                match self.core().activate(key, ready) {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }

            /// Changes the priority of an event that is not queued.
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a priority out of range or a queued event; `NotFound` for a
            /// stale key.
            pub fn set_priority(&self, key: rouse_core::Key, priority: u8) -> std::io::Result<()> {
                Ok(self.core().set_priority(key, priority)?)
            }

            /// Stops the loop after the callback that runs now, or right away if none runs. If
            /// the loop is not running, the next run returns at once.
            ///
            /// # Errors
            ///
            /// `NotConnected` once the base is closed; the OS error of the notification write.
            pub fn loop_break(&self) -> std::io::Result<()> {
                Ok(self.core().loop_break()?)
            }

            /// Stops the loop once `after` has passed (`None`: now), after the callbacks of
            /// that iteration ran.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`loop_break`](", stringify!($Ty), "::loop_break).")]
            pub fn loop_exit(&self, after: Option<std::time::Duration>) -> std::io::Result<()> {
                Ok(self.core().loop_exit(after)?)
            }

            /// A snapshot of the event.
            ///
            /// # Errors
            ///
            /// `NotFound` for a stale key; `NotConnected` once the base is closed.
            pub fn info(&self, key: rouse_core::Key) -> std::io::Result<rouse_core::EventInfo> {
                Ok(self.core().info(key)?)
            }

            /// Whether the event is pending.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`info`](", stringify!($Ty), "::info).")]
            pub fn is_pending(&self, key: rouse_core::Key) -> std::io::Result<bool> {
                Ok(self.core().is_pending(key)?)
            }

            /// Counts of events (existing, pending, active, armed timers).
            pub fn counts(&self) -> rouse_core::Counts {
                self.core().counts()
            }

            /// The wake counters (requests, notification writes, coalesced requests, ...).
            pub fn wake_stats(&self) -> rouse_core::WakeStats {
                self.core().wake_stats()
            }

            /// Interest changes the poller refused so far (each activated the source's events
            /// with [`Ready::ERROR`](crate::Ready::ERROR)).
            pub fn poll_errors(&self) -> u64 {
                self.core().poll_errors()
            }

            /// The base's clock now (what deadlines are measured on).
            pub fn now(&self) -> rouse_core::Instant {
                self.core().now()
            }

            /// The reading a timeout added outside the loop's callbacks starts from: the
            #[doc = concat!("coarse clock on a base built with [`Builder::coarse_clock`](crate::Builder::coarse_clock), else [`now`](", stringify!($Ty), "::now).")]
            #[inline]
            pub fn now_coarse(&self) -> rouse_core::Instant {
                rouse_core::Clock::now_coarse(self.core().clock())
            }

            /// The base's id (its keys carry it).
            pub fn id(&self) -> u32 {
                self.core().id()
            }
        }

        impl<'p, $($gen)*> $crate::WithPriority<'p, $Self> {
            $crate::api::constructors!(with, $Ty, $F, [$($send)*], "At the priority given to `with_priority`.");
        }
    };
}
pub(crate) use shared_api;

/// The convenience constructors, in `plain` mode (on the holder, default priority) or `with`
/// mode (on a [`WithPriority`] of the holder, its priority).
macro_rules! constructors {
    (@add plain $s:tt, $ev:expr, $timeout:expr, $cb:expr) => {
        $s.add_event($ev, $timeout, $cb)
    };
    (@add with $s:tt, $ev:expr, $timeout:expr, $cb:expr) => {
        $s.target.add_event(($ev).priority($s.priority), $timeout, $cb)
    };
    ($mode:ident, $Ty:ident, $F:ty, [$($send:tt)*], $note:expr) => {
            /// A persistent event for `interest` on `fd`, pending at once. The fd is only
            /// borrowed: delete the event before closing it (or let the event own it:
            #[doc = concat!("[`add_owned`](", stringify!($Ty), "::add_owned)).")]
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add_event`](", stringify!($Ty), "::add_event).")]
            pub fn add_fd<C>(
                &self,
                fd: &(impl std::os::fd::AsFd + ?Sized),
                interest: rouse_core::Interest,
                callback: C,
            ) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                let ev = rouse_core::Event::io($crate::source(fd), interest).persist();
                $crate::api::constructors!(@add $mode self, ev, None, callback)
            }

            /// A persistent event for `interest` on `fd`, which the event owns: the callback
            /// gets it as `&mut T`, and it is dropped (closed) when the event is freed — after
            /// the loop can no longer report it, so nothing has to be ordered by hand.
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add_event`](", stringify!($Ty), "::add_event) (`fd` is dropped on failure).")]
            pub fn add_owned<T, C>(
                &self,
                fd: T,
                interest: rouse_core::Interest,
                callback: C,
            ) -> std::io::Result<rouse_core::Key>
            where
                T: std::os::fd::AsFd $($send)* + 'static,
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired, &mut T) $($send)* + 'static,
            {
                let src = $crate::source(&fd);
                let (mut fd, mut callback) = (fd, callback);
                let ev = rouse_core::Event::io(src, interest).persist();
                $crate::api::constructors!(@add $mode self, ev, None, move |cx: &$crate::Context<'_, $F>, fired| {
                    callback(cx, fired, &mut fd)
                })
            }

            /// A one-shot timer firing once `after` has passed; it frees itself after it ran
            /// (libevent's `event_base_once`), or when deleted. `Duration::MAX` never fires.
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add_event`](", stringify!($Ty), "::add_event).")]
            pub fn add_timer<C>(&self, after: std::time::Duration, callback: C) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                $crate::api::constructors!(@add $mode self, rouse_core::Event::timer().free_after_run(), Some(after), callback)
            }

            /// A persistent timer firing every `every`, re-armed from its previous deadline (no
            /// drift); one that fell a whole period behind runs once, late, and is re-armed from
            /// now (no burst of catch-up runs).
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add_event`](", stringify!($Ty), "::add_event).")]
            pub fn add_interval<C>(&self, every: std::time::Duration, callback: C) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                $crate::api::constructors!(@add $mode self, rouse_core::Event::timer().persist(), Some(every), callback)
            }

            /// A persistent event for `signal` (a [`Signal`](crate::Signal) such as `Signal::TERM`, or a raw number). Its handler is installed at once if the
            /// loop is not running, else by the loop right away (the add wakes it).
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            /// `InvalidInput` for a signal that cannot be caught; as
            #[doc = concat!("[`add_event`](", stringify!($Ty), "::add_event).")]
            pub fn add_signal<S, C>(&self, signal: S, callback: C) -> std::io::Result<rouse_core::Key>
            where
                S: $crate::IntoSignal,
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                let n = $crate::events::check_signal(signal.into_signal()?.as_raw())?;
                $crate::api::constructors!(@add $mode self, rouse_core::Event::signal(n).persist(), None, callback)
            }

            /// A persistent user event, pending (so it keeps `run` going) and activated by hand
            #[doc = concat!("with [`activate`](", stringify!($Ty), "::activate), from any thread through a handle.")]
            ///
            #[doc = $note]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`add_event`](", stringify!($Ty), "::add_event).")]
            pub fn add_user<C>(&self, callback: C) -> std::io::Result<rouse_core::Key>
            where
                C: FnMut(&$crate::Context<'_, $F>, rouse_core::Fired) $($send)* + 'static,
            {
                $crate::api::constructors!(@add $mode self, rouse_core::Event::user().persist(), None, callback)
            }

    };
}
pub(crate) use constructors;

/// The convenience constructors of `T` (a [`Base`](crate::Base), [`Handle`](crate::Handle),
/// [`Context`], [`BaseRef`](crate::BaseRef) or [`LocalApi`](crate::LocalApi)), giving their events
/// one priority: `base.with_priority(0).add_timer(after, callback)`, and on a `Base`
/// `base.with_priority(0).channel(callback)`. Made by `T::with_priority`; it only borrows `T`.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use rouse_std::{Base, Ready};
///
/// let base = Base::builder().priorities(3).build()?;
/// let order = Arc::new(Mutex::new(Vec::new()));
/// let (lo, hi) = (order.clone(), order.clone());
/// let low = base.with_priority(2).add_user(move |_, _| lo.lock().unwrap().push("low"))?;
/// let high = base.with_priority(0).add_user(move |_, _| hi.lock().unwrap().push("high"))?;
/// base.activate(low, Ready::USER)?; // queued first,
/// base.activate(high, Ready::USER)?; // runs first: priority 0
/// base.run_once()?;
/// assert_eq!(*order.lock().unwrap(), ["high", "low"]);
/// assert_eq!(base.info(high)?.priority, 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct WithPriority<'a, T> {
    pub(crate) target: &'a T,
    pub(crate) priority: u8,
}

impl<T> Clone for WithPriority<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for WithPriority<'_, T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for WithPriority<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithPriority")
            .field("target", self.target)
            .field("priority", &self.priority)
            .finish()
    }
}

impl<'a, T> WithPriority<'a, T> {
    /// The priority its constructors give.
    pub fn priority(&self) -> u8 {
        self.priority
    }
}
