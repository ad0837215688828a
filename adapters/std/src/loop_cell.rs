//! State that only one base's callbacks touch: shared between them without a lock.

use std::cell::{Cell, UnsafeCell};
use std::fmt;

use crate::context::{BaseRef, Context};
use crate::flavor::Flavor;

/// A value that the callbacks of one base share, reached only through a callback's
/// [`Context`]: `Sync` (so an `Arc<LoopCell<T>>` goes into the `Send` closures of a
/// thread-safe [`Base`](crate::Base)) without a lock.
///
/// Two callbacks of a connection (its read and its write event) that share a buffer would
/// otherwise need an `Arc<Mutex<_>>`, although only the loop thread ever takes the lock. A
/// `LoopCell` is bound to one base when it is made, and [`with`](LoopCell::with) hands out
/// the value only to a `Context` of that base. That is enough to make it race-free: a base
/// runs its callbacks one at a time on the thread that runs its loop, and a `Context` never
/// leaves that thread nor the callback it was given to (it is neither `Send` nor `Sync`).
///
/// ```
/// use std::sync::Arc;
/// use rouse_std::{Base, LoopCell, Ready};
///
/// let base = Base::new()?;
/// let count = Arc::new(LoopCell::new(base.base_ref(), 0u32));
/// let (a, b) = (count.clone(), count.clone());
/// let first = base.add_user(move |cx, _| a.with(cx, |n| *n += 1))?;
/// let second = base.add_user(move |cx, _| {
///     b.with(cx, |n| *n += 10);
///     cx.loop_break().unwrap();
/// })?;
/// base.activate(first, Ready::USER)?;
/// base.activate(second, Ready::USER)?;
/// base.run()?;
/// drop(base); // frees the events, and with them their clones of `count`
/// assert_eq!(Arc::try_unwrap(count).ok().unwrap().into_inner(), 11);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A [`LocalBase`](crate::LocalBase)'s callbacks need not be `Send`, so there an
/// `Rc<RefCell<_>>` does the same; a `LoopCell` serves code generic over the flavor.
///
/// Cost per [`with`](LoopCell::with): a compare of the base and a borrow flag set and cleared
/// (what `RefCell::borrow_mut` costs); no atomic operation.
pub struct LoopCell<T> {
    /// The address of the core base it belongs to. Unique among live bases; a base at the
    /// same address after this one is gone runs no callback concurrently with this one's.
    base: usize,
    /// Set while [`with`](LoopCell::with) lends the value (a nested `with` panics).
    borrowed: Cell<bool>,
    value: UnsafeCell<T>,
}

// SAFETY: the value moves with the cell, so the cell is `Send` when the value is.
unsafe impl<T: Send> Send for LoopCell<T> {}
// SAFETY: `&self` reaches the value (and the flag) only through `with`, which requires a
// `Context` of the bound base. Contexts are neither `Send` nor `Sync` and exist only while
// a callback of that base runs, on the thread running its loop; a base runs one callback at
// a time and one loop at a time (a second run is refused), and successive runs on different
// threads are ordered by the base's lock. So every access through `&self` happens on one
// thread at a time, in a happens-before order, as `Mutex<T>` would give: `T: Send` is what
// it needs (the value may be used on a loop thread other than the one that made it).
unsafe impl<T: Send> Sync for LoopCell<T> {}

impl<T> LoopCell<T> {
    /// A cell for the callbacks of `base` (from [`Base::base_ref`](crate::Base::base_ref),
    /// [`Handle::base_ref`](crate::Handle::base_ref) or [`Context::base_ref`]).
    pub fn new<F: Flavor>(base: BaseRef<'_, F>, value: T) -> LoopCell<T> {
        LoopCell {
            base: base.core_addr(),
            borrowed: Cell::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value, from a callback (or finalizer) of the base the cell belongs to.
    ///
    /// # Panics
    ///
    /// If `cx` is a context of another base, or the value is already lent (a `with` inside
    /// `f` on the same cell).
    #[inline]
    pub fn with<F: Flavor, R>(&self, cx: &Context<'_, F>, f: impl FnOnce(&mut T) -> R) -> R {
        if cx.core_addr() != self.base || self.borrowed.get() {
            self.refuse(cx.core_addr())
        }
        self.borrowed.set(true);
        let _lent = Lent(&self.borrowed);
        // SAFETY: as the `Sync` impl says, only the loop thread of the bound base gets here,
        // one access at a time; the flag (cleared by `_lent`, also on unwinding) rules out a
        // second `&mut` from a nested `with`.
        f(unsafe { &mut *self.value.get() })
    }

    #[cold]
    #[inline(never)]
    fn refuse(&self, base: usize) -> ! {
        if base != self.base {
            panic!("LoopCell::with: a context of another base");
        }
        panic!("LoopCell::with: already lent (nested with on the same cell)");
    }

    /// The value, through exclusive access (no base needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Clears the borrow flag when the loan ends.
struct Lent<'a>(&'a Cell<bool>);

impl Drop for Lent<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl<T> fmt::Debug for LoopCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the value nor the flag: they belong to the loop thread.
        f.debug_struct("LoopCell").finish_non_exhaustive()
    }
}
