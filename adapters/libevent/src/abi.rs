//! libevent 2.1's public ABI: constants of `event2/event.h`, and `struct event` with the layout
//! of `event2/event_struct.h` (128 bytes on LP64), whose internal fields hold rouse's state.

use std::ffi::{c_int, c_short, c_void};
use std::sync::atomic::{AtomicI16, AtomicI32, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::backend::Key;

pub const EV_TIMEOUT: i16 = 0x01;
pub const EV_READ: i16 = 0x02;
pub const EV_WRITE: i16 = 0x04;
pub const EV_SIGNAL: i16 = 0x08;
pub const EV_PERSIST: i16 = 0x10;
pub const EV_ET: i16 = 0x20;
pub const EV_FINALIZE: i16 = 0x40;
pub const EV_CLOSED: i16 = 0x80;

pub const EVLIST_TIMEOUT: i16 = 0x01;
pub const EVLIST_INSERTED: i16 = 0x02;
pub const EVLIST_SIGNAL: i16 = 0x04;
pub const EVLIST_ACTIVE: i16 = 0x08;
pub const EVLIST_INIT: i16 = 0x80;

pub const EVLOOP_ONCE: c_int = 0x01;
pub const EVLOOP_NONBLOCK: c_int = 0x02;
pub const EVLOOP_NO_EXIT_ON_EMPTY: c_int = 0x04;

pub const EVENT_BASE_FLAG_NOLOCK: c_int = 0x01;
pub const EVENT_BASE_FLAG_IGNORE_ENV: c_int = 0x02;
pub const EVENT_BASE_FLAG_PRECISE_TIMER: c_int = 0x20;

pub const EV_FEATURE_ET: c_int = 0x01;
pub const EV_FEATURE_O1: c_int = 0x02;
pub const EV_FEATURE_FDS: c_int = 0x04;
pub const EV_FEATURE_EARLY_CLOSE: c_int = 0x08;

pub const EVENT_BASE_COUNT_ACTIVE: u32 = 1;
pub const EVENT_BASE_COUNT_VIRTUAL: u32 = 2;
pub const EVENT_BASE_COUNT_ADDED: u32 = 4;

/// libevent's limit on priorities per base.
pub const EVENT_MAX_PRIORITIES: c_int = 256;

/// `event_callback_fn`.
pub type EventCb = Option<unsafe extern "C" fn(c_int, c_short, *mut c_void)>;
/// `event_finalize_callback_fn`.
pub type FinalizeCb = Option<unsafe extern "C" fn(*mut Event, *mut c_void)>;

/// The opaque `struct event_base` (the crate's base header lives behind it).
#[repr(C)]
pub struct EventBase {
    _private: [u8; 0],
}

/// `struct event`, field for field as `event2/event_struct.h` lays it out. Fields that
/// libevent keeps internal (its queue links, heap index and per-kind lists) hold rouse's
/// state instead; the public ones (`ev_fd`, `ev_base`, `ev_events`, `ev_res`, `ev_timeout`,
/// the callback, its argument, flags and priority) mean what they mean in libevent.
#[repr(C)]
pub struct Event {
    /// `ev_evcallback.evcb_active_next.tqe_next`: `MAGIC ^ address` once assigned.
    pub magic: u64,
    /// `...tqe_prev`: [`OWNED_NEW`], [`OWNED_CELL`].
    pub owned: u64,
    /// `evcb_flags` (`EVLIST_*`).
    pub flags: i16,
    /// `evcb_pri`.
    pub pri: u8,
    /// `evcb_closure`.
    pub closure: u8,
    /// The padding before the callback union: the seqlock word of rouse's state (odd while
    /// a writer holds it).
    pub lock: u32,
    /// `evcb_cb_union.evcb_callback`.
    pub callback: EventCb,
    /// `evcb_arg`.
    pub arg: *mut c_void,
    /// `ev_timeout_pos` (16 bytes): the rouse key (12 bytes) and the base generation.
    pub key: [u32; 3],
    pub key_gen: u32,
    /// `ev_fd`.
    pub fd: c_int,
    pub _pad0: u32,
    /// `ev_base`.
    pub base: *mut EventBase,
    /// `ev_` (32 bytes): the base header whose loop holds `key`, and what the rouse event was
    /// created for (`spec_live`: whether there is one).
    pub owner: usize,
    pub spec_fd: i32,
    pub spec_events: i16,
    pub spec_pri: u8,
    pub spec_live: u8,
    pub _spare: [u32; 4],
    /// `ev_events`.
    pub events: i16,
    /// `ev_res`.
    pub res: i16,
    pub _pad1: u32,
    /// `ev_timeout`.
    pub timeout: libc::timeval,
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Event>() == 128);

/// `Event::owned`: allocated by `event_new`.
pub const OWNED_NEW: u64 = 1;
/// `Event::owned`: in one of `event_new`'s cells (else from the program's allocator).
pub const OWNED_CELL: u64 = 2;

/// `MAGIC ^ address` marks an event assigned at that address (zeroed or copied memory fails).
pub const MAGIC: u64 = 0x726f_7573_655f_6576; // "rouse_ev"

pub fn magic_of(ev: *const Event) -> u64 {
    MAGIC ^ ev as usize as u64
}

/// Stores a key in three words.
pub fn key_words(k: Key) -> [u32; 3] {
    k.to_raw()
}

/// The key stored by [`key_words`] (a stale or forged one is refused by rouse with
/// `Stale`/`Foreign`, never misused).
pub fn key_from(w: [u32; 3]) -> Key {
    Key::from_raw(w)
}

/// The event's lock word.
///
/// # Safety
///
/// `ev` points to a live `struct event`.
pub unsafe fn lock_word<'a>(ev: *mut Event) -> &'a AtomicU32 {
    // SAFETY: the field is 4-aligned inside a live struct (caller's contract); all access to
    // it in this crate is atomic.
    unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*ev).lock)) }
}

