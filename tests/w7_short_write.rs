#![cfg(not(miri))]
//! The W7 echo server's short-write rule (benches/w7/server.rs), without the peers' client:
//! a connection whose reader does not read must make the server stop reading (so the writer
//! stalls after a bounded amount), and every byte must come back in order once it reads.
//! `cargo bench --bench workloads -- W7check` runs the peers' own check (64 MiB) the same way.

#[allow(dead_code)]
#[path = "../benches/w7/server.rs"]
mod server;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use server::{Kind, Opts};

/// If the server buffered without bound, the writer would get this far without stalling.
const LIMIT: u64 = 64 << 20;
/// No progress for this long while nothing is read: the writer has stalled.
const STALL: Duration = Duration::from_millis(300);
const DEADLINE: Duration = Duration::from_secs(20);

fn byte(i: u64) -> u8 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i >> 12) as u8
}

/// poll(2) on one fd for `events`, at most `timeout`; whether it became ready.
fn wait_for(s: &TcpStream, events: libc::c_short, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    n > 0
}

fn start(kind: Kind) -> u16 {
    let (tx, rx) = mpsc::channel();
    // The server runs for the rest of the test process (it serves until killed).
    thread::spawn(move || {
        let opts = Opts { kind, spin: None };
        let r = server::serve_with(opts, |port, _| tx.send(port).unwrap());
        panic!("the W7 server returned: {r:?}");
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the server listens within 5 s")
}

fn check(kind: Kind) {
    let port = start(kind);
    let s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .unwrap();
    // A small receive buffer (before any data: no autotuning), so the echo backs up at once.
    let small: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on an open socket with a valid c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    s.set_nonblocking(true).unwrap();
    let end = Instant::now() + DEADLINE;

    // Write, reading nothing, until a write has waited STALL without room.
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        assert!(
            written < LIMIT,
            "{kind:?}: {written} bytes taken without a stall: the server buffers without bound"
        );
        assert!(
            Instant::now() < end,
            "{kind:?}: no stall before the deadline"
        );
        for (k, b) in buf.iter_mut().enumerate() {
            *b = byte(written + k as u64);
        }
        match (&s).write(&buf) {
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if !wait_for(&s, libc::POLLOUT, STALL) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{kind:?}: write: {e}"),
        }
    }

    // Now read: every byte written comes back, in order.
    let mut got = 0u64;
    while got < written {
        assert!(
            Instant::now() < end,
            "{kind:?}: {got} of {written} bytes echoed by the deadline"
        );
        match (&s).read(&mut buf) {
            Ok(0) => panic!("{kind:?}: EOF after {got} of {written} bytes"),
            Ok(n) => {
                for (k, &b) in buf[..n].iter().enumerate() {
                    assert_eq!(b, byte(got + k as u64), "{kind:?}: byte {}", got + k as u64);
                }
                got += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(&s, libc::POLLIN, Duration::from_millis(100));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{kind:?}: read: {e}"),
        }
    }
    assert_eq!(got, written);
}

#[test]
fn a_reader_that_waits_stalls_the_writer_and_gets_every_byte_threaded_base() {
    check(Kind::Threaded);
}

#[test]
fn a_reader_that_waits_stalls_the_writer_and_gets_every_byte_local_base() {
    check(Kind::Local);
}
