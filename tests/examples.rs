//! The examples, run: every example that exits by itself runs with a short duration and its
//! output is checked; `timers_signals` is stopped with SIGINT; the echo servers are driven by
//! hundreds of concurrent clients that check every reply byte for byte; `chat_server` by a few
//! clients (broadcast, the idle drop, then SIGTERM); `job_pool`'s results are checked one by
//! one; `priorities_timers`' output is compared line by line.
//!
//! The example binaries are built once, by a nested `cargo build --examples` into this test's
//! own target directory and profile (a no-op when `cargo test` already built them).

#![cfg(not(miri))]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The directory holding the example binaries, built on first use.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This test runs as <target>/<profile dir>/deps/examples-<hash>.
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("a target directory");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(other) => other,
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--examples", "--profile", profile, "--target-dir"])
            .arg(target_dir)
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --examples failed: {status}");
        profile_dir.join("examples")
    })
}

/// A running example, its output collected by two threads.
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The two reader threads; they end at end-of-file, when the example has exited.
    readers: Vec<thread::JoinHandle<()>>,
}

impl Proc {
    fn start(name: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(examples_dir().join(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let o = Arc::clone(&stdout);
        let out_reader = thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                o.lock().unwrap().push_str(&(line.clone() + "\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().expect("piped");
        let e = Arc::clone(&stderr);
        let err_reader = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            e.lock().unwrap().push_str(&s);
        });
        Proc {
            name: name.to_string(),
            child,
            lines,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    fn output(&self) -> String {
        format!(
            "--- stdout of {}:\n{}--- stderr:\n{}",
            self.name,
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }

    /// The first stdout line that contains `needle`, waiting at most `timeout`.
    fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no line with {needle:?} within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("exited before printing {needle:?}"))
                }
            }
        }
    }

    fn signal(&self, signo: i32) {
        // SAFETY: kill(2) on our own child's pid, which it keeps until we wait for it.
        let r = unsafe { libc::kill(self.child.id() as libc::pid_t, signo) };
        assert_eq!(r, 0, "kill: {}", io::Error::last_os_error());
    }

