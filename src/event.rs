//! What an event is: its description ([`Event`]), its handle ([`Key`]) and what its callback
//! is told ([`Fired`]).

use core::fmt;

use crate::seam::{Interest, Ready, Source};

/// The highest signal number an event may watch.
pub const MAX_SIGNAL: u32 = 128;

/// The highest source id an event may watch. The per-source table is dense (indexed by id,
/// as libevent indexes by fd), so this bounds it to 64 MiB; OS fd limits are far lower.
pub const MAX_SOURCE: u32 = (1 << 24) - 1;

/// A generational handle to an event of one base.
///
/// A key stays valid until the event is freed; after that every operation with it returns
/// [`Error::Stale`](crate::Error::Stale), even if the slot was reused, and a key of another
/// base returns [`Error::Foreign`](crate::Error::Foreign). It is `Copy` and `Send`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// The slot index (low 32 bits) and its generation (high 32), in one word: copied,
    /// stored and loaded whole, never as two halves read back as one (a stall of the
    /// store-to-load forwarding of a dozen cycles, where a caller packs them for a call).
    slot: u64,
    pub(crate) base: u32,
}

impl Key {
    #[inline(always)]
    pub(crate) const fn new(base: u32, index: u32, gen: u32) -> Key {
        Key {
            slot: index as u64 | (gen as u64) << 32,
            base,
        }
    }

    /// The slot index (stable while the event lives; reused after it is freed).
    #[inline]
    pub const fn index(self) -> u32 {
        self.slot as u32
    }

    /// The slot's generation when the event was made.
    #[inline(always)]
    pub(crate) const fn gen(self) -> u32 {
        (self.slot >> 32) as u32
    }

    /// The key as three words, to keep in memory that is not Rust's (a C struct, a
    /// registration table); [`from_raw`](Key::from_raw) makes the same key again.
    #[inline]
    pub const fn to_raw(self) -> [u32; 3] {
        [self.base, self.index(), self.gen()]
    }

    /// The key [`to_raw`](Key::to_raw) returned. Any three words make a key, and a base
    /// checks every key it is given: one that was forged, belongs to a freed event or to
    /// another base is refused (`Error::Stale`, `Error::Foreign`), never taken for another
    /// event.
    ///
    /// ```
    /// # use rouse_core::Key;
    /// let k = Key::from_raw([1, 2, 3]);
    /// assert_eq!(Key::from_raw(k.to_raw()), k);
    /// assert_eq!(k.index(), 2);
    /// ```
    #[inline]
    pub const fn from_raw(raw: [u32; 3]) -> Key {
        Key::new(raw[0], raw[1], raw[2])
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{}@{})", self.index(), self.gen(), self.base)
    }
}

/// What the event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// I/O readiness of a source.
    Io(Source, Interest),
    /// Delivery of a signal.
    Signal(u32),
    /// Only a timeout (give one to `add`).
    Timer,
    /// Nothing: activated by hand only (libevent's `event_active` idiom). Adding it makes it
    /// pending, which keeps `run` from returning for lack of events.
    User,
}

/// The description of an event: what it waits for, whether it stays pending after it fires,
/// its priority, and a tag of the program's own.
///
/// ```
/// use rouse_core::{Event, Interest, Source};
/// let e = Event::io(Source::new(3), Interest::READ).persist().priority(0);
/// assert!(e.is_persistent());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub(crate) kind: Kind,
    pub(crate) persist: bool,
    pub(crate) free_after_run: bool,
    pub(crate) priority: Option<u8>,
    pub(crate) tag: usize,
}

impl Event {
    /// An I/O event on `source` (`interest`: `READ`, `WRITE`, `CLOSED`, optionally `EDGE`).
    pub const fn io(source: Source, interest: Interest) -> Event {
        Event::of(Kind::Io(source, interest))
    }

    /// A signal event for signal number `signal`.
    pub const fn signal(signal: u32) -> Event {
        Event::of(Kind::Signal(signal))
    }

    /// A pure timer: give it a timeout when adding it.
    pub const fn timer() -> Event {
        Event::of(Kind::Timer)
    }

    /// A user event, activated by hand.
    pub const fn user() -> Event {
        Event::of(Kind::User)
    }

