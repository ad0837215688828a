// A single-threaded base (no lock) can neither move to nor be shared with another thread.
fn main() {
    let base = rouse_std::LocalBase::new_local().unwrap();
    let shared = &base;
    std::thread::scope(|s| {
        s.spawn(move || shared.loop_break());
    });
    std::thread::spawn(move || drop(base));
}
