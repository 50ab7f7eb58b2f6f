use std::path::PathBuf;

use serde::Deserialize;
use tarsier_plugin::{ByteSize, ConfigError};

/// `plugins.logs` in the agent config: where `logs/emit` may write files. A body never names a path.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// The directory `to: dir` writes into (a collector or `tarsier ship` reads it). Default: `tarsier-emit`
    /// in the system temp dir.
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// The emitted files together stay under this; a run that would pass it stops with an error. Default
    /// 1 GiB.
    #[serde(default = "default_max_dir_size")]
    pub max_dir_size: ByteSize,
}

fn default_dir() -> PathBuf {
    std::env::temp_dir().join("tarsier-emit")
}

fn default_max_dir_size() -> ByteSize {
    ByteSize::mib(1024)
}

impl LogsConfig {
    pub fn from_section(section: Option<&serde_json::Value>) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError { plugin: "logs", message };
        match section {
            None | Some(serde_json::Value::Null) => {
                Ok(LogsConfig { dir: default_dir(), max_dir_size: default_max_dir_size() })
            }
            Some(value) => serde_json::from_value(value.clone()).map_err(|err| error(err.to_string())),
        }
    }
}
