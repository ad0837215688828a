//! Helpers of the `std_*` integration tests: bounded waits, a loop on its own thread,
//! socketpairs, every poller x notifier pair of this OS, a seeded random source.

#![allow(dead_code)] // each test file uses a part

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use rouse_core::{Exit, Fired, Ready, RunFlags};
use rouse_std::{Base, Builder, Context, Handle, NotifierKind, PollerKind};

/// The bound of every wait that should take microseconds: far above any scheduling hiccup,
/// short enough to report a hang clearly.
pub const BOUND: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds; panics with `what` after `timeout`. Spins first, then yields,
/// then sleeps in short steps: a sleep here only paces the polling of a condition.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut round = 0u32;
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        round += 1;
        if round < 100 {
            std::hint::spin_loop();
        } else if round < 1000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(100));
        }
    }
}

/// As [`wait_until`], with a message made when the wait fails (so it can tell the state then).
#[track_caller]
pub fn wait_until_else(
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) {
    let start = Instant::now();
    let mut round = 0u32;
    while !cond() {
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting until {}", what());
        }
        round += 1;
        if round < 100 {
            std::hint::spin_loop();
        } else if round < 1000 {
            thread::yield_now();
        } else {
            thread::sleep(Duration::from_micros(100));
        }
    }
}

/// Asserts that `cond` holds for the whole of `window` (polled): the observation window of a
/// negative property ("this call is still blocked"), never a synchronization.
#[track_caller]
pub fn holds_for(window: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < window {
        assert!(
            cond(),
            "{what}: stopped holding after {:?}",
            start.elapsed()
        );
        thread::sleep(Duration::from_micros(200));
    }
    assert!(cond(), "{what}: stopped holding at the end of {window:?}");
}

/// Waits until the loop of `events` has entered a blocking wait more than `before` times
/// (`wake_stats().blocking_polls` is counted when the loop commits to block: from then on any
/// change must wake it).
#[track_caller]
pub fn wait_blocked(events: &Handle, before: u64, what: &str) {
    wait_until(BOUND, &format!("the loop blocks ({what})"), || {
        events.wake_stats().blocking_polls > before
    });
}

/// A loop running on its own thread; [`join`](LoopThread::join) is bounded.
pub struct LoopThread {
    join: Option<JoinHandle<(io::Result<Exit>, Base)>>,
    handle: Handle,
    thread: ThreadId,
    what: String,
}

/// Runs `base` with `flags` on a new thread named after `what` (which names the case in
/// failure messages). The base comes back from [`LoopThread::join`].
pub fn run_in_thread(base: Base, flags: RunFlags, what: &str) -> LoopThread {
    let handle = base.handle();
    let join = thread::Builder::new()
        .name(format!("loop: {what}"))
        .spawn(move || {
            let r = base.run_with(flags);
            (r, base)
        })
        .expect("spawn the loop thread");
    LoopThread {
        thread: join.thread().id(),
        join: Some(join),
        handle,
        what: what.to_string(),
    }
}

impl LoopThread {
    /// A handle to the running base.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// The loop thread's id.
    pub fn thread_id(&self) -> ThreadId {
        self.thread
    }

    /// Whether the run has returned.
    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits (at most [`BOUND`]) for the run to return; panics with the wake counters if it
    /// does not, and re-raises a panic of the loop thread.
    #[track_caller]
    pub fn join(self) -> (io::Result<Exit>, Base) {
        self.join_within(BOUND)
    }