    /// Waits for the exit (killing it after `timeout`); asserts success; returns stdout.
    fn finish(mut self, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= end {
                self.fail(&format!("still running after {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(20));
        };
        self.join_readers();
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
        let out = self.stdout.lock().unwrap().clone();
        out
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.join_readers();
        panic!("example {}: {why}\n{}", self.name, self.output());
    }

    /// Once the example has exited: waits until all its output is collected.
    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_lines(out: &str, name: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            out.contains(needle),
            "{name}: no {needle:?} in its output:\n{out}"
        );
    }
}

/// The number right before `word` in `line` ("12 requests" -> 12).
fn number_before(line: &str, word: &str) -> u64 {
    let before = &line[..line
        .find(word)
        .unwrap_or_else(|| panic!("{word:?} in {line:?}"))];
    let token = before.split_whitespace().last().expect("a number");
    token
        .trim_start_matches('(')
        .parse()
        .unwrap_or_else(|e| panic!("{token:?} in {line:?}: {e}"))
}

#[test]
fn demo_reports_coalescing_latency_and_lateness() {
    let out =
        Proc::start("demo", &["--seconds", "1", "--workers", "3"]).finish(Duration::from_secs(60));
    assert_lines(
        &out,
        "demo",
        &[
            "rouse demo: 3 workers for 1 s; poller ",
            ", notifier ",
            "callbacks",
            "events/s",
            "wake latency (activate -> callback): p50 ",
            "timer lateness (callback - deadline): p50 ",
            "p99.9 ",
        ],
    );
    let wakes = out
        .lines()
        .find(|l| l.contains("wakes:"))
        .expect("a wakes line");
    let (requests, writes) = (
        number_before(wakes, "requests"),
        number_before(wakes, "notification writes"),
    );
    assert!(requests > 0, "no wake requests:\n{out}");
    assert!(writes <= requests, "more writes than requests:\n{out}");
    assert!(!out.contains("no samples"), "{out}");
}

#[test]
fn custom_runtime_runs_on_its_own_seams() {
    let out = Proc::start("custom_runtime", &[]).finish(Duration::from_secs(30));
    assert_lines(
        &out,
        "custom_runtime",
        &["tick 1", "job ran", "loop returned Break", "doorbell rings"],
    );
}

#[test]
fn timers_signals_exits_by_itself() {
    let out = Proc::start("timers_signals", &["--seconds", "1"]).finish(Duration::from_secs(30));
    assert_lines(
        &out,
        "timers_signals",
        &[
            "running",
            "one-shot",
            "interval #1",
            "common timeout",
            "late",
            "goodbye",
        ],
    );
    assert!(!out.contains("SIGINT"), "{out}");
}

#[test]
fn timers_signals_stops_cleanly_on_sigint() {
    let mut p = Proc::start("timers_signals", &["--seconds", "60"]);
    // The handler is installed before this line is printed.
    p.wait_line("running", Duration::from_secs(30));
    p.signal(libc::SIGINT);
    let out = p.finish(Duration::from_secs(10));
    assert_lines(&out, "timers_signals", &["SIGINT", "goodbye"]);
}

#[test]
fn echo_server_echoes_every_byte() {
    echo_test("echo_server", &[]);
}

#[test]
fn echo_reuseport_echoes_every_byte() {
    echo_test("echo_reuseport", &["loops"]);
}

/// Clients at once; connections each makes one after the other; messages per connection.
const CLIENTS: usize = 200;
const ROUNDS: usize = 3;
const MAX_MESSAGES: u64 = 4;
const MAX_LEN: u64 = 64 * 1024;
/// What the one big client sends; more than loopback sockets buffer (tens of MiB on Linux).
const BIG: usize = 64 << 20;

/// Starts `name --port 0`, drives it with [`CLIENTS`] concurrent clients plus one big client,
/// stops it with SIGTERM and checks that it stopped cleanly.
fn echo_test(name: &str, banner: &[&str]) {
    let mut server = Proc::start(name, &["--port", "0"]);
    let line = server.wait_line("listening on ", Duration::from_secs(30));
    for word in banner {
        assert!(
            line.contains(word),
            "{name}: banner {line:?} lacks {word:?}"
        );
    }
    let addr: SocketAddr = line["listening on ".len()..]
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no address in {line:?}"));

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let started = Instant::now();
    let big = thread::spawn(move || big_client(addr, seed));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| thread::spawn(move || client(addr, seed ^ ((i as u64 + 1) * 0x9e37_79b9))))
        .collect();
    let mut failures = Vec::new();
    let mut bytes = 0;
    for (i, c) in clients.into_iter().enumerate() {
        match c.join().expect("client panicked") {
            Ok(n) => bytes += n,
            Err(e) => failures.push(format!("client {i}: {e}")),
        }
    }
    match big.join().expect("big client panicked") {
        Ok(n) => bytes += n,
        Err(e) => failures.push(format!("the big client: {e}")),
    }
    if !failures.is_empty() {
        let n = failures.len();
        failures.truncate(5);
        server.fail(&format!(
            "{n} of {} clients failed (seed {seed:#x}):\n  {}",
            CLIENTS + 1,
            failures.join("\n  ")
        ));
    }
    eprintln!(
        "{name}: {CLIENTS} clients x {ROUNDS} connections and a big one, {bytes} bytes echoed in \
         {:?}",
        started.elapsed()
    );
    server.signal(libc::SIGTERM);
    let out = server.finish(Duration::from_secs(10));
    let stopped = out.lines().find(|l| l.starts_with("stopped"));
    eprintln!(
        "{name}: {}",
        stopped.unwrap_or_else(|| panic!("{name}: no stopped line:\n{out}"))
    );
}

/// One client: [`ROUNDS`] connections one after the other, each with up to [`MAX_MESSAGES`]
/// random messages of up to [`MAX_LEN`] bytes. Returns the bytes echoed.
fn client(addr: SocketAddr, seed: u64) -> Result<usize, String> {
    let mut rng = Rng(seed | 1);
    let mut total = 0;
    for round in 0..ROUNDS {
        let messages: Vec<usize> = (0..1 + rng.below(MAX_MESSAGES))
            .map(|_| 1 + rng.below(MAX_LEN) as usize)
            .collect();
        let data = rng.bytes(messages.iter().sum());
        echo(addr, data, &messages, Duration::ZERO).map_err(|e| format!("round {round}: {e}"))?;
        total += messages.iter().sum::<usize>();
    }
    Ok(total)
}

