//! Puts the board's memory map (`memory.x`) where cortex-m-rt's `link.x` finds it, and links
//! with `link.x`.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let lm3s = env::var_os("CARGO_FEATURE_LM3S6965EVB").is_some();
    let mps2 = env::var_os("CARGO_FEATURE_MPS2_AN386").is_some();
    let memory = match (lm3s, mps2) {
        // 256 KiB flash, 64 KiB SRAM.
        (true, false) => "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n  RAM : ORIGIN = 0x20000000, LENGTH = 64K\n}\n",
        // The AN386 image: 4 MiB of SSRAM1 for code at 0, 4 MiB of SSRAM2/3 for data.
        (false, true) => "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n  RAM : ORIGIN = 0x20000000, LENGTH = 4M\n}\n",
        _ => panic!("enable exactly one board feature: lm3s6965evb or mps2-an386"),
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=build.rs");
    if env::var("TARGET").is_ok_and(|t| t.starts_with("thumb")) {
        println!("cargo:rustc-link-arg=-Tlink.x");
    }
}
