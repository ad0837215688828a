#![cfg(not(miri))]
//! fd events on real sockets, for every poller: level and edge, write, peer close, one-shot,
//! thousands of fds, interest churn that reaches no kernel, closed and refused fds.

#[path = "util/mod.rs"]
mod util;

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use rouse_core::{Event, Exit, Fired, Interest, Key, Ready, RunFlags};
use rouse_std::{source, Base, Context, PollerKind};
use util::{base_with_poller, drain, pair, recorder, run_in_thread, take, write_byte};

/// One loop iteration that never blocks (`EVLOOP_ONCE | EVLOOP_NONBLOCK`).
fn iterate(base: &Base) -> io::Result<Exit> {
    base.run_with(RunFlags::ONCE_NONBLOCK)
}

#[test]
fn level_read_fires_every_iteration_until_read() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (log, cb) = recorder();
        base.add_fd(&a, Interest::READ, cb)?;
        assert_eq!(iterate(&base)?, Exit::Done);
        assert_eq!(take(&log), [], "{p}: nothing written yet");
        write_byte(&b)?;
        for i in 1..=3 {
            iterate(&base)?;
            assert_eq!(take(&log), [Ready::READ], "{p}: unread byte, iteration {i}");
        }
        assert_eq!(drain(&a)?, 1);
        iterate(&base)?;
        assert_eq!(take(&log), [], "{p}: read");
    }
    Ok(())
}

#[test]
fn edge_read_fires_once_per_write_and_degrades_to_level_on_poll() -> io::Result<()> {
    for &p in PollerKind::available() {
        // poll(2) has no edges: the interest is reported level there.
        let edges = p != PollerKind::Poll;
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (log, cb) = recorder();
        base.add_fd(&a, Interest::READ | Interest::EDGE, cb)?;
        for write in 1..=3 {
            write_byte(&b)?; // never read
            iterate(&base)?;
            assert_eq!(take(&log), [Ready::READ], "{p}: write {write}");
            iterate(&base)?;
            let again = take(&log);
            if edges {
                assert_eq!(again, [], "{p}: no new write, no new edge");
            } else {
                assert_eq!(again, [Ready::READ], "{p}: level while unread");
            }
        }
        assert_eq!(drain(&a)?, 3);
    }
    Ok(())
}

#[test]
fn write_readiness_follows_buffer_space() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (log, cb) = recorder();
        base.add_fd(&a, Interest::WRITE, cb)?;
        iterate(&base)?;
        assert_eq!(
            take(&log),
            [Ready::WRITE],
            "{p}: an empty socket is writable"
        );
        // Fill it: no longer writable.
        let chunk = [0u8; 4096];
        let mut filled = 0usize;
        loop {
            match io::Write::write(&mut &a, &chunk) {
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        assert!(filled > 0);
        iterate(&base)?;
        assert_eq!(take(&log), [], "{p}: full");
        assert_eq!(drain(&b)?, filled);
        iterate(&base)?;
        assert_eq!(take(&log), [Ready::WRITE], "{p}: drained by the peer");
    }
    Ok(())
}

#[test]
fn peer_hang_up_is_reported_closed() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (log, cb) = recorder();
        base.add_fd(&a, Interest::CLOSED, cb)?;
        write_byte(&b)?;
        iterate(&base)?;
        assert_eq!(take(&log), [], "{p}: data is not a hang-up");
        drop(b);
        iterate(&base)?;
        let got = take(&log);
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        assert!(got[0].contains(Ready::CLOSED), "{p}: {got:?}");

        // With READ as well: the close is reported with both.
        let (c, d) = pair()?;
        let (log, cb) = recorder();
        base.add_fd(&c, Interest::READ | Interest::CLOSED, cb)?;
        drop(d);
        iterate(&base)?;
        let got = take(&log);
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        assert!(got[0].contains(Ready::CLOSED | Ready::READ), "{p}: {got:?}");
        drop((a, c));
    }
    Ok(())
}

