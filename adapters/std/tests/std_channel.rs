#![cfg(not(miri))]
//! The loop-bound channel: messages from many threads reach the loop's callback, in order per
//! sender, with at most one notification per blocking poll; a closed channel hands messages
//! back; a bounded one refuses past its bound.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::{Arc, Mutex};
use std::thread;

use rouse_core::{Exit, RunFlags};
use rouse_std::SendError;
use util::{default_base, run_in_thread, wait_until, BOUND};

#[test]
fn messages_from_many_threads_arrive_in_order_per_sender() -> io::Result<()> {
    const THREADS: u64 = 4;
    const EACH: u64 = if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    };
    let base = default_base()?;
    let got: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(vec![Vec::new(); THREADS as usize]));
    let g = got.clone();
    let (tx, key) = base.channel(move |events, (w, i): (u64, u64)| {
        let mut got = g.lock().unwrap();
        got[w as usize].push(i);
        if got.iter().map(Vec::len).sum::<usize>() == (THREADS * EACH) as usize {
            events.loop_break().unwrap();
        }
    })?;
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "channel");
    let senders: Vec<_> = (0..THREADS)
        .map(|w| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    tx.send((w, i)).unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let handle = lt.handle().clone();
    let base = lt.expect_exit(Exit::Break);
    for (w, v) in got.lock().unwrap().iter().enumerate() {
        assert_eq!(v.len() as u64, EACH, "sender {w}: every message");
        assert!(
            v.windows(2).all(|p| p[0] < p[1]),
            "sender {w}: in the order sent"
        );
    }
    let s = handle.wake_stats();
    assert!(
        s.writes - s.failures <= s.blocking_polls,
        "at most one notification per blocking poll: {s:?}"
    );
    base.free(key)?;
    Ok(())
}

#[test]
fn everything_sent_before_a_run_is_received_in_it() -> io::Result<()> {
    let base = default_base()?;
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let (tx, _key) = base.channel(move |_, n: u32| g.lock().unwrap().push(n))?;
    for n in 0..100 {
        tx.send(n).unwrap();
    }
    assert_eq!(
        base.wake_stats().writes,
        0,
        "the loop is not running: no write"
    );
    assert_eq!(base.run_with(RunFlags::ONCE)?, Exit::Done);
    assert_eq!(*got.lock().unwrap(), (0..100).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn a_freed_channel_hands_messages_back() -> io::Result<()> {
    let base = default_base()?;
    let (tx, key) = base.channel(|_, _: String| {})?;
    tx.send("before".to_string()).unwrap();
    base.free(key)?;
    assert_eq!(
        tx.send("after".to_string()),
        Err(SendError::Closed("after".to_string()))
    );
    assert_eq!(
        tx.try_send("again".to_string()).unwrap_err().into_inner(),
        "again"
    );
    // Dropping the base closes every channel too.
    let (tx, _key) = base.channel(|_, _: u8| {})?;
    drop(base);
    assert_eq!(tx.send(7), Err(SendError::Closed(7)));
    Ok(())
}

#[test]
fn a_bounded_channel_refuses_past_its_bound_and_frees_room_as_it_is_received() -> io::Result<()> {
    let base = default_base()?;
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let (tx, _key) = base.bounded_channel(2, move |_, n: u8| g.lock().unwrap().push(n))?;
    tx.try_send(1).unwrap();
    tx.send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(SendError::Full(3)));
    base.run_with(RunFlags::ONCE)?;
    assert_eq!(*got.lock().unwrap(), [1, 2]);
    tx.try_send(3).unwrap();
    base.run_with(RunFlags::ONCE)?;
    assert_eq!(*got.lock().unwrap(), [1, 2, 3]);
    Ok(())
}

/// A sender blocked in a full bounded channel is released as the loop receives.
#[test]
fn a_blocked_bounded_send_is_released_by_the_loop() -> io::Result<()> {
    let base = default_base()?;
    let got = Arc::new(Mutex::new(0u32));
    let g = got.clone();
    let (tx, _key) = base.bounded_channel(1, move |events, _: u32| {
        let mut n = g.lock().unwrap();
        *n += 1;
        if *n == 50 {
            events.loop_break().unwrap();
        }
    })?;
    let sender = thread::spawn(move || {
        for i in 0..50 {
            tx.send(i).unwrap();
        }
    });
    let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, "bounded channel");
    wait_until(BOUND, "the sender is done", || sender.is_finished());
    sender.join().unwrap();
    lt.expect_exit(Exit::Break);
    assert_eq!(*got.lock().unwrap(), 50);
    Ok(())
}
