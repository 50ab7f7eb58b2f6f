use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tarsier_plugin::{Budget, ByteSize, CancelFlag, DataError, Place, Reservation, Slots, Target};

/// A file the agent created and keeps open, with its share of `limits.max_disk`.
pub struct HeldFile {
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes written to it so far (what it takes on disk, as far as the agent knows).
    pub written: Arc<AtomicU64>,
    since: SystemTime,
    _reserved: Reservation,
}

#[derive(Debug, Serialize)]
pub struct FileInfo {
    #[serde(flatten)]
    pub place: Place,
    pub path: String,
    pub size: u64,
    pub since: String,
}

/// Why a file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A new file: its index, the handle writers use, and the counter of bytes written to it.
pub type Created = (u64, Arc<File>, Arc<AtomicU64>);

/// The files held in the storage directory.
pub struct Files {
    pub dir: PathBuf,
    /// Tells apart the files of several agents in one process (a local swarm) sharing one directory.
    instance: u64,
    held: Slots<HeldFile>,
    /// Bytes that writes in progress will still add: the free space they need but have not taken yet.
    pending: Arc<Budget>,
    /// Taken while free space is read and a new write's bytes are added to `pending`.
    admission: Mutex<()>,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl Files {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            held: Slots::default(),
            pending: Arc::new(Budget::new("disk", "free space", None, |b| ByteSize(b).to_string())),
            admission: Mutex::new(()),
        }
    }

    /// Creates a new file in the directory, opens it read/write and holds it, unless its command was
    /// cancelled (decided under the lock `/abort`'s release takes, so nothing slips in after it).
    pub fn create(&self, kind: &str, cancel: &CancelFlag, reserved: Reservation) -> Result<Created, CreateError> {
        let mut handles = None;
        let index = self.held.try_insert_with(|index| {
            if cancel.is_raised() {
                return Err(CreateError::Cancelled);
            }
            let path = self.dir.join(format!("tarsier-{}-{}-{kind}-{index}", std::process::id(), self.instance));
            let file = Arc::new(File::options().read(true).write(true).create_new(true).open(&path)?);
            let written = Arc::new(AtomicU64::new(0));
            handles = Some((file.clone(), written.clone()));
            Ok(HeldFile { path, file, written, since: SystemTime::now(), _reserved: reserved })
        })?;
        let (file, written) = handles.ok_or_else(|| std::io::Error::other("the file was not created"))?;
        Ok((index, file, written))
    }

    /// Reserves `asked` bytes of the directory's free space for a write about to start, counting what writes
    /// in progress will still add, so concurrent writes cannot all pass the check and then fail with ENOSPC.
    /// The reservation is given back as the bytes land on disk (see [`Reservation::shrink_to`]).
    pub fn reserve_space(&self, field: &str, asked: u64) -> Result<Reservation, DataError> {
        let _one_at_a_time = self.admission.lock().unwrap_or_else(|p| p.into_inner());
        let free = free_bytes(&self.dir);
        let pending = self.pending.used();
        if pending.saturating_add(asked) > free {
            return Err(DataError::field(
                field,
                format!(
                    "{} needed, but {} has only {} free{}",
                    ByteSize(asked),
                    self.dir.display(),
                    ByteSize(free),
                    if pending > 0 {
                        format!(" and {} of it promised to writes in progress", ByteSize(pending))
                    } else {
                        String::new()
                    }
                ),
            ));
        }
        self.pending.reserve(field, asked)
    }

    /// (files, bytes written) held.
    pub fn totals(&self) -> (u64, u64) {
        let sizes = self.held.map(|_, f| f.written.load(Ordering::Relaxed));
        (sizes.len() as u64, sizes.iter().sum())
    }

    pub fn list(&self) -> Vec<FileInfo> {
        self.held.map(|place, f| FileInfo {
            place,
            path: f.path.display().to_string(),
            size: f.file.metadata().map(|m| m.len()).unwrap_or(0),
            since: humantime::format_rfc3339_millis(f.since).to_string(),
        })
    }

    pub fn not_held(&self, target: Target) -> DataError {
        self.held.not_held(target, "file")
    }

    /// Closes what `target` names (deleting the files when asked): (files, bytes) released, or `None` for an
    /// index not held.
    pub fn close(&self, target: Target, delete: bool) -> Option<(u64, u64)> {
        let closed = self.held.take(target)?;
        Some(release_files(closed, delete))
    }

    /// Closes and deletes the files of a command that did not finish (those still held).
    pub fn discard(&self, indexes: &[u64]) -> (u64, u64) {
        release_files(self.held.remove_all(indexes), true)
    }

    /// True when `path` is inside the storage directory once every link and `..` is resolved.
    pub fn contains(&self, path: &Path) -> bool {
        path.canonicalize().map(|p| p.starts_with(&self.dir)).unwrap_or(false)
    }
}

fn release_files(files: Vec<HeldFile>, delete: bool) -> (u64, u64) {
    let count = files.len() as u64;
    (count, files.into_iter().map(|f| release(f, delete)).sum())
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

pub fn free_bytes(dir: &Path) -> u64 {
    nix::sys::statvfs::statvfs(dir).map(|s| s.blocks_available().saturating_mul(s.fragment_size())).unwrap_or(u64::MAX)
}
