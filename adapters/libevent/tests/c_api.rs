//! The C tests (`tests/c/*.c`): each is compiled with the system C compiler against the
//! installed libevent headers (`libevent-dev`), linked to this package's shared object laid out
//! by `scripts/libevent-lib.sh`, run with a time bound, and must print `ok`.
//!
//! A missing C compiler or missing headers fail the tests with a message saying what to
//! install: they never pass silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn target_dir() -> PathBuf {
    // .../target/debug/deps/c_api-HASH -> .../target/debug
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn cc() -> String {
    std::env::var("CC").unwrap_or_else(|_| "cc".into())
}

/// The library directory (built once per test process).
fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // `cargo test` emits the cdylib next to the test executables (deps/), `cargo build`
        // also copies it one level up: prefer the one built with these tests.
        let exe = std::env::current_exe().expect("test executable path");
        let deps = exe.parent().expect("deps dir").join("librouse_libevent.so");
        let so = if deps.exists() {
            deps
        } else {
            target_dir().join("librouse_libevent.so")
        };
        assert!(so.exists(), "{} not built", so.display());
        let headers = Path::new("/usr/include/event2/event.h");
        assert!(
            headers.exists() || std::env::var_os("ROUSE_LIBEVENT_CFLAGS").is_some(),
            "the C tests need libevent 2.1's headers: install libevent-dev (scripts/setup.sh does)"
        );
        let ok = Command::new(cc())
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "the C tests need a C compiler: install gcc (or set CC)"
        );
        // One directory; scripts/libevent-lib.sh replaces each file atomically.
        let dir = target_dir().join("rouse-libevent-c");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/libevent-lib.sh");
        let st = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .arg(&so)
            .status()
            .expect("run scripts/libevent-lib.sh");
        assert!(st.success(), "scripts/libevent-lib.sh failed");
        dir
    })
}

/// Compiles `tests/c/NAME.c`, runs it (bounded), and checks it printed `ok`.
fn run_c(name: &str, args: &[&str], env: &[(&str, &str)]) {
    let lib = lib_dir();
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(format!("{name}.c"));
    let bin = lib.join(format!("{name}-{}", std::process::id()));
    let mut c = Command::new(cc());
    c.args([
        "-std=gnu11",
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wno-unused-function",
    ])
    .arg(&src)
    .arg("-o")
    .arg(&bin)
    .arg(format!("-L{}", lib.display()))
    .arg(format!("-Wl,-rpath,{}", lib.display()))
    .args(["-levent_core", "-levent_pthreads", "-lpthread"]);
    if let Some(f) = std::env::var_os("ROUSE_LIBEVENT_CFLAGS") {
        c.args(f.to_string_lossy().split_whitespace());
    }
    let out = c.output().expect("run the C compiler");
    assert!(
        out.status.success(),
        "compiling {name}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .env("LD_LIBRARY_PATH", lib)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the C test");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("{name}: still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().expect("output");
    let _ = std::fs::remove_file(&bin);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success() && stdout.lines().any(|l| l == "ok"),
        "{name} failed ({status}):\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
}

macro_rules! c_tests {
    ($($name:ident $(($($arg:expr),*))? $([$($k:expr => $v:expr),*])?;)*) => {
        $(
            #[test]
            fn $name() {
                run_c(stringify!($name), &[$($($arg),*)?], &[$($(($k, $v)),*)?]);
            }
        )*
    };
}

c_tests! {
    layout;
    basic;
    loop_control;
    prio;
    once;
    threads;
    fork;
    common;
    finalize;
    introspect;
    config;
    compat;
    misuse;
    util;
    symbols;
    reuse;
    fault_signals;
    nolock;
    fd_reuse;
    reclaim_race;
    parked;
    idle_timeout;
}
