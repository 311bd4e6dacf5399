//! Checks that `src/vcore` builds as it must in the kernel: `#![no_std]`,
//! edition 2021, the kernel's lints as errors, clippy-clean, documented
//! down to private items, and formatted.
//!
//! The compilers are the kernel's (`/usr/bin/rustc`, `/usr/bin/clippy-driver`)
//! when installed, else those on `PATH`; `VCORE_RUSTC` and
//! `VCORE_CLIPPY_DRIVER` override them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Lints of the kernel's `Makefile` (`rust_common_flags`) that matter here.
const KERNEL_LINTS: &[&str] = &[
    "-Dnon_ascii_idents",
    "-Dunsafe_op_in_unsafe_fn",
    "-Wmissing_docs",
    "-Wrust_2018_idioms",
    "-Wunreachable_pub",
    "-Dwarnings",
    // The glue, not the core, is what uses every item.
    "-Adead_code",
];

/// Clippy lints the kernel enables, plus documentation of private items.
const CLIPPY_LINTS: &[&str] = &[
    "-Wclippy::all",
    "-Aclippy::collapsible_if",
    "-Aclippy::collapsible_match",
    "-Wclippy::ignored_unit_patterns",
    "-Wclippy::mut_mut",
    "-Wclippy::needless_bitwise_bool",
    "-Aclippy::needless_lifetimes",
    "-Wclippy::no_mangle_with_rust_abi",
    "-Wclippy::undocumented_unsafe_blocks",
    "-Aclippy::uninlined_format_args",
    "-Wclippy::unnecessary_safety_comment",
    "-Wclippy::unnecessary_safety_doc",
    "-Aclippy::unwrap_or_default",
    "-Wclippy::missing_docs_in_private_items",
];

fn core_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src/vcore")
}

fn tool(var: &str, installed: &str, fallback: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        if Path::new(installed).exists() {
            installed.to_string()
        } else {
            fallback.to_string()
        }
    })
}

/// Writes a `#![no_std]` crate root that includes the core as the kernel
/// crate does, in a fresh directory.
fn root(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vcore-nostd-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = dir.join("root.rs");
    let core = core_dir().join("mod.rs").canonicalize().unwrap();
    std::fs::write(
        &root,
        format!(
            "//! no_std build of src/vcore.\n#![no_std]\n#[path = {:?}]\nmod vcore;\n",
            core
        ),
    )
    .unwrap();
    (dir, root)
}

fn run(program: &str, extra: &[&str], tag: &str) {
    let (dir, root) = root(tag);
    let out = Command::new(program)
        .args(["--edition=2021", "--crate-type=lib", "--emit=metadata"])
        .arg("--crate-name=vcore_nostd")
        .arg("--out-dir")
        .arg(&dir)
        .args(KERNEL_LINTS)
        .args(extra)
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{program} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn builds_no_std_with_kernel_lints() {
    run(
        &tool("VCORE_RUSTC", "/usr/bin/rustc", "rustc"),
        &[],
        "rustc",
    );
}

#[test]
fn clippy_clean_and_documented() {
    run(
        &tool(
            "VCORE_CLIPPY_DRIVER",
            "/usr/bin/clippy-driver",
            "clippy-driver",
        ),
        CLIPPY_LINTS,
        "clippy",
    );
}

/// The Rust files under `dir`, in its subfolders too.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn formatted() {
    let mut files = Vec::new();
    rust_files(&core_dir(), &mut files);
    files.sort();
    let out = Command::new(tool("VCORE_RUSTFMT", "/usr/bin/rustfmt", "rustfmt"))
        .args(["--edition=2021", "--check"])
        .args(&files)
        .output()
        .expect("cannot run rustfmt");
    assert!(
        out.status.success(),
        "src/vcore is not formatted (rustfmt --edition 2021):\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