    /// As [`join`](LoopThread::join), with another bound.
    #[track_caller]
    pub fn join_within(mut self, timeout: Duration) -> (io::Result<Exit>, Base) {
        let join = self.join.take().expect("joined once");
        let start = Instant::now();
        while !join.is_finished() {
            if start.elapsed() > timeout {
                let h = self.handle.clone();
                // Leave the thread behind (it is stuck: that is the failure).
                std::mem::forget(join);
                panic!(
                    "{}: the loop did not return within {timeout:?}; {:?}, {:?}",
                    self.what,
                    h.wake_stats(),
                    h.counts()
                );
            }
            thread::sleep(Duration::from_micros(100));
        }
        match join.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// Joins a run expected to return `exit`; returns the base.
    #[track_caller]
    pub fn expect_exit(self, exit: Exit) -> Base {
        let what = self.what.clone();
        let (r, base) = self.join();
        match r {
            Ok(e) => assert_eq!(e, exit, "{what}: the run returned {e:?}"),
            Err(e) => panic!("{what}: the run failed: {e}"),
        }
        base
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        if self.join.is_some() {
            // Not joined (the test failed): stop the loop if it can still be stopped.
            let _ = self.handle.loop_break();
        }
    }
}

/// A connected, non-blocking `AF_UNIX` stream pair.
pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
    let (a, b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

/// Writes one byte.
pub fn write_byte(mut s: &UnixStream) -> io::Result<()> {
    s.write_all(b"x")
}

/// Reads everything readable now; returns how many bytes.
pub fn drain(mut s: &UnixStream) -> io::Result<usize> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Every notifier kind this OS has.
pub fn notifiers() -> Vec<NotifierKind> {
    [
        NotifierKind::KqueueUser,
        NotifierKind::EventFd,
        NotifierKind::Pipe,
        NotifierKind::SocketPair,
    ]
    .into_iter()
    .filter(|n| n.available())
    .collect()
}

/// Every (poller, notifier) pair this OS offers (`kqueue-user` only with kqueue).
pub fn all_kinds() -> Vec<(PollerKind, NotifierKind)> {
    let mut v = Vec::new();
    for &p in PollerKind::available() {
        for n in notifiers() {
            if n == NotifierKind::KqueueUser && p != PollerKind::Kqueue {
                continue;
            }
            v.push((p, n));
        }
    }
    v
}

/// A builder of exactly this pair (the environment ignored).
pub fn builder(p: PollerKind, n: NotifierKind) -> Builder {
    Builder::new().ignore_env().poller(p).notifier(n)
}

/// A base of exactly this pair.
pub fn base_of(p: PollerKind, n: NotifierKind) -> io::Result<Base> {
    let base = builder(p, n).build()?;
    assert_eq!((base.poller_kind(), base.notifier_kind()), (p, n));
    Ok(base)
}

/// A base with poller `p` and the notifier the environment asks for (`ROUSE_NOTIFIER`), else
/// the default: the suite's forced-fallback runs reach it.
pub fn base_with_poller(p: PollerKind) -> io::Result<Base> {
    let base = Builder::new().poller(p).build()?;
    assert_eq!(base.poller_kind(), p);
    Ok(base)
}

/// A base as the environment asks for (`ROUSE_POLLER`, `ROUSE_NOTIFIER`), else the default.
pub fn default_base() -> io::Result<Base> {
    Builder::new().build()
}

/// A small seeded random source (xorshift64*): the seed is printed by the tests that use it,
/// so a failing sequence can be replayed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `ROUSE_TEST_SEED` if set, else from the clock.
    pub fn from_env_or_time() -> Rng {
        let seed = std::env::var("ROUSE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                t.as_nanos() as u64
            });
        Rng::new(seed)
    }

    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Busy-waits for about `d`: spins for short waits; for longer ones also yields the CPU
/// between checks, so that on a loaded machine the thread being waited for can run.
pub fn spin_for(d: Duration) {
    let start = Instant::now();
    let yields = d > Duration::from_micros(2);
    while start.elapsed() < d {
        if yields {
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Joins `join` within `timeout`; panics with `what()` if the thread is still running then
/// (it is left behind: being stuck is the failure), and re-raises its panic.
#[track_caller]
pub fn join_within<T>(join: JoinHandle<T>, timeout: Duration, what: impl FnOnce() -> String) -> T {
    let start = Instant::now();
    while !join.is_finished() {
        if start.elapsed() > timeout {
            let what = what();
            std::mem::forget(join);
            panic!("{what}: still running after {timeout:?}");
        }
        thread::sleep(Duration::from_micros(200));
    }
    match join.join() {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// The fds open in this process, ascending (`/proc/self/fd`, or `/dev/fd` where there is no
/// `/proc`). The directory's own fd, open while it is listed, is left out.
pub fn open_fds() -> io::Result<Vec<std::os::fd::RawFd>> {
    let dir = if std::path::Path::new("/proc/self/fd").exists() {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let listed: Vec<std::os::fd::RawFd> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing's fd is closed now: keep what is still open.
    // SAFETY: F_GETFD only reads the flags of an fd number (EBADF if it is not open).
    let mut open: Vec<_> = listed
        .into_iter()
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect();
    open.sort_unstable();
    Ok(open)
}

/// Lowers this process's soft `RLIMIT_NOFILE` so that exactly `free` fd numbers below it are
/// unused (a new fd gets one of those, then `EMFILE`). Returns the limit it replaced. Only for
/// a child process of its own ([`run_child`]): the limit is process-wide.
pub fn leave_free_fds(free: usize) -> io::Result<libc::rlimit> {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a live rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) } == -1 {
        return Err(io::Error::last_os_error());
    }
    let open = open_fds()?;
    // The (free + 1)th unused number: the limit that leaves `free` unused numbers below it.
    let mut unused = 0;
    let mut limit = 0;
    loop {
        if open.binary_search(&limit).is_err() {
            if unused == free {
                break;
            }
            unused += 1;
        }
        limit += 1;
    }
    set_nofile(libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: old.rlim_max,
    })?;
    Ok(old)
}

/// Sets `RLIMIT_NOFILE`.
pub fn set_nofile(lim: libc::rlimit) -> io::Result<()> {
    // SAFETY: `lim` is a live rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The environment variable that selects a child test's mode (see [`run_child`]).
pub const CHILD_ENV: &str = "ROUSE_TEST_CHILD";

/// Whether this process is the child that [`run_child`] started for `mode`. Child tests are
/// `#[ignore]`d and return at once unless this holds, so a plain `--ignored` run skips them.
pub fn child_mode(mode: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|m| m == mode)
}

/// Whether the tests run under an emulator: `ROUSE_TEST_EMULATED` is set (by
/// `scripts/cross-test.sh aarch64`). A test that measures native timing calls it with its own
/// name and skips itself when it holds (saying so on stderr; each caller says why).
pub fn emulated(test: &str) -> bool {
    let on = std::env::var_os("ROUSE_TEST_EMULATED").is_some();
    if on {
        eprintln!("{test}: skipped under an emulator (ROUSE_TEST_EMULATED)");
    }
    on
}

/// A command that runs `exe`, this test binary: directly, or under the runner that
/// `ROUSE_TEST_RUNNER` names (words split on spaces). `scripts/cross-test.sh aarch64` sets it to
/// its qemu user-mode command: an emulated process cannot exec a binary of its own
/// architecture unless the host registered qemu with binfmt_misc.
pub fn self_command(exe: std::path::PathBuf) -> std::process::Command {
    let runner = std::env::var("ROUSE_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(words).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    }
}

/// Runs the `#[ignore]`d test `test` of this test binary in a child process of its own (with
/// [`CHILD_ENV`] = `mode`, one test thread), so that it may change process-wide state (fd
/// limits, memory limits) alone. Waits at most `timeout` (then kills it), asserts that it
/// passed, and returns what it printed.
#[track_caller]
pub fn run_child(test: &str, mode: &str, timeout: Duration) -> String {
    use std::process::Stdio;
    let exe = std::env::current_exe().expect("the test binary");
    let child = self_command(exe)
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child test");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("the child's output"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of the child started above (not yet reaped: its
            // waiter has not returned).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("child test {test} ({mode}) did not finish within {timeout:?}: killed");
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "child test {test} ({mode}): {}\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(
        stdout.contains(&format!("test {test} ... ok")),
        "the child ran no test: {report}"
    );
    report
}

/// What a [`recorder`] callback was told, in order.
pub type ReadyLog = Arc<Mutex<Vec<Ready>>>;

/// A callback that records what it was told.
pub fn recorder() -> (ReadyLog, impl FnMut(&Context<'_>, Fired) + Send + 'static) {
    let log = ReadyLog::default();
    let l = log.clone();
    (log, move |_: &Context<'_>, f: Fired| {
        l.lock().unwrap().push(f.ready)
    })
}

/// Takes what a [`recorder`] logged so far.
pub fn take(log: &Mutex<Vec<Ready>>) -> Vec<Ready> {
    std::mem::take(&mut log.lock().unwrap())
}

/// Runs `child` in a forked child process and returns its exit code (a panic in it: 99). The
/// child ends with `_exit` (no destructors, no harness); it is killed after [`BOUND`].
///
/// The caller runs no other thread that could hold a lock the child needs.
#[track_caller]
pub fn in_forked_child(what: &str, child: impl FnOnce() -> i32) -> i32 {
    wait_child(fork_child(child), what)
}

/// Forks; the child runs `child` and `_exit`s with its code (99 if it panics), never
/// returning. Returns the child's pid in the parent.
///
/// The caller runs no other thread that could hold a lock the child needs, except where its
/// test documents why that thread holds none at the fork.
pub fn fork_child(child: impl FnOnce() -> i32) -> libc::pid_t {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    // SAFETY: fork(2) has no memory-safety preconditions; the caller's contract (above) keeps
    // the child from waiting for a lock held by a thread that does not exist in it.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(99);
        // SAFETY: ends the child at once: no destructors, no atexit, no test harness.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Waits for `pid` to exit (at most [`BOUND`], else kills it) and returns its exit code.
#[track_caller]
pub fn wait_child(pid: libc::pid_t, what: &str) -> i32 {
    let deadline = Instant::now() + BOUND;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a live c_int; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(
                libc::WIFEXITED(status),
                "{what}: the child did not exit normally (status {status:#x})"
            );
            return libc::WEXITSTATUS(status);
        }
        if r == -1 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "{what}: waitpid: {e}");
        }
        if Instant::now() > deadline {
            // SAFETY: plain syscalls on our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("{what}: the child did not exit within {BOUND:?}");
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// The core error inside an `io::Error` of the facade, if it carries one.
pub fn core_err(e: &io::Error) -> Option<rouse_core::Error> {
    e.get_ref()?.downcast_ref::<rouse_core::Error>().copied()
}

// ------------------------------------------------------------------ signal dispositions

/// Signal dispositions are process-wide: the tests of one binary that install or raise
/// signals take turns through this lock.
pub fn signals_serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Raises `sig` in this thread; a handler must be installed (the base's, or the test's).
pub fn raise(sig: libc::c_int) {
    // SAFETY: raise is safe to call with any signal number; every signal raised by the tests
    // has a handler installed, which runs before raise returns.
    let r = unsafe { libc::raise(sig) };
    assert_eq!(r, 0, "raise({sig})");
}

/// The disposition of `sig` now.
pub fn disposition(sig: libc::c_int) -> libc::sigaction {
    // SAFETY: all-zero bytes are a valid `sigaction` (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a live sigaction.
    let r = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    assert_eq!(r, 0);
    old
}

/// Installs `handler` for `sig` (with `SA_SIGINFO` if `siginfo`); returns what it replaced.
/// The tests' handlers are async-signal-safe (atomics only, and calls of handlers they
/// replaced).
pub fn install(sig: libc::c_int, handler: libc::sighandler_t, siginfo: bool) -> libc::sigaction {
    // SAFETY: as in `disposition`.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    if siginfo {
        act.sa_flags = libc::SA_SIGINFO;
    }
    // SAFETY: as in `disposition`.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `act` and `old` are live sigactions; the handler is async-signal-safe (above).
    let r = unsafe { libc::sigaction(sig, &act, &mut old) };
    assert_eq!(r, 0);
    old
}

/// Puts back a disposition [`install`] or [`disposition`] returned.
pub fn restore(sig: libc::c_int, old: &libc::sigaction) {
    // SAFETY: `old` was returned by the kernel for this signal.
    let r = unsafe { libc::sigaction(sig, old, std::ptr::null_mut()) };
    assert_eq!(r, 0);
}
