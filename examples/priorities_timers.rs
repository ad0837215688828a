//! Priorities, a re-armed one-shot timer and an interval, in three short runs whose output
//! is the same every time (the tests compare it line by line). Only `rouse-std`.
//!
//! 1. **Priorities**: three user events at priorities 0 (runs first), 1 and 2. Activated low
//!    first, they run high first; one activated from a running callback at a higher priority
//!    runs before the rest of the lower ones (the loop polls again and starts from the top).
//! 2. **A re-armed one-shot timer** (a watchdog): each tick of an interval re-arms it before it
//!    can fire, so it fires once, after the last re-arm. Re-arming a timer whose expiry is
//!    already queued cancels that queued run: even a loop that wakes up late, with the tick
//!    and the watchdog both due, runs the watchdog only after its last re-arm.
//! 3. **An interval that falls behind**: a callback stalls the loop for five periods; the
//!    interval then runs once, late, and re-arms from now: no burst of the missed runs.
//!
//! ```sh
//! cargo run --example priorities_timers
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use rouse_std::{Builder, LocalBase, Ready};

fn main() -> std::io::Result<()> {
    let base = Builder::new().priorities(3).build_local()?;
    priorities(&base)?;
    rearmed_one_shot(&base)?;
    falling_behind(&base)?;
    println!("done");
    Ok(())
}

fn priorities(base: &LocalBase) -> std::io::Result<()> {
    println!("1. priorities");
    let high = base.local().with_priority(0).add_user(|_, _| {
        println!("   priority 0: high (activated by mid, runs before low)");
    })?;
    let mid = base.local().with_priority(1).add_user(move |cx, _| {
        println!("   priority 1: mid");
        cx.activate(high, Ready::USER).unwrap();
    })?;
    let low = base.local().with_priority(2).add_user(|cx, _| {
        println!("   priority 2: low");
        cx.loop_break().unwrap(); // the user events stay pending: stop here
    })?;
    base.activate(low, Ready::USER)?; // queued first
    base.activate(mid, Ready::USER)?;
    base.run()?;
    for key in [high, mid, low] {
        base.free(key)?;
    }
    Ok(())
}

fn rearmed_one_shot(base: &LocalBase) -> std::io::Result<()> {
    const TICK: Duration = Duration::from_millis(20);
    const WATCHDOG: Duration = Duration::from_millis(50);
    println!("2. a one-shot timer re-armed by an interval");
    let rearms = Rc::new(Cell::new(0));
    let r = rearms.clone();
    // A one-shot timer frees itself once it ran: `run` returns when it and the interval are
    // gone.
    let watchdog = base.local().add_timer(WATCHDOG, move |_, _| {
        println!("   watchdog fired once, after {} re-arms", r.get());
    })?;
    let r = rearms.clone();
    base.local().add_interval(TICK, move |cx, fired| {
        r.set(r.get() + 1);
        // Re-arm: the watchdog now fires WATCHDOG from now (a queued expiry is cancelled).
        cx.add(watchdog, Some(WATCHDOG)).unwrap();
        println!("   tick {}: watchdog re-armed", r.get());
        if r.get() == 3 {
            cx.free(fired.key).unwrap(); // stop ticking; the watchdog fires 50 ms later
        }
    })?;
    base.run()?;
    Ok(())
}

fn falling_behind(base: &LocalBase) -> std::io::Result<()> {
    const EVERY: Duration = Duration::from_millis(10);
    println!("3. an interval that falls behind");
    let runs = Rc::new(Cell::new(0u32));
    let stall_end = Rc::new(Cell::new(0u64));
    let (n, end) = (runs.clone(), stall_end.clone());
    base.local().add_interval(EVERY, move |cx, fired| {
        n.set(n.get() + 1);
        // The next deadline, re-armed before this run started.
        let next = cx.info(fired.key).unwrap().deadline.map(|d| d.as_nanos());
        match n.get() {
            1 => {
                println!("   run 1 stalls the loop for 55 ms (5 periods)");
                std::thread::sleep(EVERY * 11 / 2);
                end.set(cx.now().as_nanos());
            }
            2 => {
                // Due long ago, it runs once, late; the next run is due one period after the
                // loop found it late, not at the missed deadlines (which lie in the past).
                let rearmed_from_now =
                    next.is_some_and(|at| at >= end.get() + EVERY.as_nanos() as u64);
                println!(
                    "   run 2 runs late, once; next run re-armed from now: {rearmed_from_now} \
                     (no catch-up burst)"
                );
            }
            _ => {
                println!("   run 3 is back on a 10 ms cadence");
                cx.free(fired.key).unwrap();
            }
        }
    })?;
    base.run()?;
    println!("   {} runs in all", runs.get());
    Ok(())
}
