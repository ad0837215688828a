//! The spin before blocking on the mocks (deterministic: the manual clock moves only in the
//! waits): the adaptive spin turns on after a wake-up that came soon after the loop blocked,
//! stays off when wake-ups come long after, and the fixed spin runs before every blocking wait.
//! (`src/state/spin.rs` tests the adaptation's hits, miss streak and CPU budget directly.)

#[path = "core/fixture.rs"]
mod fixture;

use std::cell::Cell;
use std::time::Duration;

use fixture::{fixture, nop};
use rouse_core::{Event, Exit, Options, Ready, WakeStats};

const WINDOW: Duration = Duration::from_micros(3);

/// `rounds` wakes, each `delay` after the loop blocked (another thread's activation, made from
/// the poller's wait hook), then a `loop_exit` the same way. Returns the wake counters.
fn wakes(opts: Options, delay: Duration, rounds: u32) -> WakeStats {
    let fx = fixture(opts);
    fx.clock.advance(Duration::from_millis(1)); // the spin's budget grows with time
    let k = fx.base.new_event(Event::user().persist(), nop()).unwrap();
    fx.base.add(k, None).unwrap();
    let n = Cell::new(0);
    let hook = |_| {
        n.set(n.get() + 1);
        fx.clock.advance(delay);
        if n.get() <= rounds {
            fx.base.activate(k, Ready::USER).unwrap();
        } else {
            fx.base.loop_exit(None).unwrap();
        }
    };
    let mut poller = fx.base.mock_poller().on_wait(&hook);
    assert_eq!(poller.run(), Ok(Exit::Exit));
    assert_eq!(n.get(), rounds + 1, "one blocking wait per wake");
    fx.base.wake_stats()
}

#[test]
fn the_adaptive_spin_turns_on_after_a_wake_soon_after_blocking() {
    let s = wakes(
        Options::new().adaptive_spin(WINDOW),
        Duration::from_micros(1),
        5,
    );
    // The first wait blocks at once (nothing seen yet); each later one spins first. The mock
    // clock stands still while the loop spins and no other thread runs: every spin misses,
    // and the short sleep after it keeps the spin on.
    assert_eq!(s.spins, 5);
    assert_eq!(s.spin_hits, 0);
    assert_eq!(s.blocking_polls, 6);
    assert_eq!(s.writes, 6);
}

#[test]
fn the_adaptive_spin_stays_off_when_wakes_come_long_after_blocking() {
    // W6's shape: a wake every 500 µs.
    let s = wakes(
        Options::new().adaptive_spin(WINDOW),
        Duration::from_micros(500),
        20,
    );
    assert_eq!(s.spins, 0);
    assert_eq!(s.blocking_polls, 21);
}

#[test]
fn the_fixed_spin_runs_before_every_blocking_wait() {
    let s = wakes(
        Options::new().spin_before_block(WINDOW),
        Duration::from_micros(500),
        4,
    );
    assert_eq!(s.spins, 5);
    assert_eq!(s.spin_hits, 0);
    assert_eq!(s.blocking_polls, 5);
}

#[test]
fn no_spin_by_default_and_zero_turns_either_off() {
    for opts in [
        Options::new(),
        Options::new().adaptive_spin(Duration::ZERO),
        Options::new()
            .adaptive_spin(WINDOW)
            .spin_before_block(Duration::ZERO),
        Options::new()
            .spin_before_block(WINDOW)
            .adaptive_spin(Duration::ZERO),
    ] {
        let s = wakes(opts, Duration::from_micros(1), 3);
        assert_eq!(s.spins, 0);
        assert_eq!(s.blocking_polls, 4);
    }
}
