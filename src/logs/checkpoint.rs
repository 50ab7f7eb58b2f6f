//! How far each file of a log directory is delivered: one small JSON file, `.ship-checkpoints.json`, beside
//! the logs, replaced whole (written aside, synced, renamed) so a `kill -9` leaves the old one or the new
//! one, never half of either. A shipper that starts resumes from it: what was acknowledged is not sent
//! again; what was sent and not yet acknowledged is (a duplicate the broker's dedupe window absorbs).

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = ".ship-checkpoints.json";
/// A checkpoint file bigger than this is not read (a directory holds at most a few thousand log files).
const MAX_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct Checkpoints {
    path: PathBuf,
    /// File name -> bytes acknowledged from its start (always at a line end).
    acked: BTreeMap<String, u64>,
}

impl Checkpoints {
    /// The directory's checkpoints; none when there is no file yet. A damaged file is an error: starting
    /// from zero would send everything again, so the operator decides.
    pub fn load(dir: &Path) -> io::Result<Self> {
        let path = dir.join(FILE_NAME);
        use crate::sys::files::{read_bounded, ReadError};
        let acked = match read_bounded(&path, MAX_BYTES, "checkpoint file") {
            Ok(read) => serde_json::from_str(&read.text)
                .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {err}", path.display())))?,
            Err(ReadError::Open { source, .. }) if source.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(err) => return Err(io::Error::other(err.to_string())),
        };
        Ok(Self { path, acked })
    }

    pub fn acked(&self, file_name: &str) -> u64 {
        self.acked.get(file_name).copied().unwrap_or(0)
    }

    pub fn set(&mut self, file_name: &str, bytes: u64) {
        self.acked.insert(file_name.to_owned(), bytes);
    }

    /// Forgets the files that are gone (delivered and deleted, or removed by someone else).
    pub fn keep_only(&mut self, present: &[String]) {
        self.acked.retain(|name, _| present.contains(name));
    }

    /// Writes the checkpoints durably: aside, synced, renamed over the old file.
    pub fn save(&self) -> io::Result<()> {
        let aside = self.path.with_extension("json.new");
        let mut file = std::fs::File::create(&aside)?;
        file.write_all(&serde_json::to_vec(&self.acked).map_err(io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&aside, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_a_reload_and_forget_gone_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpoints = Checkpoints::load(dir.path()).unwrap();
        assert_eq!(checkpoints.acked("a.jsonl"), 0);
        checkpoints.set("a.jsonl", 120);
        checkpoints.set("b.jsonl", 7);
        checkpoints.keep_only(&["a.jsonl".to_owned()]);
        checkpoints.save().unwrap();
        let again = Checkpoints::load(dir.path()).unwrap();
        assert_eq!((again.acked("a.jsonl"), again.acked("b.jsonl")), (120, 0));
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(Checkpoints::load(dir.path()).is_err(), "a damaged checkpoint is not read as zero");
    }
}
