//! Compile-fail tests: a base on `NoLock` can neither move to nor be shared with another
//! thread; the compiler, not a run-time flag, keeps it single-threaded. rouse-std's facade: a
//! handle or a callback cannot reach the loop owner's operations, a `LocalBase` stays on its
//! thread, `add_fd` borrows its fd.
#![cfg(not(miri))]

#[test]
fn nolock_base_is_neither_send_nor_sync() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/nolock_*.rs");
}

#[test]
fn the_facade_keeps_loop_owner_operations_with_the_owner() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/facade_*.rs");
}
