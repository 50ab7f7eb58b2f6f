//! `storage` (the reference's `persistent_storage`): files and file descriptors in one configured directory.

mod cmd_close_fd;
mod cmd_fs_stats;
mod cmd_open_fd;
mod cmd_read;
mod cmd_write;
mod config;
mod files;
mod io;

use std::sync::Arc;

use tarsier_plugin::{ConfigError, DynCommand, Held, Plugin};

pub use config::StorageConfig;
pub use files::Files;

pub struct Storage {
    files: Arc<Files>,
}

impl Storage {
    /// Builds the plugin from its config section (`plugins.storage`, or the reference's `persistent_storage`).
    pub fn from_config(section: Option<&serde_json::Value>) -> Result<Arc<dyn Plugin>, ConfigError> {
        let config = StorageConfig::from_section(section)?;
        Ok(Arc::new(Storage { files: Arc::new(Files::new(config.dir)) }))
    }
}

impl Plugin for Storage {
    fn name(&self) -> &'static str {
        "storage"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["persistent_storage"]
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![
            Arc::new(cmd_open_fd::OpenFd(self.files.clone())),
            Arc::new(cmd_write::Write(self.files.clone())),
            Arc::new(cmd_read::Read(self.files.clone())),
            Arc::new(cmd_fs_stats::FsStats(self.files.clone())),
            Arc::new(cmd_close_fd::CloseFd(self.files.clone())),
        ]
    }
    fn held(&self) -> Held {
        let (files, bytes) = self.files.totals();
        Held { files, disk_bytes: bytes, ..Held::default() }
    }
    fn release_all(&self) -> Held {
        let (files, bytes) = self.files.close(tarsier_plugin::Target::All, true).unwrap_or_default();
        Held { files, disk_bytes: bytes, ..Held::default() }
    }
}
