//! The loop-owner methods shared by [`Base`](crate::Base) and [`LocalBase`](crate::LocalBase):
//! run the loop with the poller its OS half holds, re-initialize after `fork()`.

/// Implements `run*`, `reinit_after_fork` and `poller_kind` for a type with an `events` field
/// (a core base whose notifier slot holds an OS half with `try_poller`, `reinit_after_fork`
/// and `poller_kind`).
macro_rules! loop_methods {
    ($Ty:ident) => {
        impl $Ty {
            /// Runs the loop until no event is pending or active, or a break or exit
            /// (`event_base_dispatch`).
            ///
            /// # Errors
            ///
            /// `WouldBlock` if the loop is already running (also from one of its own
            /// callbacks); the poller's OS error.
            pub fn run(&self) -> std::io::Result<rouse_core::Exit> {
                self.run_with(rouse_core::RunFlags::UNTIL_EMPTY)
            }

            /// Blocks until something is active, runs it, returns (`EVLOOP_ONCE`).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`run`](", stringify!($Ty), "::run).")]
            pub fn run_once(&self) -> std::io::Result<rouse_core::Exit> {
                self.run_with(rouse_core::RunFlags::ONCE)
            }

            /// Runs what is active without blocking, returns (`EVLOOP_NONBLOCK`).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`run`](", stringify!($Ty), "::run).")]
            pub fn run_nonblocking(&self) -> std::io::Result<rouse_core::Exit> {
                self.run_with(rouse_core::RunFlags::NONBLOCK)
            }

            /// Runs until a break or exit, even with nothing pending
            /// (`EVLOOP_NO_EXIT_ON_EMPTY`).
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`run`](", stringify!($Ty), "::run).")]
            pub fn run_forever(&self) -> std::io::Result<rouse_core::Exit> {
                self.run_with(rouse_core::RunFlags::FOREVER)
            }

            /// Runs the loop as `flags` say.
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`run`](", stringify!($Ty), "::run).")]
            pub fn run_with(
                &self,
                flags: rouse_core::RunFlags,
            ) -> std::io::Result<rouse_core::Exit> {
                let notifier = self.events.notifier();
                let mut poller = notifier.try_poller().ok_or_else(crate::os::running)?;
                Ok(self.events.run_with(&mut *poller, flags)?)
            }

            /// After `fork()`, in the child: a new poller (and notifier), every event
            /// registered again on the next run, and no notification left in flight (so the
            /// child can be woken by a thread it starts). Call it before starting threads in
            /// the child.
            ///
            /// If the parent's loop was running in another thread when it forked (blocked in
            /// its poller, or running a callback), that thread does not exist in the child:
            /// the child takes over, with a new poller of the same kind, every event kept (a
            /// callback that was running is not resumed). As with any lock, forking while
            /// another thread holds the base's lock (briefly, inside a base call) leaves it
            /// held in the child.
            ///
            /// # Errors
            ///
            /// The OS error of creating the new poller or notifier; `WouldBlock` if the loop
            /// runs in this process.
            pub fn reinit_after_fork(&self) -> std::io::Result<()> {
                self.events.notifier().reinit_after_fork()?;
                self.events.reinit();
                Ok(())
            }

            /// The poller chosen.
            pub fn poller_kind(&self) -> crate::PollerKind {
                self.events.notifier().poller_kind()
            }
        }
    };
}
pub(crate) use loop_methods;
