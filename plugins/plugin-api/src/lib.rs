//! The plugin API of tarsier.
//!
//! A plugin is a named set of [`Command`]s plus the state they hold (RAM, files, connections, blocked
//! threads). The agent only talks to plugins through this crate, so a new plugin is one crate that
//! implements [`Plugin`] and one registration line in the agent.

mod budget;
mod command;
mod context;
mod control_plane;
mod error;
mod held;
mod limits;
pub mod logfiles;
mod plugin;
mod slots;
mod thread;
pub mod tls_client;
mod units;

pub use budget::{Budget, Budgets, Reservation, DEFAULT_MAX_BLOCKED_THREADS};
pub use command::{field_path, plain_words, Command, DynCommand, JobFuture, NoData};
pub use context::{Cancel, CancelFlag, ExecContext, HealthGate, Progress};
pub use control_plane::{ControlPlane, ControlPlaneSource};
pub use error::{CommandError, DataError};
pub use held::Held;
pub use limits::{Limits, DEFAULT_ABORT_WINDOW, DEFAULT_MAX_WAVE_EXECUTIONS};
pub use plugin::{ConfigError, Plugin};
pub use slots::{Index, Place, Slots, Target};
pub use thread::{run_on_thread, CANCEL_GRACE};
pub use units::{negative_is_zero, ByteSize, HumanDuration};

/// Re-exported so plugin crates derive the same `JsonSchema` the agent's catalogue reads.
pub use schemars;
