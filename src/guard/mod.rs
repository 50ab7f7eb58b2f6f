//! Guards and steady state: conditions a run holds the system under test to. A guard is checked every
//! `interval` *while* the steps run (a scenario's `guards:`, `tarsier exec --guard`); when one stays broken for
//! its `for:` grace, the swarm is aborted at once and the run fails with the guard's name, value and bound. A
//! steady state is the same kinds of checks, held before a run starts and again after its teardown.
//!
//! `check` is a condition as written and typed, `read` takes one reading of it (PromQL, an HTTP probe, the
//! live figures of a running `net/http_load`), `watch` runs the guards and trips. Client side: it talks to the
//! agents, Prometheus and the service, never the other way round.

pub mod bound;
mod check;
mod read;
mod watch;

pub use bound::Bound;
pub use check::{Check, CheckKind, HttpProbe, LoadFigure, RawCheck, RawHttpProbe, MAX_WAIT};
pub use read::{plain_client, promql, short_number, Reading, Sources};
pub use watch::{GuardSummary, Trip, Watch};
