//! A line-based TCP chat server on one thread: every line a client sends is broadcast to every
//! other client; a client that sends nothing for the idle timeout is dropped; SIGINT or SIGTERM
//! stops the server cleanly. Only `rouse-std`.
//!
//! - The listener is an event that owns its socket (`add_owned`).
//! - Each client has a persistent READ event **with a timeout** (libevent's idle-timeout idiom):
//!   the timeout is re-armed from now every time the event fires, so it fires with
//!   `Ready::TIMEOUT` only after `--idle-ms` without input. Data can arrive at the deadline:
//!   the callback then sees `READ | TIMEOUT`, and treats it as input (the client is not idle).
//! - Output the socket cannot take at once waits in the client's outbox, with a WRITE event
//!   pending until it is flushed.
//! - A `LocalBase` (one thread, no lock): the callbacks share the state in an `Rc<RefCell<_>>`.
//!
//! ```sh
//! cargo run --example chat_server -- --port 7000 [--idle-ms 30000]
//! nc 127.0.0.1 7000        # in two terminals: type lines
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use rouse_std::{Context, Event, Fired, Interest, Key, Local, LocalBase, Ready, Signal};

/// A line longer than this drops its client.
const MAX_LINE: usize = 4096;
/// A client whose outbox grows past this (it does not read) is dropped.
const MAX_OUTBOX: usize = 1 << 20;

type Cx<'a> = Context<'a, Local>;

struct Client {
    stream: TcpStream,
    /// READ with the idle timeout.
    read: Key,
    /// WRITE, pending while the outbox is not empty.
    write: Key,
    writing: bool,
    /// A partial line.
    inbox: Vec<u8>,
    outbox: Vec<u8>,
}

#[derive(Default)]
struct Chat {
    clients: BTreeMap<u64, Client>,
    idle: Duration,
    next_id: u64,
    lines: u64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let (port, idle) = parse_args()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;

    let base = LocalBase::new_local()?;
    let chat = Rc::new(RefCell::new(Chat {
        idle,
        ..Chat::default()
    }));
    let c = chat.clone();
    base.local()
        .add_owned(listener, Interest::READ, move |cx, _, listener| {
            accept(cx, listener, &c)
        })?;
    for (signal, name) in [(Signal::INT, "SIGINT"), (Signal::TERM, "SIGTERM")] {
        base.add_signal(signal, move |cx, _| {
            println!("{name}: stopping");
            let _ = cx.loop_break();
        })?;
    }

    println!("listening on {addr} (idle timeout {} ms)", idle.as_millis());
    base.run()?;
    {
        let chat = chat.borrow();
        println!(
            "stopped: {} clients served, {} lines broadcast, {} still connected",
            chat.next_id,
            chat.lines,
            chat.clients.len()
        );
    }
    // Closing the base frees every event (the listener's closes the listener); the clients'
    // sockets go with the last reference to the state, after their events.
    drop(base);
    Ok(())
}

/// The listener is readable: accept every pending connection.
fn accept(cx: &Cx<'_>, listener: &mut TcpListener, chat: &Rc<RefCell<Chat>>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = join(cx, stream, chat) {
                    eprintln!("join: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("accept: {e}"); // e.g. EMFILE; the listener reports it again
                return;
            }
        }
    }
}

/// A new client: its events, a welcome line.
fn join(cx: &Cx<'_>, stream: TcpStream, chat: &Rc<RefCell<Chat>>) -> io::Result<()> {
    stream.set_nonblocking(true)?;
    let source = rouse_std::source(&stream);
    let mut ch = chat.borrow_mut();
    let id = ch.next_id + 1;
    let c = chat.clone();
    let write = cx.local().event(
        Event::io(source, Interest::WRITE).persist(),
        move |cx, _| c.borrow_mut().flush(cx, id),
    )?;
    let c = chat.clone();
    let read = cx.local().add_event(
        Event::io(source, Interest::READ).persist(),
        Some(ch.idle), // re-armed from now each time it fires
        move |cx, fired| on_input(cx, fired, id, &c),
    );
    let read = match read {
        Ok(key) => key,
        Err(e) => {
            let _ = cx.free(write);
            return Err(e);
        }
    };
    ch.next_id = id;
    ch.clients.insert(
        id,
        Client {
            stream,
            read,
            write,
            writing: false,
            inbox: Vec::new(),
            outbox: Vec::new(),
        },
    );
    println!("client {id} joined");
    ch.send(cx, id, format!("welcome {id}\n").as_bytes());
    Ok(())
}

