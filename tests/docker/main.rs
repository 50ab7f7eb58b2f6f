//! The tests that need a Docker engine: the swarm as containers (`containers`) and the experiments on
//! Docker Swarm mode (`experiments`). Each prints one `skipped: no Docker engine` line where none answers.

// The Docker tests use only the harness's HTTP clients and waits; tests/it, which uses all of it, is where
// dead helpers are found.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod containers;
mod dependency_faults;
mod experiments;

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn docker_answers() -> bool {
    Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success())
}

/// The Docker tests take the engine one at a time: each builds the images with scripts/image.sh (the same
/// tags) and starts a stack of its own, and two at once fought over both (an image build failed).
///
/// The agent image is made from the binary this test run was built with: scripts/image.sh would otherwise
/// build target/debug/tarsier again (other features than `cargo test`'s: 1 min 43 s in CI) and replace it
/// while the other test binaries, which run beside these, start agents from it.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ENGINE: Mutex<()> = Mutex::new(());
    let guard = ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Under the lock, before any script runs: every scripts/image.sh these tests start (directly or through
    // stack.py and scenario files) inherits it.
    std::env::set_var("TARSIER_IMAGE_BINARY", env!("CARGO_BIN_EXE_tarsier"));
    guard
}
