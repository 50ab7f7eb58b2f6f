use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;

/// A file the agent created and keeps open.
pub struct HeldFile {
    pub index: u64,
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

/// The files held in the storage directory. Indexes are stable.
pub struct Files {
    pub dir: PathBuf,
    /// Tells apart the files of several agents in one process (a local swarm) sharing one directory.
    instance: u64,
    inner: Mutex<(u64, Vec<HeldFile>)>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Files {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir, instance: INSTANCES.fetch_add(1, Ordering::Relaxed), inner: Mutex::new((0, Vec::new())) }
    }

    fn lock(&self) -> MutexGuard<'_, (u64, Vec<HeldFile>)> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Creates a new file in the directory, opens it read/write and holds it.
    pub fn create(&self, kind: &str) -> std::io::Result<(u64, Arc<File>, Arc<AtomicU64>)> {
        let mut inner = self.lock();
        let index = inner.0;
        inner.0 += 1;
        let path = self.dir.join(format!("tarsier-{}-{}-{kind}-{index}", std::process::id(), self.instance));
        let file = Arc::new(File::options().read(true).write(true).create_new(true).open(&path)?);
        let written = Arc::new(AtomicU64::new(0));
        inner.1.push(HeldFile { index, path, file: file.clone(), written: written.clone(), since: SystemTime::now() });
        Ok((index, file, written))
    }

    /// (files, bytes written) held.
    pub fn totals(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.1.len() as u64, inner.1.iter().map(|f| f.written.load(Ordering::Relaxed)).sum())
    }

    pub fn list(&self) -> Vec<FileInfo> {
        self.lock()
            .1
            .iter()
            .map(|f| FileInfo {
                index: f.index,
                path: f.path.display().to_string(),
                size: f.file.metadata().map(|m| m.len()).unwrap_or(0),
                since: humantime::format_rfc3339_millis(f.since).to_string(),
            })
            .collect()
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.lock().1.iter().map(|f| f.index).collect()
    }

    /// Closes one file (deleting it when asked); `None` when no file has that index.
    pub fn close(&self, index: u64, delete: bool) -> Option<u64> {
        let held = {
            let mut inner = self.lock();
            let pos = inner.1.iter().position(|f| f.index == index)?;
            inner.1.remove(pos)
        };
        Some(release(held, delete))
    }

    /// Closes every file (deleting them when asked); returns (files, bytes) released.
    pub fn close_all(&self, delete: bool) -> (u64, u64) {
        let held = std::mem::take(&mut self.lock().1);
        let count = held.len() as u64;
        (count, held.into_iter().map(|f| release(f, delete)).sum())
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
