//! A TCP echo server whose sockets are served by the loop while a pool of worker threads
//! computes the replies: libevent's `evthread` + `event_active` idiom.
//!
//! - The listener and every connection are watched with READ events; their callbacks run on the
//!   loop thread and never block (non-blocking sockets: `WouldBlock` ends a read or a write).
//! - What a connection receives goes to a worker. The worker computes the reply (here the same
//!   bytes: an echo), appends it to the connection's output queue and **activates** the
//!   connection's user event through a `Handle`. That wakes the loop if it sleeps, and the
//!   loop writes the queue out.
//! - A reply the socket cannot take at once stays queued, and a WRITE event is added until the
//!   queue is flushed.
//! - A connection is closed once the peer has finished sending and every reply is written (or at
//!   once on an error): its events are freed first, then its socket is closed.
//!
//! SIGINT or SIGTERM stops the server cleanly.
//!
//! ```sh
//! cargo run --release --example echo_server -- --port 7000 [--workers 4]
//! nc 127.0.0.1 7000        # in another terminal: type lines, they come back
//! ```

use std::collections::VecDeque;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::thread;

use rouse_std::{Base, Context, Event, Handle, Interest, Key, Ready};

/// A connection: shared by its callbacks (on the loop thread) and the workers.
struct Conn {
    id: u64,
    stream: TcpStream,
    /// Its events, set once right after they are created.
    keys: OnceLock<Keys>,
    state: Mutex<ConnState>,
    totals: Arc<Totals>,
}

#[derive(Clone, Copy)]
struct Keys {
    /// READ on the socket: feeds the workers.
    read: Key,
    /// WRITE on the socket: pending only while replies wait for room in the socket.
    write: Key,
    /// A user event the workers activate when they queued a reply.
    flush: Key,
}

#[derive(Default)]
struct ConnState {
    /// Replies computed by the workers, not written yet.
    out: VecDeque<u8>,
    /// Chunks handed to a worker whose reply is not queued yet.
    in_flight: usize,
    /// The peer finished sending: close once every reply is written.
    eof: bool,
    /// The WRITE event is pending.
    writing: bool,
    /// Closed: the events are freed, replies are dropped.
    closed: bool,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap()
    }

    fn keys(&self) -> Keys {
        *self
            .keys
            .get()
            .expect("keys are set before the first event is added")
    }
}

/// Some received bytes of a connection, for a worker.
struct Job {
    conn: Arc<Conn>,
    data: Vec<u8>,
}

/// The workers' queues. A connection always goes to the same worker, so its replies are queued
/// in the order its bytes arrived.
struct Pool {
    queues: Vec<mpsc::Sender<Job>>,
}

impl Pool {
    fn start(workers: usize, handle: &Handle) -> (Pool, Vec<thread::JoinHandle<()>>) {
        let (mut queues, mut threads) = (Vec::new(), Vec::new());
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel();
            let handle = handle.clone();
            queues.push(tx);
            threads.push(thread::spawn(move || worker(rx, handle)));
        }
        (Pool { queues }, threads)
    }

    fn submit(&self, job: Job) {
        let queue = &self.queues[job.conn.id as usize % self.queues.len()];
        // Fails only once the workers are gone, when the server stops.
        let _ = queue.send(job);
    }
}

/// Totals for the goodbye line.
#[derive(Default)]
struct Totals {
    connections: AtomicU64,
    bytes: AtomicU64,
    /// Times a reply did not fit in the socket and waited for WRITE readiness.
    write_waits: AtomicU64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let (port, workers) = parse_args()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    let base = Base::new()?;
    let (pool, threads) = Pool::start(workers, &base.handle());
    let pool = Arc::new(pool);
    let totals = Arc::new(Totals::default());

    // The listener: accept every pending connection and start serving it.
    let (t, mut next_id) = (totals.clone(), 0u64);
    let source = rouse_std::source(&listener);
    base.add_event(
        Event::io(source, Interest::READ).persist(),
        None,
        move |events, _| loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    next_id += 1;
                    t.connections.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = serve(events, stream, next_id, &pool, t.clone()) {
                        eprintln!("connection {next_id}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // E.g. EMFILE. The listener stays readable, so this comes back on the next
                    // iteration until a connection closes; a production server would stop
                    // accepting for a moment (delete this event, add it back from a timer).
                    eprintln!("accept: {e}");
                    return;
                }
            }
        },
    )?;
    for signo in [rouse_std::Signal::INT, rouse_std::Signal::TERM] {
        base.add_signal(signo, |events, _| {
            let _ = events.loop_break();
        })?;
    }

    println!("listening on {addr} with {workers} workers");
    base.run()?;
    println!(
        "stopped: {} connections, {} bytes echoed, {} replies waited for WRITE readiness",
        totals.connections.load(Ordering::Relaxed),
        totals.bytes.load(Ordering::Relaxed),
        totals.write_waits.load(Ordering::Relaxed)
    );
    // Closing the base frees every event; their callbacks held the last senders of the pool, so
    // the workers' queues end and the workers return.
    drop(base);
    for t in threads {
        t.join().expect("worker panicked");
    }
    Ok(())
}

