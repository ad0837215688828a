//! The poller: what the loop blocks in, and the readiness vocabulary it reports.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use core::time::Duration;

use crate::SeamError;

/// An I/O source the poller watches: a file descriptor in `rouse-std`, a peripheral or channel
/// number on bare metal.
///
/// Source ids should be small and dense (the base indexes a table by them, as libevent
/// indexes by fd); a fixed-capacity base accepts ids below its capacity.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source(u32);

impl Source {
    /// The source with id `id`.
    #[inline]
    pub const fn new(id: u32) -> Source {
        Source(id)
    }

    /// Its id.
    #[inline]
    pub const fn id(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({})", self.0)
    }
}

macro_rules! bitset {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $flag:ident = $bit:expr,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u8);

        impl $name {
            /// The empty set.
            pub const NONE: $name = $name(0);
            $($(#[$fm])* pub const $flag: $name = $name($bit);)*

            /// The raw bits.
            #[inline]
            pub const fn bits(self) -> u8 {
                self.0
            }

            /// The set with these raw bits (unknown bits are dropped).
            #[inline]
            pub const fn from_bits_truncate(bits: u8) -> $name {
                $name(bits & (0 $(| $bit)*))
            }

            /// Whether no flag is set.
            #[inline]
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether every flag of `other` is set in `self`.
            #[inline]
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether `self` and `other` share a flag.
            #[inline]
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            /// `self` without the flags of `other` (a new value: `self` is unchanged).
            #[inline]
            #[must_use = "`without` returns a new set; it does not change `self`"]
            pub const fn without(self, other: $name) -> $name {
                $name(self.0 & !other.0)
            }
        }

        impl BitOr for $name {
            type Output = $name;
            #[inline]
            fn bitor(self, o: $name) -> $name {
                $name(self.0 | o.0)
            }
        }

        impl BitOrAssign for $name {
            #[inline]
            fn bitor_assign(&mut self, o: $name) {
                self.0 |= o.0;
            }
        }

        impl BitAnd for $name {
            type Output = $name;
            #[inline]
            fn bitand(self, o: $name) -> $name {
                $name(self.0 & o.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut first = true;
                f.write_str(concat!(stringify!($name), "("))?;
                $(if self.contains($name::$flag) {
                    if !first { f.write_str(" | ")?; }
                    f.write_str(stringify!($flag))?;
                    first = false;
                })*
                if first { f.write_str("NONE")?; }
                f.write_str(")")
            }
        }
    };
}

bitset! {
    /// What an I/O registration waits for, as the poller sees it: the union over every event
    /// on one source, plus its triggering mode.
    Interest {
        /// Readable (`EPOLLIN`, `EVFILT_READ`, `POLLIN`).
        READ = 1,
        /// Writable (`EPOLLOUT`, `EVFILT_WRITE`, `POLLOUT`).
        WRITE = 2,
        /// The peer closed its end (`EPOLLRDHUP`; `EV_EOF` on kqueue).
        CLOSED = 4,
        /// Edge-triggered: report a change once instead of while it lasts (`EPOLLET`,
        /// `EV_CLEAR`). A poller without edges (poll(2)) reports level and the base copes.
        EDGE = 8,
    }
}

impl Interest {
    /// The readiness kinds (`READ | WRITE | CLOSED`) of this interest, without the mode.
    #[inline]
    pub const fn kinds(self) -> Interest {
        Interest(self.0 & 7)
    }

    /// The readiness these kinds can report.
    #[inline]
    pub const fn as_ready(self) -> Ready {
        Ready::from_bits_truncate(self.0 & 7)
    }
}

bitset! {
    /// Why an event's callback runs (libevent's `EV_READ`, `EV_TIMEOUT`, ...): what the poller
    /// reported, a timeout, a signal, a manual activation, or finalization.
    Ready {
        /// The source is readable (also reported on errors, as libevent does).
        READ = 1,
        /// The source is writable (also reported on errors).
        WRITE = 2,
        /// The peer closed its end.
        CLOSED = 4,
        /// The event's timeout expired.
        TIMEOUT = 8,
        /// The event's signal was delivered.
        SIGNAL = 16,
        /// Activated by hand (user events; any event passed to `activate` without a kind).
        USER = 32,
        /// The finalizer of an event given to `finalize` runs.
        FINALIZE = 64,
        /// The poller reported an error on the source, or refused to register it; the
        /// event's next I/O call on it reports the cause.
        ERROR = 128,
    }
}

/// One thing a [`Poller::wait`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// `source` is ready for `ready` (any of `READ | WRITE | CLOSED`).
    Io(Source, Ready),
    /// Signal number `n` was delivered (one report per delivery batch).
    Signal(u32),
    /// The notifier fired: another thread changed what the loop must do.
    Wake,
}

