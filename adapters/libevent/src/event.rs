//! `struct event` and the per-event exports of `event2/event.h`.
//!
//! The rouse event behind a `struct event` is created lazily, at the first `event_add` or
//! `event_active`, from the fields the program set (`ev_fd`, `ev_events`, `ev_base`,
//! `ev_pri`); it is created again when those changed (programs rewrite `ev_fd`/`ev_events`
//! or call `event_base_set` before re-adding). Its callback reads `ev_callback`, `ev_arg` and
//! `ev_fd` from the struct when it runs, as libevent does.
//!
//! An event of `event_new` keeps its rouse slot until `event_free`. A caller-allocated event
//! (`event_assign`/`event_set`) may be freed by the program whenever it is neither pending nor
//! active, so its rouse slot goes as soon as it stops being pending (`event_del`, a one-shot
//! firing): nothing leaks when the program frees the memory.

use std::ffi::{c_int, c_short, c_void};
use std::ptr;
use std::sync::atomic::Ordering;

use crate::abi::*;
use crate::backend::{Ctx, Fail, Key, What};
use crate::base::{self, base_of, header_of, timeout_of, Header, Inner, Timeout};
use crate::cells;
use crate::log::{guard, warn, DEBUG_MODE};
use crate::reclaim;

/// `event_self_cbarg()`'s marker.
static SELF_CBARG: u8 = 0;

fn self_cbarg() -> *mut c_void {
    &SELF_CBARG as *const u8 as *mut c_void
}

/// Whether `ev` is an event this library assigned (safe on zeroed or garbage memory).
///
/// # Safety
///
/// `ev` is NULL or points to at least `size_of::<Event>()` readable bytes.
pub unsafe fn is_assigned(ev: *const Event) -> bool {
    // SAFETY: caller's contract.
    !ev.is_null() && unsafe { read_frozen(ptr::addr_of!((*ev).magic)) } == magic_of(ev)
}

