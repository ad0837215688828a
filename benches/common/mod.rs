//! Helpers of the workload harness, one for one with the peer programs' shared C helpers
//! (so every implementation measures the same way): the monotonic clock, `/proc/self/io` syscall counts with
//! their calibrated overhead, RSS from `/proc/self/statm`, `RLIMIT_NOFILE`, socketpairs,
//! nearest-rank percentiles, CPU pinning, the spin helpers, the W4 LCG, workload selection,
//! and a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};

// ------------------------------------------------------------------ allocation counter

/// `System`, counting every allocation (`alloc`, `alloc_zeroed`, `realloc`).
pub struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations (process-wide, every thread) so far.
#[inline]
pub fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

// ------------------------------------------------------------------ clock

/// `CLOCK_MONOTONIC` in nanoseconds.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

// ------------------------------------------------------------------ /proc files

/// Reads a small `/proc` file with exactly one `open`, one `read(2)` and one `close`, so the
/// reading itself adds a known number of syscalls (as `read_proc_io` in common.h).
fn read_proc(path: &'static [u8], buf: &mut [u8]) -> usize {
    // SAFETY: `path` is NUL-terminated; `buf` is valid for `buf.len()` bytes.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n.max(0) as usize
    }
}

fn field(s: &str, name: &str) -> u64 {
    s.find(name)
        .map(|i| {
            s[i + name.len()..]
                .trim_start()
                .bytes()
                .take_while(u8::is_ascii_digit)
                .fold(0u64, |a, d| a * 10 + u64::from(d - b'0'))
        })
        .unwrap_or(0)
}

/// `syscr` and `syscw` of `/proc/self/io` (process-wide).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcIo {
    pub syscr: u64,
    pub syscw: u64,
}

pub fn read_proc_io() -> ProcIo {
    let mut buf = [0u8; 1024];
    let n = read_proc(b"/proc/self/io\0", &mut buf);
    let s = std::str::from_utf8(&buf[..n]).unwrap_or("");
    ProcIo {
        syscr: field(s, "syscr:"),
        syscw: field(s, "syscw:"),
    }
}

/// The syscalls that a back-to-back pair of [`read_proc_io`] calls itself adds.
pub fn io_overhead() -> ProcIo {
    let a = read_proc_io();
    let b = read_proc_io();
    ProcIo {
        syscr: b.syscr - a.syscr,
        syscw: b.syscw - a.syscw,
    }
}

/// `after - before - overhead`, clamped at 0: (reads, writes).
pub fn io_delta(before: ProcIo, after: ProcIo, ovh: ProcIo) -> (u64, u64) {
    let r = after.syscr as i64 - before.syscr as i64 - ovh.syscr as i64;
    let w = after.syscw as i64 - before.syscw as i64 - ovh.syscw as i64;
    (r.max(0) as u64, w.max(0) as u64)
}

/// `(resident, shared)` bytes from `/proc/self/statm` (one read).
pub fn statm_res_shared() -> (i64, i64) {
    let mut buf = [0u8; 256];
    let n = read_proc(b"/proc/self/statm\0", &mut buf);
    let s = std::str::from_utf8(&buf[..n]).unwrap_or("");
    let mut it = s
        .split_ascii_whitespace()
        .map(|x| x.parse::<i64>().unwrap_or(-1));
    let (_size, res, shr) = (it.next(), it.next(), it.next());
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as i64;
    match (res, shr) {
        (Some(r), Some(s)) if r >= 0 && s >= 0 => (r * page, s * page),
        _ => (-1, -1),
    }
}

/// `malloc_trim(0)` (glibc), before RSS readings, as the C peers do.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

// ------------------------------------------------------------------ fds

/// Raises the `RLIMIT_NOFILE` soft limit to `want` (or to the hard limit if `want` is not
/// allowed); returns the soft limit now in force (`raise_nofile` in common.h).
pub fn raise_nofile(want: u64) -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid rlimit to read and write.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur >= want {
            return rl.rlim_cur;
        }
        rl.rlim_cur = want;
        if rl.rlim_max < want {
            rl.rlim_max = want;
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
            // not privileged: take what the hard limit allows
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        }
    }
    rl.rlim_cur
}

/// How many socketpairs fit under `RLIMIT_NOFILE` (64 fds kept spare), at most `want`.
pub fn max_pairs(want: usize) -> usize {
    let lim = raise_nofile(2 * want as u64 + 64);
    let fit = (lim.saturating_sub(64) / 2) as usize;
    fit.min(want)
}

/// `pairs` nonblocking AF_UNIX stream socketpairs: `[2i]` one end, `[2i+1]` the other.
pub fn make_pairs(pairs: usize) -> Vec<RawFd> {
    let mut v = Vec::with_capacity(2 * pairs);
    for _ in 0..pairs {
        let mut sv = [0 as libc::c_int; 2];
        // SAFETY: `sv` has room for the two fds.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "socketpair: {}", std::io::Error::last_os_error());
        v.extend_from_slice(&sv);
    }
    v
}