/// The client's READ event fired: input, end of file, or the idle timeout.
fn on_input(cx: &Cx<'_>, fired: Fired, id: u64, chat: &Rc<RefCell<Chat>>) {
    let mut ch = chat.borrow_mut();
    if !fired.ready.contains(Ready::READ) {
        // TIMEOUT alone: nothing arrived for the idle timeout. (`READ | TIMEOUT` means input
        // arrived at the deadline: it is read below like any input, and the client stays.)
        ch.drop_client(cx, id, "idle");
        return;
    }
    let mut buf = [0u8; 4096];
    let mut lines = Vec::new();
    let why = loop {
        let Some(client) = ch.clients.get_mut(&id) else {
            return;
        };
        match (&client.stream).read(&mut buf) {
            Ok(0) => break Some("left"),
            Ok(n) => {
                client.inbox.extend_from_slice(&buf[..n]);
                while let Some(end) = client.inbox.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = client.inbox.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line);
                    lines.push(format!("{id}: {}\n", text.trim_end()));
                }
                if client.inbox.len() > MAX_LINE {
                    break Some("line too long");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break Some("error"),
        }
    };
    for line in lines {
        ch.broadcast(cx, id, line.as_bytes());
    }
    if let Some(why) = why {
        ch.drop_client(cx, id, why);
    }
}

impl Chat {
    /// Queues `msg` for every client but `from`.
    fn broadcast(&mut self, cx: &Cx<'_>, from: u64, msg: &[u8]) {
        self.lines += 1;
        let others: Vec<u64> = self
            .clients
            .keys()
            .copied()
            .filter(|&i| i != from)
            .collect();
        for id in others {
            self.send(cx, id, msg);
        }
    }

    /// Queues `msg` for client `id` and writes what the socket takes.
    fn send(&mut self, cx: &Cx<'_>, id: u64, msg: &[u8]) {
        if let Some(client) = self.clients.get_mut(&id) {
            client.outbox.extend_from_slice(msg);
            self.flush(cx, id);
        }
    }

    /// Writes the outbox; waits for WRITE readiness with the rest.
    fn flush(&mut self, cx: &Cx<'_>, id: u64) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        while !client.outbox.is_empty() {
            match (&client.stream).write(&client.outbox) {
                Ok(0) => return self.drop_client(cx, id, "error"),
                Ok(n) => {
                    client.outbox.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.drop_client(cx, id, "error"),
            }
        }
        let waiting = !client.outbox.is_empty();
        if client.outbox.len() > MAX_OUTBOX {
            return self.drop_client(cx, id, "too slow");
        }
        if waiting != client.writing {
            client.writing = waiting;
            let _ = if waiting {
                cx.add(client.write, None)
            } else {
                cx.delete(client.write)
            };
        }
    }

    /// Drops a client: its events first, then its socket.
    fn drop_client(&mut self, cx: &Cx<'_>, id: u64, why: &str) {
        let Some(client) = self.clients.remove(&id) else {
            return;
        };
        // Delete before close: once the socket is closed its fd number may name the next
        // accepted connection. (Freeing the running event is fine: it goes when it returns.)
        let _ = cx.free(client.read);
        let _ = cx.free(client.write);
        if why == "idle" {
            let _ = (&client.stream).write(b"bye: idle\n");
        }
        let _ = client.stream.shutdown(Shutdown::Both);
        println!("client {id} dropped: {why}");
    }
}

/// `--port N` (default 0: any free port), `--idle-ms N` (default 30000).
fn parse_args() -> Result<(u16, Duration), Box<dyn Error>> {
    let (mut port, mut idle_ms) = (0, 30_000);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--idle-ms" => idle_ms = value.parse()?,
            _ => return Err(format!("unknown option {flag} (use --port N, --idle-ms N)").into()),
        }
    }
    Ok((port, Duration::from_millis(idle_ms)))
}
