//! An idle-connection reaper: every connection has an idle timer that its activity resets;
//! a connection idle for the whole timeout is closed.
//!
//! The component ([`Reaper`]) is production code, generic over the flavor: `main` runs it on a
//! real [`Base`] over Unix sockets; the tests at the bottom (run by `cargo test`) run it
//! unchanged on a [`MockBase`](rouse_std::testing::MockBase), with mock sources standing in for
//! the sockets, scripted readiness and a manual clock.
//!
//! ```sh
//! cargo run --example idle_reaper
//! ```

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rouse_core::{Event, Instant, Interest, Key, Ready, Source};
use rouse_std::{Base, BaseRef, Context, Flavor};

/// What happened on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    /// The connection is ready (`READ`, `CLOSED`, ...): its idle timer starts again.
    Ready(Ready),
    /// Idle for the whole timeout: the reaper closes it after this call.
    Idle,
}

/// What the connection's handler decides after activity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Close,
}

/// A connection's end, as the reaper records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    pub name: String,
    pub at: Instant,
    /// Closed for being idle (else its handler closed it).
    pub idle: bool,
}

/// Watches connections for `idle`: each is one persistent read (and peer-close) event with a timeout, which
/// the loop re-arms from every time the connection is ready. Closing a connection frees its
/// event, which drops the handler and everything it owns (the socket).
#[derive(Clone, Debug)]
pub struct Reaper {
    idle: Duration,
    closed: Arc<Mutex<Vec<Closed>>>,
}

impl Reaper {
    pub fn new(idle: Duration) -> Reaper {
        Reaper {
            idle,
            closed: Arc::default(),
        }
    }

