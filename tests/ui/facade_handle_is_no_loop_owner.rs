// A handle (any thread) cannot run the loop, re-initialize the base or reach its notifier or
// poller: those are the loop owner's.
fn main() {
    let base = rouse_std::Base::new().unwrap();
    let handle = base.handle();
    let _ = handle.run();
    let _ = handle.run_once();
    let _ = handle.reinit_after_fork();
    let _ = handle.notifier();
    let _ = handle.apply_changes();
    let _ = handle.with_poller(|_| ());
    let _ = handle.base_ref().run();
}

// Nor close it (which would run finalizers on that thread).
fn closes(handle: rouse_std::Handle) {
    handle.close();
}