#[test]
fn one_shot_stops_being_pending_after_it_fires_and_persistent_stays() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (once_log, cb) = recorder();
        let once = base.add_event(Event::io(source(&a), Interest::READ), None, cb)?;
        let (c, d) = pair()?;
        let (persist_log, cb) = recorder();
        let persist = base.add_fd(&c, Interest::READ, cb)?;
        assert!(base.is_pending(once)? && base.is_pending(persist)?);
        write_byte(&b)?;
        write_byte(&d)?;
        iterate(&base)?;
        assert_eq!(take(&once_log), [Ready::READ], "{p}");
        assert_eq!(take(&persist_log), [Ready::READ], "{p}");
        assert!(!base.is_pending(once)?, "{p}: a one-shot event fired");
        assert!(base.is_pending(persist)?, "{p}");
        // Still readable (unread): only the persistent event fires again.
        iterate(&base)?;
        assert_eq!(take(&once_log), [], "{p}");
        assert_eq!(take(&persist_log), [Ready::READ], "{p}");
        // Re-added, the one-shot event fires once more.
        base.add(once, None)?;
        iterate(&base)?;
        assert_eq!(take(&once_log), [Ready::READ], "{p}");
        assert_eq!(take(&persist_log), [Ready::READ], "{p}");
        // Deleting the persistent one: no more runs, and run() has nothing left to wait for.
        base.delete(persist)?;
        assert_eq!(base.run()?, Exit::Empty, "{p}");
        assert_eq!(take(&persist_log), [], "{p}");
    }
    Ok(())
}

/// Socketpairs of the many-fds test: 2 fds each. With the churn test's 1000 pairs and the small
/// tests running alongside, this binary stays below 7000 fds (the hard limit is 20000).
const MANY: usize = 2000;

#[test]
fn two_thousand_sockets_each_fire_once() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let pairs = Arc::new((0..MANY).map(|_| pair()).collect::<io::Result<Vec<_>>>()?);
        let hits: Arc<Vec<AtomicU64>> = Arc::new((0..MANY).map(|_| AtomicU64::new(0)).collect());
        let total = Arc::new(AtomicUsize::new(0));
        for (i, (a, _)) in pairs.iter().enumerate() {
            let (hits, total, socks) = (hits.clone(), total.clone(), pairs.clone());
            base.add_fd(a, Interest::READ, move |events, fired| {
                assert_eq!(fired.ready, Ready::READ);
                assert_eq!(drain(&socks[i].0).unwrap(), 1, "one byte per socket");
                hits[i].fetch_add(1, SeqCst);
                if total.fetch_add(1, SeqCst) + 1 == MANY {
                    events.loop_break().unwrap();
                }
            })?;
        }
        // Written in reverse, from another thread while the loop runs.
        let lt = run_in_thread(base, RunFlags::UNTIL_EMPTY, &format!("{p}: {MANY} fds"));
        for (_, b) in pairs.iter().rev() {
            write_byte(b)?;
        }
        let base = lt.expect_exit(Exit::Break);
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(h.load(SeqCst), 1, "{p}: socket {i}");
        }
        assert_eq!(base.counts().pending as usize, MANY);
        drop(base); // before the sockets it borrows (and the callbacks' references to them)
        assert_eq!(Arc::strong_count(&pairs), 1, "the callbacks were dropped");
    }
    Ok(())
}

#[test]
fn delete_and_add_churn_reaches_no_kernel() -> io::Result<()> {
    const N: usize = 1000;
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let pairs = (0..N).map(|_| pair()).collect::<io::Result<Vec<_>>>()?;
        let keys: Vec<Key> = pairs
            .iter()
            .map(|(a, _)| base.add_fd(a, Interest::READ, |_, _| panic!("never readable")))
            .collect::<io::Result<_>>()?;
        assert_eq!(base.run_nonblocking()?, Exit::Done);
        let registered = base.interest_syscalls().expect("the loop is not running");
        if p != PollerKind::Poll {
            assert!(registered >= N as u64, "{p}: {registered} registrations");
        }
        for _ in 0..10 {
            for &k in &keys {
                base.delete(k)?;
                base.add(k, None)?;
            }
            assert_eq!(base.run_nonblocking()?, Exit::Done);
        }
        let after = base.interest_syscalls().expect("the loop is not running");
        assert_eq!(
            after, registered,
            "{p}: delete+add between runs is no change"
        );
        // A real change costs one call per fd (none for poll(2), whose set is in user space).
        for &k in &keys {
            base.delete(k)?;
        }
        assert_eq!(base.run_nonblocking()?, Exit::Empty);
        let gone = base.interest_syscalls().expect("the loop is not running");
        match p {
            PollerKind::Poll => assert_eq!((registered, gone), (0, 0)),
            _ => assert_eq!(gone - after, N as u64, "{p}: one deregistration per fd"),
        }
        drop(base);
    }
    Ok(())
}