/// What the loop blocks in: an epoll/kqueue/poll(2) instance, a bare-metal wait-for-interrupt
/// loop, or a scripted mock.
///
/// The base owns it ([`Config::Poller`](crate::Config::Poller), given to
/// [`Base::new`](crate::Base::new)) and a run takes it for its whole length: only the loop
/// thread uses it, other threads never touch it (between runs the loop owner reaches it with
/// [`Base::with_poller`](crate::Base::with_poller)). Interest changes reach it through the base's change list, applied
/// by the loop before it waits, so a delete+add of the same interest within one iteration
/// costs nothing here.
///
/// # Contract
///
/// - [`update`](Poller::update) moves one source's registration from `old` to `new` (register
///   when `old` is empty, deregister when `new` is empty, modify otherwise). `old` is exactly
///   what the base last applied successfully for this source: empty means the base registered
///   nothing (epoll: `EPOLL_CTL_ADD`, no `EEXIST` healing needed). A deregistration may find
///   less registered than `old` says — the OS dropped it when the fd was closed, which the base
///   cannot see —: remove whatever is there (`ENOENT` and `EBADF` are success).
/// - [`reset`](Poller::reset) is the base saying it does not know: make `source`'s
///   registration `new`, whatever is registered now, perhaps nothing. The base calls it after
///   [`reinit`](crate::Base::reinit) (for every source it watches), and when a new event enters
///   a source whose events all left in the same iteration (its fd may have been closed and the
///   number reused, or not), or, with [`Options::reregister_on_rearm`](crate::Options), the
///   event that left comes back. The default deregisters everything (`update(source, READ |
///   WRITE | CLOSED, NONE)`) and then registers (`update(source, NONE, new)`): right for any
///   poller, two calls. A poller with a cheaper way overrides it (epoll: `MOD`, and `ADD` on
///   `ENOENT`;
///   kqueue: one `kevent` with `EV_ADD` and `EV_DELETE`); a poller that keeps its registrations
///   itself (a table indexed by source: bare metal, poll(2)) sets the entry to `new`.
/// - A poller whose registrations are a table indexed by source may ignore `old` altogether
///   and set the source's entry to `new` in both calls. A runtime without I/O sources returns
///   [`SeamError::UNSUPPORTED`] from both.
/// - [`wait`](Poller::wait) blocks up to `timeout` (`None`: until something happens), never
///   returning before it unless something was found or the wait was interrupted (an
///   interrupted wait is `Ok` with nothing found). A poller for which nothing could ever end
///   a `wait(None)` (no sources, no signals, a notifier that is never rung) returns
///   [`SeamError::WOULD_BLOCK_FOREVER`] instead of hanging. A timeout that the OS cannot express
///   exactly is rounded **up**, so timers never fire early.
/// - [`ready`](Poller::ready) visits what the last `wait` found; reporting a source that has
///   since been deregistered is harmless (the base ignores it).
/// - The notifier's readiness is reported as [`Readiness::Wake`].
pub trait Poller {
    /// Changes the registration of `source` from `old` (what the base last applied) to `new`.
    fn update(&mut self, source: Source, old: Interest, new: Interest) -> Result<(), SeamError>;

