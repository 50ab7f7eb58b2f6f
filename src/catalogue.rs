//! The commands this binary's plugins offer, without an agent: what `scenario check` types a file's bodies
//! against before any agent is asked. A bridge like `local_swarm`: the client side reaches the plugins only
//! through it, never through `agent` itself.

use std::sync::OnceLock;

use serde_json::Value;

use crate::agent::config::AgentConfig;
use crate::agent::registry::{builtin_plugins, Registry};

/// The plugins as a default agent registers them; `None` when they cannot be built here (then nothing is
/// checked offline, and the agent checks the body when it arrives).
fn registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| builtin_plugins(&AgentConfig::default()).ok().map(Registry::new)).as_ref()
}

/// What the client side may know of a command before any agent runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known {
    /// It ends the agent's process (see `tarsier_plugin::Command::ENDS_PROCESS`).
    pub ends_process: bool,
}

/// Whether `command` names a command (with the reference Tarsier's aliases), and, when `data` is given, whether
/// the command's own parser takes it: an unknown command, a misspelled field or a bad duration is an error
/// that names the field (`data.duration: ...`). Data left out (it still has placeholders) is not parsed.
pub fn check(command: &str, data: Option<Value>) -> Result<Known, String> {
    let Some(registry) = registry() else { return Ok(Known::default()) };
    let resolved = registry.resolve(command).map_err(|e| format!("command: {}", e.message))?;
    if let Some(data) = data {
        resolved.command.parse(data).map_err(|e| e.message)?;
    }
    Ok(Known { ends_process: resolved.command.ends_process() })
}
