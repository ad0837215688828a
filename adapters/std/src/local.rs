//! The single-threaded base's extra: callbacks that need not be `Send`.

use std::fmt;

use crate::base::LocalBase;
use crate::config::Local;
use crate::context::Context;

/// The operations of a [`LocalBase`] (or of a callback's `Context<'_, Local>`) taking closures
/// that need not be `Send`: they may capture `Rc`, `RefCell`, `Cell`. Get it with
/// [`LocalBase::local`](crate::Base::local) or [`Context::local`].
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use rouse_std::LocalBase;
///
/// let base = LocalBase::new_local()?;
/// let fired = Rc::new(Cell::new(0));
/// let f = fired.clone();
/// base.local().add_timer(Duration::from_millis(1), move |_, _| f.set(f.get() + 1))?;
/// base.run()?;
/// assert_eq!(fired.get(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct LocalApi<'a> {
    core: &'a rouse_core::Base<Local>,
}

impl fmt::Debug for LocalApi<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalApi")
            .field("base", &self.core.id())
            .finish_non_exhaustive()
    }
}

impl<'a> LocalApi<'a> {
    #[inline]
    fn core(&self) -> &rouse_core::Base<Local> {
        self.core
    }
}

impl LocalBase {
    /// This base's operations for closures that need not be `Send` (see [`LocalApi`]).
    pub fn local(&self) -> LocalApi<'_> {
        LocalApi {
            core: self.core_ref(),
        }
    }
}

impl<'a> Context<'a, Local> {
    /// The base's operations for closures that need not be `Send` (see [`LocalApi`]).
    pub fn local(&self) -> LocalApi<'a> {
        LocalApi {
            core: self.core_ref(),
        }
    }
}

crate::api::shared_api!(impl['a] LocalApi<'a>, LocalApi, Local, crate::api::wrap_local, []);
