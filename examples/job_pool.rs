//! A job pool: worker threads compute results and post them back to the loop through a
//! channel (`Base::channel`); the loop collects them, shows progress from an interval timer,
//! and stops once every result is in. Only `rouse-std`.
//!
//! - The channel's callback runs on the loop thread with each message, and its event has
//!   priority 0, ahead of the progress timer (priority 1): results are never kept waiting by
//!   lower-priority work.
//! - A send is a lock-free push plus an activation: while the channel's event is already
//!   queued it costs one atomic load, and any number of sends between two polls wake the
//!   loop at most once (the `wakes` line shows the coalescing).
//!
//! ```sh
//! cargo run --release --example job_pool -- [--jobs 200] [--workers 4]
//! ```

use std::error::Error;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use rouse_std::Base;

/// What a worker sends back.
struct Done {
    job: u64,
    worker: usize,
    value: u64,
}

/// The work: the number of Collatz steps from `n` to 1.
fn collatz_steps(mut n: u64) -> u64 {
    let mut steps = 0;
    while n > 1 {
        n = if n & 1 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
    steps
}

/// Job `i`'s input.
fn input(i: u64) -> u64 {
    (i + 1) * 7919
}

fn main() -> Result<(), Box<dyn Error>> {
    let (jobs, workers) = parse_args()?;
    let base = Base::builder().priorities(2).build()?;

    // The results, collected on the loop thread.
    let state = Arc::new(Mutex::new((
        vec![None; jobs as usize],
        0u64,
        vec![0u64; workers],
    )));
    let s = state.clone();
    let (tx, results) = base.with_priority(0).channel(move |cx, done: Done| {
        let mut st = s.lock().unwrap();
        let (slots, received, per_worker) = &mut *st;
        if slots[done.job as usize].replace(done.value).is_some() {
            println!("job {} arrived twice", done.job);
        }
        *received += 1;
        per_worker[done.worker] += 1;
        println!("job {} = {} (worker {})", done.job, done.value, done.worker);
        if *received == jobs {
            cx.loop_break().unwrap();
        }
    })?;
    let s = state.clone();
    let progress = base
        .with_priority(1)
        .add_interval(Duration::from_millis(20), move |_, _| {
            let received = s.lock().unwrap().1;
            eprintln!("progress: {received}/{jobs}");
        })?;

    // The workers take jobs from a shared queue and post each result back.
    let (job_tx, job_rx) = mpsc::channel::<u64>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let threads: Vec<_> = (0..workers)
        .map(|worker| {
            let (jobs, tx) = (job_rx.clone(), tx.clone());
            thread::spawn(move || loop {
                let job = jobs.lock().unwrap().recv();
                let Ok(job) = job else { return }; // the queue is closed and empty
                let value = collatz_steps(input(job));
                if tx.send(Done { job, worker, value }).is_err() {
                    return; // the channel is closed
                }
            })
        })
        .collect();
    drop(tx);
    for job in 0..jobs {
        job_tx.send(job)?;
    }
    drop(job_tx);

    println!("job pool: {jobs} jobs, {workers} workers");
    base.run()?; // until the channel's callback has every result
    for t in threads {
        t.join().expect("worker panicked");
    }
    base.free(progress)?;
    base.free(results)?;

    let st = state.lock().unwrap();
    let missing = st.0.iter().filter(|r| r.is_none()).count();
    println!(
        "all {} results arrived once ({missing} missing); per worker: {:?}",
        st.1, st.2
    );
    let wakes = base.wake_stats();
    println!(
        "wakes: {} requests, {} notification writes",
        wakes.requests, wakes.writes
    );
    Ok(())
}

/// `--jobs N` (default 200), `--workers N` (default 4).
fn parse_args() -> Result<(u64, usize), Box<dyn Error>> {
    let (mut jobs, mut workers) = (200, 4);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--jobs" => jobs = value.parse()?,
            "--workers" => workers = value.parse()?,
            _ => return Err(format!("unknown option {flag} (use --jobs N, --workers N)").into()),
        }
    }
    if workers == 0 || jobs == 0 {
        return Err("--jobs and --workers must be positive".into());
    }
    Ok((jobs, workers))
}
