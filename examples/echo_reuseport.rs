//! An echo server with one loop per core, for when one loop thread is not enough.
//!
//! Each loop runs on its own thread with its own base and its own listening socket. All the
//! sockets are bound to the same port with `SO_REUSEPORT`, so the kernel spreads new
//! connections over the loops, and each connection then lives and dies on the loop that
//! accepted it. The loops share nothing, so each base is a `LocalBase`: no lock, no
//! notifier, and callbacks that need not be `Send` (the connections are `Rc`s). Such a base
//! cannot be reached from another thread at all, so `main` stops a loop by closing its end of
//! a socketpair the loop watches.
//!
//! Each connection echoes what it reads at once; what the socket cannot take yet is kept, and
//! the connection stops reading (back-pressure) and waits for WRITE readiness until it is sent.
//!
//! SIGINT or SIGTERM stops the server cleanly.
//!
//! ```sh
//! cargo run --release --example echo_reuseport -- --port 7000 [--loops 4]
//! ```

use std::cell::{Cell, RefCell};
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::thread;

use rouse_std::{Context, Event, Interest, Key, Local, LocalBase};

fn main() -> Result<(), Box<dyn Error>> {
    let (port, loops) = parse_args()?;
    // The first socket binds (to a free port if `port` is 0); the others join its port.
    let first = reuseport_listener(port)?;
    let port = first.local_addr()?.port();
    let mut listeners = vec![first];
    for _ in 1..loops {
        listeners.push(reuseport_listener(port)?);
    }

    // `main` only waits for a signal: a base of its own that watches SIGINT and SIGTERM (the
    // handlers are installed here, before anyone is told where to connect).
    let signals = LocalBase::new_local()?;
    for signo in [rouse_std::Signal::INT, rouse_std::Signal::TERM] {
        signals.add_signal(signo, |events, _| {
            let _ = events.loop_break();
        })?;
    }

    let mut loops_running = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        let thread = thread::Builder::new()
            .name(format!("loop-{i}"))
            .spawn(move || run_loop(listener, stop_rx))?;
        loops_running.push((stop_tx, thread));
    }
    println!("listening on 127.0.0.1:{port} with {loops} loops");
    signals.run()?;

    let (mut accepted, mut write_waits) = (Vec::new(), 0);
    for (stop_tx, thread) in loops_running {
        drop(stop_tx); // the loop sees end-of-file on its end and breaks
        let (n, waits) = thread.join().expect("loop panicked")?;
        accepted.push(n);
        write_waits += waits;
    }
    println!(
        "stopped: connections per loop {accepted:?}, {write_waits} echoes waited for WRITE \
         readiness"
    );
    Ok(())
}

/// What one loop did.
#[derive(Default)]
struct LoopStats {
    accepted: Cell<u64>,
    /// Times an echo did not fit in the socket and waited for WRITE readiness.
    write_waits: Cell<u64>,
}

/// One loop: serves `listener` until `stop` reaches end-of-file. Returns the connections it
/// accepted and the echoes that waited for WRITE readiness.
fn run_loop(listener: TcpListener, mut stop: UnixStream) -> io::Result<(u64, u64)> {
    let base = LocalBase::new_local()?;
    let stats = Rc::new(LoopStats::default());

    // `local()`: the operations whose closures need not be `Send` (these share `Rc`s).
    let st = stats.clone();
    let source = rouse_std::source(&listener);
    base.local().add_event(
        Event::io(source, Interest::READ).persist(),
        None,
        move |events, _| loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    st.accepted.set(st.accepted.get() + 1);
                    if let Err(e) = Conn::serve(events, stream, st.clone()) {
                        eprintln!("connection: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("accept: {e}"); // e.g. EMFILE (see echo_server.rs)
                    return;
                }
            }
        },
    )?;

    stop.set_nonblocking(true)?;
    let source = rouse_std::source(&stop);
    base.add_event(
        Event::io(source, Interest::READ).persist(),
        None,
        move |events, _| match stop.read(&mut [0; 1]) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            _ => {
                let _ = events.loop_break(); // end-of-file: `main` closed its end
            }
        },
    )?;

    base.run()?;
    // Dropping the base (on return) frees every event; the connections' callbacks go with
    // them, and so do the connections.
    Ok((stats.accepted.get(), stats.write_waits.get()))
}

/// A connection, owned by its two events' callbacks.
struct Conn {
    stream: TcpStream,
    /// Echoed bytes the socket has not taken yet.
    out: RefCell<Vec<u8>>,
    /// (READ event, WRITE event); exactly one of them is pending at a time.
    keys: Cell<Option<(Key, Key)>>,
    stats: Rc<LoopStats>,
}

