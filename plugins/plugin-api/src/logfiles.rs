//! Log files a shipper can deliver (the agent's activity log in `logging.dir`, `logs/emit`'s records): one
//! file written at a time, rotated by size and by age, the directory held under a cap.
//!
//! Names sort in writing order within a boot: `{name}.{boot}.{first_seq:012}.jsonl`. The file being
//! written ends in `.jsonl.open` and is renamed (after an fsync) when it is rotated or the writer stops, so
//! a reader (the shipper, `tarsier ship DIR`) knows which files are complete. A writer that starts finds
//! `.open` files of its name left by a run that was killed and closes them for the reader: they end with
//! the last whole line that run wrote (records are written as whole lines, in one `write` each chunk).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where and how the activity log's files are written.
#[derive(Debug, Clone)]
pub struct FileSettings {
    pub dir: PathBuf,
    /// The files' name before the boot and sequence (the reference's `logging.name`).
    pub name: String,
    /// A file is closed and a new one begun past this size...
    pub max_file_bytes: u64,
    /// ...or this age (the reference's `logging.interval`).
    pub max_file_age: Option<Duration>,
    /// The directory's files of this name together stay under this.
    pub max_dir_bytes: u64,
    /// When the files are shipped the shipper deletes them; the writer never does, and past the cap it
    /// stops writing (the records are counted lost) instead of deleting what was not delivered.
    pub keep_unshipped: bool,
}

/// Why a chunk was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The directory is at its cap and nothing may be deleted (the files wait for the shipper).
    Full {
        dir_bytes: u64,
        cap: u64,
    },
    Io(io::Error),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Full { dir_bytes, cap } => {
                write!(f, "the log directory holds {dir_bytes} bytes not yet shipped, its cap is {cap}")
            }
            WriteError::Io(err) => write!(f, "{err}"),
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(err: io::Error) -> Self {
        WriteError::Io(err)
    }
}

/// The suffix of a finished file and of the one being written.
pub const DONE: &str = ".jsonl";
pub const OPEN: &str = ".jsonl.open";

/// A file name prefix a setting may give: letters, digits, `.`, `_`, `-` (no path, no hidden file).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

struct Current {
    file: File,
    path: PathBuf,
    bytes: u64,
    opened: Instant,
}

/// The writing side: appends chunks of whole lines, rotating and capping as set.
pub struct RotatingFiles {
    settings: FileSettings,
    boot: String,
    current: Option<Current>,
    /// Bytes of this name's finished files in the directory (as this writer last counted them).
    closed_bytes: u64,
    pub rotations: u64,
    pub deleted_files: u64,
}

impl RotatingFiles {
    /// Makes the directory (owner-only) if needed and closes the `.open` files an earlier run of this name
    /// left behind.
    pub fn open(settings: FileSettings, boot: &str) -> io::Result<Self> {
        fs::create_dir_all(&settings.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            // Records name commands, peers and errors: not for every user of the machine.
            let _ = fs::set_permissions(&settings.dir, fs::Permissions::from_mode(0o700));
        }
        for left in files_of(&settings.dir, &settings.name)?.into_iter().filter(|f| f.open) {
            let done = left.path.with_file_name(left.file_name.trim_end_matches(".open"));
            fs::rename(&left.path, done)?;
        }
        let closed_bytes = files_of(&settings.dir, &settings.name)?.iter().filter(|f| !f.open).map(|f| f.bytes).sum();
        Ok(Self { settings, boot: boot.to_owned(), current: None, closed_bytes, rotations: 0, deleted_files: 0 })
    }

    /// Appends `lines` (whole lines, one record each; `first_seq` is the first one's number): as one write
    /// where the current file has room, else split at line ends over as many files as it takes (a line
    /// longer than a file is written whole to a file of its own).
    ///
    /// On an error, how many bytes (whole lines) of `lines` were written before it.
    pub fn write(&mut self, lines: &[u8], first_seq: u64) -> Result<(), (usize, WriteError)> {
        let mut written = 0;
        self.write_pieces(lines, first_seq, &mut written).map_err(|err| (written, err))
    }

