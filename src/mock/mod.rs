//! Mocks of every seam, shipped for users: run the whole loop deterministically in a unit
//! test, with no threads, fds or real time.
//!
//! - [`Notifier`] counts notifications and can be told to fail.
//! - [`Poller`] returns what you script, records every interest change, and "sleeps" by
//!   advancing a [`ManualClock`] — never past the loop's timeout, as a real poller returns at
//!   its timeout. It is linked to the base's notifier and clock by construction
//!   ([`Base::new_mock`](crate::Base::new_mock), [`Poller::new`]), so a wake from another
//!   thread ends its wait.
//! - [`PollerGuard`] is a test's hold on the base's mock poller ([`Base::mock_poller`](crate::Base::mock_poller)):
//!   script it, read what it registered, run the base with it and, optionally, a hook that
//!   runs while the loop waits ([`on_wait`](PollerGuard::on_wait)).
//! - [`ManualClock`] moves only when told to.
//! - [`Mock`] is a ready-made [`Config`](crate::Config) over them with `fn` callbacks;
//!   [`BoxedMock`] (feature `alloc`) takes closures, `Send` ones only if its lock is shared
//!   across threads. Both tell threads apart with [`thread_id`] (feature `std`), so a
//!   cross-thread delete waits for a running callback as on `rouse-std`.
//!
//! Bounded runs end when the test's script does: [`Base::run_until_idle`](crate::Base::run_until_idle)
//! runs everything active and every scripted wait, and returns where a real loop would block;
//! [`Base::advance`](crate::Base::advance) moves the clock forward, running everything that falls
//! due on the way (tokio's `time::advance`).
//!
//! Timers due at the same instant fire in heap order, not in the order they were added (the
//! tiebreak that would fix it costs the real timer heap measurably; see `Base::add`). Under a
//! manual clock every timer added at one moment with one timeout ties: to assert their order,
//! add them to one [common timeout](crate::Base::common_timeout), whose members fire in add
//! order.
//!
//! Limits: with the `alloc` feature none in the mocks; without it, a [`Poller`] holds 32
//! scripted waits, 16 readinesses per wait and 64 registered sources (see [`Poller`]).
//!
//! ```
//! use core::time::Duration;
//! use rouse_core::{mock, Base, Event, Exit, Options};
//!
//! static CLOCK: mock::ManualClock = mock::ManualClock::new();
//! static NOTIFIER: mock::Notifier = mock::Notifier::new();
//!
//! let base: Base<mock::Mock> = Base::new_mock(&NOTIFIER, &CLOCK, Options::new()).unwrap();
//! let t = base.new_event(Event::timer(), |_, _| {}).unwrap();
//! base.add(t, Some(Duration::from_secs(5))).unwrap();
//!
//! let mut poller = base.mock_poller();
//! assert_eq!(poller.run(), Ok(Exit::Empty)); // the timer fired, nothing left
//! assert_eq!(CLOCK.now_nanos(), 5_000_000_000); // the poller "slept" exactly 5 s
//! assert_eq!(poller.last_timeout(), Some(Some(Duration::from_secs(5))));
//! ```

mod clock;
mod config;
mod notifier;
pub(crate) mod poller;

pub use crate::base::PollerGuard;
pub use clock::ManualClock;
pub use config::{thread_id, Mock};
#[cfg(feature = "alloc")]
pub use config::{BoxedLock, BoxedMock};
pub use notifier::Notifier;
pub use poller::{Link, Poller, STALE_OLD_INTEREST, TOO_MANY_SOURCES};
