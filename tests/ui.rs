//! Compile-fail tests: a base on `NoLock` can neither move to nor be shared with another
//! thread; the compiler, not a run-time flag, keeps it single-threaded.
#![cfg(not(miri))]

#[test]
fn nolock_base_is_neither_send_nor_sync() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/nolock_*.rs");
}
