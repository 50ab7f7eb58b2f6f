//! Dying on purpose, a little after answering, so the client gets its answer (and a wave gets forwarded)
//! before the process goes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{DataError, HumanDuration, Limits};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DeathData {
    /// How long after answering the process dies.
    pub delay: HumanDuration,
}

impl Default for DeathData {
    fn default() -> Self {
        Self { delay: HumanDuration(Duration::from_millis(200)) }
    }
}

pub fn check_delay(delay: HumanDuration, limits: &Limits) -> Result<(), DataError> {
    limits.check_duration("delay", delay)
}

/// Runs `die` on its own thread after `delay` and returns the answer to send meanwhile.
pub fn schedule(delay: HumanDuration, how: &str, die: impl FnOnce() + Send + 'static) -> Value {
    tracing::warn!(activity = "fault_installed", how, delay = %delay, "the agent will die on purpose");
    let spawned = std::thread::Builder::new().name("fault".into()).spawn(move || {
        std::thread::sleep(delay.0);
        die();
    });
    if let Err(err) = spawned {
        tracing::error!(%err, "cannot start the fault thread; dying now");
    }
    json!({ "dying": how, "in_ms": delay.0.as_millis() as u64, "pid": std::process::id() })
}
