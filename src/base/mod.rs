//! The event base: the lock-generic shell around [`BaseState`], its public API, and (in
//! [`run`](self::run)) the loop.

mod drive;
mod introspect;
mod run;

use core::fmt;
use core::sync::atomic::{AtomicU32 as IdCounter, Ordering as IdOrdering};
use core::time::Duration;

use crate::event::{Event, Key};
use crate::options::Options;
use crate::seam::{Clock, Config, Instant, Lock, Notify, Ready, Words};
use crate::state::{word, BaseState, WordsOf};
use crate::sync::{fence, AtomicU32, Ordering};
use crate::Error;

pub use drive::PollerGuard;
pub use introspect::EventInfo;

/// One step of [`Base::remove`]: `(state, slot, its word, last)` -> (callback to drop, wake).
type RemoveStep<'a, C> = dyn FnMut(&mut BaseState<C>, u32, &AtomicU32, bool) -> (Option<<C as Config>::Callback>, bool)
    + 'a;

static NEXT_BASE_ID: IdCounter = IdCounter::new(1);

/// A handle to a common timeout of one base (libevent's common timeouts): many timers of one
/// duration armed with [`Base::add_common`] cost O(1) each instead of a heap insertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommonTimeout {
    base: u32,
    index: u8,
    duration: Duration,
}

impl CommonTimeout {
    /// Its duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

/// An event base: events, their per-priority active queues, timers, and the loop that runs
/// their callbacks (libevent's `event_base`).
///
/// All methods take `&self`. If the config's lock is `Sync` (e.g. [`SpinLock`](crate::SpinLock)
/// or `rouse-std`'s lock), the base is `Sync` and any thread may add, delete and activate
/// events while the loop thread sleeps in its poller: such a change wakes the loop through the
/// config's [`Notify`], at most one write per sleep (the notify protocol, see the crate docs).
///
/// # The poller
///
/// The base owns its [`Poller`](crate::Poller) (given to [`new`](Base::new)). A run takes it
/// out of the base for its whole length — under the lock it takes anyway to start, so the loop
/// pays nothing per iteration for it — and puts it back when it ends; a second `run` meanwhile
/// gets [`Error::AlreadyRunning`]. Between runs the loop owner reaches it with
/// [`with_poller`](Base::with_poller) and replaces it with
/// [`replace_poller`](Base::replace_poller).
///
/// # Loop-owner operations
///
/// `run*`, [`apply_changes`](Base::apply_changes), [`with_poller`](Base::with_poller),
/// [`replace_poller`](Base::replace_poller), [`notifier`](Base::notifier),
/// [`close`](Base::close) and the `unsafe` [`reinit`](Base::reinit) belong to the one thread
/// (or runtime) that owns the loop and its poller: public for custom runtimes, but a runtime
/// that lets other threads or callbacks reach its base should hand them a narrower type
/// (`rouse-std`'s `Handle` and `Context` offer add, delete, activate, break and exit only).
///
/// # A `'static` base
///
/// `new` is not a `const fn` (it cannot be one without `unsafe` in the core: the lock's cell
/// and the storage are built through trait methods, which stable Rust cannot call in a
/// `const fn`, and each base draws its id from a global counter). A firmware that wants a
/// base in a `static` keeps it in a once-initialized cell — a `static` of `spin::Once`,
/// `critical_section::Mutex<OnceCell<_>>` or `static_cell::StaticCell` — filled by `Base::new`
/// at the start of `main`, before the interrupts that use it are enabled
/// (`examples/bare-metal` does this); its interrupt handlers then reach the same `&'static
/// Base`.
pub struct Base<C: Config> {
    id: u32,
    state: <C::Lock as Lock>::Cell<BaseState<C>>,
    words: WordsOf<C>,
    /// The low bits of `wake.stats.requests`, stored under the lock at every request: a loop
    /// spinning before it blocks watches it without the lock.
    activity: AtomicU32,
    /// 1 while `wake.failed()`: turns the activation fast path off (see `Wake::failed`).
    wake_failed: AtomicU32,
    notifier: C::Notifier,
    clock: C::Clock,
}

impl<C: Config> fmt::Debug for Base<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts = self.counts();
        f.debug_struct("Base")
            .field("id", &self.id)
            .field("counts", &counts)
            .finish_non_exhaustive()
    }
}

