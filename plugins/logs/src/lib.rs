//! `logs`: numbered log records for a platform's log pipeline to carry (`logs/emit`), so that what it loses
//! can be counted (`tarsier logs verify`).

mod cmd_emit;
mod config;

use std::sync::Arc;

use tarsier_plugin::{ConfigError, DynCommand, Plugin};

pub use config::LogsConfig;

pub struct Logs {
    config: Arc<LogsConfig>,
}

impl Logs {
    /// Builds the plugin from its config section (`plugins.logs`).
    pub fn from_config(section: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, ConfigError> {
        Ok(Arc::new(Logs { config: Arc::new(LogsConfig::from_section(section)?) }))
    }
}

impl Plugin for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![Arc::new(cmd_emit::Emit(self.config.clone()))]
    }
}