/// The event's `ev_flags` as an atomic (the loop thread updates it while others may read).
///
/// # Safety
///
/// `ev` points to a live `struct event`.
pub unsafe fn flags_word<'a>(ev: *mut Event) -> &'a AtomicI16 {
    // SAFETY: 2-aligned field of a live struct; this crate only accesses it atomically.
    unsafe { AtomicI16::from_ptr(std::ptr::addr_of_mut!((*ev).flags)) }
}

/// Sets and clears `EVLIST_*` bits of `ev_flags`. A plain load and store, no read-modify-write:
/// the flags are informational (rouse's own state decides everything), so a lost update
/// between two threads is harmless, and a locked instruction per `event_add` is not.
///
/// # Safety
///
/// `ev` points to a live `struct event`.
pub unsafe fn set_flags(ev: *mut Event, set: i16, clear: i16) {
    // SAFETY: caller's contract.
    let f = unsafe { flags_word(ev) };
    let old = f.load(Ordering::Relaxed);
    let new = (old & !clear) | set;
    if new != old {
        f.store(new, Ordering::Relaxed);
    }
}

/// The event's `ev_res` as an atomic.
///
/// # Safety
///
/// `ev` points to a live `struct event`.
pub unsafe fn res_word<'a>(ev: *mut Event) -> &'a AtomicI16 {
    // SAFETY: as in `flags_word`.
    unsafe { AtomicI16::from_ptr(std::ptr::addr_of_mut!((*ev).res)) }
}

/// rouse's state in a `struct event`: read without a lock (a seqlock over atomics), written
/// under the event's spin lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub key: [u32; 3],
    pub key_gen: u32,
    pub owner: usize,
    pub spec_fd: i32,
    pub spec_events: i16,
    pub spec_pri: u8,
    pub spec_live: u8,
}

struct Fields<'a> {
    key: [&'a AtomicU32; 3],
    key_gen: &'a AtomicU32,
    owner: &'a AtomicUsize,
    spec_fd: &'a AtomicI32,
    spec_events: &'a AtomicI16,
    spec_pri: &'a AtomicU8,
    spec_live: &'a AtomicU8,
}

/// # Safety
///
/// `ev` points to a live `struct event`.
unsafe fn fields<'a>(ev: *mut Event) -> Fields<'a> {
    use std::ptr::addr_of_mut as a;
    // SAFETY: every field is naturally aligned inside the `repr(C)` struct (offsets checked
    // by the C layout test) and, outside `event_assign` (which no other thread may overlap),
    // only accessed atomically.
    unsafe {
        let k = a!((*ev).key) as *mut u32;
        Fields {
            key: [
                AtomicU32::from_ptr(k),
                AtomicU32::from_ptr(k.add(1)),
                AtomicU32::from_ptr(k.add(2)),
            ],
            key_gen: AtomicU32::from_ptr(a!((*ev).key_gen)),
            owner: AtomicUsize::from_ptr(a!((*ev).owner)),
            spec_fd: AtomicI32::from_ptr(a!((*ev).spec_fd)),
            spec_events: AtomicI16::from_ptr(a!((*ev).spec_events)),
            spec_pri: AtomicU8::from_ptr(a!((*ev).spec_pri)),
            spec_live: AtomicU8::from_ptr(a!((*ev).spec_live)),
        }
    }
}

