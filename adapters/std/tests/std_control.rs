#![cfg(not(miri))]
//! Loop control on a real base: a break or exit requested by a callback ends that run, and
//! only that run.

#[path = "util/mod.rs"]
mod util;

use std::io;

use rouse_core::{Exit, RunFlags};
use util::default_base;

/// A callback of a `once` run asks for a break (or exit): that run ends and says so, and the
/// request does not outlive it. (libevent reports it through `event_base_got_break` and clears
/// it when the next loop starts.)
#[test]
fn a_stop_from_a_callback_of_a_once_run_does_not_leak_into_the_next_run() -> io::Result<()> {
    for (stop, expected) in [("loop_break", Exit::Break), ("loop_exit", Exit::Exit)] {
        for flags in [RunFlags::ONCE, RunFlags::ONCE_NONBLOCK] {
            let base = default_base()?;
            let key = base.add_user(move |events, _| match stop {
                "loop_break" => events.loop_break().unwrap(),
                _ => events.loop_exit(None).unwrap(),
            })?;
            base.activate(key, rouse_core::Ready::USER)?;
            assert_eq!(
                base.run_with(flags)?,
                expected,
                "{stop} from a callback of a {flags:?} run"
            );
            // Nothing active: a non-blocking pass has nothing to do.
            assert_eq!(
                base.run_with(RunFlags::ONCE_NONBLOCK)?,
                Exit::Done,
                "{stop} from a callback of the previous {flags:?} run stopped this one too"
            );
        }
    }
    Ok(())
}

/// The same request from a callback of a run that is not `once` is consumed by that run.
#[test]
fn a_stop_requested_by_a_callback_ends_an_ordinary_run_only() -> io::Result<()> {
    for (stop, expected) in [("loop_break", Exit::Break), ("loop_exit", Exit::Exit)] {
        for flags in [RunFlags::UNTIL_EMPTY, RunFlags::NONBLOCK, RunFlags::FOREVER] {
            let base = default_base()?;
            let key = base.add_user(move |events, _| match stop {
                "loop_break" => events.loop_break().unwrap(),
                _ => events.loop_exit(None).unwrap(),
            })?;
            base.activate(key, rouse_core::Ready::USER)?;
            assert_eq!(base.run_with(flags)?, expected, "{stop}, {flags:?}");
            assert_eq!(
                base.run_with(RunFlags::ONCE_NONBLOCK)?,
                Exit::Done,
                "{stop}, {flags:?}"
            );
        }
    }
    Ok(())
}
