//! One name per platform capability (the `cfg_aliases` idea): a notifier and the poller that
//! needs the same kernel feature test the same alias, so they cannot disagree on a platform.
//!
//! - `rouse_epoll`: epoll(7) and eventfd(2), on Linux.
//! - `rouse_kqueue`: kqueue(2) and its `EVFILT_USER`, on FreeBSD and Apple's systems.
//!
//! poll(2), pipes and socketpairs need no alias: every Unix has them.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(rouse_epoll, rouse_kqueue)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let vendor = std::env::var("CARGO_CFG_TARGET_VENDOR").unwrap_or_default();
    if os == "linux" {
        println!("cargo::rustc-cfg=rouse_epoll");
    }
    if os == "freebsd" || vendor == "apple" {
        println!("cargo::rustc-cfg=rouse_kqueue");
    }
}