impl<C: Config> Base<C> {
    /// A new base with its notifier, poller, clock and options.
    ///
    /// # Errors
    ///
    /// [`Error::Priority`] if `options` asks for zero priorities, [`Error::Full`] if the
    /// storage cannot hold the priority queues.
    pub fn new(
        notifier: C::Notifier,
        poller: C::Poller,
        clock: C::Clock,
        options: Options,
    ) -> Result<Self, Error> {
        if options.priorities == 0 {
            return Err(Error::Priority);
        }
        Ok(Base {
            id: NEXT_BASE_ID.fetch_add(1, IdOrdering::Relaxed),
            state: C::Lock::new(BaseState::new(options, poller)?),
            words: WordsOf::<C>::new(),
            activity: AtomicU32::new(0),
            wake_failed: AtomicU32::new(0),
            notifier,
            clock,
        })
    }

    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut BaseState<C>) -> R) -> R {
        C::Lock::with(&self.state, f)
    }

    #[inline]
    fn check(&self, st: &BaseState<C>, key: Key) -> Result<u32, Error> {
        self.check_at(st, key).map(|(idx, _)| idx)
    }

    /// [`check`](Base::check), also returning the slot's activation word (one lookup, which
    /// the caller passes on instead of looking it up again).
    #[inline]
    fn check_at(&self, st: &BaseState<C>, key: Key) -> Result<(u32, &AtomicU32), Error> {
        if key.base != self.id {
            return Err(Error::Foreign);
        }
        if st.ctl.closed {
            return Err(Error::Closed);
        }
        st.slots.check_at(&self.words, key)
    }

    /// Applies the queued interest changes to the poller now, outside a run (a run applies
    /// them before every wait). `rouse-std` uses it to install signal handlers as soon as a
    /// signal event is added while the loop is not running. Does nothing while a run (which
    /// applies them itself) or [`with_poller`](Base::with_poller) has the poller.
    ///
    /// **Loop owner only**. A runtime that lets other threads reach its base should not let
    /// them reach this method (`rouse-std`'s handles cannot).
    pub fn apply_changes(&self) {
        self.with(|st| {
            if let Some(mut p) = st.poller.take() {
                st.apply_changes(&self.words, &mut p);
                st.poller = Some(p);
            }
        });
    }

    /// Calls `f` with the poller, taken out of the base for the call (so `f` may use the
    /// base; the lock is not held): to read its statistics, script a mock, or re-make its OS
    /// objects after `fork`. The poller goes back when `f` returns or panics.
    ///
    /// **Loop owner only**.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] while a run (or another `with_poller`) has the poller.
    pub fn with_poller<R>(&self, f: impl FnOnce(&mut C::Poller) -> R) -> Result<R, Error> {
        let mut held = Held {
            base: self,
            poller: Some(self.take_poller()?),
        };
        Ok(f(held.poller.as_mut().expect("held until dropped")))
    }

    /// Replaces the poller, returning the one the base had (`None` if it had none: it went
    /// with a run in a thread that did not survive `fork`, see [`reinit`](Base::reinit)). The
    /// next run applies every interest change to the new one; after a [`reinit`](Base::reinit)
    /// that is every registration.
    ///
    /// **Loop owner only**.
    ///
    /// # Errors
    ///
    /// Gives `poller` back while a run is in progress.
    pub fn replace_poller(&self, poller: C::Poller) -> Result<Option<C::Poller>, C::Poller> {
        self.with(|st| {
            if st.ctl.running {
                return Err(poller);
            }
            Ok(st.poller.replace(poller))
        })
    }

    /// Takes the poller out (a loop owner's `with_poller`, a mock's guard).
    pub(crate) fn take_poller(&self) -> Result<C::Poller, Error> {
        self.with(|st| st.poller.take())
            .ok_or(Error::AlreadyRunning)
    }

    /// Puts a taken poller back.
    pub(crate) fn put_poller(&self, poller: C::Poller) {
        self.with(|st| st.poller = Some(poller));
    }

    /// Records a change the loop must see (under the lock): returns whether the caller must
    /// write the notification (DESIGN rule 1).
    #[inline]
    fn request(&self, st: &mut BaseState<C>) -> bool {
        let write = st.wake.request();
        self.activity
            .store(st.wake.stats.requests as u32, Ordering::Relaxed);
        write
    }

    /// Writes the notification the state asked for, outside the lock (DESIGN rule 1).
    #[inline]
    fn wake(&self, need: bool) -> Result<(), Error> {
        if need {
            if let Err(e) = self.notifier.notify() {
                // Both under the lock, so the loop's clear (also under it) cannot overtake.
                self.with(|st| {
                    st.wake.write_failed();
                    self.wake_failed.store(1, Ordering::SeqCst);
                });
                return Err(Error::Notify(e));
            }
        }
        Ok(())
    }

    /// Removes the live event `key` (libevent's `event_del`: remove first, wait second).
    ///
    /// `f(st, idx, word, last)` removes it and returns a callback to drop unlocked and the
    /// wake need. Called from another thread while the event's callback runs on the loop thread,
    /// `f` runs first with `last == false` (the event leaves every list and the poller, so
    /// the loop cannot start it again), then this waits until the callback has returned and
    /// runs `f` again with `last == true` (undoing a re-add by that callback, or freeing).
    /// Otherwise `f` runs once, with `last == true`.
    #[inline(always)]
    fn remove(
        &self,
        key: Key,
        mut f: impl FnMut(&mut BaseState<C>, u32, &AtomicU32, bool) -> (Option<C::Callback>, bool),
    ) -> Result<(), Error> {
        let (cb, need, wait) = self.with(|st| {
            let (idx, w) = self.check_at(st, key)?;
            // The thread is asked only if the callback runs now (it costs a thread-local read).
            let wait = st.current == idx && st.ctl.running && st.ctl.loop_thread != C::thread_id();
            let (cb, wake) = f(st, idx, w, !wait);
            st.waiters += u32::from(wait);
            Ok::<_, Error>((cb, wake && self.request(st), wait))
        })?;
        drop(cb); // user state is dropped outside the lock
        let woke = self.wake(need);
        if wait {
            return self.remove_after_wait(key, woke, &mut f);
        }
        woke
    }

    /// The rest of [`remove`](Base::remove) when the callback ran on another thread: wait
    /// until it has returned, then run `f` with `last == true`.
    #[cold]
    #[inline(never)]
    fn remove_after_wait(
        &self,
        key: Key,
        woke: Result<(), Error>,
        f: &mut RemoveStep<'_, C>,
    ) -> Result<(), Error> {
        let idx = key.index();
        C::Lock::wait(&self.state, |st| {
            let done = st.current != idx || !st.ctl.running;
            st.waiters -= u32::from(done);
            done
        });
        let (cb, need) = self.with(|st| match self.check_at(st, key) {
            Ok((idx, w)) => {
                let (cb, wake) = f(st, idx, w, true);
                (cb, wake && self.request(st))
            }
            Err(_) => (None, false), // its own callback freed it meanwhile
        });
        drop(cb);
        woke.and(self.wake(need))
    }

    /// The base's id (keys carry it, so a key of another base is refused).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Its notifier.
    ///
    /// **Loop owner only**: consuming a notification from outside the loop loses the wake-up it
    /// carried. A runtime that lets other threads reach its base should not hand them this
    /// (`rouse-std`'s handles cannot reach it).
    pub fn notifier(&self) -> &C::Notifier {
        &self.notifier
    }

    /// Its clock.
    pub fn clock(&self) -> &C::Clock {
        &self.clock
    }

    /// The clock's current instant.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Creates an event with its callback; it is not pending until [`add`](Base::add)ed
    /// (libevent's `event_new`).
    ///
    /// # Errors
    ///
    /// [`Error::Full`], [`Error::Priority`], [`Error::EmptyInterest`], [`Error::SignalRange`],
    /// [`Error::Closed`]. The callback is dropped, after the base lock is released (its `Drop`
    /// may use the base).
    #[inline]
    pub fn new_event(&self, event: Event, callback: C::Callback) -> Result<Key, Error> {
        let r = self.with(|st| st.create(&self.words, event, callback));
        match r {
            Ok((index, gen)) => Ok(Key::new(self.id, index, gen)),
            Err((e, callback)) => {
                drop(callback); // outside the lock
                Err(e)
            }
        }
    }

    /// Creates an event and makes it pending, in one lock section (libevent's `event_new` +
    /// `event_add`; what [`new_event`](Base::new_event) then [`add`](Base::add) do, with one
    /// lock round trip and one key check less). On failure nothing is left behind: the event
    /// is freed, and the callback dropped after the lock is released.
    ///
    /// # Errors
    ///
    /// Those of [`new_event`](Base::new_event) and [`add`](Base::add); with
    /// [`Error::Notify`] (the loop could not be woken) the event is freed too.
    pub fn new_event_added(
        &self,
        event: Event,
        timeout: Option<Duration>,
        callback: C::Callback,
    ) -> Result<Key, Error> {
        let r = self.with(|st| {
            let (idx, gen) = st
                .create(&self.words, event, callback)
                .map_err(|(e, cb)| (e, Some(cb)))?;
            let Some(w) = self.words.get(idx as usize) else {
                return Err((Error::Full, st.free(&self.words, idx).0));
            };
            match st.add(w, idx, timeout, || self.clock.now_coarse()) {
                Ok((wake, _)) => Ok((idx, gen, wake && self.request(st))),
                Err(e) => Err((e, st.free(&self.words, idx).0)),
            }
        });
        match r {
            Ok((index, gen, need)) => {
                let key = Key::new(self.id, index, gen);
                if let Err(e) = self.wake(need) {
                    let _ = self.free(key);
                    return Err(e);
                }
                Ok(key)
            }
            Err((e, callback)) => {
                drop(callback); // outside the lock
                Err(e)
            }
        }
    }

    /// Makes the event pending (libevent's `event_add`): its source or signal is watched, and
    /// with `Some(timeout)` its timeout is (re-)armed to fire `timeout` from now. With `None`,
    /// an armed timeout is kept. A zero timeout fires at the next loop iteration;
    /// `Duration::MAX` never fires. Timeouts due at the same instant fire in an unspecified
    /// (heap) order; those of one [common timeout](Base::common_timeout) in add order.
    ///
    /// "From now" is never earlier than this call: while the loop runs callbacks, the timeout
    /// starts at the loop's next clock reading, after that pass (no clock is read here; see
    /// "When a timeout starts" in the crate docs), otherwise at a reading taken here.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Full`], [`Error::SourceRange`],
    /// [`Error::EdgeConflict`], [`Error::Invalid`] (finalizing), [`Error::Notify`] (the change
    /// took effect but the loop could not be woken).
    pub fn add(&self, key: Key, timeout: Option<Duration>) -> Result<(), Error> {
        let need = self.with(|st| {
            let (idx, w) = self.check_at(st, key)?;
            let (wake, _) = st.add(w, idx, timeout, || self.clock.now_coarse())?;
            Ok::<_, Error>(wake && self.request(st))
        })?;
        self.wake(need)
    }

    /// [`add`](Base::add) with `Some(timeout)`, returning the deadline armed: the clock reading
    /// taken here plus `timeout`, or `None` where none was taken (while the loop runs
    /// callbacks, the timeout starts at the loop's next reading). Spares a caller that shows
    /// the deadline (libevent's `ev_timeout`) a reading of its own.
    ///
    /// # Errors
    ///
    /// As [`add`](Base::add).
    #[inline]
    pub fn add_timed(&self, key: Key, timeout: Duration) -> Result<Option<Instant>, Error> {
        self.add_timed_with(key, timeout, || self.clock.now_coarse())
    }

    /// [`add_timed`](Base::add_timed) with the timeout counted from `from`, a reading of this
    /// base's clock ([`Clock::now_coarse`]) taken when the add was asked for: a caller that
    /// held an add back applies it as of then, so its deadline does not move by the wait.
    /// While the loop runs callbacks it is `add_timed` (the timeout starts at the loop's next
    /// reading). A `from` later than the clock's reading is the caller's bug: the timeout
    /// then fires late by the difference.
    ///
    /// # Errors
    ///
    /// As [`add`](Base::add).
    pub fn add_timed_from(
        &self,
        key: Key,
        timeout: Duration,
        from: Instant,
    ) -> Result<Option<Instant>, Error> {
        self.add_timed_with(key, timeout, || from)
    }

    #[inline(always)]
    fn add_timed_with(
        &self,
        key: Key,
        timeout: Duration,
        now: impl FnOnce() -> Instant,
    ) -> Result<Option<Instant>, Error> {
        let (need, at) = self.with(|st| {
            let (idx, w) = self.check_at(st, key)?;
            let (wake, at) = st.add(w, idx, Some(timeout), now)?;
            Ok::<_, Error>((wake && self.request(st), at))
        })?;
        self.wake(need)?;
        Ok((at != crate::state::NO_TIME).then_some(Instant::from_nanos(at)))
    }

    /// Makes the event pending with common timeout `ct` (O(1) for many timers of one duration).
    ///
    /// # Errors
    ///
    /// As [`add`](Base::add); [`Error::Foreign`] for a common timeout of another base.
    pub fn add_common(&self, key: Key, ct: CommonTimeout) -> Result<(), Error> {
        if ct.base != self.id {
            return Err(Error::Foreign);
        }
        let need = self.with(|st| {
            let idx = self.check(st, key)?;
            let wake = st.add_common(&self.words, idx, ct.index, self.clock.now())?;
            Ok::<_, Error>(wake && self.request(st))
        })?;
        self.wake(need)
    }

    /// The common timeout of duration `d` (made on first use, at most 255 per base).
    ///
    /// # Errors
    ///
    /// [`Error::Full`], [`Error::Closed`].
    pub fn common_timeout(&self, d: Duration) -> Result<CommonTimeout, Error> {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let index = self.with(|st| {
            if st.ctl.closed {
                return Err(Error::Closed);
            }
            st.timers.common(ns)
        })?;
        Ok(CommonTimeout {
            base: self.id,
            index,
            duration: d,
        })
    }

    /// Makes the event non-pending and takes it off the active queue (libevent's `event_del`);
    /// an event that is neither pending nor queued stays as it is, and the call succeeds (the
    /// key stays valid).
    ///
    /// Called from another thread while the event's callback runs, it removes the event
    /// first — the loop cannot start it again — and then waits until the callback has
    /// returned: afterwards the callback is not running and will not run (unless it is added
    /// or activated again). Called from the loop thread (a callback), it never waits.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Notify`] (the event was deleted; the
    /// loop could not be woken).
    pub fn delete(&self, key: Key) -> Result<(), Error> {
        self.remove(
            key,
            #[inline(always)]
            |st, idx, w, last| {
                if last && st.frees_on_delete(idx) {
                    st.free(&self.words, idx)
                } else {
                    (None, st.delete(w, idx))
                }
            },
        )
    }

    /// Like [`delete`](Base::delete), but never waits (libevent's `event_del_noblock`): the
    /// event is non-pending and off the active queue when this returns, and the key stays
    /// valid. If its callback runs on another thread right now, it may still be running (it
    /// is not started again unless the event is added or activated again). For a callback
    /// that must be over before its state goes, use [`delete`](Base::delete) or
    /// [`finalize`](Base::finalize).
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Notify`] (the event was deleted; the
    /// loop could not be woken).
    pub fn delete_nowait(&self, key: Key) -> Result<(), Error> {
        let (cb, need) = self.with(|st| {
            let (idx, w) = self.check_at(st, key)?;
            let running_elsewhere =
                st.current == idx && st.ctl.running && st.ctl.loop_thread != C::thread_id();
            let (cb, wake) = if !running_elsewhere && st.frees_on_delete(idx) {
                st.free(&self.words, idx)
            } else {
                (None, st.delete(w, idx))
            };
            Ok::<_, Error>((cb, wake && self.request(st)))
        })?;
        drop(cb); // user state is dropped outside the lock
        self.wake(need)
    }

    /// Deletes the event and frees its slot: the key is stale from now on (libevent's
    /// `event_free`). Waits for a running callback like [`delete`](Base::delete) (removing
    /// the event first); called from the event's own callback, the slot is released when the
    /// callback returns.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Notify`].
    pub fn free(&self, key: Key) -> Result<(), Error> {
        self.remove(key, |st, idx, w, last| {
            if last {
                st.free(&self.words, idx)
            } else {
                (None, st.delete(w, idx))
            }
        })
    }

    /// Frees every idle event (neither pending, nor queued, nor running, nor being finalized)
    /// whose [`tag`](Event::tag) `select` accepts, and returns how many it freed; their keys
    /// are stale from then on. For a program that may lose track of events it made (an
    /// adapter whose callers free their own records of events without deleting them) and
    /// reclaims the idle ones now and then: a busy event is never taken, so one that
    /// becomes pending or queued meanwhile stays. One pass over every slot, 16 events freed
    /// per lock section; each section's callbacks are dropped after the lock is released.
    /// `select` runs under the lock: it must not call the base.
    pub fn free_idle(&self, mut select: impl FnMut(usize) -> bool) -> usize {
        use crate::state::slots::{flag, kind, words_load};
        const BATCH: usize = 16;
        let busy = flag::PENDING | flag::RUNNING | flag::FINALIZING | flag::ZOMBIE | flag::LATER;
        let mut next = 0usize;
        let mut freed = 0;
        loop {
            let mut batch: [Option<C::Callback>; BATCH] = core::array::from_fn(|_| None);
            let (end, need) = self.with(|st| {
                let mut n = 0;
                let mut wake = false;
                let end = loop {
                    if n == BATCH || st.ctl.closed {
                        break st.ctl.closed;
                    }
                    let Some(s) = st.slots.v.get(next) else {
                        break true;
                    };
                    let idx = next as u32;
                    next += 1;
                    if s.kind() == kind::FREE
                        || s.flags & busy != 0
                        || word::ready(words_load(&self.words, idx)) != 0
                        || !select(st.slots.tag(idx))
                    {
                        continue;
                    }
                    let (cb, w) = st.free(&self.words, idx);
                    wake |= w;
                    batch[n] = cb;
                    n += 1;
                };
                freed += n;
                (end, wake && self.request(st))
            });
            drop(batch); // user state is dropped outside the lock
                         // An idle event's freeing changes nothing the loop waits for; a wake it would
                         // still need is best effort, as the events are gone either way.
            let _ = self.wake(need);
            if end {
                return freed;
            }
        }
    }

    /// Deletes the event without waiting, and runs `finalizer` on the loop thread once the
    /// event's callback cannot run any more (libevent's `event_finalize`); the slot is then
    /// freed. The key is stale from now on. The finalizer is called with [`Ready::FINALIZE`].
    ///
    /// Unlike [`delete`](Base::delete) from another thread, this never blocks, so it cannot
    /// deadlock against a lock the running callback waits for.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Notify`].
    pub fn finalize(&self, key: Key, finalizer: C::Callback) -> Result<(), Error> {
        let mut fin = Some(finalizer);
        let r = self.with(|st| {
            let idx = self.check(st, key)?;
            let (old, wake) = st.finalize(&self.words, idx, fin.take().expect("once"));
            Ok::<_, Error>((old, wake && self.request(st)))
        });
        let (old, need) = r?;
        drop(old);
        self.wake(need)
    }

    /// Queues the event to run with `ready` (libevent's `event_active`); an empty `ready` means
    /// [`Ready::USER`]. Works whether or not the event is pending.
    ///
    /// If the event is already queued with these reasons, this costs one fence and one atomic
    /// load: no lock, no syscall. The callback is guaranteed to start after this call and to
    /// observe every write this thread made before it.
    ///
    /// # Errors
    ///
    /// [`Error::Stale`], [`Error::Foreign`], [`Error::Notify`].
    #[inline]
    pub fn activate(&self, key: Key, ready: Ready) -> Result<(), Error> {
        if key.base != self.id {
            return Err(Error::Foreign);
        }
        let ready = if ready.is_empty() { Ready::USER } else { ready };
        // Pairs with the fence the loop issues after clearing a word and before running the
        // callback: if the load below still sees the word queued, that callback run starts
        // after the fence and sees what this thread wrote before it. (The loom models fail
        // without it: an activation is lost, or a message pushed before it is not received.)
        //
        // A fence on every architecture. On x86_64 it is an `mfence`; the alternative, a
        // locked read-modify-write of a private stack word (also a full barrier on x86, but
        // only by the hardware's rules, not the language's), was measured no faster on the
        // Intel Xeon this was tuned on: 8.2 ns either way when the stack word is reused, 12.1
        // ns for a fresh one per call (what `activate` would get: the store that initializes
        // it stalls the locked op), and W2 at 4 threads gave a median of 60 M triggers/s with
        // the fence and 51 M with the locked op (10 interleaved runs each). AMD cores, where
        // `mfence` is slower, were not measured.
        fence(Ordering::SeqCst);
        if let Some(w) = self.words.get(key.index() as usize) {
            let cur = w.load(Ordering::Relaxed);
            if word::gen(cur) == key.gen()
                && word::ready(cur) & ready.bits() == ready.bits()
                && self.wake_failed.load(Ordering::Relaxed) == 0
            {
                return Ok(());
            }
        }
        self.activate_slow(key, ready)
    }

    #[inline(never)]
    fn activate_slow(&self, key: Key, ready: Ready) -> Result<(), Error> {
        let need = self.with(|st| {
            let idx = self.check(st, key)?;
            let queued_now = st.enqueue(&self.words, idx, ready);
            // After a failed write an already-queued event may have no notification behind it.
            Ok::<_, Error>((queued_now || st.wake.failed()) && self.request(st))
        })?;
        self.wake(need)
    }

    /// Changes the priority of an event that is not queued.
    ///
    /// # Errors
    ///
    /// [`Error::Priority`], [`Error::Invalid`] (queued), [`Error::Stale`], [`Error::Foreign`].
    pub fn set_priority(&self, key: Key, priority: u8) -> Result<(), Error> {
        self.with(|st| {
            let idx = self.check(st, key)?;
            st.set_priority(&self.words, idx, priority)
        })
    }

    /// Stops the loop after the callback that runs now, or right away if none runs. If the
    /// loop is not running, the *next* run returns at once (libevent drops such a request).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::Notify`].
    pub fn loop_break(&self) -> Result<(), Error> {
        let need = self.with(|st| {
            if st.ctl.closed {
                return Err(Error::Closed);
            }
            st.ctl.brk = true;
            Ok(self.request(st))
        })?;
        self.wake(need)
    }

    /// Stops the loop once `after` has passed (`None`: now), after it runs the callbacks of
    /// that iteration. Like [`loop_break`](Base::loop_break), a request made while the loop is
    /// not running applies to the next run.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], [`Error::Notify`].
    pub fn loop_exit(&self, after: Option<Duration>) -> Result<(), Error> {
        let at = after.map(|d| self.clock.now_coarse().saturating_add(d).as_nanos());
        let need = self.with(|st| {
            if st.ctl.closed {
                return Err(Error::Closed);
            }
            match at {
                None => st.ctl.exit = true,
                Some(at) => st.ctl.exit_at = st.ctl.exit_at.min(at),
            }
            Ok(self.request(st))
        })?;
        self.wake(need)
    }

    /// From a callback: stop running callbacks and poll for new events now, before the rest
    /// of the active queue (libevent's `event_base_loopcontinue`).
    pub fn loop_continue(&self) {
        self.with(|st| st.ctl.cont = true);
    }

    /// After `fork()`, in the child: forget the notification that may have been in flight,
    /// what the poller has registered (the next run [`reset`](crate::Poller::reset)s every
    /// watched source on it), and any run that was in progress in a thread that does not
    /// exist in the child. The caller re-makes the notifier's and poller's OS objects
    /// ([`with_poller`](Base::with_poller)), or, if that run's thread took the poller with
    /// it, installs a new one ([`replace_poller`](Base::replace_poller)); `rouse-std` does.
    ///
    /// # Safety
    ///
    /// Only in a freshly forked child, while it is single-threaded, before any thread of the
    /// child uses the base. Called while a loop runs in this process (or may start), it makes
    /// that loop miss its next wake-up and lets a second loop run on the same base at once;
    /// the safe forms (`rouse-std`'s `reinit_after_fork`) check that a fork happened.
    #[allow(unsafe_code)]
    pub unsafe fn reinit(&self) {
        self.with(|st| st.reinit());
    }
}

