//! The machinery of `net/http_load` (the command itself is `cmd_http_load.rs`): `plan` checks a body into
//! what runs, `worker` runs it, `pace` schedules rate mode, `conn` is the plain-HTTP/1.1 fast path,
//! `stats` the tallies and the result (merged across a wave), `progress` what a running load publishes,
//! `metrics` its Prometheus series.

pub(crate) mod conn;
pub(crate) mod metrics;
pub(crate) mod pace;
pub(crate) mod plan;
pub(crate) mod progress;
pub(crate) mod stages;
pub(crate) mod stats;
pub(crate) mod worker;
