//! The `logging:` section: the activity log's files. The reference Tarsier's keys (`name`, `interval` in
//! seconds, `dir`) mean what they meant there; the rest are tarsier's.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tarsier_plugin::{ByteSize, HumanDuration};

use crate::logs::{self, FileSettings};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// The directory of the activity log's files; without it the agent logs to stderr only.
    pub dir: Option<PathBuf>,
    /// The files' name before the boot and sequence; default `tarsier`.
    pub name: Option<String>,
    /// A file is closed and a new one begun after this long (a number is seconds, as in the reference).
    pub interval: Option<Interval>,
    /// ...or past this size; default 16 MiB.
    pub max_file_size: Option<ByteSize>,
    /// The directory's files of this name together stay under this; default 512 MiB. Without shipping the
    /// oldest are deleted; with it, records past the cap are counted lost and named in a record.
    pub max_dir_size: Option<ByteSize>,
    /// The lowest level written to the files (`info` by default), whatever stderr's `TARSIER_LOG` says.
    pub level: Option<String>,
    /// Deliver the files to NATS JetStream, at least once (docs/logs.md#shipping).
    pub ship: Option<crate::logs::ship::ShipConfig>,
}

/// `3600` (seconds, the reference's form) or `1h`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Interval {
    Seconds(u64),
    Human(HumanDuration),
}

impl Interval {
    fn duration(self) -> Duration {
        match self {
            Interval::Seconds(s) => Duration::from_secs(s),
            Interval::Human(h) => h.0,
        }
    }
}

pub const DEFAULT_MAX_FILE_SIZE: ByteSize = ByteSize::mib(16);
pub const DEFAULT_MAX_DIR_SIZE: ByteSize = ByteSize::mib(512);

impl LoggingConfig {
    /// The file log's settings and level, or `None` without `dir`; an error names the key.
    pub fn file_settings(&self) -> anyhow::Result<Option<(FileSettings, tracing::Level)>> {
        let Some(dir) = self.dir.clone() else {
            anyhow::ensure!(self.ship.is_none(), "logging.ship needs logging.dir: the files are what is shipped");
            return Ok(None);
        };
        let name = self.name.clone().unwrap_or_else(|| "tarsier".into());
        anyhow::ensure!(
            logs::files::valid_name(&name),
            "logging.name `{name}`: letters, digits, `.`, `_` and `-` only, at most 64, not starting with `.`"
        );
        let max_file_bytes = self.max_file_size.unwrap_or(DEFAULT_MAX_FILE_SIZE).0;
        let max_dir_bytes = self.max_dir_size.unwrap_or(DEFAULT_MAX_DIR_SIZE).0;
        anyhow::ensure!(max_file_bytes >= 4096, "logging.max_file_size must be at least 4 KiB");
        anyhow::ensure!(
            max_dir_bytes >= 2 * max_file_bytes,
            "logging.max_dir_size must hold at least two files of logging.max_file_size"
        );
        let max_file_age = self.interval.map(Interval::duration);
        anyhow::ensure!(
            max_file_age.is_none_or(|age| age >= Duration::from_secs(1)),
            "logging.interval must be at least 1s"
        );
        let level = match self.level.as_deref().unwrap_or("info") {
            "error" => tracing::Level::ERROR,
            "warn" => tracing::Level::WARN,
            "info" => tracing::Level::INFO,
            "debug" => tracing::Level::DEBUG,
            other => anyhow::bail!("logging.level `{other}`: one of error, warn, info, debug"),
        };
        if let Some(ship) = &self.ship {
            ship.check().map_err(anyhow::Error::msg)?;
        }
        // Shipped files are the shipper's to delete: past the cap the writer stops instead.
        let keep_unshipped = self.ship.is_some();
        let settings = FileSettings { dir, name, max_file_bytes, max_file_age, max_dir_bytes, keep_unshipped };
        Ok(Some((settings, level)))
    }
}
