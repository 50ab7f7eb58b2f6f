//! Every integration test but the Docker ones, in one binary: one link of the library, reqwest and rustls
//! instead of one per area, and one pool of test threads across all areas. One module per area; `common`
//! holds the child-agent harness and the helpers for Consul and Prometheus. Tests that start Docker
//! containers live in tests/docker/ (a binary of their own, so `cargo test --test it` never needs an engine).

#[path = "../common/mod.rs"]
mod common;

mod agent_api;
mod agent_core;
mod bad_bodies;
mod blast_radius;
mod cli;
mod compat;
mod console;
mod contract;
mod deps;
mod docs;
mod fault_proxy;
mod faults;
mod guards;
mod heavy_load;
mod http_faults;
mod http_load;
mod k8s;
mod layout;
mod logs;
mod net;
mod remote_write;
mod scenarios;
mod security;
mod storage;
mod swarm_consul;
mod swarm_local;
mod trust;
mod wire_faults;

/// Every `.rs` file below `dir` (none when it does not exist), for the tests that read the source tree.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for path in entries.map(|e| e.unwrap().path()) {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