    fn write_pieces(&mut self, mut lines: &[u8], mut first_seq: u64, written: &mut usize) -> Result<(), WriteError> {
        while !lines.is_empty() {
            let room = self.current.as_ref().map_or(0, |c| self.settings.max_file_bytes.saturating_sub(c.bytes));
            let room = if room == 0 { self.settings.max_file_bytes } else { room } as usize;
            let cut = if lines.len() <= room {
                lines.len()
            } else {
                // The last line end within the room; the first line end when not even one line fits.
                match lines[..room].iter().rposition(|b| *b == b'\n') {
                    Some(end) => end + 1,
                    None => lines.iter().position(|b| *b == b'\n').map_or(lines.len(), |end| end + 1),
                }
            };
            let (piece, rest) = lines.split_at(cut);
            self.write_piece(piece, first_seq)?;
            *written += piece.len();
            first_seq += piece.iter().filter(|b| **b == b'\n').count() as u64;
            lines = rest;
        }
        Ok(())
    }

    fn write_piece(&mut self, lines: &[u8], first_seq: u64) -> Result<(), WriteError> {
        let size = lines.len() as u64;
        let rotate = self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes > 0 && (c.bytes + size > self.settings.max_file_bytes || self.too_old(c)));
        if rotate {
            self.close()?;
        }
        self.make_room(size)?;
        if self.current.is_none() {
            let path = self.settings.dir.join(format!("{}.{}.{first_seq:012}{OPEN}", self.settings.name, self.boot));
            let mut options = OpenOptions::new();
            options.create_new(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let file = options.open(&path)?;
            self.current = Some(Current { file, path, bytes: 0, opened: Instant::now() });
        }
        if let Some(current) = self.current.as_mut() {
            current.file.write_all(lines)?;
            current.bytes += size;
        }
        Ok(())
    }

    /// Closes the current file when it is older than the rotation age (called when nothing is written).
    pub fn rotate_if_old(&mut self) -> io::Result<()> {
        if self.current.as_ref().is_some_and(|c| c.bytes > 0 && self.too_old(c)) {
            self.close()?;
        }
        Ok(())
    }

    fn too_old(&self, current: &Current) -> bool {
        self.settings.max_file_age.is_some_and(|age| current.opened.elapsed() >= age)
    }

    /// Finishes the current file: synced to disk, then renamed so readers see it complete.
    pub fn close(&mut self) -> io::Result<()> {
        let Some(current) = self.current.take() else { return Ok(()) };
        current.file.sync_all()?;
        let name = current.path.file_name().map(|n| n.to_string_lossy().trim_end_matches(".open").to_owned());
        if let Some(name) = name {
            fs::rename(&current.path, current.path.with_file_name(name))?;
        }
        self.rotations += 1;
        // Counted again, not added to: a shipper deletes the files it delivered.
        self.closed_bytes =
            files_of(&self.settings.dir, &self.settings.name)?.iter().filter(|f| !f.open).map(|f| f.bytes).sum();
        Ok(())
    }

    /// Keeps the directory under its cap with `size` more bytes: deletes this name's oldest finished files,
    /// unless they wait for the shipper.
    fn make_room(&mut self, size: u64) -> Result<(), WriteError> {
        let cap = self.settings.max_dir_bytes;
        let current = self.current.as_ref().map_or(0, |c| c.bytes);
        if self.closed_bytes + current + size <= cap {
            return Ok(());
        }
        // Count again: the shipper may have deleted files since.
        let finished: Vec<LogFile> =
            files_of(&self.settings.dir, &self.settings.name)?.into_iter().filter(|f| !f.open).collect();
        self.closed_bytes = finished.iter().map(|f| f.bytes).sum();
        if !self.settings.keep_unshipped {
            for oldest in &finished {
                if self.closed_bytes + current + size <= cap {
                    break;
                }
                fs::remove_file(&oldest.path)?;
                self.closed_bytes -= oldest.bytes;
                self.deleted_files += 1;
            }
        }
        let dir_bytes = self.closed_bytes + current;
        if dir_bytes + size > cap {
            return Err(WriteError::Full { dir_bytes, cap });
        }
        Ok(())
    }

    pub fn dir_bytes(&self) -> u64 {
        self.closed_bytes + self.current.as_ref().map_or(0, |c| c.bytes)
    }
}

