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
//! - EOF or an error other than `EAGAIN`/`EINTR` closes the connection (its events are
//!   freed, which deregisters the fd before it is closed); `EINTR` retries the call;
//! - SIGPIPE ignored, `alarm(60)`, one line `{"impl":..,"workload":"W7","role":"server",
//!   "port":P,"pid":PID,..}` on stdout, flushed, then it serves until killed.
//!
//! Every rouse-std call is in the `glue!` macro below (build the base, watch the listener,
//! create/add/delete/free a connection's events, run): one body, instantiated once for the
//! thread-safe [`Base`](rouse_std::Base) and once for [`LocalBase`](rouse_std::LocalBase).
//! The echo state machine (`Echo`) knows nothing of rouse. A connection (socket, keys,
//! buffer: one allocation) is shared by its two callbacks through an `Arc<LoopCell>` on
//! `Base` (no lock: the cell is lent only to the base's callbacks) and an `Rc<RefCell>` on
//! `LocalBase`. Reads and writes are `read(2)`/`write(2)` on the socket's fd, as the C
//! peers' and the floor's: std's `TcpStream` calls cost ~57 more instructions per round
//! trip (about half of this server's own code then; `scripts/instructions.sh --w7`).

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rouse_std::LoopCell;

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
    off: usize,
    len: usize,
    buf: [u8; BUF],
}

impl Echo {
    fn new() -> Echo {
        Echo {
            off: 0,
            len: 0,
            buf: [0; BUF],
        }
    }

    /// One read (up to `BUF`), and one write of what it read, straight away.
    #[inline(always)]
    fn read_echo(&mut self, fd: BorrowedFd<'_>) -> Step {
        debug_assert_eq!(self.off, self.len, "read while a rest is pending");
        loop {
            match read(fd, &mut self.buf) {
                Ok(0) => return Step::Closed,
                Ok(n) => {
                    self.off = 0;
                    self.len = n;
                    return self.flush(fd);
                }
                Err(libc::EAGAIN) => return Step::Drained,
                Err(libc::EINTR) => {}
                Err(_) => return Step::Closed,
            }
        }
    }

    /// One write of the unwritten rest (repeated only on `EINTR`).
    #[inline(always)]
    fn flush(&mut self, fd: BorrowedFd<'_>) -> Step {
        loop {
            match write(fd, &self.buf[self.off..self.len]) {
                Ok(n) => {
                    self.off += n;
                    if self.off < self.len {
                        return Step::Pending;
                    }
                    self.off = 0;
                    self.len = 0;
                    return Step::Done;
                }
                Err(libc::EAGAIN) => return Step::Pending,
                Err(libc::EINTR) => {}
                Err(_) => return Step::Closed,
            }
        }
    }
}

/// `read(2)`: the bytes read, or the errno. What `Read for &TcpStream` does (a `recv`), less
/// std's wrapping, which costs about 29 instructions per call (W7 is counted in
/// instructions); the C peers and the floor call `read`/`write` the same way.
#[inline(always)]
fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes; `fd` is open (borrowed).
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// `write(2)`: the bytes written, or the errno (SIGPIPE is ignored: a closed peer is `EPIPE`).
#[inline(always)]
fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes; `fd` is open (borrowed).
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

#[cold]
fn errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// A connection: its socket, its buffer (inline: one allocation per connection), and its
/// two events (set right after they are made, before either is pending).
struct Conn<K> {
    stream: TcpStream,
    keys: Option<(K, K)>,
    echo: Echo,
}

impl<K: Copy> Conn<K> {
    fn new(stream: TcpStream) -> Conn<K> {
        Conn {
            stream,
            keys: None,
            echo: Echo::new(),
        }
    }

    /// A read notification: one read, one write of what it read; what the loop must change.
    #[inline(always)]
    fn on_read(&mut self) -> Change<K> {
        match self.echo.read_echo(self.stream.as_fd()) {
            Step::Done | Step::Drained => Change::None,
            Step::Pending => {
                let (read, write) = self.keys();
                Change::Switch {
                    from: read,
                    to: write,
                }
            }
            Step::Closed => self.close(),
        }
    }

    /// A write notification (a rest is pending): one write of the rest.
    #[inline(always)]
    fn on_write(&mut self) -> Change<K> {
        match self.echo.flush(self.stream.as_fd()) {
            Step::Pending | Step::Drained => Change::None,
            Step::Done => {
                let (read, write) = self.keys();
                Change::Switch {
                    from: write,
                    to: read,
                }
            }
            Step::Closed => self.close(),
        }
    }