/// One connection that sends [`BIG`] bytes and reads nothing for a second, so that the echo
/// backs up in the server: partial writes, WRITE interest, back-pressure.
fn big_client(addr: SocketAddr, seed: u64) -> Result<usize, String> {
    let messages = vec![MAX_LEN as usize; BIG / MAX_LEN as usize];
    let data = Rng(seed | 1).bytes(BIG);
    echo(addr, data, &messages, Duration::from_secs(1))?;
    Ok(BIG)
}

/// Sends `data` in `messages` (their lengths) on a new connection from a second thread, while
/// this one reads the echo (from `read_after` on) until the server closes after the last
/// reply; compares.
fn echo(
    addr: SocketAddr,
    data: Vec<u8>,
    messages: &[usize],
    read_after: Duration,
) -> Result<(), String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_secs(20));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let data = Arc::new(data);
    let (sent, messages) = (Arc::clone(&data), messages.to_vec());
    let sending = thread::spawn(move || -> io::Result<()> {
        let mut at = 0;
        for len in messages {
            writer.write_all(&sent[at..at + len])?;
            at += len;
        }
        writer.shutdown(Shutdown::Write)
    });
    thread::sleep(read_after);
    let mut got = Vec::with_capacity(data.len());
    let read = (&stream).read_to_end(&mut got);
    let wrote = sending.join().expect("writer panicked");
    let context = format!("sent {} bytes, got {} back", data.len(), got.len());
    wrote.map_err(|e| format!("{context}: write: {e}"))?;
    read.map_err(|e| format!("{context} before a read error: {e}"))?;
    if got != *data {
        let at = got
            .iter()
            .zip(data.iter())
            .take_while(|(a, b)| a == b)
            .count();
        return Err(format!("{context}: first difference at byte {at}"));
    }
    Ok(())
}

/// xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(len);
        v
    }
}

/// The address in a `listening on ADDR ...` line.
fn listening_addr(name: &str, line: &str) -> SocketAddr {
    line["listening on ".len()..]
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no address in {line:?}"))
}

/// A client of `chat_server`: the id from its welcome line, and its line-based socket.
struct ChatClient {
    id: u64,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl ChatClient {
    fn connect(addr: SocketAddr) -> ChatClient {
        let stream = TcpStream::connect(addr).expect("connect to chat_server");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = ChatClient {
            id: 0,
            reader: BufReader::new(stream),
            writer,
        };
        let welcome = client.line().expect("a welcome line");
        client.id = welcome
            .strip_prefix("welcome ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("chat_server: welcome line {welcome:?}"));
        client
    }

    /// The next line; `None` at end of file.
    fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end().to_string()),
            Err(e) => panic!("chat client {}: read: {e}", self.id),
        }
    }

    fn say(&mut self, text: &str) {
        writeln!(self.writer, "{text}").expect("write to chat_server");
    }

    /// Reads until every line of `want` came (in any order, others in between).
    fn expect(&mut self, want: &[String]) {
        let mut missing: Vec<&String> = want.iter().collect();
        while !missing.is_empty() {
            let line = self
                .line()
                .unwrap_or_else(|| panic!("chat client {}: EOF before {missing:?}", self.id));
            missing.retain(|w| **w != line);
        }
    }
}

