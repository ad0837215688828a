//! What a callback gets: the events of its base, without the loop owner's operations.

use std::fmt;
use std::marker::PhantomData;

use crate::config::Threaded;
use crate::flavor::Flavor;

/// The context a callback runs in: it may add, delete and activate events (its own included),
/// stop the loop, and [`loop_continue`](Context::loop_continue) — what a
/// [`Handle`](crate::Handle) may do, plus that. It cannot run the loop, re-initialize the base
/// or reach its poller or notifier: those are the [`Base`](crate::Base)'s.
///
/// Shared state goes into the closure (a [`Handle`](crate::Handle) too, to hand work to
/// other threads that post results back):
///
/// ```
/// use rouse_std::{Base, Context, Fired};
///
/// fn stop(cx: &Context<'_>, _: Fired) {
///     cx.loop_break().unwrap();
/// }
/// let base = Base::new()?;
/// let user = base.add_user(stop)?;
/// base.activate(user, rouse_std::Ready::USER)?;
/// base.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A `Context` is neither `Send` nor `Sync`: it stays on the loop thread, in the callback it
/// was given to (hand a [`Handle`](crate::Handle) or a [`BaseRef`] to other threads). That is
/// what lets a [`LoopCell`](crate::LoopCell) share state between callbacks without a lock.
///
/// ```compile_fail
/// fn sync<T: Sync>(_: &T) {}
/// fn callback(cx: &rouse_std::Context<'_>) {
///     sync(cx); // error: a `Context` is not `Sync`
/// }
/// ```
pub struct Context<'a, F: Flavor = Threaded> {
    core: &'a rouse_core::Base<F>,
    /// Neither `Send` nor `Sync` (see above).
    _loop_thread: PhantomData<*const ()>,
}

impl<'a, F: Flavor> Context<'a, F> {
    #[inline]
    pub(crate) fn new(core: &'a rouse_core::Base<F>) -> Context<'a, F> {
        Context {
            core,
            _loop_thread: PhantomData,
        }
    }

    /// The core base's address (what a [`LoopCell`](crate::LoopCell) is bound to).
    #[inline]
    pub(crate) fn core_addr(&self) -> usize {
        self.core as *const rouse_core::Base<F> as usize
    }

    #[inline]
    fn core(&self) -> &rouse_core::Base<F> {
        self.core
    }

    #[inline]
    pub(crate) fn core_ref(&self) -> &'a rouse_core::Base<F> {
        self.core
    }

    /// Stops running callbacks and polls for new events now, before the rest of the active
    /// queue (libevent's `event_base_loopcontinue`).
    pub fn loop_continue(&self) {
        self.core.loop_continue()
    }
}

impl<F: Flavor> fmt::Debug for Context<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("base", &self.core.id())
            .finish_non_exhaustive()
    }
}

crate::api::shared_api!(impl['a, F: Flavor] Context<'a, F>, Context, F, crate::api::wrap, [+ Send]);

/// The operations a [`Base`](crate::Base), a [`Handle`](crate::Handle) and a [`Context`] share,
/// borrowed from any of them ([`Base::base_ref`](crate::Base::base_ref),
/// [`Handle::base_ref`](crate::Handle::base_ref), [`Context::base_ref`]): write a helper once
/// against it, and call it from the loop owner, another thread or a callback.
///
/// ```
/// use rouse_std::{Base, BaseRef, Key, Ready};
///
/// fn poke(events: BaseRef<'_>, key: Key) -> std::io::Result<()> {
///     events.activate(key, Ready::USER)
/// }
/// let base = Base::new()?;
/// let user = base.add_user(|cx, _| cx.loop_break().unwrap())?;
/// let handle = base.handle();
/// std::thread::spawn(move || poke(handle.base_ref(), user)).join().unwrap()?;
/// base.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct BaseRef<'a, F: Flavor = Threaded> {
    core: &'a rouse_core::Base<F>,
}

impl<F: Flavor> Clone for BaseRef<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Flavor> Copy for BaseRef<'_, F> {}

impl<F: Flavor> fmt::Debug for BaseRef<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaseRef")
            .field("base", &self.core.id())
            .finish_non_exhaustive()
    }
}

impl<'a, F: Flavor> BaseRef<'a, F> {
    pub(crate) fn new(core: &'a rouse_core::Base<F>) -> BaseRef<'a, F> {
        BaseRef { core }
    }

    /// The core base's address (what a [`LoopCell`](crate::LoopCell) is bound to).
    #[inline]
    pub(crate) fn core_addr(&self) -> usize {
        self.core as *const rouse_core::Base<F> as usize
    }

    #[inline]
    fn core(&self) -> &rouse_core::Base<F> {
        self.core
    }
}

impl<'a, F: Flavor> Context<'a, F> {
    /// The shared operations, for helpers that also serve a base or a handle.
    pub fn base_ref(&self) -> BaseRef<'a, F> {
        BaseRef::new(self.core)
    }
}

crate::api::shared_api!(impl['a, F: Flavor] BaseRef<'a, F>, BaseRef, F, crate::api::wrap, [+ Send]);