impl Fields<'_> {
    fn load(&self) -> State {
        let r = Ordering::Relaxed;
        State {
            key: [
                self.key[0].load(r),
                self.key[1].load(r),
                self.key[2].load(r),
            ],
            key_gen: self.key_gen.load(r),
            owner: self.owner.load(r),
            spec_fd: self.spec_fd.load(r),
            spec_events: self.spec_events.load(r),
            spec_pri: self.spec_pri.load(r),
            spec_live: self.spec_live.load(r),
        }
    }

    fn store(&self, s: &State) {
        let r = Ordering::Relaxed;
        for (a, v) in self.key.iter().zip(s.key) {
            a.store(v, r);
        }
        self.key_gen.store(s.key_gen, r);
        self.owner.store(s.owner, r);
        self.spec_fd.store(s.spec_fd, r);
        self.spec_events.store(s.spec_events, r);
        self.spec_pri.store(s.spec_pri, r);
        self.spec_live.store(s.spec_live, r);
    }
}

/// The events `ev`'s registration was made for (`spec_events`, one atomic load).
///
/// # Safety
///
/// `ev` points to a live, assigned `struct event`.
#[inline(always)]
pub unsafe fn spec_events_of(ev: *mut Event) -> i16 {
    // SAFETY: caller's contract; the field is only accessed atomically (see `fields`).
    unsafe { fields(ev) }.spec_events.load(Ordering::Relaxed)
}

/// Whether `ev`'s rouse state has a registration (`spec_live`, one atomic load, no seqlock:
/// a hint, for choosing a path that checks the state again).
///
/// # Safety
///
/// `ev` points to a live, assigned `struct event`.
#[inline(always)]
pub unsafe fn has_registration(ev: *mut Event) -> bool {
    // SAFETY: caller's contract; the field is only accessed atomically (see `fields`).
    unsafe { fields(ev) }.spec_live.load(Ordering::Relaxed) == 1
}

/// Whether `ev`'s rouse state names `key` and a live registration, read without the seqlock
/// (a callback's check that its struct still holds it). A read torn by a concurrent writer
/// sees each word as the state held it at some moment: where the writer changed a word the
/// read misses (the caller then asks [`read_state`]), and a match means `key` was the
/// registration while the check ran, which is all a delivery needs.
///
/// # Safety
///
/// `ev` points to `size_of::<Event>()` readable bytes whose rouse words (if it is an event)
/// are only accessed atomically.
#[inline(always)]
pub unsafe fn names_key(ev: *mut Event, key: Key) -> bool {
    // SAFETY: caller's contract; the fields are only accessed atomically (see `fields`).
    let f = unsafe { fields(ev) };
    let r = Ordering::Relaxed;
    let k = key.to_raw();
    f.key[1].load(r) == k[1]
        && f.key[2].load(r) == k[2]
        && f.key[0].load(r) == k[0]
        && f.spec_live.load(r) == 1
}