#[test]
fn an_fd_closed_while_registered_then_deleted_is_harmless() -> io::Result<()> {
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (a, b) = pair()?;
        let (old_log, cb) = recorder();
        let old = base.add_fd(&a, Interest::READ | Interest::WRITE, cb)?;
        iterate(&base)?; // registered
        assert_eq!(take(&old_log), [Ready::WRITE], "{p}");
        drop(a); // closed while registered
        base.delete(old)?;
        iterate(&base)?;
        assert_eq!(take(&old_log), [], "{p}");
        // Its number is likely reused by the next socket: the old event must stay silent.
        let (c, d) = pair()?;
        let (new_log, cb) = recorder();
        base.add_fd(&c, Interest::READ, cb)?;
        write_byte(&d)?;
        write_byte(&b).or_else(|e| match e.kind() {
            io::ErrorKind::BrokenPipe => Ok(()),
            _ => Err(e),
        })?;
        for _ in 0..3 {
            iterate(&base)?;
        }
        assert_eq!(take(&new_log), [Ready::READ; 3], "{p}");
        assert_eq!(take(&old_log), [], "{p}: no callback for the closed fd");
        base.free(old)?;
        drop((c, d));
    }
    Ok(())
}

#[test]
fn a_refused_registration_activates_the_event_with_error() -> io::Result<()> {
    // A regular file: epoll refuses it (EPERM); kqueue and poll(2) report it always readable.
    let file = std::fs::File::open(std::env::current_exe()?)?;
    for &p in PollerKind::available() {
        let base = base_with_poller(p)?;
        let (log, cb) = recorder();
        base.add_fd(&file, Interest::READ, cb)?;
        iterate(&base)?;
        let got = take(&log);
        assert_eq!(got.len(), 1, "{p}: {got:?}");
        if p == PollerKind::Epoll {
            assert!(got[0].contains(Ready::ERROR), "{p}: {got:?}");
            assert_eq!(base.poll_errors(), 1);
            // Refused once, reported once: no busy loop on a registration that failed.
            iterate(&base)?;
            assert_eq!(take(&log), [], "{p}");
        } else {
            assert_eq!(got[0], Ready::READ, "{p}");
            assert_eq!(base.poll_errors(), 0);
        }
        drop(base);
    }
    Ok(())
}

/// A connection closes and the next one reuses its fd number within one loop iteration (a
/// callback frees the old event, closes the socket, and registers the new socket): the new
/// socket must be watched. The kernel dropped the old registration at `close`, so the change
/// list must not coalesce "delete fd N" with "add fd N" across two different events.
///
/// The number is pinned with `dup2` onto [`PINNED`], far above what the other tests of this
/// file open at once, so the reuse is certain even while they run in parallel.
#[test]
fn an_fd_number_reused_within_one_iteration_is_watched() -> io::Result<()> {
    const PINNED: i32 = 15_000;
    raise_soft_nofile(PINNED as u64 + 1)?;
    let pin = |s| pin_onto(s, PINNED);
    for poller in PollerKind::available().iter().copied() {
        let base = base_with_poller(poller)?;
        let (old_rx, old_tx) = pair()?;
        pin(old_rx)?;
        let (log, cb) = recorder();
        let peer: Arc<Mutex<Option<std::os::unix::net::UnixStream>>> = Arc::default();
        let p = peer.clone();
        let mut cb = Some(cb);
        let old = base.add_event(
            Event::io(rouse_std::raw_source(PINNED)?, Interest::READ).persist(),
            None,
            move |events: &Context<'_>, f: Fired| {
                // Free the old event, close its socket, and put a new one on the same number.
                events.free(f.key).unwrap();
                let (new_rx, new_tx) = pair().unwrap();
                pin(new_rx).unwrap(); // dup2 closes the old socket and reuses the number
                let src = rouse_std::raw_source(PINNED).unwrap();
                let ev = Event::io(src, Interest::READ).persist();
                events.add_event(ev, None, cb.take().unwrap()).unwrap();
                write_byte(&new_tx).unwrap(); // the new peer speaks at once
                *p.lock().unwrap() = Some(new_tx);
            },
        )?;
        write_byte(&old_tx)?;
        iterate(&base)?; // the old socket fires; the swap happens inside its callback
        assert!(
            base.info(old).is_err(),
            "{poller:?}: the old event was freed"
        );
        for _ in 0..3 {
            iterate(&base)?;
        }
        assert_eq!(
            take(&log).first().copied(),
            Some(Ready::READ),
            "{poller:?}: the new socket on the reused fd number was never watched"
        );
        drop(base); // frees the new event before its fd goes
                    // SAFETY: PINNED is this test's own fd (the new socket's duplicate).
        unsafe { libc::close(PINNED) };
        drop(peer);
    }
    Ok(())
}