#[test]
fn chat_server_broadcasts_drops_idle_clients_and_stops_on_sigterm() {
    const IDLE: Duration = Duration::from_millis(1000);
    let mut server = Proc::start("chat_server", &["--port", "0", "--idle-ms", "1000"]);
    let addr = listening_addr(
        "chat_server",
        &server.wait_line("listening on ", Duration::from_secs(30)),
    );

    // Three clients each say hello (which also keeps them from going idle): every line
    // reaches both others.
    let mut clients: Vec<ChatClient> = (0..3).map(|_| ChatClient::connect(addr)).collect();
    for c in &mut clients {
        let text = format!("hello from {}", c.id);
        c.say(&text);
    }
    let ids: Vec<u64> = clients.iter().map(|c| c.id).collect();
    for c in &mut clients {
        let want: Vec<String> = ids
            .iter()
            .filter(|&&i| i != c.id)
            .map(|i| format!("{i}: hello from {i}"))
            .collect();
        c.expect(&want);
    }

    // A fourth one joins. The first keeps talking; the other three go silent and are dropped
    // after the idle timeout (the silent newcomer first told why), while the first stays.
    let newcomer = ChatClient::connect(addr);
    let joined = Instant::now();
    let mut talker = clients.remove(0);
    let mut silent = clients;
    silent.push(newcomer);
    let silent_ids: Vec<u64> = silent.iter().map(|c| c.id).collect();
    let readers: Vec<_> = silent
        .into_iter()
        .map(|mut c| {
            thread::spawn(move || {
                let mut lines = Vec::new();
                while let Some(line) = c.line() {
                    lines.push(line);
                }
                (c.id, lines, Instant::now())
            })
        })
        .collect();
    let pings = 25;
    for i in 0..pings {
        talker.say(&format!("ping {i}"));
        thread::sleep(IDLE / 10);
    }
    for r in readers {
        let (id, lines, eof_at) = r.join().expect("reader panicked");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("bye: idle"),
            "client {id}: {lines:?}"
        );
        if id == *silent_ids.last().unwrap() {
            let after = eof_at - joined;
            assert!(
                after >= IDLE / 2,
                "the newcomer was dropped after {after:?}, before the idle timeout"
            );
            assert!(
                lines.iter().any(|l| l == &format!("{}: ping 0", talker.id)),
                "the newcomer got the talker's lines: {lines:?}"
            );
        }
    }
    for id in &silent_ids {
        server.wait_line(
            &format!("client {id} dropped: idle"),
            Duration::from_secs(10),
        );
    }
    // The talker is still connected: no end of file, just nothing to read.
    talker
        .writer
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1];
    match talker.reader.get_ref().read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the talker should still be connected and idle, got {other:?}"),
    }

    server.signal(libc::SIGTERM);
    let out = server.finish(Duration::from_secs(10));
    assert_lines(
        &out,
        "chat_server",
        &[
            "SIGTERM: stopping",
            "stopped: 4 clients served",
            "1 still connected",
        ],
    );
    assert!(
        !out.contains(&format!("client {} dropped", talker.id)),
        "the talker was dropped:\n{out}"
    );
}

#[test]
fn job_pool_gets_every_result_once() {
    const JOBS: u64 = 300;
    let out = Proc::start("job_pool", &["--jobs", "300", "--workers", "4"])
        .finish(Duration::from_secs(60));
    let collatz = |mut n: u64| {
        let mut steps = 0;
        while n > 1 {
            n = if n & 1 == 0 { n / 2 } else { 3 * n + 1 };
            steps += 1;
        }
        steps
    };
    let mut seen = vec![0u32; JOBS as usize];
    for line in out
        .lines()
        .filter(|l| l.starts_with("job ") && l.contains(" = "))
    {
        // "job I = V (worker W)"
        let mut words = line.split_whitespace();
        let i: u64 = words.nth(1).and_then(|w| w.parse().ok()).expect(line);
        let v: u64 = words.nth(1).and_then(|w| w.parse().ok()).expect(line);
        assert_eq!(v, collatz((i + 1) * 7919), "job {i}'s result: {line}");
        seen[i as usize] += 1;
    }
    for (i, n) in seen.iter().enumerate() {
        assert_eq!(*n, 1, "job {i} arrived {n} times:\n{out}");
    }
    assert_lines(
        &out,
        "job_pool",
        &[
            "job pool: 300 jobs, 4 workers",
            "all 300 results arrived once (0 missing)",
            "notification writes",
        ],
    );
    assert!(!out.contains("twice"), "{out}");
}

#[test]
fn priorities_timers_prints_its_deterministic_order() {
    let out = Proc::start("priorities_timers", &[]).finish(Duration::from_secs(30));
    let expected = "\
1. priorities
   priority 1: mid
   priority 0: high (activated by mid, runs before low)
   priority 2: low
2. a one-shot timer re-armed by an interval
   tick 1: watchdog re-armed
   tick 2: watchdog re-armed
   tick 3: watchdog re-armed
   watchdog fired once, after 3 re-arms
3. an interval that falls behind
   run 1 stalls the loop for 55 ms (5 periods)
   run 2 runs late, once; next run re-armed from now: true (no catch-up burst)
   run 3 is back on a 10 ms cadence
   3 runs in all
done
";
    assert_eq!(out, expected, "priorities_timers' output");
}
