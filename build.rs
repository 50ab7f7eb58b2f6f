//! Lays out the functions an agent runs at start and when idle first in the release binary's text, from the
//! list in link/hot-symbols.txt (made by scripts/hot-symbols.py). The kernel maps text in large page-cache folios,
//! so an idle agent's RSS is mostly the text pages it touched once; packed together they are few.
//!
//! Only for release builds linked by LLD (rustc's default linker on x86_64 Linux since 1.90), which reads
//! `--symbol-ordering-file`. Names missing from the binary are skipped without a warning: a stale list only
//! costs memory. Another linker chosen through RUSTFLAGS or CARGO_TARGET_*_LINKER leaves the layout as it was.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=link/hot-symbols.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let default_lld_target = env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu");
    let rustflags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let own_linker = rustflags.contains("linker")
        || rustflags.contains("fuse-ld")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    if !(release && default_lld_target) || own_linker {
        return;
    }
    let list = std::path::Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join("link/hot-symbols.txt");
    if list.is_file() {
        println!("cargo:rustc-link-arg-bin=tarsier=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bin=tarsier=-Wl,--no-warn-symbol-ordering");
    }
}