impl Drop for RotatingFiles {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// One of a name's files in a log directory.
#[derive(Debug, Clone)]
pub struct LogFile {
    pub path: PathBuf,
    pub file_name: String,
    /// Still being written (`.jsonl.open`).
    pub open: bool,
    pub bytes: u64,
}

impl LogFile {
    /// The name it keeps whether still being written or finished (without `.open`): what a checkpoint
    /// is kept under, so the rename on rotation does not make it a new file.
    pub fn key(&self) -> &str {
        self.file_name.strip_suffix(".open").unwrap_or(&self.file_name)
    }
}

/// This name's files in `dir` (every name's when `name` is empty), oldest first: by modification time,
/// then by name (boot, then first sequence number).
pub fn files_of(dir: &Path, name: &str) -> io::Result<Vec<LogFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let open = file_name.ends_with(OPEN);
        if !(open || file_name.ends_with(DONE)) {
            continue;
        }
        if !name.is_empty() && !file_name.strip_prefix(name).is_some_and(|rest| rest.starts_with('.')) {
            continue;
        }
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let modified = meta.modified().ok();
        files.push((modified, LogFile { path: entry.path(), file_name, open, bytes: meta.len() }));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.file_name.cmp(&b.1.file_name)));
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, max_file_bytes: u64, max_dir_bytes: u64, keep_unshipped: bool) -> FileSettings {
        FileSettings {
            dir: dir.to_owned(),
            name: "agent".into(),
            max_file_bytes,
            max_file_age: None,
            max_dir_bytes,
            keep_unshipped,
        }
    }

    const BOOT: &str = "b00t";

    #[test]
    fn files_rotate_by_size_and_are_renamed_when_done() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RotatingFiles::open(settings(dir.path(), 20, 1 << 20, false), BOOT).unwrap();
        for seq in 0..5 {
            files.write(b"0123456789\n", seq).unwrap();
        }
        let names: Vec<String> = files_of(dir.path(), "agent").unwrap().into_iter().map(|f| f.file_name).collect();
        // 11-byte lines, 20-byte files: one line each (a file takes a second line only while under the size).
        assert_eq!(names.len(), 5, "{names:?}");
        assert_eq!(names.iter().filter(|n| n.ends_with(OPEN)).count(), 1, "{names:?}");
        assert!(names.contains(&"agent.b00t.000000000000.jsonl".to_owned()), "{names:?}");
        drop(files);
        assert!(files_of(dir.path(), "agent").unwrap().iter().all(|f| !f.open));
    }

    #[test]
    fn the_cap_deletes_the_oldest_or_refuses_when_files_wait_for_the_shipper() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = RotatingFiles::open(settings(dir.path(), 11, 33, false), BOOT).unwrap();
        for seq in 0..10 {
            files.write(b"0123456789\n", seq).unwrap();
        }
        assert!(files.dir_bytes() <= 33);
        assert_eq!(files.deleted_files, 7);
        drop(files);

        let dir = tempfile::tempdir().unwrap();
        let mut files = RotatingFiles::open(settings(dir.path(), 11, 33, true), BOOT).unwrap();
        for seq in 0..3 {
            files.write(b"0123456789\n", seq).unwrap();
        }
        assert!(matches!(files.write(b"0123456789\n", 3), Err((0, WriteError::Full { dir_bytes: 33, cap: 33 }))));
        // The shipper deleted a file: room again.
        let oldest = files_of(dir.path(), "agent").unwrap().remove(0);
        std::fs::remove_file(oldest.path).unwrap();
        files.write(b"0123456789\n", 4).unwrap();
    }

    #[test]
    fn a_new_writer_closes_what_a_killed_one_left_open() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.dead.000000000000.jsonl.open"), b"{}\n").unwrap();
        std::fs::write(dir.path().join("other.dead.000000000000.jsonl.open"), b"{}\n").unwrap();
        let _files = RotatingFiles::open(settings(dir.path(), 100, 1000, false), BOOT).unwrap();
        assert!(dir.path().join("agent.dead.000000000000.jsonl").exists());
        assert!(dir.path().join("other.dead.000000000000.jsonl.open").exists(), "another name's file is not ours");
    }

    #[test]
    fn names_are_plain() {
        assert!(valid_name("tarsier-1.node_a"));
        for bad in ["", ".hidden", "a/b", "../x", "a b"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
