//! The root README's quick start is the rouse-std README's, where it is compiled and run as a
//! doctest (`adapters/std/src/lib.rs`): this keeps the two from drifting apart.

/// The first Rust code block after the "## Quick start" heading.
fn quick_start(text: &str) -> String {
    first_block_after(text, "## Quick start")
}

/// The first Rust code block after `heading`.
fn first_block_after(text: &str, heading: &str) -> String {
    let from = text.find(heading).expect("the heading");
    let rest = &text[from..];
    let start = rest.find("```rust\n").expect("a rust code block") + "```rust\n".len();
    let len = rest[start..].find("```").expect("the block ends");
    rest[start..start + len].to_string()
}

#[test]
fn the_quick_start_is_the_one_compiled_as_a_doctest() {
    let ours = quick_start(include_str!("../README.md"));
    let compiled = quick_start(include_str!("../adapters/std/README.md"));
    assert_eq!(
        ours, compiled,
        "README.md's quick start differs from adapters/std/README.md's (the doctest)"
    );
}

#[test]
fn the_testing_section_is_the_one_compiled_as_a_doctest() {
    let heading = "## Testing code built on rouse";
    let ours = first_block_after(include_str!("../README.md"), heading);
    let compiled = first_block_after(include_str!("../adapters/std/README.md"), heading);
    assert_eq!(
        ours, compiled,
        "README.md's testing section differs from adapters/std/README.md's (the doctest)"
    );
}