impl Conn {
    fn serve(
        events: &Context<'_, Local>,
        stream: TcpStream,
        stats: Rc<LoopStats>,
    ) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let conn = Rc::new(Conn {
            stream,
            out: RefCell::default(),
            keys: Cell::new(None),
            stats,
        });
        let source = rouse_std::source(&conn.stream);
        let c = conn.clone();
        let read = events
            .local()
            .event(Event::io(source, Interest::READ).persist(), move |ev, _| {
                c.on_readable(ev)
            })?;
        let c = conn.clone();
        let write = events.local().event(
            Event::io(source, Interest::WRITE).persist(),
            move |ev, _| c.on_writable(ev),
        )?;
        conn.keys.set(Some((read, write)));
        events.add(read, None)?;
        Ok(())
    }

    fn keys(&self) -> (Key, Key) {
        self.keys
            .get()
            .expect("set before the first event is added")
    }

    fn on_readable(self: &Rc<Self>, events: &Context<'_, Local>) {
        let mut buf = [0u8; 16 * 1024];
        // A few reads at most; the READ event is level-triggered, so the rest comes next time.
        for _ in 0..8 {
            match (&self.stream).read(&mut buf) {
                Ok(0) => return self.close(events), // the peer is done, every echo sent
                Ok(n) => match write_some(&self.stream, &buf[..n]) {
                    Ok(sent) if sent == n => {}
                    Ok(sent) => {
                        // The socket is full: keep the rest, stop reading until it is sent.
                        self.out.borrow_mut().extend_from_slice(&buf[sent..n]);
                        let waits = &self.stats.write_waits;
                        waits.set(waits.get() + 1);
                        let (read, write) = self.keys();
                        let _ = events.delete(read);
                        if events.add(write, None).is_err() {
                            self.close(events);
                        }
                        return;
                    }
                    Err(_) => return self.close(events),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(events), // e.g. reset by the peer
            }
        }
    }

    fn on_writable(self: &Rc<Self>, events: &Context<'_, Local>) {
        let result = {
            let mut out = self.out.borrow_mut();
            write_some(&self.stream, &out).map(|sent| {
                out.drain(..sent);
                out.is_empty()
            })
        };
        match result {
            Ok(false) => {} // still more: the WRITE event stays pending
            Ok(true) => {
                // All sent: read again (and see the end-of-file, if the peer is done).
                let (read, write) = self.keys();
                let _ = events.delete(write);
                if events.add(read, None).is_err() {
                    self.close(events);
                }
            }
            Err(_) => self.close(events),
        }
    }

    /// Closes the connection: its events first, then its socket.
    fn close(self: &Rc<Self>, events: &Context<'_, Local>) {
        // Delete before close: once the socket is closed, the OS may give its number to the
        // next accepted connection, and an event still registered for it would act on the
        // wrong socket. Freeing the events drops their callbacks, and with them the last
        // references to the connection (the running callback's when it returns).
        let (read, write) = self.keys();
        let _ = events.free(read);
        let _ = events.free(write);
    }
}

/// Writes what the socket takes now: `Ok(n)` with `n < buf.len()` means it is full.
fn write_some(mut stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut sent = 0;
    while sent < buf.len() {
        match stream.write(&buf[sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// A non-blocking listening socket on 127.0.0.1:`port` with `SO_REUSEPORT`, so that several
/// sockets (one per loop) can listen on the same port.
fn reuseport_listener(port: u16) -> io::Result<TcpListener> {
    fn check(r: libc::c_int) -> io::Result<libc::c_int> {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
    // SAFETY: socket(2) has no memory-safety preconditions.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) })?;
    // SAFETY: `fd` was just created and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl(2) on an fd we own.
    check(unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) })?;
    let one: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a live c_int and its size is passed with it.
        check(unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                option,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    // SAFETY: all-zero is a valid `sockaddr_in` (a plain C struct); the fields follow.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = port.to_be();
    addr.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd",
        target_os = "dragonfly"
    ))]
    {
        addr.sin_len = size_of::<libc::sockaddr_in>() as u8;
    }
    // SAFETY: `addr` is a live sockaddr_in and its size is passed with it.
    check(unsafe {
        libc::bind(
            raw,
            (&addr as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: listen(2) on a bound socket we own.
    check(unsafe { libc::listen(raw, 1024) })?;
    let listener = TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// `--port N` (default 0: any free port) and `--loops N` (default: one per core).
fn parse_args() -> Result<(u16, usize), Box<dyn Error>> {
    let mut port = 0;
    let mut loops = thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--loops" => loops = value.parse()?,
            _ => return Err(format!("unknown option {flag} (use --port N, --loops N)").into()),
        }
    }
    if loops == 0 {
        return Err("--loops must be positive".into());
    }
    Ok((port, loops))
}