/// libevent's re-arm across a close: the same event deleted, its fd's number given to a new
/// socket (`dup2`, which closes the old one), and the same event added back, in one callback.
/// With `Builder::reregister_on_rearm` the loop registers the fd afresh, so the new socket is
/// watched (without it the re-arm is taken for no change: the documented hazard).
#[test]
fn with_reregister_on_rearm_the_same_event_re_added_on_a_reused_fd_number_is_watched(
) -> io::Result<()> {
    const PINNED: i32 = 15_001;
    raise_soft_nofile(PINNED as u64 + 1)?;
    let pin = |s| pin_onto(s, PINNED);
    for poller in PollerKind::available().iter().copied() {
        let base = rouse_std::Builder::new()
            .poller(poller)
            .reregister_on_rearm()
            .build()?;
        let (old_rx, old_tx) = pair()?;
        pin(old_rx)?;
        let fired = Arc::new(AtomicUsize::new(0));
        let peer: Arc<Mutex<Option<std::os::unix::net::UnixStream>>> = Arc::default();
        let (n, p) = (fired.clone(), peer.clone());
        base.add_event(
            Event::io(rouse_std::raw_source(PINNED)?, Interest::READ).persist(),
            None,
            move |events: &Context<'_>, f: Fired| {
                if n.fetch_add(1, SeqCst) > 0 {
                    return; // the new socket's byte: seen (level-triggered: again each pass)
                }
                events.delete(f.key).unwrap();
                let (new_rx, new_tx) = pair().unwrap();
                pin(new_rx).unwrap(); // closes the old socket, reuses its number
                events.add(f.key, None).unwrap();
                write_byte(&new_tx).unwrap();
                *p.lock().unwrap() = Some(new_tx);
            },
        )?;
        write_byte(&old_tx)?;
        for _ in 0..4 {
            iterate(&base)?;
        }
        assert!(
            fired.load(SeqCst) >= 2,
            "{poller:?}: the new socket under the re-added event was never watched"
        );
        drop(base);
        // SAFETY: PINNED is this test's own fd (the new socket's duplicate).
        unsafe { libc::close(PINNED) };
        drop(peer);
    }
    Ok(())
}

/// Moves `s`'s socket onto fd `pinned` (closing whatever was there); `s` closes its own fd,
/// `pinned` keeps the socket open. Each test pins its own number, which no other test uses.
fn pin_onto(s: std::os::unix::net::UnixStream, pinned: i32) -> io::Result<()> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    // SAFETY: `fd` is open (owned by `s`); dup2 atomically replaces `pinned`, which only the
    // calling test uses.
    if unsafe { libc::dup2(fd, pinned) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to at least `n` (up to the hard limit).
fn raise_soft_nofile(n: u64) -> io::Result<()> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur < n as libc::rlim_t {
        rl.rlim_cur = (n as libc::rlim_t).min(rl.rlim_max);
        // SAFETY: `rl` is a valid rlimit with cur <= max.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
