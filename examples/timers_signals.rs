//! Timers and signals on a single-threaded base: a one-shot timer, an interval, a common
//! timeout shared by several timers, and SIGINT to stop cleanly. Each firing prints how late it
//! was. Timers never fire early; how late depends on the OS and the machine's load (Linux lets
//! a sleep of T overrun by up to T/1000 as "timer slack", so a 500 ms wait typically ends about
//! half a millisecond late).
//!
//! The base is a `LocalBase`: no lock and no notifier, since nothing but this thread touches
//! it, and callbacks need not be `Send` (they share an `Rc`).
//!
//! ```sh
//! cargo run --example timers_signals                  # runs 3 s; Ctrl-C stops it earlier
//! cargo run --example timers_signals -- --seconds 10
//! ```

use std::cell::Cell;
use std::error::Error;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rouse_std::{BaseRef, Event, Exit, Key, Local, LocalBase};

fn main() -> Result<(), Box<dyn Error>> {
    let duration = parse_args()?;
    let seconds = duration.as_secs_f64();
    let base = LocalBase::new_local()?;
    let start = Instant::now();
    let fired = Rc::new(Cell::new(0u32));
    // Prints a firing; `due` is taken just before the timer is added (the base reads its clock
    // a moment later), so the lateness shown can only overstate the real one.
    let report = {
        let fired = fired.clone();
        move |what: &str, due: Instant| {
            fired.set(fired.get() + 1);
            let now = Instant::now();
            println!(
                "[{:7.1} ms] {what:<34} late {:6.1} µs",
                (now - start).as_secs_f64() * 1e3,
                now.saturating_duration_since(due).as_secs_f64() * 1e6
            );
        }
    };

    // A common timeout: timers of one duration armed through it cost O(1) each (a FIFO instead
    // of the timer heap), for the "many connections with the same idle timeout" case.
    let idle = base.common_timeout(ms(750))?;
    let mut common = Vec::new();
    for i in 1..=4 {
        let (r, due) = (report.clone(), Rc::new(Cell::new(start)));
        let d = due.clone();
        // `local()`: closures that need not be `Send` (these share `Rc`s).
        let key = base.local().event(Event::timer(), move |_, _| {
            r(&format!("common timeout 750 ms, timer {i}"), d.get())
        })?;
        common.push((key, due));
    }
    // What the base, a handle and a callback share (`events()`): one helper for all.
    let arm = move |events: BaseRef<'_, Local>, (key, due): &(Key, Rc<Cell<Instant>>)| {
        due.set(Instant::now() + idle.duration());
        events.add_common(*key, idle)
    };
    // Three now...
    for timer in &common[..3] {
        arm(base.base_ref(), timer)?;
    }

    // A one-shot timer, which also arms the fourth common-timeout timer.
    let (r, due, fourth) = (report.clone(), Instant::now() + ms(250), common[3].clone());
    base.local().add_timer(ms(250), move |events, _| {
        r("one-shot 250 ms", due);
        let _ = arm(events.base_ref(), &fourth); // ...and one later, at 250 + 750 ms
    })?;

    // An interval, re-armed from its previous deadline so that it does not drift.
    let (r, every) = (report.clone(), ms(500));
    let (mut due, mut n) = (Instant::now() + every, 0);
    base.local().add_interval(every, move |_, _| {
        n += 1;
        r(&format!("interval #{n} (500 ms)"), due);
        due += every;
    })?;

    // SIGINT breaks the loop. The handler is installed now (the loop does not run yet), and
    // the previous one comes back when the event goes.
    base.add_signal(rouse_std::Signal::INT, |events, _| {
        println!("SIGINT: stopping");
        let _ = events.loop_break();
    })?;
    base.loop_exit(Some(duration))?;

    println!("running for {seconds} s; press Ctrl-C to stop earlier");
    let exit = base.run()?;
    let elapsed = start.elapsed().as_secs_f64();
    match exit {
        Exit::Break => print!("caught SIGINT after {elapsed:.2} s"),
        _ => print!("{seconds} s passed"),
    }
    println!(", {} timer callbacks; goodbye", fired.get());
    Ok(())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `--seconds N` (default 3).
fn parse_args() -> Result<Duration, Box<dyn Error>> {
    let mut duration = Duration::from_secs(3);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--seconds" => duration = Duration::try_from_secs_f64(value.parse()?)?,
            _ => return Err(format!("unknown option {flag} (use --seconds N)").into()),
        }
    }
    if duration.is_zero() {
        return Err("--seconds must be positive".into());
    }
    Ok(duration)
}