pub fn close_all(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: closing fds this harness opened and no longer uses.
        unsafe { libc::close(fd) };
    }
}

/// Writes one byte; whether it was written.
#[inline]
pub fn write_byte(fd: RawFd) -> bool {
    // SAFETY: a 1-byte write from a static buffer.
    unsafe { libc::write(fd, b"e".as_ptr().cast(), 1) == 1 }
}

/// Reads one byte; whether one was read.
#[inline]
pub fn read_byte(fd: RawFd) -> bool {
    let mut ch = 0u8;
    // SAFETY: a 1-byte read into a local.
    unsafe { libc::read(fd, (&mut ch as *mut u8).cast(), 1) == 1 }
}

// ------------------------------------------------------------------ statistics

/// Nearest rank on a sorted slice: index `pct * n`, clamped (`pct_sorted` in common.h).
pub fn pct_sorted(v: &[u64], pct: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((pct * v.len() as f64) as usize).min(v.len() - 1);
    v[i]
}

/// Sorts `v` and returns its median (`median_of` in common.h).
pub fn median_of(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    pct_sorted(v, 0.5)
}

// ------------------------------------------------------------------ W4 deadlines

/// The fixed LCG of the W4 deadlines (common.h `lcg_deadline_us`), seed 1.
pub struct Lcg(u64);

impl Lcg {
    pub fn new() -> Lcg {
        Lcg(1)
    }

    /// `1000 + (x >> 33) % 99001` microseconds: [1 ms, 100 ms].
    #[inline]
    pub fn deadline_us(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1000 + (self.0 >> 33) % 99001
    }
}

// ------------------------------------------------------------------ CPUs and spinning

/// Pins the calling thread to `cpu`, or to every CPU with `None`.
pub fn pin_self(cpu: Option<usize>) {
    // SAFETY: `set` is a plain cpu_set_t; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            None => {
                let n = libc::sysconf(libc::_SC_NPROCESSORS_CONF).max(1) as usize;
                for c in 0..n.min(libc::CPU_SETSIZE as usize) {
                    libc::CPU_SET(c, &mut set);
                }
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Whether the pinned W1 variant can run (two CPUs online).
pub fn can_pin() -> bool {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) >= 2 }
}

/// One step of a spin-wait: `pause`, and a yield every 1024 steps (`spin_pause` in common.h).
#[inline]
pub fn spin_pause(spins: &mut u64) {
    *spins += 1;
    if *spins & 1023 == 0 {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// Busy-waits `ns` on the monotonic clock (no yield).
#[inline]
pub fn spin_for_ns(ns: u64) {
    let end = now_ns() + ns;
    while now_ns() < end {
        std::hint::spin_loop();
    }
}

// ------------------------------------------------------------------ instruction counts

/// Runs a workload's measured section on the threaded base. Never inlined, so that
/// `scripts/instructions.sh` can count exactly the instructions inside it (callgrind
/// `--toggle-collect=*measured_threaded*`).
#[inline(never)]
pub fn measured_threaded<R>(f: impl FnOnce() -> R) -> R {
    std::hint::black_box(f())
}

/// As [`measured_threaded`], on the single-threaded base.
#[inline(never)]
pub fn measured_local<R>(f: impl FnOnce() -> R) -> R {
    std::hint::black_box(f())
}

/// As [`measured_threaded`], for a section run inside a callback (W4b's churn from a
/// callback; either base: `--toggle-collect=*measured_in_callback*`).
#[inline(never)]
pub fn measured_in_callback<R>(f: impl FnOnce() -> R) -> R {
    std::hint::black_box(f())
}

/// `name` from the environment as a number, or `default` (the instruction-count script runs
/// W4a at n = 100 000 and W3 at P = 100 only, to keep callgrind's runs short).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ------------------------------------------------------------------ selection

/// The workloads the harness knows, in the order it runs them.
pub const WORKLOADS: [&str; 10] = [
    "W1a", "W1b", "W2", "W2ch", "W3", "W4a", "W4b", "W4scale", "W5", "W6",
];

/// The selected workloads from argv: no names (or `all`) selects everything; commas and
/// spaces separate names; a name selects every workload it is a prefix of (`W1` = W1a + W1b,
/// `W4` = W4a + W4b + W4scale). Arguments starting with `-` (cargo's `--bench`) are ignored.
pub fn selection(args: &[String]) -> Vec<&'static str> {
    let toks: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .flat_map(|a| a.split([',', ' ']))
        .filter(|t| !t.is_empty())
        .collect();
    for t in &toks {
        if *t != "all" && !WORKLOADS.iter().any(|w| w.starts_with(t)) {
            eprintln!("# unknown workload {t:?} (known: {})", WORKLOADS.join(" "));
        }
    }
    WORKLOADS
        .iter()
        .copied()
        .filter(|w| toks.is_empty() || toks.iter().any(|t| *t == "all" || w.starts_with(t)))
        .collect()
}
