//! Mocks of every seam, shipped for users: run the whole loop deterministically in a unit
//! test, with no threads, fds or real time.
//!
//! - [`Notifier`] counts notifications and can be told to fail.
//! - [`Poller`] returns what you script, records every interest change, and "sleeps" by
//!   advancing a [`ManualClock`].
//! - [`ManualClock`] moves only when told to.
//! - [`Mock`] is a ready-made [`Config`](crate::Config) over them with `fn` callbacks;
//!   [`BoxedMock`] (feature `alloc`) takes closures.
//!
//! ```
//! use core::time::Duration;
//! use rouse_core::{mock, Base, Event, Exit, Options};
//!
//! static CLOCK: mock::ManualClock = mock::ManualClock::new();
//! static NOTIFIER: mock::Notifier = mock::Notifier::new();
//!
//! let base: Base<mock::Mock> = Base::new(&NOTIFIER, &CLOCK, Options::new()).unwrap();
//! let t = base.new_event(Event::timer(), |_, _| {}).unwrap();
//! base.add(t, Some(Duration::from_secs(5))).unwrap();
//!
//! let mut poller = mock::Poller::new().with_clock(&CLOCK);
//! assert_eq!(base.run(&mut poller), Ok(Exit::Empty)); // the timer fired, nothing left
//! assert_eq!(CLOCK.now_nanos(), 5_000_000_000); // the poller "slept" exactly 5 s
//! assert_eq!(poller.last_timeout(), Some(Some(Duration::from_secs(5))));
//! ```

mod clock;
mod config;
mod notifier;
mod poller;

pub use clock::ManualClock;
#[cfg(feature = "alloc")]
pub use config::BoxedMock;
pub use config::Mock;
pub use notifier::Notifier;
pub use poller::{Poller, WOULD_BLOCK_FOREVER};