/// Reads a word the program may never have initialized (`event_initialized` on fresh
/// memory): through an asm load, whose result is always an initialized value, so the
/// comparison that follows is defined behaviour whatever the bytes were.
///
/// # Safety
///
/// `p` points to 8 readable, 8-aligned bytes.
unsafe fn read_frozen(p: *const u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let v: u64;
        // SAFETY: caller's contract; a plain load, no other effect.
        unsafe {
            std::arch::asm!("mov {v}, qword ptr [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, readonly, preserves_flags))
        };
        v
    }
    #[cfg(target_arch = "aarch64")]
    {
        let v: u64;
        // SAFETY: caller's contract; a plain load, no other effect.
        unsafe {
            std::arch::asm!("ldr {v}, [{p}]", p = in(reg) p, v = out(reg) v,
                options(nostack, readonly, preserves_flags))
        };
        v
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    // SAFETY: caller's contract.
    unsafe {
        p.read_volatile()
    }
}

/// Checks `ev`, reporting misuse.
///
/// # Safety
///
/// As [`is_assigned`].
#[inline(always)]
unsafe fn check(ev: *const Event, func: &str) -> bool {
    // SAFETY: caller's contract.
    if unsafe { is_assigned(ev) } {
        return true;
    }
    not_assigned(ev, func);
    false
}

#[cold]
#[inline(never)]
fn not_assigned(ev: *const Event, func: &str) {
    if ev.is_null() {
        warn(&format!("{func}: NULL event"));
    } else {
        warn(&format!(
            "{func}: event {ev:p} is not initialized (event_assign/event_new)"
        ));
    }
}

/// The rouse event currently behind `ev`: its header, base and key.
///
/// # Safety
///
/// `ev` is assigned.
#[inline]
unsafe fn current(ev: *mut Event) -> Option<(&'static Header, &'static Inner, Key)> {
    // SAFETY: caller's contract.
    unsafe { current_spec(ev) }.map(|(h, inner, key, _)| (h, inner, key))
}

/// [`current`], also returning the `ev_events` that rouse event was made for.
///
/// # Safety
///
/// `ev` is assigned.
#[inline(always)]
unsafe fn current_spec(ev: *mut Event) -> Option<(&'static Header, &'static Inner, Key, i16)> {
    // SAFETY: caller's contract.
    let st = unsafe { read_state(ev) };
    if st.spec_live == 0 {
        return None;
    }
    let (h, inner) = live(&st)?;
    Some((h, inner, key_from(st.key), st.spec_events))
}

/// The header and live base that `st`'s rouse event belongs to, if that base still lives.
#[inline(always)]
fn live(st: &State) -> Option<(&'static Header, &'static Inner)> {
    let h = header_of(st.owner as *const _)?;
    if h.gen.load(Ordering::Relaxed) != st.key_gen {
        return None;
    }
    Some((h, h.inner()?))
}

/// Takes the rouse event away from `ev` (under its lock), returning it.
///
/// # Safety
///
/// `ev` is assigned.
unsafe fn detach(ev: *mut Event, only: Option<Key>) -> Option<(usize, u32, Key)> {
    // SAFETY: caller's contract.
    unsafe {
        update(ev, |st| {
            if st.spec_live == 0 {
                return None;
            }
            let key = key_from(st.key);
            if only.is_some_and(|k| k != key) {
                return None;
            }
            st.spec_live = 0;
            Some((st.owner, st.key_gen, key))
        })
    }
}

/// Frees a detached rouse event (waits for its callback running on another thread).
fn release(old: (usize, u32, Key)) {
    let (owner, gen, key) = old;
    let Some(h) = header_of(owner as *const _) else {
        return;
    };
    if h.gen.load(Ordering::Relaxed) != gen {
        return;
    }
    if let Some(inner) = h.inner() {
        let _ = inner.lp.free(key);
    }
}

/// What `events` asks rouse for, or `None` if libevent refuses the combination.
fn what_of(fd: c_int, events: i16) -> Option<What> {
    let io = events & (EV_READ | EV_WRITE | EV_CLOSED);
    if events & EV_SIGNAL != 0 {
        if io != 0 {
            return None;
        }
        return Some(What::Signal(fd));
    }
    Some(if io != 0 {
        What::Io {
            fd,
            events: events & (EV_READ | EV_WRITE | EV_CLOSED | EV_ET),
        }
    } else {
        What::Timer
    })
}

/// Runs the program's callback of `ev`, an event of the base `inner` (`None`: being freed),
/// for the run `ctx` describes (what every rouse callback of a `struct event` does).
#[inline(always)]
fn deliver(ctx: &Ctx<'_>, ev: *mut Event, inner: Option<&'static Inner>) {
    // SAFETY: `ev` is pending or active, so the program keeps it alive (libevent's contract:
    // an event may only be freed when neither).
    match unsafe { holds(ev, ctx) } {
        Holds::Yes => {}
        Holds::Detached => return, // being freed or finalized by the call that detached it
        Holds::No => {
            ctx.release();
            return;
        }
    }
    // SAFETY: as above; the callback fields are the program's. The registration's events
    // are one atomic field, written only when a registration is made, before its callback
    // can run: no seqlock needed for it alone.
    let spec = unsafe { spec_events_of(ev) };
    let persist = spec & EV_PERSIST != 0;
    let res = ctx.res(spec & (EV_READ | EV_WRITE));
    let mut clear = EVLIST_ACTIVE;
    if !persist {
        clear |= EVLIST_INSERTED | EVLIST_TIMEOUT | EVLIST_SIGNAL;
        if spec & EV_SIGNAL != 0 {
            ctx.delete();
        }
    }
    // SAFETY: as above.
    let (cb, arg, fd) = unsafe {
        set_flags(ev, 0, clear);
        res_word(ev).store(res, Ordering::Relaxed);
        ((*ev).callback, (*ev).arg, (*ev).fd)
    };
    // Only the loop thread writes `running_event` (callbacks of a base run there, one at a
    // time or nested): a load and a store, no locked swap.
    let prev = inner.map(|i| {
        let p = i.running_event.load(Ordering::Relaxed);
        i.running_event.store(ev as usize, Ordering::Release);
        p
    });
    if let Some(f) = cb {
        // SAFETY: the program's callback with its own argument, as libevent calls it.
        let run = || unsafe { f(fd, res, arg) };
        match inner {
            Some(i) => i.lp.callback(ctx, run),
            None => run(),
        }
    }
    if let (Some(i), Some(p)) = (inner, prev) {
        i.running_event.store(p, Ordering::Release);
    }
}

/// Whether a `struct event` still holds the running rouse event.
enum Holds {
    Yes,
    /// A call took it away (`event_free`, `event_finalize`) and frees it.
    Detached,
    /// Not assigned, or holding another rouse event: only for a program that freed (or
    /// re-assigned as fresh memory) an event that was pending, which libevent does not allow.
    /// The rouse event left behind is released instead of running another event's callback.
    No,
}

/// Whether `ev` is still the `struct event` of the running rouse event: assigned, and its
/// state names this key.
///
/// # Safety
///
/// `ev` points to readable memory of `size_of::<Event>()` bytes.
#[inline(always)]
unsafe fn holds(ev: *mut Event, ctx: &Ctx<'_>) -> Holds {
    // The usual case first, without the seqlock (memory that is no longer an assigned event
    // does not hold this key in these words: only the struct itself, freed but not yet
    // overwritten, would, and the magic word could not tell that either).
    // SAFETY: caller's contract: readable; these words are only accessed atomically.
    if unsafe { names_key(ev, ctx.key()) } {
        return Holds::Yes;
    }
    // SAFETY: caller's contract.
    if !unsafe { is_assigned(ev) } {
        return Holds::No;
    }
    // SAFETY: assigned.
    let st = unsafe { read_state(ev) };
    if key_from(st.key) != ctx.key() {
        Holds::No
    } else if st.spec_live == 0 {
        Holds::Detached // a detach keeps the key it took away
    } else {
        Holds::Yes
    }
}

/// The callback of a rouse event of a base in its home header ([`base::home_of`]): it finds
/// the base from the loop's id and `ev` from the event's tag, so it captures nothing and
/// rouse keeps it without a heap chunk.
fn home_callback(ctx: &Ctx<'_>) {
    let Some(inner) = base::home_of(ctx.loop_id()) else {
        return; // the base is being freed
    };
    deliver(ctx, reclaim::event_of(ctx.tag()), Some(inner));
}

/// The callback of a rouse event when its base is not in its home header: it captures the
/// header's index (2 bytes), so rouse keeps it in a small heap chunk.
fn away_callback(base: u16) -> impl FnMut(&Ctx<'_>) + Send + 'static {
    move |ctx: &Ctx<'_>| {
        deliver(
            ctx,
            reclaim::event_of(ctx.tag()),
            base::header_at(base).inner(),
        );
    }
}

/// Whether the base behind `h` is in its home header (its events take [`home_callback`]).
fn at_home(h: &'static Header, inner: &Inner) -> bool {
    base::home_index(inner.lp.id()) == usize::from(h.index())
}

/// The rouse event for what `ev` says now, created (again) if needed.
///
/// # Safety
///
/// `ev` is assigned.
#[inline(always)]
unsafe fn ensure(ev: *mut Event, func: &str) -> Option<(&'static Header, &'static Inner, Key)> {
    // The common case (every add, del and activation of an event whose fields did not
    // change): the registration recorded in the struct, whose owner was a checked header
    // when it was recorded, and is checked again (range, generation, live) here.
    // SAFETY: caller's contract: the program's fields.
    let (base, fd, events, pri) = unsafe { ((*ev).base, (*ev).fd, (*ev).events, (*ev).pri) };
    // SAFETY: caller's contract.
    let s = unsafe { read_state(ev) };
    if s.spec_live == 1
        && s.owner == base as usize
        && s.spec_fd == fd
        && s.spec_events == events
        && s.spec_pri == pri
    {
        if let Some((h, inner)) = live(&s) {
            if u32::from(pri) < inner.npri.load(Ordering::Relaxed) {
                return Some((h, inner, key_from(s.key)));
            }
        }
    }
    // SAFETY: caller's contract.
    unsafe { ensure_slow(ev, false, func) }
}

/// [`ensure`] when the struct's registration is missing, stale or for other fields. `missing`:
/// the caller saw none (a hint; a first add): no registration to look at for a change of
/// priority alone, so only the look under the lock is made.
///
/// # Safety
///
/// `ev` is assigned.
#[inline(never)]
unsafe fn ensure_slow(
    ev: *mut Event,
    missing: bool,
    func: &str,
) -> Option<(&'static Header, &'static Inner, Key)> {
    // SAFETY: caller's contract: the program's fields.
    let (base, fd, events, pri) = unsafe { ((*ev).base, (*ev).fd, (*ev).events, (*ev).pri) };
    let (h, inner) = base_of(base, func)?;
    let gen = h.gen.load(Ordering::Relaxed);
    let npri = inner.npri.load(Ordering::Relaxed);
    if u32::from(pri) >= npri {
        warn(&format!(
            "{func}: priority {pri} is not below the base's {npri}"
        ));
        return None;
    }
    if !missing {
        // SAFETY: caller's contract.
        let s = unsafe { read_state(ev) };
        if s.spec_live == 1
            && s.owner == h as *const Header as usize
            && s.key_gen == gen
            && s.spec_fd == fd
            && s.spec_events == events
        {
            let key = key_from(s.key);
            if s.spec_pri != pri && inner.lp.set_priority(key, pri).is_ok() {
                // SAFETY: caller's contract.
                unsafe {
                    update(ev, |st| {
                        if st.key == s.key {
                            st.spec_pri = pri
                        }
                    })
                };
            }
            return Some((h, inner, key));
        }
    }
    let Some(what) = what_of(fd, events) else {
        warn(&format!(
            "{func}: EV_SIGNAL cannot be combined with EV_READ, EV_WRITE or EV_CLOSED"
        ));
        return None;
    };
    let persist = events & EV_PERSIST != 0;
    let owner = h as *const Header as usize;
    // SAFETY: caller's contract.
    let caller_allocated = unsafe { (*ev).owned } & OWNED_NEW == 0;
    if caller_allocated {
        // Before the registration (its look never takes the one this call is making).
        inner.reclaim.made(&inner.lp);
    }
    // Decided and made under the event's lock, so that threads making the first call on one
    // event at once (four threads' first `event_active`) share one registration: decided
    // outside it, each made its own and freed the others' (the last one won), so keys went
    // stale under their threads, losing those activations (W2 logged "not registered" now
    // and then). The registration replaced (for other fields or a freed base) is freed once
    // the lock is released: freeing waits for a callback running on another thread, which
    // may itself be reading this event's state.
    // SAFETY: caller's contract; a base without locking is called from one thread at a time
    // (libevent's rule), so then no other thread writes this event's state.
    let made: Result<_, Fail> = unsafe {
        replace_in(ev, inner.lp.is_threaded(), |st| {
            if st.spec_live == 1
                && st.owner == owner
                && st.key_gen == gen
                && st.spec_fd == fd
                && st.spec_events == events
                && st.spec_pri == pri
            {
                return Ok((key_from(st.key), None)); // made by another thread meanwhile
            }
            let tag = reclaim::tag_of(ev, caller_allocated);
            let key = if at_home(h, inner) {
                inner.lp.create(what, persist, pri, tag, home_callback)?
            } else {
                let cb = away_callback(h.index());
                inner.lp.create(what, persist, pri, tag, cb)?
            };
            let old = (st.spec_live == 1).then_some((st.owner, st.key_gen, key_from(st.key)));
            *st = State {
                key: key_words(key),
                key_gen: gen,
                owner,
                spec_fd: fd,
                spec_events: events,
                spec_pri: pri,
                spec_live: 1,
            };
            Ok((key, old))
        })
    };
    let (key, old) = match made {
        Ok(m) => m,
        Err(e) => {
            warn(&format!("{func}: {e}"));
            return None;
        }
    };
    if let Some(old) = old {
        release(old);
    }
    Some((h, inner, key))
}

/// `event_assign` (and `event_set` with the current base).
///
/// # Safety
///
/// `ev` is NULL or points to `size_of::<Event>()` writable bytes.
pub unsafe fn assign(
    ev: *mut Event,
    base: *mut EventBase,
    fd: c_int,
    events: i16,
    cb: EventCb,
    arg: *mut c_void,
    func: &str,
) -> c_int {
    if ev.is_null() {
        warn(&format!("{func}: NULL event"));
        return -1;
    }
    let base = if base.is_null() {
        crate::compat::current_base()
    } else {
        base
    };
    let npri = if base.is_null() {
        1
    } else {
        match base_of(base, func) {
            Some((_, i)) => i.npri.load(Ordering::Relaxed),
            None => return -1,
        }
    };
    if what_of(fd, events).is_none() {
        warn(&format!(
            "{func}: EV_SIGNAL cannot be combined with EV_READ, EV_WRITE or EV_CLOSED"
        ));
        return -1;
    }
    let arg = if arg == self_cbarg() {
        ev as *mut c_void
    } else {
        arg
    };
    let mut owned = 0;
    // A re-assigned event keeps its rouse slot (reused by the next add if fd and events
    // match). Fresh memory at an address that had one (the program freed an event and
    // allocated this one there) leaves that slot to be reclaimed (`reclaim`).
    let mut keep = None;
    // SAFETY: caller's contract: readable memory.
    if unsafe { is_assigned(ev) } {
        // SAFETY: assigned.
        owned = unsafe { (*ev).owned } & (OWNED_NEW | OWNED_CELL);
        // `ev_flags` tells whether it may be pending or active (it is kept by every add, del,
        // activation and callback), which spares the question to rouse (a snapshot under the
        // base lock) on the usual re-assign of an event just deleted. Its updates are not
        // atomic read-modify-writes, so a race can drop a bit: debug mode asks rouse always.
        // SAFETY: assigned.
        let flags = unsafe { flags_word(ev) }.load(Ordering::Relaxed);
        let maybe_busy = DEBUG_MODE.load(Ordering::Relaxed)
            || flags & (EVLIST_INSERTED | EVLIST_TIMEOUT | EVLIST_SIGNAL | EVLIST_ACTIVE) != 0;
        // SAFETY: assigned.
        if let Some((h, inner, key)) = unsafe { current(ev) } {
            if maybe_busy && inner.lp.is_busy(key) {
                if DEBUG_MODE.load(Ordering::Relaxed) {
                    warn(&format!(
                        "{func}: event {ev:p} re-assigned while pending or active"
                    ));
                }
                let _ = inner.lp.delete(key);
            }
            let _ = h;
            // SAFETY: assigned.
            keep = Some(unsafe { read_state(ev) });
        }
    }
    let (key, key_gen, spec_fd, spec_events, spec_pri, owner) = match keep {
        Some(st) => (
            st.key,
            st.key_gen,
            st.spec_fd,
            st.spec_events,
            st.spec_pri,
            st.owner,
        ),
        None => ([0; 3], 0, 0, 0, 0, 0),
    };
    let e = Event {
        magic: magic_of(ev),
        owned,
        flags: EVLIST_INIT,
        pri: (npri / 2) as u8,
        closure: 0,
        lock: 0,
        callback: cb,
        arg,
        key,
        key_gen,
        fd,
        _pad0: 0,
        base,
        owner,
        spec_fd,
        spec_events,
        spec_pri,
        spec_live: keep.is_some() as u8,
        _spare: [0; 4],
        events,
        res: 0,
        _pad1: 0,
        timeout: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: caller's contract: writable, and no other thread uses an event being assigned.
    unsafe { ev.write(e) };
    0
}

/// # Safety
///
/// `ev` is NULL or points to `event_get_struct_event_size()` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_assign(
    ev: *mut Event,
    base: *mut EventBase,
    fd: c_int,
    events: c_short,
    cb: EventCb,
    arg: *mut c_void,
) -> c_int {
    // SAFETY: caller's contract.
    guard("event_assign", -1, || unsafe {
        assign(ev, base, fd, events, cb, arg, "event_assign")
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_new(
    base: *mut EventBase,
    fd: c_int,
    events: c_short,
    cb: EventCb,
    arg: *mut c_void,
) -> *mut Event {
    guard("event_new", ptr::null_mut(), || {
        let (p, from) = cells::alloc_event();
        if p.is_null() {
            warn("event_new: out of memory");
            return ptr::null_mut();
        }
        // SAFETY: `p` is a fresh allocation of the right size (zeroed first, so `assign`
        // reads no uninitialized bytes).
        unsafe {
            ptr::write_bytes(p as *mut u8, 0, std::mem::size_of::<Event>());
            if assign(p, base, fd, events, cb, arg, "event_new") != 0 {
                cells::free_event(p, from);
                return ptr::null_mut();
            }
            (*p).owned = OWNED_NEW
                | match from {
                    cells::Memory::Cell => OWNED_CELL,
                    cells::Memory::Program => 0,
                };
        }
        p
    })
}

/// Gives an `event_new` event's memory back to where it came from.
///
/// # Safety
///
/// `ev` is an assigned event of `event_new` that nothing refers to any more.
unsafe fn free_new(ev: *mut Event) {
    // SAFETY: caller's contract.
    unsafe {
        let from = if (*ev).owned & OWNED_CELL != 0 {
            cells::Memory::Cell
        } else {
            cells::Memory::Program
        };
        (*ev).magic = 0;
        cells::free_event(ev, from);
    }
}

/// # Safety
///
/// `ev` is NULL or an event of `event_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_free(ev: *mut Event) {
    guard("event_free", (), || {
        if ev.is_null() {
            return;
        }
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_free") } {
            return;
        }
        // SAFETY: assigned.
        if let Some(old) = unsafe { detach(ev, None) } {
            release(old);
        }
        // SAFETY: assigned; no rouse event refers to it any more.
        unsafe {
            if (*ev).owned & OWNED_NEW == 0 {
                warn(&format!(
                    "event_free: event {ev:p} was not allocated by event_new"
                ));
                return;
            }
            free_new(ev);
        }
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`; `tv` is NULL or points to a `struct timeval`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_add(ev: *mut Event, tv: *const libc::timeval) -> c_int {
    // SAFETY: caller's contract.
    guard("event_add", -1, || unsafe { add(ev, tv, "event_add") })
}

/// # Safety
///
/// As [`event_add`].
#[inline(always)]
pub unsafe fn add(ev: *mut Event, tv: *const libc::timeval, func: &str) -> c_int {
    // SAFETY: caller's contract.
    if !unsafe { check(ev, func) } {
        return -1;
    }
    // SAFETY: caller's contract.
    let tv = unsafe { tv.as_ref() };
    // SAFETY: assigned.
    let found = if !unsafe { has_registration(ev) } {
        Found::Missing // a first add
    } else if let Some(tv) = tv {
        // SAFETY: assigned.
        match unsafe { readd(ev, tv) } {
            Ok(r) => return r,
            Err(found) => found,
        }
    } else {
        Found::Unknown
    };
    // SAFETY: assigned.
    unsafe { add_slow(ev, tv, found, func) }
}

/// What [`add`]'s first look at a struct's registration found.
#[derive(Clone, Copy)]
enum Found {
    /// Not looked at.
    Unknown,
    /// None there (a hint: [`ensure_slow`] looks again under the lock).
    Missing,
    /// The one for the struct's fields, on a live base.
    Current(&'static Inner, Key),
}

/// [`add`] but for a parked timer's re-add (out of line: the re-add's code keeps its
/// registers). `found`: what [`add`] found of the registration.
///
/// # Safety
///
/// `ev` is assigned.
#[inline(never)]
unsafe fn add_slow(ev: *mut Event, tv: Option<&libc::timeval>, found: Found, func: &str) -> c_int {
    // SAFETY: assigned.
    match unsafe { add_once(ev, tv, found, func) } {
        Some(r) => r,
        // SAFETY: assigned.
        None => unsafe { add_again(ev, tv, func) },
    }
}

/// `event_add` of a timer whose delete is parked, outside a run (a timeout pushed back
/// before the loop runs again: `crate::parked`), on a path of its own: the struct's
/// registration checked as [`ensure`] checks it, the re-add parked in turn, `ev_timeout` and
/// the flags set. `Err`: not such a re-add, with what was found of the registration (the
/// caller adds the general way).
///
/// # Safety
///
/// `ev` is assigned.
#[inline(always)]
unsafe fn readd(ev: *mut Event, tv: &libc::timeval) -> Result<c_int, Found> {
    // SAFETY: caller's contract: the program's fields.
    let (base, fd, events, pri) = unsafe { ((*ev).base, (*ev).fd, (*ev).events, (*ev).pri) };
    if events & (EV_READ | EV_WRITE | EV_CLOSED | EV_SIGNAL) != 0 {
        return Err(Found::Unknown);
    }
    // SAFETY: caller's contract.
    let s = unsafe { read_state(ev) };
    if s.spec_live != 1
        || s.owner != base as usize
        || s.spec_fd != fd
        || s.spec_events != events
        || s.spec_pri != pri
    {
        return Err(Found::Unknown);
    }
    let Some((_, inner)) = live(&s) else {
        return Err(Found::Unknown);
    };
    if u32::from(pri) >= inner.npri.load(Ordering::Relaxed) {
        return Err(Found::Unknown);
    }
    let key = key_from(s.key);
    if base::is_common(tv) {
        return Err(Found::Current(inner, key));
    }
    let Some(at) = inner.lp.readd(key, tv) else {
        return Err(Found::Current(inner, key));
    };
    // SAFETY: assigned.
    unsafe {
        set_timeout(ev, timeval_of_nanos(at));
        set_flags(ev, EVLIST_INIT | EVLIST_TIMEOUT, 0);
    }
    Ok(0)
}

/// [`add`]'s further attempts, after the registration went stale under the first
/// ([`reclaim::ATTEMPTS`] in all; out of line: the first attempt's code then keeps its
/// registers).
///
/// # Safety
///
/// `ev` is assigned.
#[cold]
#[inline(never)]
unsafe fn add_again(ev: *mut Event, tv: Option<&libc::timeval>, func: &str) -> c_int {
    for _ in 1..reclaim::ATTEMPTS {
        // SAFETY: caller's contract.
        if let Some(r) = unsafe { add_once(ev, tv, Found::Unknown, func) } {
            return r;
        }
    }
    warn(&format!(
        "{func}: the event changed under a concurrent call"
    ));
    -1
}

/// One attempt of [`add`]: its result, or `None` if the registration was stale (re-created
/// by another thread meanwhile; it is detached, so the next attempt takes the new one).
/// `found`: what the caller just found of the registration.
///
/// # Safety
///
/// `ev` is assigned.
#[inline(always)]
unsafe fn add_once(
    ev: *mut Event,
    tv: Option<&libc::timeval>,
    found: Found,
    func: &str,
) -> Option<c_int> {
    let made = match found {
        Found::Current(inner, key) => Some((inner, key)),
        Found::Missing => {
            // SAFETY: caller's contract.
            unsafe { ensure_slow(ev, true, func) }.map(|(_, inner, key)| (inner, key))
        }
        // SAFETY: caller's contract.
        Found::Unknown => unsafe { ensure(ev, func) }.map(|(_, inner, key)| (inner, key)),
    };
    let Some((inner, key)) = made else {
        return Some(-1);
    };
    // SAFETY: caller's contract.
    let (fd, events) = unsafe { ((*ev).fd, (*ev).events) };
    let what = what_of(fd, events);
    let mut set = EVLIST_INIT
        | match what {
            Some(What::Signal(_)) => EVLIST_INSERTED | EVLIST_SIGNAL,
            Some(What::Io { .. }) => EVLIST_INSERTED,
            _ => 0,
        };
    // Each kind of timeout in a straight line of its own: the deadline armed is stored in
    // `ev_timeout` (informational) as it is known.
    let r = match tv {
        None if what == Some(What::Timer) => return Some(0), // libevent: nothing to wait for
        None => inner.lp.add(key, None),
        Some(tv) => {
            set |= EVLIST_TIMEOUT;
            match timeout_of(inner, tv) {
                Timeout::Plain(d) => inner.lp.add_timed(key, d).map(|at| {
                    let tv = at.map_or_else(|| deadline(d), timeval_of_nanos);
                    // SAFETY: assigned.
                    unsafe { set_timeout(ev, tv) };
                }),
                Timeout::Common(c) => inner.lp.add_common(key, c).map(|()| {
                    // SAFETY: assigned.
                    unsafe { set_timeout(ev, deadline(c.duration())) };
                }),
            }
        }
    };
    match r {
        Ok(()) => {
            // SAFETY: assigned.
            unsafe { set_flags(ev, set, 0) };
            Some(0)
        }
        Err(Fail::Stale) => {
            // SAFETY: assigned.
            unsafe { detach(ev, Some(key)) };
            None
        }
        Err(e) => {
            warn(&format!("{func}: {e}"));
            Some(-1)
        }
    }
}

/// `ev_timeout` for a timeout of `d` from now: the coarse monotonic clock plus `d`, in
/// integer arithmetic that saturates (no timeout is too long for it).
#[inline]
fn deadline(d: std::time::Duration) -> libc::timeval {
    let now = base::mono_coarse();
    let secs = libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX);
    let mut tv_sec = now.tv_sec.saturating_add(secs);
    let mut tv_usec = now.tv_usec + d.subsec_micros() as libc::suseconds_t;
    if tv_usec >= 1_000_000 {
        tv_usec -= 1_000_000;
        tv_sec = tv_sec.saturating_add(1);
    }
    libc::timeval { tv_sec, tv_usec }
}

/// Stores `ev_timeout` (atomically where a timeval is two 64-bit words: concurrent
/// `event_add`s of one event may race on it).
///
/// # Safety
///
/// `ev` is assigned.
unsafe fn set_timeout(ev: *mut Event, tv: libc::timeval) {
    #[cfg(all(
        target_pointer_width = "64",
        any(target_os = "linux", target_os = "android")
    ))]
    // SAFETY: `tv_sec` and `tv_usec` are 8-aligned i64s of a live struct.
    unsafe {
        use std::sync::atomic::AtomicI64;
        let t = ptr::addr_of_mut!((*ev).timeout);
        AtomicI64::from_ptr(ptr::addr_of_mut!((*t).tv_sec)).store(tv.tv_sec, Ordering::Relaxed);
        AtomicI64::from_ptr(ptr::addr_of_mut!((*t).tv_usec)).store(tv.tv_usec, Ordering::Relaxed);
    }
    #[cfg(not(all(
        target_pointer_width = "64",
        any(target_os = "linux", target_os = "android")
    )))]
    // SAFETY: caller's contract.
    unsafe {
        ptr::addr_of_mut!((*ev).timeout).write(tv)
    };
}

/// `event_del`, blocking or not.
///
/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[inline(always)]
unsafe fn del(ev: *mut Event, block: Option<bool>, func: &str) -> c_int {
    // SAFETY: caller's contract.
    if !unsafe { check(ev, func) } {
        return -1;
    }
    // SAFETY: assigned.
    let (events, flags) = unsafe { ((*ev).events, flags_word(ev).load(Ordering::Relaxed)) };
    let block = block.unwrap_or(events & EV_FINALIZE == 0);
    // SAFETY: assigned.
    let clear = || unsafe {
        set_flags(
            ev,
            0,
            EVLIST_INSERTED | EVLIST_TIMEOUT | EVLIST_SIGNAL | EVLIST_ACTIVE,
        );
    };
    // SAFETY: assigned.
    let Some((_, inner, key, spec)) = (unsafe { current_spec(ev) }) else {
        // SAFETY: assigned.
        let stale_base = unsafe { read_state(ev) }.spec_live == 1;
        if stale_base {
            // SAFETY: assigned.
            unsafe { detach(ev, None) };
            warn(&format!("{func}: the event's base was freed"));
            clear();
            return -1;
        }
        clear();
        return 0;
    };
    clear();
    // A timer's delete is held back where it can be: the add that usually follows (a
    // timeout pushed back) re-arms it instead (`crate::parked`).
    if spec & (EV_READ | EV_WRITE | EV_CLOSED | EV_SIGNAL) == 0
        && flags & EVLIST_ACTIVE == 0
        && inner.lp.park_delete(key)
    {
        return 0;
    }
    // A live event that is not pending deletes fine; a stale one is no longer anything's.
    // Either way the registration stays (`event_add` reuses it).
    let r = if block {
        inner.lp.delete(key)
    } else {
        inner.lp.delete_nowait(key)
    };
    match r {
        Ok(()) | Err(Fail::Stale) => 0,
        Err(e) => {
            warn(&format!("{func}: {e}"));
            -1
        }
    }
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_del(ev: *mut Event) -> c_int {
    // SAFETY: caller's contract.
    guard("event_del", -1, || unsafe { del(ev, None, "event_del") })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_del_block(ev: *mut Event) -> c_int {
    // SAFETY: caller's contract.
    guard("event_del_block", -1, || unsafe {
        del(ev, Some(true), "event_del_block")
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_del_noblock(ev: *mut Event) -> c_int {
    // SAFETY: caller's contract.
    guard("event_del_noblock", -1, || unsafe {
        del(ev, Some(false), "event_del_noblock")
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_active(ev: *mut Event, res: c_int, _ncalls: c_short) {
    guard("event_active", (), || {
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_active") } {
            return;
        }
        // Another attempt if the registration went stale under this one (reclaimed while
        // idle, or re-made by another thread): detached, the next `ensure` makes it afresh.
        for attempt in 1..=reclaim::ATTEMPTS {
            let last = attempt == reclaim::ATTEMPTS;
            // SAFETY: assigned.
            let Some((_, inner, key)) = (unsafe { ensure(ev, "event_active") }) else {
                return;
            };
            match inner.lp.activate(key, res as i16) {
                // SAFETY: assigned.
                Ok(()) => unsafe {
                    set_flags(ev, EVLIST_ACTIVE, 0);
                },
                Err(Fail::Stale) if !last => {
                    // SAFETY: assigned.
                    unsafe { detach(ev, Some(key)) };
                    continue;
                }
                Err(e) => warn(&format!("event_active: {e}")),
            }
            return;
        }
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`; `tv` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_pending(
    ev: *const Event,
    what: c_short,
    tv: *mut libc::timeval,
) -> c_int {
    guard("event_pending", 0, || {
        // SAFETY: caller's contract.
        if !unsafe { is_assigned(ev) } {
            if DEBUG_MODE.load(Ordering::Relaxed) {
                warn(&format!("event_pending: event {ev:p} is not initialized"));
            }
            return 0;
        }
        let ev = ev as *mut Event;
        // SAFETY: assigned.
        let Some((_, inner, key)) = (unsafe { current(ev) }) else {
            return 0;
        };
        let Ok(info) = inner.lp.info(key) else {
            return 0;
        };
        let mut flags = 0i16;
        if info.pending {
            flags |= match info.what {
                What::Io { events, .. } => events & (EV_READ | EV_WRITE | EV_CLOSED),
                What::Signal(_) => EV_SIGNAL,
                What::Timer => 0,
            };
            if info.remaining.is_some() {
                flags |= EV_TIMEOUT;
            }
        }
        if let Some(res) = info.active {
            flags |= res;
        }
        let flags = flags & what & (EV_TIMEOUT | EV_READ | EV_WRITE | EV_CLOSED | EV_SIGNAL);
        if flags & EV_TIMEOUT != 0 && !tv.is_null() {
            if let Some(r) = info.remaining {
                let at = timeval_of(duration_of(&base::wall()) + r);
                // SAFETY: caller's contract.
                unsafe { tv.write(at) };
            }
        }
        c_int::from(flags)
    })
}

/// # Safety
///
/// `ev` is NULL or points to `event_get_struct_event_size()` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_initialized(ev: *const Event) -> c_int {
    guard("event_initialized", 0, || {
        // SAFETY: caller's contract.
        c_int::from(unsafe { is_assigned(ev) })
    })
}

macro_rules! getter {
    ($name:ident, $t:ty, $fail:expr, |$ev:ident| $body:expr) => {
        /// # Safety
        ///
        /// `ev` is NULL or points to a `struct event`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($ev: *const Event) -> $t {
            guard(stringify!($name), $fail, || {
                // SAFETY: caller's contract.
                if !unsafe { check($ev, stringify!($name)) } {
                    return $fail;
                }
                // SAFETY: assigned: the program's fields.
                unsafe { $body }
            })
        }
    };
}

getter!(event_get_fd, c_int, -1, |ev| (*ev).fd);
getter!(event_get_base, *mut EventBase, ptr::null_mut(), |ev| (*ev)
    .base);
getter!(event_get_events, c_short, 0, |ev| (*ev).events);
getter!(event_get_callback, EventCb, None, |ev| (*ev).callback);
getter!(event_get_callback_arg, *mut c_void, ptr::null_mut(), |ev| {
    (*ev).arg
});
getter!(event_get_priority, c_int, -1, |ev| c_int::from((*ev).pri));

/// # Safety
///
/// `ev` points to a `struct event`; every out pointer is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_get_assignment(
    ev: *const Event,
    base_out: *mut *mut EventBase,
    fd_out: *mut c_int,
    events_out: *mut c_short,
    callback_out: *mut EventCb,
    arg_out: *mut *mut c_void,
) {
    guard("event_get_assignment", (), || {
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_get_assignment") } {
            return;
        }
        // SAFETY: caller's contract; each out pointer is checked for NULL.
        unsafe {
            if !base_out.is_null() {
                base_out.write((*ev).base);
            }
            if !fd_out.is_null() {
                fd_out.write((*ev).fd);
            }
            if !events_out.is_null() {
                events_out.write((*ev).events);
            }
            if !callback_out.is_null() {
                callback_out.write((*ev).callback);
            }
            if !arg_out.is_null() {
                arg_out.write((*ev).arg);
            }
        }
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn event_get_struct_event_size() -> usize {
    std::mem::size_of::<Event>()
}

#[unsafe(no_mangle)]
pub extern "C" fn event_self_cbarg() -> *mut c_void {
    self_cbarg()
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_priority_set(ev: *mut Event, pri: c_int) -> c_int {
    guard("event_priority_set", -1, || {
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_priority_set") } {
            return -1;
        }
        // SAFETY: assigned.
        let base = unsafe { (*ev).base };
        let npri = match base_of(base, "event_priority_set") {
            Some((_, i)) => i.npri.load(Ordering::Relaxed) as c_int,
            None if base.is_null() => 1,
            None => return -1,
        };
        if pri < 0 || pri >= npri {
            warn(&format!(
                "event_priority_set: priority {pri} is not below {npri}"
            ));
            return -1;
        }
        // SAFETY: assigned.
        if let Some((_, inner, key)) = unsafe { current(ev) } {
            if inner.lp.info(key).is_ok_and(|i| i.active.is_some()) {
                return -1; // libevent: not while active
            }
            match inner.lp.set_priority(key, pri as u8) {
                // SAFETY: assigned.
                Ok(()) => unsafe { update(ev, |st| st.spec_pri = pri as u8) },
                // Reclaimed while idle: the next add makes it afresh, with this priority.
                Err(Fail::Stale) => {}
                Err(_) => return -1,
            }
        }
        // SAFETY: assigned.
        unsafe { (*ev).pri = pri as u8 };
        0
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_base_set(base: *mut EventBase, ev: *mut Event) -> c_int {
    guard("event_base_set", -1, || {
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_base_set") } {
            return -1;
        }
        let Some((_, inner)) = base_of(base, "event_base_set") else {
            return -1;
        };
        // SAFETY: assigned.
        if let Some((_, i, key)) = unsafe { current(ev) } {
            if i.lp
                .info(key)
                .is_ok_and(|x| x.pending || x.active.is_some())
            {
                warn("event_base_set: the event is pending or active");
                return -1;
            }
        }
        // SAFETY: assigned; not pending, so only this thread uses it.
        unsafe {
            (*ev).base = base;
            (*ev).pri = (inner.npri.load(Ordering::Relaxed) / 2) as u8;
        }
        0
    })
}

/// `event_finalize` and `event_free_finalize`.
///
/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
unsafe fn finalize(ev: *mut Event, cb: FinalizeCb, then_free: bool, func: &str) -> c_int {
    // SAFETY: caller's contract.
    if !unsafe { check(ev, func) } {
        return -1;
    }
    // Another attempt if the registration was stale (reclaimed while idle): detached by this
    // one, it is made afresh by the next `ensure`.
    for attempt in 1..=reclaim::ATTEMPTS {
        let last = attempt == reclaim::ATTEMPTS;
        // SAFETY: assigned.
        let Some((_, inner, key)) = (unsafe { ensure(ev, func) }) else {
            return -1;
        };
        // SAFETY: assigned.
        if unsafe { detach(ev, Some(key)) }.is_none() {
            return -1;
        }
        // SAFETY: assigned.
        unsafe {
            set_flags(
                ev,
                0,
                EVLIST_INSERTED | EVLIST_TIMEOUT | EVLIST_ACTIVE | EVLIST_SIGNAL,
            )
        };
        match inner.lp.finalize(key, finalizer(ev, cb, then_free)) {
            Ok(()) => return 0,
            Err(Fail::Stale) if !last => continue,
            Err(e) => {
                warn(&format!("{func}: {e}"));
                return -1;
            }
        }
    }
    -1
}

/// The finalizer of `ev`: the program's `cb`, then (`event_free_finalize`) the event's memory.
fn finalizer(ev: *mut Event, cb: FinalizeCb, then_free: bool) -> Box<dyn FnOnce() + Send> {
    let addr = ev as usize;
    Box::new(move || {
        let ev = addr as *mut Event;
        // SAFETY: the program keeps a finalizing event alive until its finalizer ran.
        let arg = unsafe { (*ev).arg };
        if let Some(f) = cb {
            // SAFETY: the program's finalizer with its argument.
            unsafe { f(ev, arg) };
        }
        // SAFETY: as above; `event_free_finalize` takes an `event_new` event.
        unsafe {
            if then_free && is_assigned(ev) && (*ev).owned & OWNED_NEW != 0 {
                free_new(ev);
            }
        }
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_finalize(_flags: u32, ev: *mut Event, cb: FinalizeCb) -> c_int {
    // SAFETY: caller's contract.
    guard("event_finalize", -1, || unsafe {
        finalize(ev, cb, false, "event_finalize")
    })
}

/// # Safety
///
/// `ev` is NULL or an event of `event_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_free_finalize(_flags: u32, ev: *mut Event, cb: FinalizeCb) -> c_int {
    // SAFETY: caller's contract.
    guard("event_free_finalize", -1, || unsafe {
        finalize(ev, cb, true, "event_free_finalize")
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_remove_timer(ev: *mut Event) -> c_int {
    guard("event_remove_timer", -1, || {
        // SAFETY: caller's contract.
        if !unsafe { check(ev, "event_remove_timer") } {
            return -1;
        }
        // SAFETY: assigned.
        let Some((_, inner, key)) = (unsafe { current(ev) }) else {
            return 0;
        };
        let Ok(info) = inner.lp.info(key) else {
            return 0;
        };
        if !info.pending || info.remaining.is_none() {
            return 0;
        }
        // rouse has no "disarm the timeout only": delete, then add back without one.
        let _ = inner.lp.delete(key);
        if info.what != What::Timer {
            if let Err(e) = inner.lp.add(key, None) {
                warn(&format!("event_remove_timer: {e}"));
                return -1;
            }
        }
        // SAFETY: assigned.
        unsafe { set_flags(ev, 0, EVLIST_TIMEOUT) };
        0
    })
}

/// # Safety
///
/// `ev` is NULL or points to a `struct event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn event_debug_unassign(ev: *mut Event) {
    guard("event_debug_unassign", (), || {
        // SAFETY: caller's contract.
        if !unsafe { is_assigned(ev) } {
            return;
        }
        // SAFETY: assigned.
        if let Some(old) = unsafe { detach(ev, None) } {
            release(old);
        }
        // SAFETY: assigned.
        unsafe {
            (*ev).magic = 0;
            set_flags(ev, 0, EVLIST_INIT);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_need_no_heap_chunk_at_home_and_a_32_byte_one_away() {
        use crate::backend::boxed_size;
        assert_eq!(
            boxed_size(home_callback),
            0,
            "boxing a zero-sized callback allocates nothing"
        );
        assert!(boxed_size(away_callback(7)) <= 24);
    }
}