    fn close(&self) -> Change<K> {
        let (read, write) = self.keys();
        Change::Close(read, write)
    }

    fn keys(&self) -> (K, K) {
        self.keys.expect("keys are set before an event is added")
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

/// The cell a connection's two callbacks share, reached with the callback's context:
/// `Rc<RefCell>` for the local base; `Arc<LoopCell>` for the thread-safe one, whose callbacks
/// must be `Send` (a `LoopCell` is `Sync` without a lock: it lends its value only to the
/// callbacks of its base, which run one at a time on the loop thread).
trait Shared<F: rouse_std::Flavor, K>: Clone {
    fn new(base: rouse_std::BaseRef<'_, F>, c: Conn<K>) -> Self;
    fn with<R>(&self, cx: &rouse_std::Context<'_, F>, f: impl FnOnce(&mut Conn<K>) -> R) -> R;
}

impl<K> Shared<rouse_std::Local, K> for Rc<RefCell<Conn<K>>> {
    fn new(_: rouse_std::BaseRef<'_, rouse_std::Local>, c: Conn<K>) -> Self {
        Rc::new(RefCell::new(c))
    }
    #[inline]
    fn with<R>(
        &self,
        _: &rouse_std::Context<'_, rouse_std::Local>,
        f: impl FnOnce(&mut Conn<K>) -> R,
    ) -> R {
        f(&mut self.borrow_mut())
    }
}

impl<K: Send> Shared<rouse_std::Threaded, K> for Arc<LoopCell<Conn<K>>> {
    fn new(base: rouse_std::BaseRef<'_, rouse_std::Threaded>, c: Conn<K>) -> Self {
        Arc::new(LoopCell::new(base, c))
    }
    #[inline]
    fn with<R>(&self, cx: &rouse_std::Context<'_>, f: impl FnOnce(&mut Conn<K>) -> R) -> R {
        LoopCell::with(self, cx, f)
    }
}

/// Everything that calls rouse-std, for one kind of base. `$F` is its flavor, `$view` how it
/// creates events with the closures of `$Cell` (the connection cell): `base_ref()` takes
/// `Send` closures, a local base's `local()` any.
macro_rules! glue {
    ($name:ident, $F:ty, $view:ident, $Cell:ty, $build:ident) => {
        mod $name {
            use super::*;
            use rouse_core::{Event, Interest, Key};

            type Cell = $Cell;
            type Events<'a> = rouse_std::Context<'a, $F>;

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
            fn accept_all(events: &Events<'_>, l: &mut TcpListener) {
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
            fn open(events: &Events<'_>, s: TcpStream) -> io::Result<()> {
                s.set_nonblocking(true)?;
                s.set_nodelay(true)?;
                let src = rouse_std::source(&s);
                let conn = <Cell as Shared<$F, Key>>::new(events.base_ref(), Conn::new(s));
                let c = conn.clone();
                let read = events.$view().event(
                    Event::io(src, Interest::READ).persist(),
                    move |ev, _| {
                        let change = c.with(ev, |c| c.on_read());
                        apply(ev, change);
                    },
                )?;
                let c = conn.clone();
                let write = events.$view().event(
                    Event::io(src, Interest::WRITE).persist(),
                    move |ev, _| {
                        let change = c.with(ev, |c| c.on_write());
                        apply(ev, change);
                    },
                );
                let write = match write {
                    Ok(k) => k,
                    Err(e) => {
                        let _ = events.free(read);
                        return Err(e);
                    }
                };
                conn.with(events, |c| c.keys = Some((read, write)));
                if let Err(e) = events.add(read, None) {
                    change(events, Change::Close(read, write));
                    return Err(e);
                }
                Ok(())
            }

            /// Nothing to change (the common case) costs a compare here.
            #[inline]
            fn apply(events: &Events<'_>, c: Change<Key>) {
                if !matches!(c, Change::None) {
                    change(events, c);
                }
            }

            #[inline(never)]
            fn change(events: &Events<'_>, change: Change<Key>) {
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
    rouse_std::Threaded,
    base_ref,
    Arc<LoopCell<Conn<Key>>>,
    build
);
glue!(
    local,
    rouse_std::Local,
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