    const fn of(kind: Kind) -> Event {
        Event {
            kind,
            persist: false,
            free_after_run: false,
            priority: None,
            tag: 0,
        }
    }

    /// Stays pending after it fires (libevent's `EV_PERSIST`); a timeout is then re-armed from
    /// its previous deadline (timers) or from the time it fired (I/O).
    pub const fn persist(mut self) -> Event {
        self.persist = true;
        self
    }

    /// Frees the event once its callback has run (unless the callback added it again), and
    /// when it is deleted: libevent's `event_base_once`, for fire-and-forget timers. Not
    /// with [`persist`](Event::persist) (`new_event` returns `Error::Invalid`).
    pub const fn free_after_run(mut self) -> Event {
        self.free_after_run = true;
        self
    }

    /// Its priority (0 runs first). Default: half the base's number of priorities.
    pub const fn priority(mut self, priority: u8) -> Event {
        self.priority = Some(priority);
        self
    }

    /// A word of the program's own kept with the event (mio's `Token`; default 0): every
    /// [`Fired`] of the event carries it, and [`EventInfo`](crate::EventInfo) shows it. A
    /// callback that is a plain `fn` (no captured state, no allocation) tells its events
    /// apart by it; an adapter keeps the address of its own record of the event in it.
    ///
    /// Two UARTs served by one plain `fn` callback, which finds each one's counter by the tag
    /// (a config as in the crate example, no allocator):
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU32, Ordering};
    /// use core::time::Duration;
    /// use rouse_core::{mock, Base, Config, Event, Fired, Fixed, Interest, Options, Readiness,
    ///                  Ready, Source, SpinLock};
    ///
    /// static CLOCK: mock::ManualClock = mock::ManualClock::new();
    /// static NOTIFIER: mock::Notifier = mock::Notifier::new();
    /// static RECEIVED: [AtomicU32; 2] = [AtomicU32::new(0), AtomicU32::new(0)];
    ///
    /// struct Rt;
    /// impl Config for Rt {
    ///     type Lock = SpinLock;
    ///     type Notifier = &'static mock::Notifier;
    ///     type Poller = mock::Poller;
    ///     type Clock = &'static mock::ManualClock;
    ///     type Storage = Fixed<8>;
    ///     type Callback = fn(&Base<Rt>, Fired);
    ///     fn thread_id() -> usize {
    ///         0
    ///     }
    /// }
    ///
    /// fn on_rx(_: &Base<Rt>, fired: Fired) {
    ///     RECEIVED[fired.tag].fetch_add(1, Ordering::Relaxed);
    /// }
    ///
    /// let poller = mock::Poller::new(&NOTIFIER, &CLOCK);
    /// let base: Base<Rt> = Base::new(&NOTIFIER, poller, &CLOCK, Options::new()).unwrap();
    /// let uarts = [Source::new(3), Source::new(4)];
    /// for (i, uart) in uarts.into_iter().enumerate() {
    ///     let ev = Event::io(uart, Interest::READ).persist().tag(i);
    ///     let key = base.new_event(ev, on_rx).unwrap();
    ///     base.add(key, None).unwrap();
    /// }
    /// base.with_poller(|p| {
    ///     p.script(Duration::ZERO, &[Readiness::Io(uarts[1], Ready::READ)]);
    ///     p.script(Duration::ZERO, &[Readiness::Io(uarts[0], Ready::READ),
    ///                                Readiness::Io(uarts[1], Ready::READ)]);
    /// })
    /// .unwrap();
    /// base.run_until_idle().unwrap();
    /// assert_eq!(RECEIVED[0].load(Ordering::Relaxed), 1);
    /// assert_eq!(RECEIVED[1].load(Ordering::Relaxed), 2);
    /// ```
    pub const fn tag(mut self, tag: usize) -> Event {
        self.tag = tag;
        self
    }

    /// What it is about.
    pub const fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it stays pending after it fires.
    pub const fn is_persistent(&self) -> bool {
        self.persist
    }
}

/// What a callback is told: which event fired and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fired {
    /// The event.
    pub key: Key,
    /// Why it runs (the union of every reason since it was queued).
    pub ready: Ready,
    /// The event's [`tag`](Event::tag).
    pub tag: usize,
}
