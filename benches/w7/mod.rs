//! W7 (TCP echo over loopback, a whole server) and W7check (its short-write rule), run the
//! way the peers' `run-all.sh` runs them: per base (the thread-safe `Base`, then `LocalBase`)
//! start the rouse server in its own process (this executable again, `W7server base|local`),
//! read the port from its one line, run the peers' load client against it, print the
//! client's JSON line (under rouse's name), stop the server.
//!
//! The client is the peers' `w7client` (`../shared/peers/rust`, relative to the repository
//! root): the path in `ROUSE_W7CLIENT`, or else built from there with cargo (into
//! `<target>/w7-peers`). Everything is bounded: the server must announce within 5 s, the
//! client is killed after 20 s, the server after 30 s (and it ends by itself after 60 s).
//!
//! ```text
//! cargo bench --bench workloads -- W7          # both bases, spin default and off, ~18 s
//! cargo bench --bench workloads -- W7check     # 64 MiB through one connection, both bases, ~3 s
//! cargo bench --bench workloads -- W7 spin_us=N # both bases with Builder::spin_before_block(N us)
//! ```

pub mod server;

use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use server::{Kind, Opts};

const ANNOUNCE_LIMIT: Duration = Duration::from_secs(5);
const CLIENT_LIMIT: Duration = Duration::from_secs(20);
const SERVER_LIMIT: Duration = Duration::from_secs(30);
/// W7check: the bytes pushed through one connection (what `run-all.sh W7check` sends).
const BULK_BYTES: u64 = 64 << 20;

/// What the W7 part of a command line asks for.
#[derive(Default)]
pub struct Request {
    /// "W7" and/or "W7check", in order.
    pub modes: Vec<&'static str>,
    /// `W7server base|local [spin_us=N]`: be the server (the harness's child process).
    pub server: Option<Opts>,
    /// `spin_us=N` next to W7/W7check: the servers' `Builder::spin_before_block` (an
    /// experiment; the default is the builder's).
    pub spin: Option<Duration>,
}

fn spin_arg(t: &str) -> Option<Duration> {
    t.strip_prefix("spin_us=")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_micros)
}

/// Takes the W7 words out of the command line; returns the rest and what W7 is to do.
pub fn take_args(args: Vec<String>) -> (Vec<String>, Request) {
    let mut req = Request::default();
    if args.first().map(String::as_str) == Some("W7server") {
        let kind = args.get(1).and_then(|a| Kind::from_arg(a));
        let spin = args.iter().find_map(|a| spin_arg(a));
        req.server = Some(Opts {
            kind: kind.unwrap_or(Kind::Threaded),
            spin,
        });
        return (Vec::new(), req);
    }
    let mut rest = Vec::new();
    for a in args {
        let mut others = Vec::new();
        for t in a.split([',', ' ']).filter(|t| !t.is_empty()) {
            match t {
                "W7" if !req.modes.contains(&"W7") => req.modes.push("W7"),
                "W7check" if !req.modes.contains(&"W7check") => req.modes.push("W7check"),
                "W7" | "W7check" => {}
                t if spin_arg(t).is_some() => req.spin = spin_arg(t),
                t => others.push(t),
            }
        }
        if !others.is_empty() {
            rest.push(others.join(","));
        }
    }
    (rest, req)
}

/// Runs the requested modes. W7: each base with the builder's defaults and with the spin
/// before blocking off (`spin_us=0`: a W7 server has no other thread whose requests a spin
/// could catch; see the README), or with `spin_us=N` only. W7check: each base, defaults.
/// A failed check or a W7 line with errors is an error (after everything has run).
pub fn run(req: &Request) -> io::Result<()> {
    if req.modes.is_empty() {
        return Ok(());
    }
    let client = client()?;
    let mut failed = Vec::new();
    for &mode in &req.modes {
        let spins: &[Option<Duration>] = match (mode, req.spin) {
            (_, Some(_)) => &[req.spin],
            ("W7", None) => &[None, Some(Duration::ZERO)],
            _ => &[None],
        };
        for kind in Kind::ALL {
            for &spin in spins {
                let opts = Opts { kind, spin };
                eprintln!("# rouse {mode} ({}) ...", opts.impl_name());
                if let Err(e) = pair(mode, opts, &client) {
                    eprintln!("# {mode} {}: {e}", opts.impl_name());
                    failed.push(format!("{mode} {}", opts.impl_name()));
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!("failed: {}", failed.join(", "))))
    }
}

/// One server + one client run.
fn pair(mode: &str, opts: Opts, client: &PathBuf) -> io::Result<()> {
    let exe = std::env::current_exe()?;
    let mut srv = Command::new(exe);
    srv.args(["W7server", opts.kind.arg()]);
    if let Some(d) = opts.spin {
        srv.arg(format!("spin_us={}", d.as_micros()));
    }
    let mut srv = srv
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let srv_pid = srv.id();
    let guard = Watchdog::start(srv_pid, SERVER_LIMIT);
    let result = (|| {
        let line = first_line(srv.stdout.take().expect("piped"), ANNOUNCE_LIMIT)?;
        let port = field(&line, "port")?;
        let pid = field(&line, "pid")?;
        let imp = line
            .split_once("\"impl\":\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map_or_else(|| opts.impl_name(), |(v, _)| v.to_string());
        let mut cmd = Command::new(client);
        cmd.args(["--port", &port, "--impl", &imp]);
        if mode == "W7" {
            cmd.args(["--server-pid", &pid]);
        } else {
            cmd.args(["--bulk", &BULK_BYTES.to_string()]);
        }
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output_bounded()?;
        print!("{}", out.1);
        if out.0.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("client: {}", out.0)))
        }
    })();
    stop(&mut srv);
    guard.stop();
    result
}

