use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tarsier_plugin::{Slots, Target};

/// A file the agent created and keeps open.
pub struct HeldFile {
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes written to it so far (what it takes on disk, as far as the agent knows).
    pub written: Arc<AtomicU64>,
    since: SystemTime,
}

#[derive(Debug, Serialize)]
pub struct FileInfo {
    pub index: u64,
    pub path: String,
    pub size: u64,
    pub since: String,
}

/// The files held in the storage directory.
pub struct Files {
    pub dir: PathBuf,
    /// Tells apart the files of several agents in one process (a local swarm) sharing one directory.
    instance: u64,
    held: Slots<HeldFile>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Files {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, instance: INSTANCES.fetch_add(1, Ordering::Relaxed), held: Slots::default() }
    }

    /// Creates a new file in the directory, opens it read/write and holds it.
    pub fn create(&self, kind: &str) -> std::io::Result<(u64, Arc<File>, Arc<AtomicU64>)> {
        let mut handles = None;
        let index = self.held.try_insert_with(|index| {
            let path = self.dir.join(format!("tarsier-{}-{}-{kind}-{index}", std::process::id(), self.instance));
            let file = Arc::new(File::options().read(true).write(true).create_new(true).open(&path)?);
            let written = Arc::new(AtomicU64::new(0));
            handles = Some((file.clone(), written.clone()));
            Ok::<_, std::io::Error>(HeldFile { path, file, written, since: SystemTime::now() })
        })?;
        let (file, written) = handles.ok_or_else(|| std::io::Error::other("the file was not created"))?;
        Ok((index, file, written))
    }

    /// (files, bytes written) held.
    pub fn totals(&self) -> (u64, u64) {
        let sizes = self.held.map(|_, f| f.written.load(Ordering::Relaxed));
        (sizes.len() as u64, sizes.iter().sum())
    }

    pub fn list(&self) -> Vec<FileInfo> {
        self.held.map(|index, f| FileInfo {
            index,
            path: f.path.display().to_string(),
            size: f.file.metadata().map(|m| m.len()).unwrap_or(0),
            since: humantime::format_rfc3339_millis(f.since).to_string(),
        })
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.held.indexes()
    }

    /// Closes what `target` names (deleting the files when asked): (files, bytes) released, or `None` for an
    /// index not held.
    pub fn close(&self, target: Target, delete: bool) -> Option<(u64, u64)> {
        let closed = self.held.take(target)?;
        let count = closed.len() as u64;
        Some((count, closed.into_iter().map(|f| release(f, delete)).sum()))
    }

    /// True when `path` is inside the storage directory once every link and `..` is resolved.
    pub fn contains(&self, path: &Path) -> bool {
        path.canonicalize().map(|p| p.starts_with(&self.dir)).unwrap_or(false)
    }
}

fn release(held: HeldFile, delete: bool) -> u64 {
    let bytes = held.written.load(Ordering::Relaxed);
    drop(held.file);
    if delete {
        if let Err(err) = std::fs::remove_file(&held.path) {
            tracing::warn!(path = %held.path.display(), %err, "cannot delete a held file");
        }
    }
    bytes
}
