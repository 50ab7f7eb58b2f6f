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
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static ENGINE: Mutex<()> = Mutex::new(());
    ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
