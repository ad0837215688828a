//! Ready-made configs over the mocks.

use core::marker::PhantomData;

use crate::seam::{Config, Fixed, Lock, NoLock, Storage};
use crate::{Base, Fired};

use super::{ManualClock, Notifier};

/// A [`Config`] over the mocks: lock `L` (default [`NoLock`]), storage `S` (default
/// `Fixed<64>`), `fn` callbacks, and a `&'static` mock notifier and clock (keep them in
/// `static`s). Every caller counts as the loop thread (`thread_id` is 0).
#[derive(Debug)]
pub struct Mock<L = NoLock, S = Fixed<64>>(PhantomData<fn() -> (L, S)>);

impl<L: Lock, S: Storage> Config for Mock<L, S> {
    type Lock = L;
    type Notifier = &'static Notifier;
    type Clock = &'static ManualClock;
    type Storage = S;
    type Callback = fn(&Base<Self>, Fired);

    fn thread_id() -> usize {
        0
    }
}

/// Like [`Mock`], with boxed closures as callbacks and the notifier and clock shared through
/// `Arc`s (feature `alloc`).
#[cfg(feature = "alloc")]
#[derive(Debug)]
pub struct BoxedMock<L = NoLock, S = Fixed<64>>(PhantomData<fn() -> (L, S)>);

#[cfg(feature = "alloc")]
impl<L: Lock, S: Storage> Config for BoxedMock<L, S> {
    type Lock = L;
    type Notifier = alloc::sync::Arc<Notifier>;
    type Clock = alloc::sync::Arc<ManualClock>;
    type Storage = S;
    type Callback = alloc::boxed::Box<dyn FnMut(&Base<Self>, Fired) + Send>;

    fn thread_id() -> usize {
        0
    }
}
