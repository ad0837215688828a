// A callback's context cannot run the loop (re-entrantly), re-initialize the base, close it
// or reach its notifier or poller.
fn main() {
    let base = rouse_std::Base::new().unwrap();
    base.add_user(|cx, _| {
        let _ = cx.run();
        let _ = cx.reinit_after_fork();
        let _ = cx.notifier();
        cx.close();
        let _ = cx.apply_changes();
    })
    .unwrap();
}
