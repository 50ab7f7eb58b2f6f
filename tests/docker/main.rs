//! The tests that need a Docker engine: the swarm as containers (`containers`) and the experiments on
//! Docker Swarm mode (`experiments`). Each prints one `skipped: no Docker engine` line where none answers.

// The Docker tests use only the harness's HTTP clients and waits; tests/it, which uses all of it, is where
// dead helpers are found.
#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod containers;
mod experiments;
