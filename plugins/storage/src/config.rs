use std::path::PathBuf;

use serde::Deserialize;
use tarsier_plugin::ConfigError;

/// `plugins.storage` in the agent config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Where every file is created and the only place `read` may read from (besides /dev/zero and
    /// /dev/urandom). The reference's `base_dir` is accepted. Default: the system temp dir.
    #[serde(alias = "base_dir", default = "std::env::temp_dir")]
    pub dir: PathBuf,
}

impl StorageConfig {
    pub fn from_section(section: Option<&serde_json::Value>) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError { plugin: "storage", message };
        let config: StorageConfig = match section {
            None | Some(serde_json::Value::Null) => StorageConfig { dir: std::env::temp_dir() },
            Some(value) => serde_json::from_value(value.clone()).map_err(|err| error(err.to_string()))?,
        };
        std::fs::create_dir_all(&config.dir)
            .map_err(|err| error(format!("cannot create dir {}: {err}", config.dir.display())))?;
        let dir = config
            .dir
            .canonicalize()
            .map_err(|err| error(format!("cannot resolve dir {}: {err}", config.dir.display())))?;
        Ok(StorageConfig { dir })
    }
}
