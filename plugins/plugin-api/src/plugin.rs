use std::sync::Arc;

use crate::{DynCommand, Held};

/// A plugin's section of the agent config could not be used.
#[derive(Debug, thiserror::Error)]
#[error("plugins.{plugin}: {message}")]
pub struct ConfigError {
    pub plugin: &'static str,
    pub message: String,
}

/// A named set of commands and the resources they hold.
pub trait Plugin: Send + Sync + 'static {
    /// The name in `command: name/cmd`.
    fn name(&self) -> &'static str;
    /// Other names this plugin answers to (the reference Tarsier's, such as `persistent_storage`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>>;
    /// What the plugin holds now.
    fn held(&self) -> Held {
        Held::default()
    }
    /// The plugin's own Prometheus metrics; the agent registers them beside its own.
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        Vec::new()
    }
    /// Called once the agent listens (not for the agents of an in-process local swarm): a plugin that left
    /// something in the machine's state under the agent's name can find and undo what a dead predecessor left.
    fn started(&self, _control_plane: &crate::ControlPlane) {}
    /// Releases everything the plugin holds (on `/abort` and at shutdown) and says what was let go.
    fn release_all(&self) -> Held {
        Held::default()
    }
}
