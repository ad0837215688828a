//! The atomics the notify protocol uses: `core`'s, or loom's when model-checking (`--cfg rouse_loom`).

#[cfg(rouse_loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicU32, Ordering},
};

#[cfg(not(rouse_loom))]
pub(crate) use core::{
    hint::spin_loop,
    sync::atomic::{fence, AtomicU32, Ordering},
};
