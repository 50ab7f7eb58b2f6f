//! tarsier as a library. The `tarsier` binary (src/main.rs) is a thin shell over it; benches and tests use it
//! directly. The server side is `agent`, the client side `client`, `scenario` and `console` (a web page over
//! the client), and what crosses the network
//! between them `wire`; `credentials` and `sys` serve both (ARCHITECTURE.md has the map).

pub mod agent;
pub(crate) mod catalogue;
pub mod cli;
pub mod client;
pub mod console;
pub mod credentials;
pub mod demo;
pub mod guard;
pub mod local_swarm;
pub mod logs;
pub mod remote_write;
pub mod scenario;
pub mod sys;
pub mod wire;