/// A poller taken out by `with_poller`, put back when dropped (also when `f` panics).
struct Held<'a, C: Config> {
    base: &'a Base<C>,
    poller: Option<C::Poller>,
}

impl<C: Config> Drop for Held<'_, C> {
    fn drop(&mut self) {
        if let Some(p) = self.poller.take() {
            self.base.put_poller(p);
        }
    }
}

impl<C: Config> Drop for Base<C> {
    /// Runs the finalizers still queued (as libevent's `event_base_free` does), then drops
    /// every callback.
    fn drop(&mut self) {
        self.close();
    }
}

impl<C: Config> Base<C> {
    /// Closes the base: it takes no more events ([`Error::Closed`]), the finalizers still
    /// queued run, and every event is freed (their callbacks dropped, after the lock is
    /// released). Use it to shut a base down while other threads may still hold keys: every
    /// later call returns [`Error::Closed`]. Called from a callback, the running event is freed
    /// when it returns.
    ///
    /// **Loop owner only**: the finalizers run on the calling thread.
    pub fn close(&self) {
        self.with(|st| {
            st.ctl.closed = true;
            st.promote_later();
        });
        self.run_finalizers();
        let mut from = 0;
        while let Some(cb) = self.with(|st| {
            let idx = st.next_live(from)?;
            from = idx + 1;
            Some(st.free(&self.words, idx).0)
        }) {
            drop(cb); // outside the lock
        }
    }

    /// Runs every queued finalizer now, on the calling thread.
    fn run_finalizers(&self) {
        loop {
            // One queued job per critical section: a finalizer to run, or another job whose
            // callback (if the slot goes) is dropped after the lock is released.
            let next = self.with(|st| {
                let job =
                    (0..st.opts.priorities).find_map(|p| st.begin(&self.words, p, &self.clock))?;
                if job.finalizer {
                    return Some(Ok(job));
                }
                Some(Err(st.end(&self.words, job.idx, job.cb, false)))
            });
            let mut job = match next {
                None => break,
                Some(Err(rest)) => {
                    drop(rest); // outside the lock
                    continue;
                }
                Some(Ok(job)) => job,
            };
            let fired = crate::Fired {
                key: Key::new(self.id, job.idx, job.gen),
                ready: Ready::FINALIZE,
                tag: job.tag,
            };
            crate::Callback::call(&mut job.cb, self, fired);
            let _ = self.with(|st| st.end(&self.words, job.idx, job.cb, true));
        }
    }
}
