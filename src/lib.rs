//! tarsier as a library: the agent, the swarm, scenarios and the CLI's pieces. The `tarsier` binary
//! (src/main.rs) is a thin shell over it; benches and tests use it directly.

pub mod agent;
pub mod api;
pub mod auth;
pub mod body;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod exec;
pub mod heap_trim;
pub mod http_common;
pub mod jobs;
pub mod metrics;
pub mod outcome;
pub mod registry;
pub mod runtime_stats;
pub mod scenario;
pub mod serve;
pub mod service;
pub mod state;
pub mod swarm;
pub mod tls;
pub mod wave;
