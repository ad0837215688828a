//! `struct event_base` and `struct event_config`: the base registry (so a NULL, foreign or
//! freed base pointer is reported instead of dereferenced) and the base-level exports.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::abi::*;
use crate::backend::{Callback, Common, End, Loop, Settings, What};
use crate::log::{self, guard, warn};
use crate::reclaim::Reclaim;

/// Bases that may exist at once (their headers live in a static arena, so any pointer can be
/// checked without dereferencing freed memory).
pub const MAX_BASES: usize = 4096;

const FREE: u64 = 0;
const LIVE: u64 = 0x726f_7573_655f_6261; // "rouse_ba"
const DEAD: u64 = 0x726f_7573_655f_6466; // freed, header not yet reusable
const BUSY: u64 = 1;

/// A base header: what an `event_base *` points to. 32-aligned (its size a power of two), so
/// telling whether a pointer is a header is a range check and a mask, not a division.
#[repr(align(32))]
pub struct Header {
    state: AtomicU64,
    /// Bumped at every allocation of this header: events remember the generation whose loop
    /// holds their key.
    pub gen: AtomicU32,
    inner: AtomicPtr<Inner>,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Header = Header {
    state: AtomicU64::new(FREE),
    gen: AtomicU32::new(0),
    inner: AtomicPtr::new(ptr::null_mut()),
};
static ARENA: [Header; MAX_BASES] = [EMPTY; MAX_BASES];
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A live base.
pub struct Inner {
    pub lp: Loop,
    /// libevent's number of priorities (`event_base_priority_init`).
    pub npri: AtomicU32,
    got_break: AtomicBool,
    got_exit: AtomicBool,
    running: AtomicBool,
    free_requested: AtomicBool,
    /// The `struct event` whose callback runs now (0: none).
    pub running_event: AtomicUsize,
    /// When to reclaim the rouse events of caller-allocated events the program freed.
    pub reclaim: Reclaim,
    commons: Mutex<Vec<(Common, Box<libc::timeval>)>>,
}

impl Header {
    pub fn as_ptr(&'static self) -> *mut EventBase {
        self as *const Header as *mut EventBase
    }

    /// This header's index in the table (`MAX_BASES` fits in 16 bits).
    pub fn index(&'static self) -> u16 {
        let start = ARENA.as_ptr() as usize;
        ((self as *const Header as usize - start) / std::mem::size_of::<Header>()) as u16
    }

    /// The live base behind this header.
    #[inline]
    pub fn inner(&self) -> Option<&'static Inner> {
        if self.state.load(Ordering::Acquire) != LIVE {
            return None;
        }
        let p = self.inner.load(Ordering::Acquire);
        // SAFETY: a LIVE header's pointer comes from `Box::into_raw` and stays valid until
        // `event_base_free` (a C program must not free a base another thread still uses).
        (!p.is_null()).then(|| unsafe { &*p })
    }
}

/// The header at `index` of the table (as [`Header::index`] gave it).
#[inline]
pub fn header_at(index: u16) -> &'static Header {
    &ARENA[usize::from(index)]
}

/// The header `p` points to, if it is one.
#[inline]
pub fn header_of(p: *const EventBase) -> Option<&'static Header> {
    // One unsigned compare covers both ends (below the arena wraps around to a huge offset),
    // a mask the alignment (the size is a power of two).
    let size = std::mem::size_of::<Header>();
    let off = (p as usize).wrapping_sub(ARENA.as_ptr() as usize);
    if off >= MAX_BASES * size || off & (size - 1) != 0 {
        return None;
    }
    ARENA.get(off / size)
}

const _: () = assert!(std::mem::size_of::<Header>().is_power_of_two());
const _: () = assert!(MAX_BASES <= 1 << 16);

/// The live base `p`, or a report through the log callback.
#[inline]
pub fn base_of(p: *const EventBase, func: &str) -> Option<(&'static Header, &'static Inner)> {
    if let Some(h) = header_of(p) {
        if let Some(i) = h.inner() {
            return Some((h, i));
        }
    }
    not_a_base(p, func);
    None
}

