//! `event2/event_compat.h`: the libevent 1.x API on the "current base" `event_init` sets.

use std::ffi::{c_char, c_int, c_short, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::{EventBase, EventCb};
use crate::base;
use crate::event;
use crate::log::{guard, warn};

static CURRENT: AtomicPtr<EventBase> = AtomicPtr::new(ptr::null_mut());

/// The base `event_init` made (NULL before).
pub fn current_base() -> *mut EventBase {
    CURRENT.load(Ordering::Acquire)
}

#[unsafe(no_mangle)]
pub extern "C" fn event_init() -> *mut EventBase {
    guard("event_init", ptr::null_mut(), || {
        let b = base::event_base_new();
        if !b.is_null() {
            CURRENT.store(b, Ordering::Release);
        }
        b
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_dispatch() -> c_int {
    guard("event_dispatch", -1, || {
        base::run(current_base(), 0, "event_dispatch")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_loop(flags: c_int) -> c_int {
    guard("event_loop", -1, || {
        base::run(current_base(), flags, "event_loop")
    })
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_loopexit(tv: *const libc::timeval) -> c_int {
    // SAFETY: caller's contract.
    guard("event_loopexit", -1, || unsafe {
        base::loopexit(current_base(), tv, "event_loopexit")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_loopbreak() -> c_int {
    guard("event_loopbreak", -1, || {
        base::loopbreak(current_base(), "event_loopbreak")
    })
}

/// # Safety
///
/// `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_once(
    fd: c_int,
    events: c_short,
    cb: EventCb,
    arg: *mut c_void,
    tv: *const libc::timeval,
) -> c_int {
    // SAFETY: caller's contract.
    guard("event_once", -1, || unsafe {
        base::once(current_base(), fd, events, cb, arg, tv, "event_once")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_get_method() -> *const c_char {
    guard("event_get_method", ptr::null(), || {
        let b = current_base();
        if b.is_null() {
            warn("event_get_method: event_init was not called");
            return ptr::null();
        }
        base::event_base_get_method(b)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_priority_init(n: c_int) -> c_int {
    guard("event_priority_init", -1, || {
        base::priority_init(current_base(), n, "event_priority_init")
    })
}

/// # Safety
///
/// `ev` is NULL or points to `event_get_struct_event_size()` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_set(
    ev: *mut crate::abi::Event,
    fd: c_int,
    events: c_short,
    cb: EventCb,
    arg: *mut c_void,
) {
    // SAFETY: caller's contract.
    guard("event_set", (), || unsafe {
        event::assign(ev, current_base(), fd, events, cb, arg, "event_set");
    })
}
