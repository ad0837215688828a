// `add_fd` borrows the fd: a socket passed by value (closed on return, its number then reused)
// does not compile. `add_owned` is the owning form.
fn main() {
    let base = rouse_std::Base::new().unwrap();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    base.add_fd(a, rouse_core::Interest::READ, |_, _| {}).unwrap();
}