/// Why `p` is not a live base, through the log callback.
#[cold]
#[inline(never)]
fn not_a_base(p: *const EventBase, func: &str) {
    if p.is_null() {
        warn(&format!("{func}: NULL event_base"));
    } else if header_of(p).is_none() {
        warn(&format!("{func}: {p:p} is not an event_base"));
    } else {
        warn(&format!("{func}: event_base {p:p} was freed"));
    }
}

/// The header a loop of rouse id `id` prefers: its events' callbacks then find the base from
/// the id alone ([`home_of`]) and capture nothing.
#[inline(always)]
pub fn home_index(id: u32) -> usize {
    id as usize % MAX_BASES
}

/// The live base whose loop has rouse id `id`, if it got its preferred header.
#[inline(always)]
pub fn home_of(id: u32) -> Option<&'static Inner> {
    let inner = ARENA[home_index(id)].inner()?;
    (inner.lp.id() == id).then_some(inner)
}

fn alloc_header(inner: Box<Inner>) -> Option<&'static Header> {
    // The preferred header first, then any free one.
    let home = home_index(inner.lp.id());
    let start = NEXT.fetch_add(1, Ordering::Relaxed);
    for i in std::iter::once(home).chain((0..MAX_BASES).map(|i| (start + i) % MAX_BASES)) {
        let h = &ARENA[i];
        if h.state
            .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            h.gen.fetch_add(1, Ordering::Relaxed);
            h.inner.store(Box::into_raw(inner), Ordering::Release);
            h.state.store(LIVE, Ordering::Release);
            return Some(h);
        }
    }
    warn("event_base_new: too many event bases exist");
    None
}

fn release_header(h: &Header) {
    let p = h.inner.swap(ptr::null_mut(), Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: from `Box::into_raw` in `alloc_header`, swapped out exactly once.
        drop(unsafe { Box::from_raw(p) });
    }
    h.state.store(FREE, Ordering::Release);
}

/// `struct event_config`.
#[derive(Debug, Default)]
pub struct Config {
    avoid: Vec<String>,
    features: c_int,
    flags: c_int,
    limits: Option<(u32, Option<Duration>, u8)>,
}

static CONFIGS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn config_of<'a>(p: *mut Config, func: &str) -> Option<&'a mut Config> {
    if p.is_null() {
        warn(&format!("{func}: NULL event_config"));
        return None;
    }
    if !CONFIGS.lock().ok()?.contains(&(p as usize)) {
        warn(&format!("{func}: {p:p} is not a live event_config"));
        return None;
    }
    // SAFETY: registered by `event_config_new` and not yet freed; a config is used by one
    // thread at a time (libevent's contract).
    Some(unsafe { &mut *p })
}

#[cfg(any(target_os = "linux", target_os = "android"))]
const METHODS: [&str; 2] = ["epoll", "poll"];
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const METHODS: [&str; 2] = ["kqueue", "poll"];

