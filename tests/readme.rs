//! The root README's quick start is the rouse-std README's, where it is compiled and run as a
//! doctest (`adapters/std/src/lib.rs`): this keeps the two from drifting apart.

use std::path::Path;

/// The first Rust code block after the "## Quick start" heading.
fn quick_start(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let from = text
        .find("## Quick start")
        .unwrap_or_else(|| panic!("{path:?} has no quick start"));
    let rest = &text[from..];
    let start = rest.find("```rust\n").expect("a rust code block") + "```rust\n".len();
    let len = rest[start..].find("```").expect("the block ends");
    rest[start..start + len].to_string()
}

#[test]
fn the_quick_start_is_the_one_compiled_as_a_doctest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = quick_start(&root.join("README.md"));
    let compiled = quick_start(&root.join("adapters/std/README.md"));
    assert_eq!(
        ours, compiled,
        "README.md's quick start differs from adapters/std/README.md's (the doctest)"
    );
}
