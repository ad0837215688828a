//! Linux futexes and glibc's single-thread flag: what [`StdLock`](crate::StdLock) is built on
//! there.

use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU8, Ordering};
use std::sync::OnceLock;

const FUTEX_WAIT_PRIVATE: libc::c_int = 128;
const FUTEX_WAKE_PRIVATE: libc::c_int = 128 | 1;

/// Sleeps while `*word == expected` (returns at once if it differs; may return spuriously).
pub fn wait(word: &AtomicU32, expected: u32) {
    // SAFETY: `word` is a live, aligned u32 for the call; no timeout (NULL); a private futex
    // of this process. Errors (EAGAIN: the value differed, EINTR) are returns: callers loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            FUTEX_WAIT_PRIVATE,
            expected,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Wakes up to `n` threads sleeping in [`wait`] on `word`.
pub fn wake(word: &AtomicU32, n: i32) {
    // SAFETY: as in `wait`; a wake touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), FUTEX_WAKE_PRIVATE, n) };
}

/// glibc's `__libc_single_threaded` (2.32 and later), or NULL (another C library).
static FLAG: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static LOOKED_UP: OnceLock<()> = OnceLock::new();

/// Finds the flag (once per process; a lock calls this when made, so [`single_threaded`]
/// reads a settled pointer).
pub fn look_up_flag() {
    LOOKED_UP.get_or_init(|| {
        // SAFETY: `dlsym` with RTLD_DEFAULT and a NUL-terminated name; a NULL result is "no
        // such symbol".
        let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__libc_single_threaded".as_ptr()) };
        FLAG.store(p as *mut u8, Ordering::Release);
    });
}

/// Whether this is the process's only thread (glibc says so; elsewhere: never assumed).
/// glibc clears the flag in `pthread_create` before the new thread exists, on the creating
/// thread, so a thread that reads it set is alone: no other thread can take a lock.
#[inline(always)]
pub fn single_threaded() -> bool {
    is_set(FLAG.load(Ordering::Acquire))
}

/// Whether `p`, the flag's address or NULL, says the process has one thread.
#[inline(always)]
fn is_set(p: *mut u8) -> bool {
    // SAFETY: a non-NULL pointer is glibc's flag, a `char` that lives as long as the process;
    // it is read as an atomic byte (glibc writes it only from the one thread there is).
    !p.is_null() && unsafe { AtomicU8::from_ptr(p) }.load(Ordering::Relaxed) != 0
}

/// [`single_threaded`] for a caller that may have made no lock: finds the flag first while it
/// is not found (once, with glibc; every time with another C library, which has none).
#[inline(always)]
pub fn single_threaded_looked_up() -> bool {
    let mut p = FLAG.load(Ordering::Acquire);
    if p.is_null() {
        look_up_cold();
        p = FLAG.load(Ordering::Acquire);
    }
    is_set(p)
}

#[cold]
#[inline(never)]
fn look_up_cold() {
    look_up_flag();
}
