//! W2ch: W2's storm through the loop-bound channel instead of a bare user event: 4 sender
//! threads each send 250 000 messages back to back; the loop's callback receives them all.
//! Reports messages per second, callbacks (messages) received, and the notification writes:
//! the channel's wake-up is W2's coalescing activation, so writes stay at most one per
//! blocking poll.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rouse_core::Exit;
use rouse_std::Base;

use crate::common::{allocs, io_delta, io_overhead, now_ns, read_proc_io, spin_pause};
use crate::imp;

const SENDERS: u64 = 4;
const PER_SENDER: u64 = 250_000;

pub fn w2_channel() -> io::Result<()> {
    let received = Arc::new(AtomicU64::new(0));
    let t_done = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let base = Base::new()?;
    let handle = base.handle();
    let total = SENDERS * PER_SENDER;
    let (r, t) = (received.clone(), t_done.clone());
    let (tx, _key) = base.channel(move |events, _msg: u64| {
        if r.fetch_add(1, Ordering::Relaxed) + 1 == total {
            t.store(now_ns(), Ordering::SeqCst);
            events.loop_break().unwrap();
        }
    })?;
    let lt = thread::spawn(move || {
        let r = base.run();
        (base, r)
    });
    let senders: Vec<_> = (0..SENDERS)
        .map(|w| {
            let (tx, go) = (tx.clone(), go.clone());
            thread::spawn(move || {
                let mut spins = 0;
                while !go.load(Ordering::SeqCst) {
                    spin_pause(&mut spins);
                }
                let mut errors = 0u64;
                for i in 0..PER_SENDER {
                    if tx.send(w << 32 | i).is_err() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(20));
    let ovh = io_overhead();
    let io_a = read_proc_io();
    let a0 = allocs();
    let t_start = now_ns();
    go.store(true, Ordering::SeqCst);
    let errors: u64 = senders.into_iter().map(|t| t.join().expect("sender")).sum();
    let (base, r) = lt.join().expect("loop thread");
    let a1 = allocs();
    let io_b = read_proc_io();
    let (dr, dw) = io_delta(io_a, io_b, ovh);
    assert_eq!(r?, Exit::Break, "W2ch loop must end by loop_break");
    let stats = base.wake_stats();
    let _ = handle;
    drop(base);
    let el = t_done.load(Ordering::SeqCst) - t_start;
    println!(
        "{{\"impl\":\"{}\",\"workload\":\"W2ch\",\"elapsed_ns\":{},\"messages\":{},\
         \"received\":{},\"syscw\":{},\"syscr\":{},\"messages_per_s\":{:.0},\"senders\":{},\
         \"allocs\":{},\"notify_writes_total\":{},\"blocking_polls\":{},\"send_errors\":{},\
         \"channel\":\"Base::channel (std mpsc push + coalescing activate)\"}}",
        imp(),
        el,
        total,
        received.load(Ordering::SeqCst),
        dw,
        dr,
        total as f64 / (el as f64 / 1e9),
        SENDERS,
        a1 - a0,
        stats.writes,
        stats.blocking_polls,
        errors,
    );
    Ok(())
}
