//! Shared fixtures for the core's loop tests: a base on the shipped mocks.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use rouse_core::mock::{BoxedMock, ManualClock, Notifier};
use rouse_core::{Base, Fired, Fixed, Options};

/// The config of every core loop test: no lock, 64 fixed slots, boxed closures (that need
/// not be `Send`: the base never leaves its thread).
pub type Cfg = BoxedMock<rouse_core::NoLock, Fixed<64>>;
pub type Cb = Box<dyn FnMut(&Base<Cfg>, Fired)>;

pub struct Fx {
    pub clock: Arc<ManualClock>,
    pub notifier: Arc<Notifier>,
    pub base: Base<Cfg>,
}

pub fn fixture(opts: Options) -> Fx {
    let clock = Arc::new(ManualClock::new());
    let notifier = Arc::new(Notifier::new());
    let base = Base::new_mock(notifier.clone(), clock.clone(), opts).expect("base");
    Fx {
        clock,
        notifier,
        base,
    }
}

pub fn cb(f: impl FnMut(&Base<Cfg>, Fired) + 'static) -> Cb {
    Box::new(f)
}

/// A callback that does nothing.
pub fn nop() -> Cb {
    Box::new(|_, _| {})
}

/// A shared, ordered record of what ran.
#[derive(Clone, Default)]
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T: Clone> Log<T> {
    pub fn new() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
    pub fn push(&self, v: T) {
        self.0.lock().unwrap().push(v);
    }
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}