/// Creates the events of a new connection and starts reading it.
fn serve(
    events: &Context<'_>,
    stream: TcpStream,
    id: u64,
    pool: &Arc<Pool>,
    totals: Arc<Totals>,
) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    stream.set_nodelay(true)?;
    let conn = Arc::new(Conn {
        id,
        stream,
        keys: OnceLock::new(),
        state: Mutex::default(),
        totals,
    });
    let source = rouse_std::source(&conn.stream);
    // (If a call below fails, the base is closing, and closing frees whatever was created.)
    let (c, p) = (conn.clone(), pool.clone());
    let read = events.event(
        Event::io(source, Interest::READ).persist(),
        move |events, _| on_readable(events, &c, &p),
    )?;
    let c = conn.clone();
    let write = events.event(
        Event::io(source, Interest::WRITE).persist(),
        move |events, _| flush(events, &c),
    )?;
    // Not added (not pending): a user event runs when activated, pending or not, and an event
    // that is not pending does not keep `run` from returning.
    let c = conn.clone();
    let flush = events.event(Event::user(), move |events, _| flush(events, &c))?;
    let _ = conn.keys.set(Keys { read, write, flush });
    events.add(read, None)?;
    Ok(())
}

/// The socket is readable: hand what arrived to the connection's worker.
fn on_readable(events: &Context<'_>, conn: &Arc<Conn>, pool: &Pool) {
    let mut buf = [0u8; 16 * 1024];
    // A few reads at most: the READ event is level-triggered, so what is left is reported again
    // on the next iteration, and a fast sender cannot keep the loop from other connections.
    for _ in 0..8 {
        match (&conn.stream).read(&mut buf) {
            Ok(0) => {
                // End-of-file: stop reading (an EOF socket stays readable forever) and close
                // once the replies in flight are written.
                let done = {
                    let mut st = conn.state();
                    st.eof = true;
                    st.in_flight == 0 && st.out.is_empty()
                };
                let _ = events.delete(conn.keys().read);
                if done {
                    close(events, conn);
                }
                return;
            }
            Ok(n) => {
                conn.totals.bytes.fetch_add(n as u64, Ordering::Relaxed);
                conn.state().in_flight += 1;
                pool.submit(Job {
                    conn: conn.clone(),
                    data: buf[..n].to_vec(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return close(events, conn), // e.g. reset by the peer
        }
    }
}

/// A worker: computes replies and hands them back to the loop.
fn worker(jobs: mpsc::Receiver<Job>, handle: Handle) {
    for Job { conn, data } in jobs {
        // The reply. A real server would parse a request and compute a response here; an echo
        // server replies with exactly the bytes it received.
        let reply = data;
        {
            let mut st = conn.state();
            st.in_flight -= 1;
            if st.closed {
                continue;
            }
            st.out.extend(&reply);
        }
        // Ask the loop to write it out. If the loop sleeps in its poller, this writes its
        // notifier once; if the flush event is already queued (another reply came first), it
        // costs one atomic load. A stale key (the loop closed the connection meanwhile) is an
        // error (`NotFound`), never another connection's event: keys are generational; a
        // base shut down meanwhile is `NotConnected`.
        match handle.activate(conn.keys().flush, Ready::USER) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotConnected
                ) => {}
            Err(e) => eprintln!("connection {}: {e}", conn.id),
        }
    }
}

/// Writes the queued replies; waits for WRITE readiness with what the socket cannot take yet.
fn flush(events: &Context<'_>, conn: &Arc<Conn>) {
    let keys = conn.keys();
    let mut st = conn.state();
    if st.closed {
        return;
    }
    while !st.out.is_empty() {
        let (front, _) = st.out.as_slices();
        match (&conn.stream).write(front) {
            Ok(0) => return close_locked(events, conn, st),
            Ok(n) => {
                st.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The socket's send buffer is full: the WRITE event calls us again when the
                // peer has read some.
                if !st.writing && events.add(keys.write, None).is_ok() {
                    st.writing = true;
                    conn.totals.write_waits.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return close_locked(events, conn, st),
        }
    }
    if st.writing {
        st.writing = false;
        let _ = events.delete(keys.write);
    }
    if st.eof && st.in_flight == 0 {
        close_locked(events, conn, st);
    }
}

fn close_locked(events: &Context<'_>, conn: &Arc<Conn>, st: MutexGuard<'_, ConnState>) {
    drop(st);
    close(events, conn);
}

/// Closes a connection: its events first, then its socket.
fn close(events: &Context<'_>, conn: &Arc<Conn>) {
    {
        let mut st = conn.state();
        if st.closed {
            return;
        }
        st.closed = true;
        st.out = VecDeque::new();
    }
    // Delete before close: an fd number is only a name. Once the socket is closed, the OS may
    // give the number to the next accepted connection, and an event still registered for it
    // would report (and act on) the wrong socket. Freeing the events also drops their callbacks
    // and with them their references to `conn` (the running callback's when it returns).
    let keys = conn.keys();
    for key in [keys.read, keys.write, keys.flush] {
        let _ = events.free(key);
    }
    // The peer sees the end now; the fd itself is closed when the last reference to `conn`
    // goes (a worker may still hold one for a moment).
    let _ = conn.stream.shutdown(Shutdown::Both);
}

/// `--port N` (default 0: any free port) and `--workers N` (default: one per core).
fn parse_args() -> Result<(u16, usize), Box<dyn Error>> {
    let mut port = 0;
    let mut workers = thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--workers" => workers = value.parse()?,
            _ => return Err(format!("unknown option {flag} (use --port N, --workers N)").into()),
        }
    }
    if workers == 0 {
        return Err("--workers must be positive".into());
    }
    Ok((port, workers))
}