fn features_of(method: &str) -> c_int {
    match method {
        "epoll" => EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_EARLY_CLOSE,
        "kqueue" => EV_FEATURE_ET | EV_FEATURE_O1 | EV_FEATURE_FDS,
        _ => EV_FEATURE_FDS,
    }
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

fn new_base(cfg: Option<&Config>) -> *mut EventBase {
    let default = Config::default();
    let cfg = cfg.unwrap_or(&default);
    let ignore_env = cfg.flags & EVENT_BASE_FLAG_IGNORE_ENV != 0;
    let chosen = METHODS.iter().copied().find(|m| {
        let env = format!("EVENT_NO{}", m.to_uppercase());
        !cfg.avoid.iter().any(|a| a.eq_ignore_ascii_case(m))
            && (ignore_env || !env_set(&env))
            && features_of(m) & cfg.features == cfg.features
    });
    let Some(method) = chosen else {
        warn("No event method available matching the configuration");
        return ptr::null_mut();
    };
    let settings = Settings {
        poll_only: method == "poll",
        ignore_env,
        limits: cfg.limits,
        // libevent allocates a base lock only with threading set up and without NOLOCK.
        threaded: crate::misc::THREADS.load(Ordering::Relaxed)
            && cfg.flags & EVENT_BASE_FLAG_NOLOCK == 0,
        precise_timer: cfg.flags & EVENT_BASE_FLAG_PRECISE_TIMER != 0
            || (!ignore_env && env_set("EVENT_PRECISE_TIMER")),
    };
    let lp = match Loop::new(settings) {
        Ok(lp) => lp,
        Err(e) => {
            warn(&format!("event_base_new: {e}"));
            return ptr::null_mut();
        }
    };
    if !ignore_env && env_set("EVENT_SHOW_METHOD") {
        log::log(
            log::EVENT_LOG_MSG,
            &format!("libevent using: {}", lp.method()),
        );
    }
    let inner = Box::new(Inner {
        lp,
        npri: AtomicU32::new(1),
        got_break: AtomicBool::new(false),
        got_exit: AtomicBool::new(false),
        running: AtomicBool::new(false),
        free_requested: AtomicBool::new(false),
        running_event: AtomicUsize::new(0),
        reclaim: Reclaim::default(),
        commons: Mutex::new(Vec::new()),
    });
    alloc_header(inner).map_or(ptr::null_mut(), |h| h.as_ptr())
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_new() -> *mut EventBase {
    guard("event_base_new", ptr::null_mut(), || new_base(None))
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_new_with_config(cfg: *mut Config) -> *mut EventBase {
    guard("event_base_new_with_config", ptr::null_mut(), || {
        if cfg.is_null() {
            return new_base(None);
        }
        match config_of(cfg, "event_base_new_with_config") {
            Some(c) => new_base(Some(c)),
            None => ptr::null_mut(),
        }
    })
}

fn free_base(base: *mut EventBase, func: &str) {
    let Some((h, inner)) = base_of(base, func) else {
        return;
    };
    h.state.store(DEAD, Ordering::Release);
    if inner.running.load(Ordering::Acquire) {
        // Freed from one of its own callbacks (or while another thread runs it): the loop
        // frees it when it returns.
        inner.free_requested.store(true, Ordering::Release);
        let _ = inner.lp.loop_break();
        return;
    }
    release_header(h);
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_free(base: *mut EventBase) {
    guard("event_base_free", (), || free_base(base, "event_base_free"))
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_free_nofinalize(base: *mut EventBase) {
    guard("event_base_free_nofinalize", (), || {
        free_base(base, "event_base_free_nofinalize")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_config_new() -> *mut Config {
    guard("event_config_new", ptr::null_mut(), || {
        let p = Box::into_raw(Box::new(Config::default()));
        match CONFIGS.lock() {
            Ok(mut v) => v.push(p as usize),
            Err(_) => return ptr::null_mut(),
        }
        p
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_config_free(cfg: *mut Config) {
    guard("event_config_free", (), || {
        if config_of(cfg, "event_config_free").is_none() {
            return;
        }
        if let Ok(mut v) = CONFIGS.lock() {
            v.retain(|&a| a != cfg as usize);
        }
        // SAFETY: registered by `event_config_new` (checked), unregistered above.
        drop(unsafe { Box::from_raw(cfg) });
    })
}

/// # Safety
///
/// `method` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_config_avoid_method(
    cfg: *mut Config,
    method: *const c_char,
) -> c_int {
    guard("event_config_avoid_method", -1, || {
        let Some(c) = config_of(cfg, "event_config_avoid_method") else {
            return -1;
        };
        if method.is_null() {
            return -1;
        }
        // SAFETY: caller's contract.
        let m = unsafe { CStr::from_ptr(method) };
        c.avoid.push(m.to_string_lossy().into_owned());
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_config_require_features(cfg: *mut Config, features: c_int) -> c_int {
    guard("event_config_require_features", -1, || {
        let Some(c) = config_of(cfg, "event_config_require_features") else {
            return -1;
        };
        c.features = features;
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_config_set_flag(cfg: *mut Config, flag: c_int) -> c_int {
    guard("event_config_set_flag", -1, || {
        let Some(c) = config_of(cfg, "event_config_set_flag") else {
            return -1;
        };
        c.flags |= flag;
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_config_set_num_cpus_hint(cfg: *mut Config, _cpus: c_int) -> c_int {
    guard("event_config_set_num_cpus_hint", -1, || {
        config_of(cfg, "event_config_set_num_cpus_hint").map_or(-1, |_| 0)
    })
}

/// # Safety
///
/// `max_interval` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_config_set_max_dispatch_interval(
    cfg: *mut Config,
    max_interval: *const libc::timeval,
    max_callbacks: c_int,
    min_priority: c_int,
) -> c_int {
    guard("event_config_set_max_dispatch_interval", -1, || {
        let Some(c) = config_of(cfg, "event_config_set_max_dispatch_interval") else {
            return -1;
        };
        // SAFETY: caller's contract.
        let t = unsafe { max_interval.as_ref() }.map(duration_of);
        let n = if max_callbacks < 0 {
            u32::MAX
        } else {
            max_callbacks as u32
        };
        c.limits = Some((n, t, min_priority.clamp(0, 254) as u8));
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_method(base: *const EventBase) -> *const c_char {
    guard("event_base_get_method", ptr::null(), || {
        match base_of(base, "event_base_get_method") {
            Some((_, i)) => method_cstr(i.lp.method()),
            None => ptr::null(),
        }
    })
}

pub fn method_cstr(m: &str) -> *const c_char {
    match m {
        "epoll" => c"epoll".as_ptr(),
        "kqueue" => c"kqueue".as_ptr(),
        _ => c"poll".as_ptr(),
    }
}

struct Methods([*const c_char; 3]);
// SAFETY: pointers to static, immutable C strings.
unsafe impl Sync for Methods {}
#[cfg(any(target_os = "linux", target_os = "android"))]
static SUPPORTED: Methods = Methods([c"epoll".as_ptr(), c"poll".as_ptr(), ptr::null()]);
#[cfg(not(any(target_os = "linux", target_os = "android")))]
static SUPPORTED: Methods = Methods([c"kqueue".as_ptr(), c"poll".as_ptr(), ptr::null()]);

#[unsafe(no_mangle)]
pub extern "C" fn event_get_supported_methods() -> *const *const c_char {
    SUPPORTED.0.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_features(base: *const EventBase) -> c_int {
    guard("event_base_get_features", 0, || {
        base_of(base, "event_base_get_features").map_or(0, |(_, i)| features_of(i.lp.method()))
    })
}

/// Runs the loop of `base` (`event_base_loop`).
pub fn run(base: *mut EventBase, flags: c_int, func: &str) -> c_int {
    let Some((h, inner)) = base_of(base, func) else {
        return -1;
    };
    if inner.running.swap(true, Ordering::AcqRel) {
        warn(&format!(
            "{func}: reentrant invocation.  Only one event_base_loop can run on each event_base at once."
        ));
        return -1;
    }
    inner.got_break.store(false, Ordering::Relaxed);
    inner.got_exit.store(false, Ordering::Relaxed);
    let single = flags & (EVLOOP_ONCE | EVLOOP_NONBLOCK) != 0;
    // libevent returns 1 from a single pass only if nothing was pending or active before it.
    let (_, pending, active) = inner.lp.counts();
    let empty_before = pending == 0 && active == 0;
    let r = inner.lp.run(
        flags & EVLOOP_ONCE != 0,
        flags & EVLOOP_NONBLOCK != 0,
        flags & EVLOOP_NO_EXIT_ON_EMPTY != 0,
    );
    inner.running.store(false, Ordering::Release);
    let ret = match r {
        Ok(End::Empty) if single && !empty_before => 0,
        Ok(End::Empty) => 1,
        Ok(End::Break) => {
            inner.got_break.store(true, Ordering::Relaxed);
            0
        }
        Ok(End::Exit) => {
            inner.got_exit.store(true, Ordering::Relaxed);
            0
        }
        Ok(End::Done) => 0,
        Err(e) => {
            warn(&format!("{func}: {e}"));
            -1
        }
    };
    if inner.free_requested.load(Ordering::Acquire) {
        release_header(h);
    }
    ret
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_dispatch(base: *mut EventBase) -> c_int {
    guard("event_base_dispatch", -1, || {
        run(base, 0, "event_base_dispatch")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_loop(base: *mut EventBase, flags: c_int) -> c_int {
    guard("event_base_loop", -1, || {
        run(base, flags, "event_base_loop")
    })
}

pub fn loopbreak(base: *mut EventBase, func: &str) -> c_int {
    match base_of(base, func) {
        Some((_, i)) => match i.lp.loop_break() {
            Ok(()) => 0,
            Err(e) => {
                warn(&format!("{func}: {e}"));
                -1
            }
        },
        None => -1,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_loopbreak(base: *mut EventBase) -> c_int {
    guard("event_base_loopbreak", -1, || {
        loopbreak(base, "event_base_loopbreak")
    })
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
pub unsafe fn loopexit(base: *mut EventBase, tv: *const libc::timeval, func: &str) -> c_int {
    let Some((_, i)) = base_of(base, func) else {
        return -1;
    };
    // SAFETY: caller's contract.
    let after = unsafe { tv.as_ref() }.map(duration_of);
    match i.lp.loop_exit(after) {
        Ok(()) => 0,
        Err(e) => {
            warn(&format!("{func}: {e}"));
            -1
        }
    }
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_loopexit(
    base: *mut EventBase,
    tv: *const libc::timeval,
) -> c_int {
    // SAFETY: caller's contract.
    guard("event_base_loopexit", -1, || unsafe {
        loopexit(base, tv, "event_base_loopexit")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_loopcontinue(base: *mut EventBase) -> c_int {
    guard("event_base_loopcontinue", -1, || {
        match base_of(base, "event_base_loopcontinue") {
            Some((_, i)) => {
                i.lp.loop_continue();
                0
            }
            None => -1,
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_got_break(base: *mut EventBase) -> c_int {
    guard("event_base_got_break", 0, || {
        base_of(base, "event_base_got_break")
            .map_or(0, |(_, i)| i.got_break.load(Ordering::Relaxed) as c_int)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_got_exit(base: *mut EventBase) -> c_int {
    guard("event_base_got_exit", 0, || {
        base_of(base, "event_base_got_exit")
            .map_or(0, |(_, i)| i.got_exit.load(Ordering::Relaxed) as c_int)
    })
}

pub fn priority_init(base: *mut EventBase, n: c_int, func: &str) -> c_int {
    let Some((_, i)) = base_of(base, func) else {
        return -1;
    };
    if n < 1 || n > c_int::from(crate::backend::MAX_PRIORITIES) {
        warn(&format!(
            "{func}: {n} priorities (1..={} supported)",
            crate::backend::MAX_PRIORITIES
        ));
        return -1;
    }
    if i.lp.counts().2 > 0 {
        warn(&format!("{func}: events are active"));
        return -1;
    }
    i.npri.store(n as u32, Ordering::Relaxed);
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_priority_init(base: *mut EventBase, n: c_int) -> c_int {
    guard("event_base_priority_init", -1, || {
        priority_init(base, n, "event_base_priority_init")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_npriorities(base: *mut EventBase) -> c_int {
    guard("event_base_get_npriorities", 0, || {
        base_of(base, "event_base_get_npriorities")
            .map_or(0, |(_, i)| i.npri.load(Ordering::Relaxed) as c_int)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_reinit(base: *mut EventBase) -> c_int {
    guard("event_reinit", -1, || {
        let Some((_, i)) = base_of(base, "event_reinit") else {
            return -1;
        };
        match i.lp.reinit() {
            Ok(()) => 0,
            Err(e) => {
                warn(&format!("event_reinit: {e}"));
                -1
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_num_events(base: *mut EventBase, flags: u32) -> c_int {
    guard("event_base_get_num_events", -1, || {
        let Some((_, i)) = base_of(base, "event_base_get_num_events") else {
            return -1;
        };
        let (_, pending, active) = i.lp.counts();
        let mut n = 0u32;
        if flags & EVENT_BASE_COUNT_ACTIVE != 0 {
            n += active;
        }
        if flags & EVENT_BASE_COUNT_ADDED != 0 {
            n += pending;
        }
        let _ = EVENT_BASE_COUNT_VIRTUAL; // rouse has no virtual events
        n as c_int
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_max_events(
    base: *mut EventBase,
    flags: u32,
    _clear: c_int,
) -> c_int {
    // rouse keeps no high-water marks: the current count is the closest honest answer.
    event_base_get_num_events(base, flags)
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_get_running_event(base: *mut EventBase) -> *mut Event {
    guard("event_base_get_running_event", ptr::null_mut(), || {
        base_of(base, "event_base_get_running_event").map_or(ptr::null_mut(), |(_, i)| {
            i.running_event.load(Ordering::Acquire) as *mut Event
        })
    })
}

#[inline]
fn clock(id: libc::clockid_t) -> libc::timeval {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(id, &mut ts) };
    libc::timeval {
        tv_sec: ts.tv_sec,
        tv_usec: (ts.tv_nsec / 1000) as libc::suseconds_t,
    }
}

/// The realtime clock.
pub fn wall() -> libc::timeval {
    clock(libc::CLOCK_REALTIME)
}

/// The monotonic clock.
pub fn mono() -> libc::timeval {
    clock(libc::CLOCK_MONOTONIC)
}

/// The coarse monotonic clock (libevent's default time source on Linux: cheap to read).
#[inline]
pub fn mono_coarse() -> libc::timeval {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        clock(libc::CLOCK_MONOTONIC_COARSE)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        mono()
    }
}

/// The resolution of [`mono_coarse`]: the kernel's tick (4 ms on a 250 Hz Linux kernel);
/// `None` where it is the precise clock, or unknown.
pub fn coarse_tick() -> Option<Duration> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec.
        let r = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        (r == 0).then(|| {
            Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            )
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        None
    }
}

/// # Safety
///
/// `tv` is NULL or points to a writable `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_gettimeofday_cached(
    base: *mut EventBase,
    tv: *mut libc::timeval,
) -> c_int {
    guard("event_base_gettimeofday_cached", -1, || {
        if tv.is_null()
            || (!base.is_null() && base_of(base, "event_base_gettimeofday_cached").is_none())
        {
            return -1;
        }
        // SAFETY: caller's contract.
        unsafe { tv.write(wall()) };
        0
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_update_cache_time(base: *mut EventBase) -> c_int {
    guard("event_base_update_cache_time", -1, || {
        base_of(base, "event_base_update_cache_time").map_or(-1, |_| 0)
    })
}

/// # Safety
///
/// `tv` is NULL or points to a writable `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_gettime_monotonic(
    base: *mut EventBase,
    tv: *mut libc::timeval,
) -> c_int {
    guard("event_gettime_monotonic", -1, || {
        if tv.is_null() || base_of(base, "event_gettime_monotonic").is_none() {
            return -1;
        }
        // SAFETY: caller's contract.
        unsafe { tv.write(mono()) };
        0
    })
}

/// libevent's encoding of a common timeout in `tv_usec` (a copied timeval still works).
const COMMON_MAGIC: libc::suseconds_t = 0x5000_0000;
const COMMON_MASK: libc::suseconds_t = 0xf000_0000u32 as libc::suseconds_t;
const COMMON_IDX_SHIFT: u32 = 20;
const MICROS_MASK: libc::suseconds_t = 0x000f_ffff;

/// The common timeout a timeval names on this base, or its plain duration.
pub enum Timeout {
    Common(Common),
    Plain(Duration),
}

/// Whether `tv` carries the common-timeout mark (`event_base_init_common_timeout`).
#[inline(always)]
pub fn is_common(tv: &libc::timeval) -> bool {
    tv.tv_usec & COMMON_MASK == COMMON_MAGIC
}

#[inline]
pub fn timeout_of(inner: &Inner, tv: &libc::timeval) -> Timeout {
    if is_common(tv) {
        return common_of(inner, tv);
    }
    Timeout::Plain(duration_of(tv))
}

/// [`timeout_of`] for a timeval with the common-timeout mark.
#[inline(never)]
fn common_of(inner: &Inner, tv: &libc::timeval) -> Timeout {
    let idx = ((tv.tv_usec >> COMMON_IDX_SHIFT) & 0xff) as usize;
    let plain = libc::timeval {
        tv_sec: tv.tv_sec,
        tv_usec: tv.tv_usec & MICROS_MASK,
    };
    if let Ok(v) = inner.commons.lock() {
        if let Some((c, t)) = v.get(idx) {
            if t.tv_sec == tv.tv_sec && t.tv_usec == tv.tv_usec {
                return Timeout::Common(*c);
            }
        }
    }
    Timeout::Plain(duration_of(&plain))
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_init_common_timeout(
    base: *mut EventBase,
    tv: *const libc::timeval,
) -> *const libc::timeval {
    guard("event_base_init_common_timeout", ptr::null(), || {
        let Some((_, inner)) = base_of(base, "event_base_init_common_timeout") else {
            return ptr::null();
        };
        // SAFETY: caller's contract.
        let Some(tv) = (unsafe { tv.as_ref() }) else {
            warn("event_base_init_common_timeout: NULL timeval");
            return ptr::null();
        };
        let d = match timeout_of(inner, tv) {
            Timeout::Common(c) => c.duration(),
            Timeout::Plain(d) => d,
        };
        let Ok(mut v) = inner.commons.lock() else {
            return ptr::null();
        };
        if let Some((_, t)) = v.iter().find(|(c, _)| c.duration() == d) {
            return &**t as *const libc::timeval;
        }
        if v.len() >= 256 {
            warn("event_base_init_common_timeout: too many common timeouts");
            return ptr::null();
        }
        let c = match inner.lp.common(d) {
            Ok(c) => c,
            Err(e) => {
                warn(&format!("event_base_init_common_timeout: {e}"));
                return ptr::null();
            }
        };
        let plain = timeval_of(d);
        let t = Box::new(libc::timeval {
            tv_sec: plain.tv_sec,
            tv_usec: plain.tv_usec
                | COMMON_MAGIC
                | ((v.len() as libc::suseconds_t) << COMMON_IDX_SHIFT),
        });
        let p = &*t as *const libc::timeval;
        v.push((c, t));
        p
    })
}

/// The `struct event` addresses of every event of `inner` that is pending or active, with
/// their snapshots.
pub fn live_events(inner: &Inner) -> Vec<(usize, crate::backend::Info)> {
    let infos = inner.lp.events();
    infos
        .into_iter()
        // Tag 0: no `struct event` (`event_base_once`'s own events).
        .filter(|i| i.tag != 0)
        .map(|i| (crate::reclaim::event_of(i.tag) as usize, i))
        .collect()
}

type ForeachCb = Option<unsafe extern "C" fn(*const EventBase, *const Event, *mut c_void) -> c_int>;

/// # Safety
///
/// `f` is a valid callback (or NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_foreach_event(
    base: *mut EventBase,
    f: ForeachCb,
    arg: *mut c_void,
) -> c_int {
    guard("event_base_foreach_event", -1, || {
        let Some((h, inner)) = base_of(base, "event_base_foreach_event") else {
            return -1;
        };
        let Some(f) = f else {
            warn("event_base_foreach_event: NULL callback");
            return -1;
        };
        for (addr, info) in live_events(inner) {
            if !(info.pending || info.active.is_some()) {
                continue;
            }
            // SAFETY: the callback is the caller's; `addr` is a live event of this base.
            let r = unsafe { f(h.as_ptr(), addr as *const Event, arg) };
            if r != 0 {
                return r;
            }
        }
        0
    })
}

fn describe(addr: usize, i: &crate::backend::Info) -> String {
    let mut s = match i.what {
        What::Io { fd, events } => {
            let mut s = format!("  {:#x} [fd {fd}]", addr);
            for (bit, name) in [
                (EV_READ, " Read"),
                (EV_WRITE, " Write"),
                (EV_CLOSED, " EOF"),
                (EV_ET, " ET"),
            ] {
                if events & bit != 0 {
                    s.push_str(name);
                }
            }
            s
        }
        What::Signal(n) => format!("  {:#x} [sig {n}] Signal", addr),
        What::Timer => format!("  {:#x} [fd -1]", addr),
    };
    if i.persistent {
        s.push_str(" Persist");
    }
    if let Some(r) = i.remaining {
        s.push_str(&format!(" Timeout={:.6}s", r.as_secs_f64()));
    }
    s
}

/// # Safety
///
/// `out` is a valid `FILE *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_dump_events(base: *mut EventBase, out: *mut libc::FILE) {
    guard("event_base_dump_events", (), || {
        let Some((_, inner)) = base_of(base, "event_base_dump_events") else {
            return;
        };
        if out.is_null() {
            warn("event_base_dump_events: NULL FILE");
            return;
        }
        let all = live_events(inner);
        let mut s = String::from("Inserted events:\n");
        for (a, i) in all.iter().filter(|(_, i)| i.pending) {
            s.push_str(&describe(*a, i));
            s.push('\n');
        }
        s.push_str("Active events:\n");
        for (a, i) in &all {
            if let Some(res) = i.active {
                s.push_str(&describe(*a, i));
                s.push_str(&format!(" active (res {res:#x})\n"));
            }
        }
        let c = CString::new(s).unwrap_or_default();
        // SAFETY: `out` is the caller's FILE; `c` is NUL-terminated.
        unsafe { libc::fputs(c.as_ptr(), out) };
    })
}

/// The rouse dump of a base (poller, notifier, wake counters), for `rouse_libevent_dump`.
pub fn rouse_dump(base: *mut EventBase) -> Option<String> {
    base_of(base, "rouse_libevent_dump").map(|(_, i)| i.lp.dump())
}

/// Runs `cb(fd, res, arg)` once (`event_base_once`).
///
/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
pub unsafe fn once(
    base: *mut EventBase,
    fd: c_int,
    events: i16,
    cb: EventCb,
    arg: *mut c_void,
    tv: *const libc::timeval,
    func: &str,
) -> c_int {
    let Some((h, inner)) = base_of(base, func) else {
        return -1;
    };
    let Some(f) = cb else {
        warn(&format!("{func}: NULL callback"));
        return -1;
    };
    if events & (EV_SIGNAL | EV_PERSIST) != 0 {
        warn(&format!("{func}: EV_SIGNAL and EV_PERSIST are not allowed"));
        return -1;
    }
    let io = events & (EV_READ | EV_WRITE | EV_CLOSED);
    let what = if io != 0 {
        What::Io {
            fd,
            events: events & (EV_READ | EV_WRITE | EV_CLOSED | EV_ET),
        }
    } else {
        What::Timer
    };
    // SAFETY: caller's contract.
    let tv = unsafe { tv.as_ref() };
    let timeout = match tv {
        Some(tv) => Some(match timeout_of(inner, tv) {
            Timeout::Common(c) => c.duration(),
            Timeout::Plain(d) => d,
        }),
        None if io == 0 => Some(Duration::ZERO),
        None => None,
    };
    let arg = arg as usize;
    let npri = inner.npri.load(Ordering::Relaxed);
    let hi = h.index();
    let asked = match what {
        What::Io { events, .. } => events,
        _ => 0,
    };
    let cb: Callback = Box::new(move |ctx| {
        let res = ctx.res(asked);
        // SAFETY: the caller's callback with the caller's argument, as libevent calls it.
        let run = || unsafe { f(fd, res, arg as *mut c_void) };
        match header_at(hi).inner() {
            Some(i) => i.lp.callback(ctx, run),
            None => run(),
        }
    });
    match inner.lp.once(what, timeout, (npri / 2) as u8, cb) {
        Ok(()) => 0,
        Err(e) => {
            warn(&format!("{func}: {e}"));
            -1
        }
    }
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_once(
    base: *mut EventBase,
    fd: c_int,
    events: CShort,
    cb: EventCb,
    arg: *mut c_void,
    tv: *const libc::timeval,
) -> c_int {
    // SAFETY: caller's contract.
    guard("event_base_once", -1, || unsafe {
        once(base, fd, events, cb, arg, tv, "event_base_once")
    })
}

/// C's `short`.
pub type CShort = std::ffi::c_short;

/// Activates the events of `base` watching `fd` (or signal `sig`) for `events`.
pub fn active_by(
    base: *mut EventBase,
    fd: Option<c_int>,
    sig: Option<c_int>,
    events: i16,
    func: &str,
) {
    let Some((_, inner)) = base_of(base, func) else {
        return;
    };
    for i in inner.lp.events() {
        if !i.pending {
            continue;
        }
        let res = match i.what {
            What::Io { fd: f, events: e } if Some(f) == fd => {
                events & e & (EV_READ | EV_WRITE | EV_CLOSED)
            }
            What::Signal(n) if Some(n) == sig => EV_SIGNAL,
            _ => 0,
        };
        if res != 0 {
            let _ = inner.lp.activate(i.key, res);
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_active_by_fd(base: *mut EventBase, fd: c_int, events: CShort) {
    guard("event_base_active_by_fd", (), || {
        active_by(base, Some(fd), None, events, "event_base_active_by_fd")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_base_active_by_signal(base: *mut EventBase, sig: c_int) {
    guard("event_base_active_by_signal", (), || {
        active_by(
            base,
            None,
            Some(sig),
            EV_SIGNAL,
            "event_base_active_by_signal",
        )
    })
}
