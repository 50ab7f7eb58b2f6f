//! Every dependency a manifest of the workspace declares is used by that package's code. A dependency nothing
//! names costs build time on every clean clone and hides in the lock file; plugin manifests copied from one
//! template had a dozen. The check reads the manifests and the sources as text, like `cargo machete`: a
//! crate counts as used where its name (with `_` for `-`) is followed by `::` or `!`, or follows `use`.

use std::path::Path;

use crate::rust_files;

/// The names under `[dependencies]`, `[dev-dependencies]` and `[build-dependencies]` of one manifest.
fn declared(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = matches!(line, "[dependencies]" | "[dev-dependencies]" | "[build-dependencies]");
            continue;
        }
        if !in_deps || line.starts_with('#') {
            continue;
        }
        let name: String = line.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}

fn is_used(name: &str, code: &str) -> bool {
    let ident = name.replace('-', "_");
    code.match_indices(&ident).any(|(at, _)| {
        let before = code[..at].chars().next_back().unwrap_or(' ');
        let after = &code[at + ident.len()..];
        let starts_a_word = !(before.is_ascii_alphanumeric() || before == '_');
        starts_a_word && (after.starts_with("::") || after.starts_with('!') || code[..at].ends_with("use "))
    })
}

#[test]
fn every_declared_dependency_is_used_by_its_package() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut packages = vec![root.to_path_buf()];
    for entry in std::fs::read_dir(root.join("plugins")).unwrap() {
        packages.push(entry.unwrap().path());
    }
    let mut unused = Vec::new();
    for package in packages {
        let Ok(manifest) = std::fs::read_to_string(package.join("Cargo.toml")) else { continue };
        let mut files = Vec::new();
        for dir in ["src", "tests", "benches", "examples"] {
            rust_files(&package.join(dir), &mut files);
        }
        files.push(package.join("build.rs"));
        let code: String = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect::<Vec<_>>().join("\n");
        for name in declared(&manifest) {
            if !is_used(&name, &code) {
                unused.push(format!("{}: {name}", package.strip_prefix(root).unwrap_or(&package).display()));
            }
        }
    }
    assert!(unused.is_empty(), "declared and never used (remove them from the manifest): {unused:?}");
}
