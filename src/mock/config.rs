//! Ready-made configs over the mocks.

use core::marker::PhantomData;

use crate::seam::{Config, Fixed, Lock, NoLock, Storage};
use crate::{Base, Fired};

use super::{ManualClock, Notifier, Poller};

/// The id of the calling thread for the mock configs.
///
/// With the `std` feature, the address of a thread-local: equal for calls from one thread,
/// different for threads that run at the same time, so a cross-thread
/// [`delete`](Base::delete) waits for a running callback as it does on `rouse-std`. Without
/// `std` there are no threads to tell apart and every caller is thread 0, the loop thread (a
/// multi-core `no_std` test writes its own [`Config`] with its own [`Config::thread_id`]).
pub fn thread_id() -> usize {
    #[cfg(feature = "std")]
    {
        std::thread_local! {
            static MARK: u8 = const { 0 };
        }
        MARK.with(|m| (m as *const u8).addr())
    }
    #[cfg(not(feature = "std"))]
    {
        0
    }
}

/// A [`Config`] over the mocks: lock `L` (default [`NoLock`]), storage `S` (default
/// `Fixed<64>`), `fn` callbacks, and a `&'static` mock notifier and clock (keep them in
/// `static`s). Threads are told apart by [`thread_id`].
#[derive(Debug)]
pub struct Mock<L = NoLock, S = Fixed<64>>(PhantomData<fn() -> (L, S)>);

impl<L: Lock, S: Storage> Config for Mock<L, S> {
    type Lock = L;
    type Notifier = &'static Notifier;
    type Poller = Poller;
    type Clock = &'static ManualClock;
    type Storage = S;
    type Callback = fn(&Base<Self>, Fired);

    fn thread_id() -> usize {
        thread_id()
    }
}

/// A lock [`BoxedMock`] can use, naming the closures it takes: `Send` closures for a lock that
/// lets the base be shared across threads ([`SpinLock`](crate::SpinLock)), any closure for
/// [`NoLock`] (whose base never leaves its thread, so `Rc<RefCell<_>>` captures are fine).
///
/// Implement it for your own lock to use it with [`BoxedMock`]:
///
/// ```
/// use rouse_core::{mock::BoxedLock, Base, Config, Fired, Lock, SpinLock};
///
/// struct MyLock; // say, a wrapper around an interrupt-free section
/// impl Lock for MyLock {
///     type Cell<T> = <SpinLock as Lock>::Cell<T>;
///     fn new<T>(value: T) -> Self::Cell<T> {
///         SpinLock::new(value)
///     }
///     fn with<T, R>(cell: &Self::Cell<T>, f: impl FnOnce(&mut T) -> R) -> R {
///         SpinLock::with(cell, f)
///     }
/// }
/// impl BoxedLock for MyLock {
///     type Closure<C: Config> = Box<dyn FnMut(&Base<C>, Fired) + Send>;
/// }
/// ```
#[cfg(feature = "alloc")]
pub trait BoxedLock: Lock {
    /// The boxed closure type of a [`BoxedMock`] over this lock.
    type Closure<C: Config>: crate::Callback<C>;
}

#[cfg(feature = "alloc")]
impl BoxedLock for NoLock {
    type Closure<C: Config> = alloc::boxed::Box<dyn FnMut(&Base<C>, Fired)>;
}

#[cfg(feature = "alloc")]
impl BoxedLock for crate::SpinLock {
    type Closure<C: Config> = alloc::boxed::Box<dyn FnMut(&Base<C>, Fired) + Send>;
}

/// Like [`Mock`], with boxed closures as callbacks and the notifier and clock shared through
/// `Arc`s (feature `alloc`). The closures must be `Send` only if the lock makes the base
/// shareable across threads ([`BoxedLock`]): with the default [`NoLock`] they may capture
/// `Rc<RefCell<_>>`.
///
/// ```
/// use std::{cell::RefCell, rc::Rc, sync::Arc};
/// use rouse_core::{mock, Base, Event, Exit, Options, Ready};
///
/// let base: Base<mock::BoxedMock> =
///     Base::new_mock(Arc::new(mock::Notifier::new()), Arc::new(mock::ManualClock::new()), Options::new())
///         .unwrap();
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let log = seen.clone();
/// let k = base
///     .new_event(Event::user(), Box::new(move |_, fired| log.borrow_mut().push(fired.ready)))
///     .unwrap();
/// base.activate(k, Ready::USER).unwrap();
/// assert_eq!(base.mock_poller().run_until_idle(), Ok(Exit::Empty));
/// assert_eq!(*seen.borrow(), [Ready::USER]);
/// ```
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct BoxedMock<L = NoLock, S = Fixed<64>>(PhantomData<fn() -> (L, S)>);

#[cfg(feature = "alloc")]
impl<L: BoxedLock, S: Storage> Config for BoxedMock<L, S> {
    type Lock = L;
    type Notifier = alloc::sync::Arc<Notifier>;
    type Poller = Poller;
    type Clock = alloc::sync::Arc<ManualClock>;
    type Storage = S;
    type Callback = L::Closure<Self>;

    fn thread_id() -> usize {
        thread_id()
    }
}
