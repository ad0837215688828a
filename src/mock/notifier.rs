//! A notifier that counts.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use crate::seam::Notify;
use crate::SeamError;

/// Counts notifications; "readable" from a notify until the loop consumes it; can be told to
/// fail the next write. `const`-constructible.
#[derive(Debug, Default)]
pub struct Notifier {
    writes: AtomicU32,
    consumed: AtomicU32,
    signalled: AtomicBool,
    fail_next: AtomicI32,
}

impl Notifier {
    /// A quiet notifier.
    pub const fn new() -> Notifier {
        Notifier {
            writes: AtomicU32::new(0),
            consumed: AtomicU32::new(0),
            signalled: AtomicBool::new(false),
            fail_next: AtomicI32::new(0),
        }
    }

    /// Successful notifications so far.
    pub fn writes(&self) -> u32 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Notifications the loop consumed so far.
    pub fn consumed(&self) -> u32 {
        self.consumed.load(Ordering::SeqCst)
    }

    /// Whether a notification is written and not yet consumed.
    pub fn is_signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    /// Makes the next `notify` fail with OS error `code` (non-zero): [`SeamError::os`].
    pub fn fail_next(&self, code: i32) {
        self.fail_next.store(code, Ordering::SeqCst);
    }
}

impl Notify for Notifier {
    fn notify(&self) -> Result<(), SeamError> {
        let code = self.fail_next.swap(0, Ordering::SeqCst);
        if code != 0 {
            return Err(SeamError::os(code));
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.signalled.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn consume(&self) {
        self.signalled.store(false, Ordering::SeqCst);
        self.consumed.fetch_add(1, Ordering::SeqCst);
    }
}
