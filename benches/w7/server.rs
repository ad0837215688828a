//! The W7 server on rouse-std: a one-thread TCP echo server on 127.0.0.1, following the
//! W7 server rules of the peers' workload description exactly (the same rules the floor's
//! bare epoll loop, libevent, libev, libuv, mio, polling, calloop and tokio follow):
//!
//! - one thread runs the loop and does all the work;
//! - a listener on 127.0.0.1:0 with a persistent read event, accepting until `WouldBlock`;
//! - per connection a persistent READ event and a (not yet pending) WRITE event;
//! - on a read notification: one read of up to 4096 bytes into the connection's own buffer
//!   and, if it got n > 0 bytes, one write of those n bytes at once;
//! - a short (or `WouldBlock`) write keeps the rest in that buffer, deletes the READ event
//!   and adds the WRITE event (rouse's change list makes the pair one `epoll_ctl(MOD)`); each
//!   write notification writes the rest once; when all is written, WRITE is deleted and READ
//!   added back. A connection is never read while a rest is pending, so it holds at most
//!   4096 unwritten bytes;
//! - EOF or an error other than `WouldBlock`/`Interrupted` closes the connection (its
//!   events are freed, which deregisters the fd before it is closed);
//! - SIGPIPE ignored, `alarm(60)`, one line `{"impl":..,"workload":"W7","role":"server",
//!   "port":P,"pid":PID,..}` on stdout, flushed, then it serves until killed.
//!
//! Every rouse-std call is in the `glue!` macro below (build the base, watch the listener,
//! create/add/delete/free a connection's events, run): one body, instantiated once for the
//! thread-safe [`Base`](rouse_std::Base) and once for [`LocalBase`](rouse_std::LocalBase).
//! The echo state machine (`Echo`) knows nothing of rouse.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One read's worth: the most a connection ever holds unwritten.
pub const BUF: usize = 4096;
/// The server ends by itself (SIGALRM, default action) this long after it announced.
pub const MAX_S: u32 = 60;

/// Which rouse base serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The thread-safe [`rouse_std::Base`] (a lock, a notifier).
    Threaded,
    /// The single-threaded [`rouse_std::LocalBase`] (no lock, no notifier).
    Local,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Threaded, Kind::Local];

    /// The word on the server's command line.
    pub fn arg(self) -> &'static str {
        match self {
            Kind::Threaded => "base",
            Kind::Local => "local",
        }
    }

    pub fn from_arg(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.arg() == s)
    }

    /// The `impl` name of the JSON lines: `rouse-<ver>` or `rouse-<ver>-local`.
    pub fn impl_name(self) -> String {
        let v = env!("CARGO_PKG_VERSION");
        match self {
            Kind::Threaded => format!("rouse-{v}"),
            Kind::Local => format!("rouse-{v}-local"),
        }
    }
}

/// Server options (from the command line).
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub kind: Kind,
    /// `Some(d)`: `Builder::spin_before_block(d)`; `None`: the builder's default.
    pub spin: Option<Duration>,
}

impl Opts {
    /// The kind's name, plus `-spin<N>us` when the spin was set.
    pub fn impl_name(&self) -> String {
        match self.spin {
            None => self.kind.impl_name(),
            Some(d) => format!("{}-spin{}us", self.kind.impl_name(), d.as_micros()),
        }
    }
}

// ---------------------------------------------------------------- the echo rule (no rouse)

/// What one `Echo::read_echo` or `Echo::flush` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Read n > 0 bytes and wrote them all back, or wrote all of the rest.
    Done,
    /// The read found nothing (`WouldBlock`).
    Drained,
    /// A write came up short (or `WouldBlock`): the rest waits for writability.
    Pending,
    /// EOF or an error: close.
    Closed,
}

