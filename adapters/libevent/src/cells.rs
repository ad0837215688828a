//! The memory of `event_new`'s events: 128-byte cells carved from 64 KiB blocks, so an
//! event costs its 128 bytes and not malloc's 144-byte chunk (`W5`: 16 bytes of every
//! event). A freed cell goes back to a free list for the next `event_new`; blocks are never
//! returned to the system (the memory peaks where the program's event count peaked). With
//! `event_set_mem_functions` the program's allocator is used instead, as libevent does.

use std::alloc::{alloc, Layout};
use std::ffi::c_void;
use std::ptr;
use std::sync::Mutex;

use crate::abi::Event;

const CELL: usize = std::mem::size_of::<Event>();
const BLOCK: usize = 64 * 1024;

/// Free cells (linked through their first word) and the unused tail of the newest block.
struct Cells {
    free: *mut *mut u8,
    next: *mut u8,
    end: *mut u8,
}

// SAFETY: the pointers are to blocks this module owns for the life of the process; they are
// only used under the mutex.
unsafe impl Send for Cells {}

static CELLS: Mutex<Cells> = Mutex::new(Cells {
    free: ptr::null_mut(),
    next: ptr::null_mut(),
    end: ptr::null_mut(),
});

/// Where an event's memory came from (recorded in its `owned` word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// A cell of this module.
    Cell,
    /// The program's allocator (`event_set_mem_functions`).
    Program,
}

/// Memory for one `struct event` (uninitialized), or NULL when out of memory.
pub fn alloc_event() -> (*mut Event, Memory) {
    if crate::misc::mem_functions_set() {
        let p = crate::misc::mem_alloc(CELL) as *mut Event;
        return (p, Memory::Program);
    }
    let mut c = CELLS.lock().unwrap_or_else(|e| e.into_inner());
    if !c.free.is_null() {
        let p = c.free;
        // SAFETY: a free cell holds the next free cell's address in its first word.
        c.free = unsafe { *p } as *mut *mut u8;
        return (p as *mut Event, Memory::Cell);
    }
    if c.next == c.end {
        let layout = Layout::from_size_align(BLOCK, std::mem::align_of::<Event>().max(64))
            .expect("constant layout");
        // SAFETY: a non-zero size.
        let b = unsafe { alloc(layout) };
        if b.is_null() {
            return (ptr::null_mut(), Memory::Cell);
        }
        c.next = b;
        // SAFETY: the end of the block just allocated.
        c.end = unsafe { b.add(BLOCK - BLOCK % CELL) };
    }
    let p = c.next;
    // SAFETY: `p + CELL <= end`, inside the block.
    c.next = unsafe { p.add(CELL) };
    (p as *mut Event, Memory::Cell)
}

/// Frees what [`alloc_event`] returned.
///
/// # Safety
///
/// `ev` came from [`alloc_event`] with `from`, and is not used afterwards.
pub unsafe fn free_event(ev: *mut Event, from: Memory) {
    match from {
        // SAFETY: caller's contract.
        Memory::Program => unsafe { crate::misc::mem_free(ev as *mut c_void) },
        Memory::Cell => {
            let mut c = CELLS.lock().unwrap_or_else(|e| e.into_inner());
            let p = ev as *mut *mut u8;
            // SAFETY: the cell is the caller's to give back; its first word links it.
            unsafe { *p = c.free as *mut u8 };
            c.free = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_distinct_aligned_and_reused() {
        let mut got: Vec<*mut Event> = (0..2000).map(|_| alloc_event().0).collect();
        assert!(got
            .iter()
            .all(|p| !p.is_null() && (*p as usize).is_multiple_of(8)));
        let mut sorted = got.clone();
        sorted.sort();
        assert!(sorted
            .windows(2)
            .all(|w| w[1] as usize - w[0] as usize >= CELL));
        let last = got.pop().unwrap();
        // SAFETY: from `alloc_event`, not used again.
        unsafe { free_event(last, Memory::Cell) };
        assert_eq!(
            alloc_event().0,
            last,
            "a freed cell is the next one handed out"
        );
    }
}