    /// Watches `source` (a socket's, or a mock one); `handler` sees its activity and owns it.
    pub fn watch<F: Flavor>(
        &self,
        events: BaseRef<'_, F>,
        name: &str,
        source: Source,
        mut handler: impl FnMut(&Context<'_, F>, Activity) -> Verdict + Send + 'static,
    ) -> io::Result<Key> {
        let closed = self.closed.clone();
        let name = name.to_string();
        let ev = Event::io(source, Interest::READ | Interest::CLOSED).persist();
        events.add_event(ev, Some(self.idle), move |cx, fired| {
            let idle = fired.ready.contains(Ready::TIMEOUT);
            let activity = if idle {
                Activity::Idle
            } else {
                Activity::Ready(fired.ready)
            };
            if handler(cx, activity) == Verdict::Close || idle {
                closed.lock().unwrap().push(Closed {
                    name: name.clone(),
                    at: cx.now(),
                    idle,
                });
                cx.free(fired.key).unwrap();
            }
        })
    }

    /// The connections closed so far, in order.
    pub fn closed(&self) -> Vec<Closed> {
        self.closed.lock().unwrap().clone()
    }
}

/// A handler for a real socket: reads what is there; closes on end of file.
pub fn serve<F: Flavor>(mut sock: UnixStream) -> impl FnMut(&Context<'_, F>, Activity) -> Verdict {
    move |_, activity| {
        if activity == Activity::Idle {
            return Verdict::Close;
        }
        let mut buf = [0; 256];
        match sock.read(&mut buf) {
            Ok(0) => Verdict::Close,
            Ok(_) => Verdict::Keep,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Verdict::Keep,
            Err(_) => Verdict::Close,
        }
    }
}

fn main() -> io::Result<()> {
    let base = Base::new()?;
    let reaper = Reaper::new(Duration::from_millis(200));
    let mut clients = Vec::new();
    for name in ["chatty", "quiet", "hangs-up"] {
        let (server, client) = UnixStream::pair()?;
        server.set_nonblocking(true)?;
        let src = rouse_std::source(&server);
        reaper.watch(base.base_ref(), name, src, serve(server))?;
        clients.push((name, client));
    }
    let start = base.now();
    let mut clients = clients.into_iter();
    let (_, mut chatty) = clients.next().unwrap();
    let (_, quiet) = clients.next().unwrap(); // open and silent: reaped idle
    drop(clients); // "hangs-up": end of file at once
    let talk = std::thread::spawn(move || {
        // Five messages 100 ms apart: never idle for 200 ms until it stops; kept open after.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(100));
            let _ = chatty.write_all(b"ping");
        }
        chatty
    });
    base.run()?; // until every connection is closed
    drop((talk.join().unwrap(), quiet));
    for c in reaper.closed() {
        let ms = c.at.saturating_duration_since(start).as_millis();
        let why = if c.idle { "idle" } else { "closed by peer" };
        println!("{:>4} ms  {:<8} {why}", ms, c.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rouse_core::Exit;
    use rouse_std::testing::MockBase;

    const IDLE: Duration = Duration::from_millis(200);

    /// A handler for a mock connection: records its activity, closes on `CLOSED`.
    fn recorder(
        log: &Arc<Mutex<Vec<(u64, Activity)>>>,
    ) -> impl FnMut(&Context<'_, rouse_std::testing::Mock>, Activity) -> Verdict + Send + 'static
    {
        let log = log.clone();
        move |cx, a| {
            log.lock().unwrap().push((ms(cx.now()), a));
            match a {
                Activity::Ready(r) if r.contains(Ready::CLOSED) => Verdict::Close,
                _ => Verdict::Keep,
            }
        }
    }

    fn ms(at: Instant) -> u64 {
        at.as_nanos() / 1_000_000
    }

    fn closed(r: &Reaper) -> Vec<(String, u64, bool)> {
        r.closed()
            .into_iter()
            .map(|c| (c.name, ms(c.at), c.idle))
            .collect()
    }

    #[test]
    fn an_idle_connection_is_closed_at_its_timeout() {
        let base = MockBase::new_mock();
        let reaper = Reaper::new(IDLE);
        let log = Arc::default();
        let conn = base.source();
        reaper
            .watch(base.base_ref(), "a", conn, recorder(&log))
            .unwrap();

        base.advance(Duration::from_millis(199)).unwrap();
        assert!(reaper.closed().is_empty());
        // The loop registered it with the poller (interest changes apply when it runs).
        assert_eq!(
            base.with_poller(|p| p.registered(conn)),
            Interest::READ | Interest::CLOSED
        );
        assert_eq!(base.advance(Duration::from_millis(1)).unwrap(), Exit::Empty);
        assert_eq!(closed(&reaper), [("a".into(), 200, true)]);
        assert_eq!(*log.lock().unwrap(), [(200, Activity::Idle)]);
        // Closed: the poller no longer watches it.
        assert_eq!(base.with_poller(|p| p.registered(conn)), Interest::NONE);
    }

    #[test]
    fn activity_resets_the_idle_timer() {
        let base = MockBase::new_mock();
        let reaper = Reaper::new(IDLE);
        let log = Arc::default();
        let (a, b) = (base.source(), base.source());
        reaper
            .watch(base.base_ref(), "a", a, recorder(&log))
            .unwrap();
        reaper
            .watch(base.base_ref(), "b", b, recorder(&log))
            .unwrap();

        // `a` is active at 150 and 300 ms; `b` never.
        base.advance(Duration::from_millis(150)).unwrap();
        base.script_ready(a, Ready::READ);
        base.advance(Duration::from_millis(150)).unwrap();
        assert_eq!(closed(&reaper), [("b".into(), 200, true)]);
        base.script_ready(a, Ready::READ);
        base.advance(Duration::from_millis(199)).unwrap();
        assert_eq!(reaper.closed().len(), 1, "a's timer restarted at 300 ms");
        base.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(
            closed(&reaper),
            [("b".into(), 200, true), ("a".into(), 500, true)]
        );
        assert_eq!(
            *log.lock().unwrap(),
            [
                (150, Activity::Ready(Ready::READ)),
                (200, Activity::Idle),
                (300, Activity::Ready(Ready::READ)),
                (500, Activity::Idle),
            ]
        );
        assert_eq!(base.counts().events, 0);
    }

    #[test]
    fn the_handler_may_close_first() {
        let base = MockBase::new_mock();
        let reaper = Reaper::new(IDLE);
        let log = Arc::default();
        let conn = base.source();
        reaper
            .watch(base.base_ref(), "a", conn, recorder(&log))
            .unwrap();
        base.advance(Duration::from_millis(50)).unwrap();
        base.script_ready(conn, Ready::READ | Ready::CLOSED); // the peer hung up
        base.run_until_idle().unwrap();
        assert_eq!(closed(&reaper), [("a".into(), 50, false)]);
        assert_eq!(base.counts().events, 0);
        // Nothing fires later: the event and its timer are gone.
        base.advance(Duration::from_secs(1)).unwrap();
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[test]
    fn real_sockets_can_be_reaped_on_the_mocks_too() {
        // The `serve` handler of `main`, over a real socket, with mock time and readiness.
        let base = MockBase::new_mock();
        let reaper = Reaper::new(IDLE);
        let (server, mut client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let src = rouse_std::source(&server);
        reaper
            .watch(base.base_ref(), "sock", src, serve(server))
            .unwrap();
        client.write_all(b"hi").unwrap();
        base.advance(Duration::from_millis(100)).unwrap();
        base.script_ready(src, Ready::READ); // the mock poller reports what it is told
        base.advance(Duration::from_millis(199)).unwrap();
        assert!(
            reaper.closed().is_empty(),
            "the read at 100 ms restarted the timer"
        );
        base.advance(Duration::from_millis(1)).unwrap();
        assert_eq!(closed(&reaper), [("sock".into(), 300, true)]);
        // The event owned the socket: freeing it closed it.
        let mut buf = [0; 1];
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }
}