/// A connection's buffer: `buf[off..len]` is what a short write left unwritten.
struct Echo {
    buf: Box<[u8; BUF]>,
    off: usize,
    len: usize,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            buf: Box::new([0; BUF]),
            off: 0,
            len: 0,
        }
    }

    /// One read (up to `BUF`), and one write of what it read, straight away.
    fn read_echo(&mut self, mut s: &TcpStream) -> Step {
        debug_assert_eq!(self.off, self.len, "read while a rest is pending");
        loop {
            match s.read(&mut self.buf[..]) {
                Ok(0) => return Step::Closed,
                Ok(n) => {
                    self.off = 0;
                    self.len = n;
                    return self.flush(s);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Drained,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Closed,
            }
        }
    }

    /// One write of the unwritten rest (repeated only on `Interrupted`).
    fn flush(&mut self, mut s: &TcpStream) -> Step {
        loop {
            match s.write(&self.buf[self.off..self.len]) {
                Ok(n) => {
                    self.off += n;
                    if self.off < self.len {
                        return Step::Pending;
                    }
                    self.off = 0;
                    self.len = 0;
                    return Step::Done;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Step::Closed,
            }
        }
    }
}

/// A connection: its socket, its buffer, and its two events (set right after they are made,
/// before either is pending).
struct Conn<K> {
    stream: TcpStream,
    echo: Echo,
    keys: Option<(K, K)>,
}

impl<K: Copy> Conn<K> {
    fn keys(&self) -> (K, K) {
        self.keys.expect("keys are set before an event is added")
    }
}

/// The cell a connection's two callbacks share: `Rc<RefCell>` for the local base,
/// `Arc<Mutex>` for the thread-safe one (its callbacks must be `Send`; the lock is never
/// contended: only the loop thread takes it).
trait Shared<K>: Clone {
    fn new(c: Conn<K>) -> Self;
    fn with<R>(&self, f: impl FnOnce(&mut Conn<K>) -> R) -> R;
}

impl<K> Shared<K> for Rc<RefCell<Conn<K>>> {
    fn new(c: Conn<K>) -> Self {
        Rc::new(RefCell::new(c))
    }
    fn with<R>(&self, f: impl FnOnce(&mut Conn<K>) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

impl<K> Shared<K> for Arc<Mutex<Conn<K>>> {
    fn new(c: Conn<K>) -> Self {
        Arc::new(Mutex::new(c))
    }
    fn with<R>(&self, f: impl FnOnce(&mut Conn<K>) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// After a read (`Step` of `read_echo`) or a write (`flush`): what the loop must change.
fn on_step<K: Copy>(step: Step, from_write: bool, keys: (K, K)) -> Change<K> {
    let (read, write) = keys;
    match (step, from_write) {
        (Step::Pending, false) => Change::Switch {
            from: read,
            to: write,
        },
        (Step::Done, true) => Change::Switch {
            from: write,
            to: read,
        },
        (Step::Closed, _) => Change::Close(read, write),
        _ => Change::None,
    }
}

enum Change<K> {
    None,
    /// Delete `from`, add `to` (drop read interest for write interest, or back).
    Switch {
        from: K,
        to: K,
    },
    /// Free both events (which deregisters the fd; the socket closes when the last
    /// callback holding the connection is dropped).
    Close(K, K),
}

// ---------------------------------------------------------------- the rouse-std glue

/// Everything that calls rouse-std, for one kind of base. `$Events` is what a callback gets,
/// `$view` how it creates events with the closures of `$Cell` (the connection cell):
/// `base_ref()` takes `Send` closures, a local base's `local()` any.
macro_rules! glue {
    ($name:ident, $Events:ty, $view:ident, $Cell:ty, $build:ident) => {
        mod $name {
            use super::*;
            use rouse_core::{Event, Interest, Key};

            type Cell = $Cell;

            /// Builds the base, watches the listener, calls `ready(port, poller name)`, runs
            /// until killed.
            pub(super) fn serve(
                listener: TcpListener,
                opts: Opts,
                ready: impl FnOnce(u16, &str),
            ) -> io::Result<()> {
                let mut b = rouse_std::Builder::new();
                if let Some(spin) = opts.spin {
                    b = b.spin_before_block(spin);
                }
                let base = b.$build()?;
                let port = listener.local_addr()?.port();
                base.$view()
                    .add_owned(listener, Interest::READ, |events, _, l| {
                        accept_all(events, l)
                    })?;
                ready(port, base.poller_kind().name());
                base.run_forever()?;
                Ok(())
            }

            /// The listener is readable: accept until `WouldBlock`.
            fn accept_all(events: &$Events, l: &mut TcpListener) {
                loop {
                    match l.accept() {
                        Ok((s, _)) => {
                            if let Err(e) = open(events, s) {
                                eprintln!("W7 connection: {e}");
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("W7 accept: {e}");
                            return;
                        }
                    }
                }
            }

            /// A new connection: its READ event (pending) and WRITE event (not yet).
            fn open(events: &$Events, s: TcpStream) -> io::Result<()> {
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                let src = rouse_std::source(&s);
                let conn = <Cell as Shared<Key>>::new(Conn {
                    stream: s,
                    echo: Echo::new(),
                    keys: None,
                });
                let c = conn.clone();
                let read = events.$view().event(
                    Event::io(src, Interest::READ).persist(),
                    move |ev, _| {
                        let (step, keys) = c.with(|c| (c.echo.read_echo(&c.stream), c.keys()));
                        apply(ev, on_step(step, false, keys));
                    },
                )?;
                let c = conn.clone();
                let write = events.$view().event(
                    Event::io(src, Interest::WRITE).persist(),
                    move |ev, _| {
                        let (step, keys) = c.with(|c| (c.echo.flush(&c.stream), c.keys()));
                        apply(ev, on_step(step, true, keys));
                    },
                );
                let write = match write {
                    Ok(k) => k,
                    Err(e) => {
                        let _ = events.free(read);
                        return Err(e);
                    }
                };
                conn.with(|c| c.keys = Some((read, write)));
                if let Err(e) = events.add(read, None) {
                    apply(events, Change::Close(read, write));
                    return Err(e);
                }
                Ok(())
            }

            fn apply(events: &$Events, change: Change<Key>) {
                match change {
                    Change::None => {}
                    Change::Switch { from, to } => {
                        let _ = events.delete(from);
                        if events.add(to, None).is_err() {
                            let _ = events.free(from);
                            let _ = events.free(to);
                        }
                    }
                    Change::Close(read, write) => {
                        let _ = events.free(read);
                        let _ = events.free(write);
                    }
                }
            }
        }
    };
}

glue!(
    threaded,
    rouse_std::Context<'_>,
    base_ref,
    Arc<Mutex<Conn<Key>>>,
    build
);
glue!(
    local,
    rouse_std::Context<'_, rouse_std::Local>,
    local,
    Rc<RefCell<Conn<Key>>>,
    build_local
);

// ---------------------------------------------------------------- process setup

/// SIGPIPE ignored, the safety alarm armed, the server line printed and flushed.
fn announce(imp: &str, port: u16, poller: &str) {
    // SAFETY: installs SIG_IGN (no handler code) for SIGPIPE, and arms a process alarm;
    // neither touches memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::alarm(MAX_S);
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        "{{\"impl\":\"{imp}\",\"workload\":\"W7\",\"role\":\"server\",\"port\":{port},\
         \"pid\":{},\"max_s\":{MAX_S},\"backend\":\"{poller}\"}}",
        std::process::id()
    );
    let _ = out.flush();
}

/// Runs the server process: SIGPIPE ignored, the alarm armed, the server line printed
/// (never returns unless the base fails).
pub fn serve(opts: Opts) -> io::Result<()> {
    serve_with(opts, |port, poller| {
        announce(&opts.impl_name(), port, poller)
    })
}

/// Runs the server on this thread: binds 127.0.0.1:0, calls `ready(port, poller name)` once
/// it accepts connections, then serves (never returns unless the base fails).
pub fn serve_with(opts: Opts, ready: impl FnOnce(u16, &str)) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    match opts.kind {
        Kind::Threaded => threaded::serve(listener, opts, ready),
        Kind::Local => local::serve(listener, opts, ready),
    }
}
