//! Library-wide exports: versions, log and fatal callbacks, debug mode, memory functions,
//! `event2/thread.h`.

use std::ffi::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::abi::EventBase;
use crate::base::base_of;
use crate::log::{self, guard};

/// The libevent release whose ABI this library implements.
const LIBEVENT_VERSION: &std::ffi::CStr = c"2.1.12-stable";
const LIBEVENT_VERSION_NUMBER: u32 = 0x0201_0c00;

#[unsafe(no_mangle)]
pub extern "C" fn event_get_version() -> *const c_char {
    LIBEVENT_VERSION.as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn event_get_version_number() -> u32 {
    LIBEVENT_VERSION_NUMBER
}

static ROUSE_VERSION: &str = concat!("rouse-libevent ", env!("CARGO_PKG_VERSION"), "\0");

/// rouse's own version ("rouse-libevent X.Y.Z"): a program can tell which library it runs on.
#[unsafe(no_mangle)]
pub extern "C" fn rouse_libevent_version() -> *const c_char {
    ROUSE_VERSION.as_ptr() as *const c_char
}

/// How rouse made `base`: bit 0 set if it is thread-safe (made after
/// `evthread_use_pthreads()` and without `EVENT_BASE_FLAG_NOLOCK`), bit 1 set if its timeouts
/// use the precise clock (`EVENT_BASE_FLAG_PRECISE_TIMER`, `EVENT_PRECISE_TIMER`); -1 for a
/// pointer that is not a live base.
#[unsafe(no_mangle)]
pub extern "C" fn rouse_libevent_base_kind(base: *mut EventBase) -> c_int {
    guard("rouse_libevent_base_kind", -1, || {
        base_of(base, "rouse_libevent_base_kind").map_or(-1, |(_, i)| {
            c_int::from(i.lp.is_threaded()) | (c_int::from(i.lp.is_precise()) << 1)
        })
    })
}

/// Writes rouse's view of `base` (poller, notifier, wake counters, events) to stderr.
#[unsafe(no_mangle)]
pub extern "C" fn rouse_libevent_dump(base: *mut EventBase) -> c_int {
    guard(
        "rouse_libevent_dump",
        -1,
        || match crate::base::rouse_dump(base) {
            Some(s) => {
                eprint!("{s}");
                0
            }
            None => -1,
        },
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn event_set_log_callback(cb: Option<unsafe extern "C" fn(c_int, *const c_char)>) {
    log::set_log_callback(cb)
}

#[unsafe(no_mangle)]
pub extern "C" fn event_set_fatal_callback(cb: Option<unsafe extern "C" fn(c_int)>) {
    log::set_fatal_callback(cb)
}

#[unsafe(no_mangle)]
pub extern "C" fn event_enable_debug_logging(which: u32) {
    log::set_debug_logging(which)
}

#[unsafe(no_mangle)]
pub extern "C" fn event_enable_debug_mode() {
    if log::DEBUG_MODE.swap(true, Ordering::Relaxed) {
        log::warn("event_enable_debug_mode was called twice!");
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn libevent_global_shutdown() {}

type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
type Realloc = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

static MALLOC: AtomicUsize = AtomicUsize::new(0);
static FREE_FN: AtomicUsize = AtomicUsize::new(0);

/// Replaces the allocator of `event_new` (the only memory this library hands out to C).
#[unsafe(no_mangle)]
pub extern "C" fn event_set_mem_functions(
    malloc_fn: Option<Malloc>,
    _realloc_fn: Option<Realloc>,
    free_fn: Option<Free>,
) {
    match (malloc_fn, free_fn) {
        (Some(m), Some(f)) => {
            MALLOC.store(m as usize, Ordering::Release);
            FREE_FN.store(f as usize, Ordering::Release);
        }
        _ => {
            MALLOC.store(0, Ordering::Release);
            FREE_FN.store(0, Ordering::Release);
        }
    }
}

/// Whether the program replaced the allocator.
pub fn mem_functions_set() -> bool {
    MALLOC.load(Ordering::Acquire) != 0
}

/// Allocates with the program's `malloc` replacement, if any.
pub fn mem_alloc(n: usize) -> *mut c_void {
    let m = MALLOC.load(Ordering::Acquire);
    if m != 0 {
        // SAFETY: stored from a `Malloc` by `event_set_mem_functions`.
        unsafe { std::mem::transmute::<usize, Malloc>(m)(n) }
    } else {
        // SAFETY: plain malloc.
        unsafe { libc::malloc(n) }
    }
}

/// Frees what [`mem_alloc`] returned.
///
/// # Safety
///
/// `p` came from [`mem_alloc`].
pub unsafe fn mem_free(p: *mut c_void) {
    let f = FREE_FN.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: stored from a `Free` by `event_set_mem_functions`; caller's contract.
        unsafe { std::mem::transmute::<usize, Free>(f)(p) }
    } else {
        // SAFETY: caller's contract.
        unsafe { libc::free(p) }
    }
}

/// `evthread_use_pthreads()` (or `evthread_set_lock_callbacks`) was called: the bases made
/// from then on are thread-safe, unless made with `EVENT_BASE_FLAG_NOLOCK` (as in libevent).
pub static THREADS: AtomicBool = AtomicBool::new(false);

#[unsafe(no_mangle)]
pub extern "C" fn evthread_use_pthreads() -> c_int {
    THREADS.store(true, Ordering::Relaxed);
    0
}

/// rouse brings its own locks; user lock callbacks are accepted and not used.
#[unsafe(no_mangle)]
pub extern "C" fn evthread_set_lock_callbacks(_cbs: *const c_void) -> c_int {
    THREADS.store(true, Ordering::Relaxed);
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn evthread_set_condition_callbacks(_cbs: *const c_void) -> c_int {
    0
}

#[unsafe(no_mangle)]
pub extern "C" fn evthread_set_id_callback(
    _f: Option<unsafe extern "C" fn() -> std::ffi::c_ulong>,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn evthread_enable_lock_debugging() {}

#[unsafe(no_mangle)]
pub extern "C" fn evthread_enable_lock_debuging() {}

/// Every rouse base can be woken from another thread.
#[unsafe(no_mangle)]
pub extern "C" fn evthread_make_base_notifiable(base: *mut EventBase) -> c_int {
    guard("evthread_make_base_notifiable", -1, || {
        base_of(base, "evthread_make_base_notifiable").map_or(-1, |_| 0)
    })
}

/// The number of rouse events `base` holds (live slots, pending or not), or -1: lets a test
/// check that caller-allocated events leave no slot behind once their memory is reused.
#[unsafe(no_mangle)]
pub extern "C" fn rouse_libevent_slot_count(base: *mut EventBase) -> c_int {
    guard("rouse_libevent_slot_count", -1, || {
        base_of(base, "rouse_libevent_slot_count").map_or(-1, |(_, i)| i.lp.counts().0 as c_int)
    })
}