/// A consistent snapshot of `ev`'s rouse state, without taking its lock (no write to the
/// event's cache line: many threads may `event_active` one event).
///
/// # Safety
///
/// `ev` points to a live, assigned `struct event`.
pub unsafe fn read_state(ev: *mut Event) -> State {
    // SAFETY: caller's contract.
    let (w, f) = unsafe { (lock_word(ev), fields(ev)) };
    let mut spins = 0u32;
    loop {
        let v1 = w.load(Ordering::Acquire);
        if v1 & 1 == 0 {
            let s = f.load();
            std::sync::atomic::fence(Ordering::Acquire);
            if w.load(Ordering::Relaxed) == v1 {
                return s;
            }
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Changes `ev`'s rouse state under its lock; `f` returns what the caller wants back.
///
/// # Safety
///
/// `ev` points to a live, assigned `struct event`.
#[inline(always)]
pub unsafe fn update<R>(ev: *mut Event, f: impl FnOnce(&mut State) -> R) -> R {
    // SAFETY: caller's contract.
    unsafe { update_with::<R, true>(ev, true, f) }
}

/// [`update`] that stores the state back whether or not `f` changed it (no comparison: for a
/// writer that changes it on its usual path, as a creation does). `shared` false: an event of
/// a base without locking, which the program calls from one thread at a time, so no other
/// thread writes the state and the seqlock is taken with plain stores (a single writer's:
/// odd, a release fence, the words, even with release), sparing the atomic
/// read-modify-write of the lock (a dozen cycles or more on the first `event_add` of every
/// event). Readers ([`read_state`]) are unchanged.
///
/// # Safety
///
/// As [`update`]; with `shared` false, no other thread writes `ev`'s state meanwhile.
#[inline(always)]
pub unsafe fn replace_in<R>(ev: *mut Event, shared: bool, f: impl FnOnce(&mut State) -> R) -> R {
    // SAFETY: caller's contract.
    unsafe { update_with::<R, false>(ev, shared, f) }
}

/// [`update`] (`COMPARE`: store only a changed state) or [`replace_in`]; `shared`: other
/// threads may write the state. `f` has one call site, so it is inlined.
///
/// # Safety
///
/// As [`update`]; with `shared` false, no other thread writes `ev`'s state meanwhile.
#[inline(always)]
unsafe fn update_with<R, const COMPARE: bool>(
    ev: *mut Event,
    shared: bool,
    f: impl FnOnce(&mut State) -> R,
) -> R {
    // SAFETY: caller's contract.
    let (w, fl) = unsafe { (lock_word(ev), fields(ev)) };
    let v = if shared {
        lock(w)
    } else {
        let v = w.load(Ordering::Relaxed) & !1;
        w.store(v | 1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::Release);
        v
    };
    let mut s = fl.load();
    let before = s;
    let r = f(&mut s);
    if !COMPARE || s != before {
        fl.store(&s);
    }
    w.store(v.wrapping_add(2), Ordering::Release);
    r
}

/// Takes the seqlock `w` (odd while held) against other writers; returns its even value.
#[inline(always)]
fn lock(w: &AtomicU32) -> u32 {
    let mut spins = 0u32;
    loop {
        let v = w.load(Ordering::Relaxed);
        if v & 1 == 0
            && w.compare_exchange_weak(v, v | 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return v;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

/// A timeout's `struct timeval` as libevent reads it: whole seconds and microseconds, negative
/// parts counting as zero and microseconds past a second as 999 999.
#[inline(always)]
pub fn timeout_parts(tv: &libc::timeval) -> (u64, u64) {
    (
        tv.tv_sec.max(0) as u64,
        (tv.tv_usec.max(0) as u64).min(999_999),
    )
}

/// `struct timeval` to a duration ([`timeout_parts`]).
#[inline]
pub fn duration_of(tv: &libc::timeval) -> std::time::Duration {
    let (s, us) = timeout_parts(tv);
    std::time::Duration::new(s, us as u32 * 1000)
}

/// `struct timeval` to nanoseconds ([`timeout_parts`]), saturating.
#[inline(always)]
pub fn nanos_of(tv: &libc::timeval) -> u64 {
    let (s, us) = timeout_parts(tv);
    s.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(us * 1000))
        .unwrap_or(u64::MAX)
}

/// A duration as `struct timeval`, saturating.
#[inline]
pub fn timeval_of(d: std::time::Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

/// Nanoseconds (a reading of `CLOCK_MONOTONIC`: libevent's `ev_timeout`) as `struct timeval`.
#[inline(always)]
pub fn timeval_of_nanos(at: u64) -> libc::timeval {
    let secs = at / 1_000_000_000;
    libc::timeval {
        tv_sec: libc::time_t::try_from(secs).unwrap_or(libc::time_t::MAX),
        tv_usec: ((at - secs * 1_000_000_000) / 1000) as libc::suseconds_t,
    }
}

/// Offsets of `struct event`'s public fields as this library lays them out, in the order
/// size, `ev_fd`, `ev_base`, `ev_events`, `ev_res`, `ev_timeout`, `evcb_callback`,
/// `evcb_arg`, `evcb_flags`, `evcb_pri`: the C layout test compares them with `offsetof` on
/// the installed `event2/event_struct.h`.
static OFFSETS: [usize; 10] = [
    std::mem::size_of::<Event>(),
    std::mem::offset_of!(Event, fd),
    std::mem::offset_of!(Event, base),
    std::mem::offset_of!(Event, events),
    std::mem::offset_of!(Event, res),
    std::mem::offset_of!(Event, timeout),
    std::mem::offset_of!(Event, callback),
    std::mem::offset_of!(Event, arg),
    std::mem::offset_of!(Event, flags),
    std::mem::offset_of!(Event, pri),
];

/// The offsets of `OFFSETS` (size, then `ev_fd`, `ev_base`, `ev_events`, `ev_res`,
/// `ev_timeout`, `evcb_callback`, `evcb_arg`, `evcb_flags`, `evcb_pri`); `n` receives their
/// number.
///
/// # Safety
///
/// `n` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rouse_libevent_layout(n: *mut usize) -> *const usize {
    if !n.is_null() {
        // SAFETY: caller's contract.
        unsafe { n.write(OFFSETS.len()) };
    }
    OFFSETS.as_ptr()
}
