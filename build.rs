//! Lays out the functions an agent runs at start and when idle first in the release binary's text, from the
//! list in link/hot-symbols.txt (made by scripts/hot-symbols.py). The kernel maps text in large page-cache folios,
//! so an idle agent's RSS is mostly the text pages it touched once; packed together they are few. Also packs
//! the binary's relative relocations (DT_RELR) where the machine's glibc can load that.
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
    // PERF(control): the hot functions laid out first (idle RSS 10.4 -> 5.8 MiB); a stale list only costs memory.
    if list.is_file() {
        println!("cargo:rustc-link-arg-bin=tarsier=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bin=tarsier=-Wl,--no-warn-symbol-ordering");
    }
    // The binary's ~13,000 relative relocations as a bitmap (DT_RELR, 4 KiB) instead of a 320 KiB table that
    // the loader reads page by page at every start: start to healthy 6.73 -> 6.39 ms, 0.1 MiB less resident.
    // The binary then needs glibc 2.36 (Debian 12) to load, so only where the building machine has it; an
    // image runs the binary on the same Debian as the build.
    if host_glibc_at_least(2, 36) {
        println!("cargo:rustc-link-arg-bin=tarsier=-Wl,-z,pack-relative-relocs");
    }
}

/// The glibc version `ldd --version` reports (`ldd (Debian GLIBC 2.36-9+deb12u10) 2.36`), compared with
/// `major.minor`. Cross builds and anything unreadable say no.
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    if env::var("TARGET").ok() != env::var("HOST").ok() {
        return false;
    }
    let Ok(out) = std::process::Command::new("ldd").arg("--version").output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.lines().next().and_then(|line| line.split_whitespace().last()) else { return false };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(have_major), Some(have_minor)) => (have_major, have_minor) >= (major, minor),
        _ => false,
    }
}