/// SIGTERM, then a bounded wait (the watchdog kills it if SIGTERM does not end it).
fn stop(srv: &mut Child) {
    // SAFETY: kill(2) on our own child, which is not reaped yet (so the pid is still its).
    unsafe { libc::kill(srv.id() as libc::pid_t, libc::SIGTERM) };
    let _ = srv.wait();
}

/// Kills process `pid` (SIGKILL) if it is not stopped within `limit`.
struct Watchdog {
    tx: mpsc::Sender<()>,
    t: thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(pid: u32, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let t = thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("# W7: process {pid} still running after {limit:?}: killed");
                // SAFETY: kill(2) of a pid, no memory involved. The caller reaps the child
                // and then stops the watchdog, so only a limit expiring in between could
                // signal a reaped pid (not reused that fast in practice).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        });
        Watchdog { tx, t }
    }

    /// Call after the process was reaped.
    fn stop(self) {
        let _ = self.tx.send(());
        let _ = self.t.join();
    }
}

trait OutputBounded {
    /// Runs to completion (killed after `CLIENT_LIMIT`); its exit status and stdout.
    fn output_bounded(&mut self) -> io::Result<(ExitStatus, String)>;
}

impl OutputBounded for Command {
    fn output_bounded(&mut self) -> io::Result<(ExitStatus, String)> {
        let mut child = self.stdout(Stdio::piped()).spawn()?;
        let guard = Watchdog::start(child.id(), CLIENT_LIMIT);
        let mut out = String::new();
        let read = child.stdout.take().expect("piped").read_to_string(&mut out);
        let status = child.wait();
        guard.stop();
        read?;
        Ok((status?, out))
    }
}

/// The first line the server prints, within `limit`.
fn first_line(out: impl Read + Send + 'static, limit: Duration) -> io::Result<String> {
    let (tx, rx) = mpsc::channel();
    // Detached: it ends when the server's stdout closes (the server is killed at the latest
    // by its watchdog).
    thread::spawn(move || {
        let mut r = BufReader::new(out);
        let mut line = String::new();
        let res = r.read_line(&mut line).map(|_| line);
        let _ = tx.send(res);
        // keep reading (and dropping) so the server never blocks on a full pipe
        let _ = io::copy(&mut r, &mut io::sink());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(l)) if l.contains("\"port\"") => Ok(l),
        Ok(Ok(l)) => Err(io::Error::other(format!(
            "server line without a port: {l:?}"
        ))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("server announced no port within {limit:?}"),
        )),
    }
}

/// The digits of `"name":N` in a JSON line.
fn field(line: &str, name: &str) -> io::Result<String> {
    let key = format!("\"{name}\":");
    let v: String = line
        .split_once(&key)
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    if v.is_empty() {
        return Err(io::Error::other(format!("no {name} in {line:?}")));
    }
    Ok(v)
}

/// The peers' load client: `ROUSE_W7CLIENT`, or built from `../shared/peers/rust`.
fn client() -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("ROUSE_W7CLIENT") {
        return Ok(PathBuf::from(p));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let manifest = root.join("../shared/peers/rust/Cargo.toml");
    if !manifest.exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "the peers' load client: set ROUSE_W7CLIENT, or put the peers' sources at {}",
                manifest.display()
            ),
        ));
    }
    // <target>/release/deps/workloads-HASH -> <target>/w7-peers
    let exe = std::env::current_exe()?;
    let target = exe
        .ancestors()
        .nth(3)
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("w7-peers");
    eprintln!("# building the peers' w7client ...");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let st = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--bin",
            "w7client",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        return Err(io::Error::other(format!("building w7client: {st}")));
    }
    Ok(target.join("release/w7client"))
}
