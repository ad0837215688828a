//! libevent's log and fatal callbacks, and the guard every export runs its body in (no panic
//! crosses into C).

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

pub const EVENT_LOG_DEBUG: c_int = 0;
pub const EVENT_LOG_MSG: c_int = 1;
pub const EVENT_LOG_WARN: c_int = 2;
pub const EVENT_LOG_ERR: c_int = 3;

static LOG_CB: AtomicUsize = AtomicUsize::new(0);
static FATAL_CB: AtomicUsize = AtomicUsize::new(0);
static DEBUG_LOGGING: AtomicU32 = AtomicU32::new(0);
/// `event_enable_debug_mode` was called.
pub static DEBUG_MODE: AtomicBool = AtomicBool::new(false);

type LogCb = unsafe extern "C" fn(c_int, *const c_char);
type FatalCb = unsafe extern "C" fn(c_int);

pub fn set_log_callback(cb: Option<LogCb>) {
    LOG_CB.store(cb.map_or(0, |f| f as usize), Ordering::Release);
}

pub fn set_fatal_callback(cb: Option<FatalCb>) {
    FATAL_CB.store(cb.map_or(0, |f| f as usize), Ordering::Release);
}

pub fn set_debug_logging(which: u32) {
    DEBUG_LOGGING.store(which, Ordering::Relaxed);
}

/// Reports `msg` with `severity` through the log callback (or to stderr as libevent does).
pub fn log(severity: c_int, msg: &str) {
    if severity == EVENT_LOG_DEBUG && DEBUG_LOGGING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let cb = LOG_CB.load(Ordering::Acquire);
    if cb != 0 {
        let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
        // SAFETY: `cb` was stored from a `LogCb` by `set_log_callback`; the string lives
        // for the call.
        unsafe {
            let f: LogCb = std::mem::transmute::<usize, LogCb>(cb);
            f(severity, c.as_ptr());
        }
        return;
    }
    let tag = match severity {
        EVENT_LOG_DEBUG => "debug",
        EVENT_LOG_MSG => "msg",
        EVENT_LOG_WARN => "warn",
        EVENT_LOG_ERR => "err",
        _ => "???",
    };
    eprintln!("[{tag}] {msg}");
}

pub fn warn(msg: &str) {
    log(EVENT_LOG_WARN, msg)
}

/// A fatal error: the fatal callback, then `abort()` (libevent exits; a program that must
/// survive sets a fatal callback that does not return).
pub fn fatal(msg: &str) -> ! {
    log(EVENT_LOG_ERR, msg);
    let cb = FATAL_CB.load(Ordering::Acquire);
    if cb != 0 {
        // SAFETY: stored from a `FatalCb` by `set_fatal_callback`.
        unsafe {
            let f: FatalCb = std::mem::transmute::<usize, FatalCb>(cb);
            f(-1);
        }
    }
    std::process::abort()
}

/// Runs an export's body; a panic is reported and turned into `fail` (never unwinds into C).
///
/// Inlined into each export, with the report out of line: the body then runs straight from
/// the export, with no wrapper frame saving registers for a path that never runs.
#[inline(always)]
pub fn guard<R>(name: &str, fail: R, f: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            report_panic(name, p);
            fail
        }
    }
}

#[cold]
#[inline(never)]
fn report_panic(name: &str, p: Box<dyn std::any::Any + Send>) {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    log(
        EVENT_LOG_ERR,
        &format!("{name}: internal error (panic: {what})"),
    );
}