    /// Makes the registration of `source` `new`, whatever is registered now (perhaps nothing):
    /// the base does not know (see the [contract](Poller#contract)). The default deregisters
    /// every kind, then registers `new` (if not empty).
    fn reset(&mut self, source: Source, new: Interest) -> Result<(), SeamError> {
        let all = Interest::READ | Interest::WRITE | Interest::CLOSED;
        self.update(source, all, Interest::NONE)?;
        if new.kinds().is_empty() {
            return Ok(());
        }
        self.update(source, Interest::NONE, new)
    }

    /// Starts (`enable`) or stops delivering signal `signal` as [`Readiness::Signal`]. The
    /// default reports that the poller has no signals.
    fn watch_signal(&mut self, signal: u32, enable: bool) -> Result<(), SeamError> {
        let _ = (signal, enable);
        Err(SeamError::UNSUPPORTED)
    }

    /// Blocks until something is ready or `timeout` passes.
    fn wait(&mut self, timeout: Option<Duration>) -> Result<(), SeamError>;

    /// Visits everything the last [`wait`](Poller::wait) found.
    fn ready(&mut self, f: impl FnMut(Readiness));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitsets_compose() {
        let i = Interest::READ | Interest::EDGE;
        assert!(i.contains(Interest::READ));
        assert!(!i.contains(Interest::WRITE));
        assert_eq!(i.kinds(), Interest::READ);
        assert_eq!(i.as_ready(), Ready::READ);
        assert_eq!(Ready::from_bits_truncate(0xff).bits(), 0xff);
        assert_eq!(Interest::from_bits_truncate(0xff).bits(), 0x0f);
        assert_eq!(
            alloc_free_fmt(Ready::READ | Ready::TIMEOUT),
            "Ready(READ | TIMEOUT)"
        );
        assert_eq!(alloc_free_fmt(Ready::NONE), "Ready(NONE)");
    }

    /// A poller that records its updates and implements nothing else.
    struct Recorder(heapless::Vec<(Interest, Interest), 4>, bool);

    impl Poller for Recorder {
        fn update(&mut self, _: Source, old: Interest, new: Interest) -> Result<(), SeamError> {
            self.0.push((old, new)).unwrap();
            if self.1 {
                return Err(SeamError::os(9));
            }
            Ok(())
        }
        fn wait(&mut self, _: Option<Duration>) -> Result<(), SeamError> {
            Ok(())
        }
        fn ready(&mut self, _: impl FnMut(Readiness)) {}
    }

    #[test]
    fn default_reset_deregisters_then_registers() {
        let all = Interest::READ | Interest::WRITE | Interest::CLOSED;
        let mut p = Recorder(heapless::Vec::new(), false);
        p.reset(Source::new(1), Interest::WRITE).unwrap();
        assert_eq!(
            p.0[..],
            [(all, Interest::NONE), (Interest::NONE, Interest::WRITE)]
        );
        let mut p = Recorder(heapless::Vec::new(), false);
        p.reset(Source::new(1), Interest::NONE).unwrap();
        assert_eq!(p.0[..], [(all, Interest::NONE)]);
        // A failed deregistration is the reset's failure: nothing is registered after it.
        let mut p = Recorder(heapless::Vec::new(), true);
        assert_eq!(
            p.reset(Source::new(1), Interest::READ),
            Err(SeamError::os(9))
        );
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.watch_signal(2, true), Err(SeamError::UNSUPPORTED));
    }

    fn alloc_free_fmt(r: Ready) -> heapless::String<64> {
        use core::fmt::Write;
        let mut s = heapless::String::new();
        write!(s, "{r:?}").unwrap();
        s
    }
}
