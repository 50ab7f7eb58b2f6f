//! Numbers records and writes them to the files. A record gets its sequence number and its place in the
//! buffer under one lock, so the files hold records in sequence order and a number is never given twice
//! or skipped. The flusher thread takes the buffer every [`FLUSH_EVERY`] (sooner once it passes
//! [`CHUNK_BYTES`]) and writes it with that lock released: a thread that logs never waits on the disk
//! (a write, a rotation's fsync), only, past [`MAX_BUFFERED_BYTES`], on a flusher that fell behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::files::{FileSettings, RotatingFiles, WriteError};
use super::record::{self, Identity};

/// PERF(file_log): records are written in chunks, not one `write` each: two records per `/exec` at 28k
/// requests/s would be 56k syscalls a second. What a `kill -9` can lose is this much of the newest records.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full wakes the flusher before its tick.
const CHUNK_BYTES: usize = 64 * 1024;
/// Records kept in memory: past this a thread that logs writes the buffer itself (the flusher fell behind
/// the disk), or, while the files refuse them (directory full, disk error), the buffer is given up, counted
/// lost, and a `log_records_lost` record names the numbers.
const MAX_BUFFERED_BYTES: usize = 4 * 1024 * 1024;
/// Records logged before the agent knows its name (it is bound first) wait for it, up to this many.
const MAX_EARLY_RECORDS: usize = 10_000;

/// What the file log has done, for `/metrics` and `/runtime`.
#[derive(Debug, Default)]
pub struct FileLogStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub lost: AtomicU64,
    pub write_errors: AtomicU64,
    pub rotations: AtomicU64,
    pub deleted_files: AtomicU64,
    pub dir_bytes: AtomicU64,
}

/// A record's fields after the stamp, waiting for the agent's identity.
struct Early {
    ts_ms: u64,
    fields: String,
}

struct Inner {
    settings: FileSettings,
    identity: Option<Identity>,
    next_seq: u64,
    /// Whole lines not yet written, and the number of the first.
    buffer: String,
    buffer_first: u64,
    early: Vec<Early>,
    /// The files refused the last chunk: only the flusher tries again (a full directory is counted once
    /// per tick, not once per record).
    refused: bool,
    stopping: bool,
}

/// The numbered, buffered writer behind the tracing layer; shared with the flusher thread.
pub struct Sink {
    inner: Mutex<Inner>,
    /// Taken before `inner` by whoever writes (the flusher, a flush, a logger past the cap), so chunks are
    /// written in the order they were taken.
    files: Mutex<Option<RotatingFiles>>,
    tick: Condvar,
    pub stats: FileLogStats,
}

impl Sink {
    pub fn new(settings: FileSettings) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                settings,
                identity: None,
                next_seq: 0,
                buffer: String::new(),
                buffer_first: 0,
                early: Vec::new(),
                refused: false,
                stopping: false,
            }),
            files: Mutex::new(None),
            tick: Condvar::new(),
            stats: FileLogStats::default(),
        })
    }

    /// The agent's name is known: open the files and number what waited for it.
    pub fn set_identity(&self, identity: Identity) -> std::io::Result<()> {
        let mut files = self.lock_files();
        let mut inner = self.lock();
        *files = Some(RotatingFiles::open(inner.settings.clone(), &identity.boot)?);
        inner.identity = Some(identity);
        for early in std::mem::take(&mut inner.early) {
            self.append(&mut inner, early.ts_ms, &early.fields);
        }
        Ok(())
    }

    /// Where the files are, and their name.
    pub fn dir_and_name(&self) -> (std::path::PathBuf, String) {
        let inner = self.lock();
        (inner.settings.dir.clone(), inner.settings.name.clone())
    }

    /// Whether the directory refuses records now (full of files not yet shipped, or failing).
    pub fn refusing(&self) -> bool {
        self.lock().refused
    }

    /// What `/runtime` shows of the file log.
    pub fn runtime(&self) -> serde_json::Value {
        let inner = self.lock();
        let stats = &self.stats;
        serde_json::json!({
            "dir": inner.settings.dir,
            "name": inner.settings.name,
            "boot": inner.identity.as_ref().map(|i| &i.boot),
            "next_seq": inner.next_seq,
            "buffered_bytes": inner.buffer.len(),
            "written_bytes": stats.bytes.load(Ordering::Relaxed),
            "lost_records": stats.lost.load(Ordering::Relaxed),
            "dir_bytes": stats.dir_bytes.load(Ordering::Relaxed),
            "max_dir_bytes": inner.settings.max_dir_bytes,
            "refused": inner.refused,
        })
    }

    /// The next number to be given (the count of records of this boot so far).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Logs one record whose fields (`,"key":value` pairs) are given.
    pub fn log(&self, ts_ms: u64, fields: &str) {
        let mut inner = self.lock();
        if inner.identity.is_none() {
            if inner.early.len() < MAX_EARLY_RECORDS {
                inner.early.push(Early { ts_ms, fields: fields.to_owned() });
            }
            return;
        }
        let before = inner.buffer.len();
        self.append(&mut inner, ts_ms, fields);
        let after = inner.buffer.len();
        if inner.refused {
            if after > MAX_BUFFERED_BYTES {
                self.give_up_buffer(&mut inner);
            }
        } else if after > MAX_BUFFERED_BYTES {
            // The flusher fell behind the disk: this thread writes, so memory stays bounded and nothing is lost.
            drop(inner);
            self.flush();
        } else if before < CHUNK_BYTES && after >= CHUNK_BYTES {
            // Once per chunk, not per record: a wake is a syscall.
            self.tick.notify_one();
        }
    }

    fn append(&self, inner: &mut Inner, ts_ms: u64, fields: &str) {
        let Some(identity) = inner.identity.as_ref() else { return };
        if inner.buffer.is_empty() {
            inner.buffer_first = inner.next_seq;
        }
        let seq = inner.next_seq;
        record::begin(&mut inner.buffer, identity, seq, ts_ms);
        inner.buffer.push_str(fields);
        record::end(&mut inner.buffer);
        inner.next_seq += 1;
        self.stats.records.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes what is buffered now. The buffer is taken under the records' lock and written without it;
    /// what the files refuse goes back in front of what was logged meanwhile.
    pub fn flush(&self) {
        let mut files = self.lock_files();
        let Some(files) = files.as_mut() else { return };
        let (chunk, first) = {
            let mut inner = self.lock();
            if inner.buffer.is_empty() {
                drop(inner);
                let _ = files.rotate_if_old();
                self.note_files(files);
                return;
            }
            let chunk = std::mem::replace(&mut inner.buffer, String::with_capacity(2 * CHUNK_BYTES));
            (chunk, inner.buffer_first)
        };
        let written = files.write(chunk.as_bytes(), first);
        let mut inner = self.lock();
        match written {
            Ok(()) => {
                self.stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                inner.refused = false;
            }
            Err((written, err)) => {
                // What went in before the refusal is not written twice; the rest comes first next time.
                let (taken, rest) = chunk.split_at(written);
                self.stats.bytes.fetch_add(taken.len() as u64, Ordering::Relaxed);
                let mut buffer = String::with_capacity(rest.len() + inner.buffer.len());
                buffer.push_str(rest);
                buffer.push_str(&inner.buffer);
                inner.buffer = buffer;
                inner.buffer_first = first + taken.matches('\n').count() as u64;
                inner.refused = true;
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                if matches!(err, WriteError::Io(_)) {
                    // Not through tracing: this layer would be called back under its own lock.
                    eprintln_once(&format!("tarsier: the activity log cannot be written: {err}"));
                }
                if inner.buffer.len() > MAX_BUFFERED_BYTES {
                    self.give_up_buffer(&mut inner);
                }
            }
        }
        drop(inner);
        self.note_files(files);
    }

    fn note_files(&self, files: &RotatingFiles) {
        self.stats.rotations.store(files.rotations, Ordering::Relaxed);
        self.stats.deleted_files.store(files.deleted_files, Ordering::Relaxed);
        self.stats.dir_bytes.store(files.dir_bytes(), Ordering::Relaxed);
    }

    /// Drops the buffered records (the files refused them too long) and says which numbers are gone, in a
    /// record of its own that takes the next number.
    fn give_up_buffer(&self, inner: &mut Inner) {
        let (first, last) = (inner.buffer_first, inner.next_seq.saturating_sub(1));
        self.stats.lost.fetch_add(last + 1 - first, Ordering::Relaxed);
        inner.buffer.clear();
        let mut fields = String::new();
        record::push_str_field(&mut fields, "level", "error");
        record::push_str_field(&mut fields, "target", "tarsier::logs");
        record::push_str_field(&mut fields, "msg", "activity records lost: the log directory refused them");
        record::push_str_field(&mut fields, "activity", "log_records_lost");
        record::push_raw_field(&mut fields, "first", &first.to_string());
        record::push_raw_field(&mut fields, "last", &last.to_string());
        // It takes the next number and starts the new buffer: a later give-up names it among its own.
        self.append(inner, record::now_ms(), &fields);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves whole lines behind; carry on with them.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_files(&self) -> std::sync::MutexGuard<'_, Option<RotatingFiles>> {
        self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The flusher: writes the buffer every [`FLUSH_EVERY`], or when a chunk is full, until [`Sink::stop`].
    pub fn run_flusher(self: Arc<Self>) {
        loop {
            let stopping = {
                let inner = self.lock();
                let (inner, _) =
                    self.tick.wait_timeout(inner, FLUSH_EVERY).unwrap_or_else(|poisoned| poisoned.into_inner());
                inner.stopping
            };
            self.flush();
            if stopping {
                if let Some(files) = self.lock_files().as_mut() {
                    let _ = files.close();
                }
                return;
            }
        }
    }

    /// Writes what is left, closes the file and ends the flusher.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.tick.notify_all();
    }
}

fn eprintln_once(text: &str) {
    use std::io::Write as _;
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(std::io::stderr(), "{text}");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::files::files_of;
    use crate::logs::record::Stamp;

    fn settings(dir: &std::path::Path, keep_unshipped: bool, max_dir_bytes: u64) -> FileSettings {
        FileSettings {
            dir: dir.to_owned(),
            name: "t".into(),
            max_file_bytes: 4096,
            max_file_age: None,
            max_dir_bytes,
            keep_unshipped,
        }
    }

    fn stamps(dir: &std::path::Path) -> Vec<Stamp> {
        let mut stamps = Vec::new();
        for file in files_of(dir, "t").unwrap() {
            let text = std::fs::read_to_string(file.path).unwrap();
            stamps.extend(text.lines().map(|l| Stamp::of_line(l.as_bytes()).unwrap()));
        }
        stamps
    }

    #[test]
    fn records_are_numbered_from_zero_without_a_hole_early_ones_included() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::new(settings(dir.path(), false, 1 << 20));
        sink.log(1, ",\"msg\":\"before the name\"");
        sink.set_identity(Identity { agent: "a".into(), boot: "b".into() }).unwrap();
        for i in 0..999 {
            sink.log(2, &format!(",\"i\":{i}"));
        }
        sink.flush();
        let seqs: Vec<u64> = stamps(dir.path()).iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
        assert!(files_of(dir.path(), "t").unwrap().len() > 1, "4 KiB files: rotated");
    }

    #[test]
    fn records_the_directory_refuses_are_named_in_a_record_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        // Files wait for a shipper and the cap is tiny: the buffer fills and is given up.
        let sink = Sink::new(settings(dir.path(), true, 8192));
        sink.set_identity(Identity { agent: "a".into(), boot: "b".into() }).unwrap();
        let padding = "x".repeat(1000);
        for i in 0..6000 {
            sink.log(3, &format!(",\"i\":{i},\"pad\":\"{padding}\""));
        }
        sink.flush();
        let lost = sink.stats.lost.load(Ordering::Relaxed);
        assert!(lost > 0);
        let text: String =
            files_of(dir.path(), "t").unwrap().into_iter().map(|f| std::fs::read_to_string(f.path).unwrap()).collect();
        assert!(text.len() <= 8192, "{}", text.len());
        // Every number written or given up, once.
        let written = text.lines().count() as u64;
        assert_eq!(written + lost, sink.next_seq() - sink_buffered(&sink));
    }

    #[test]
    fn a_logger_leaves_the_writing_to_the_flusher_until_the_buffer_passes_its_cap() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Sink::new(FileSettings { max_file_bytes: 1 << 30, ..settings(dir.path(), false, 1 << 30) });
        sink.set_identity(Identity { agent: "a".into(), boot: "b".into() }).unwrap();
        let written = || files_of(dir.path(), "t").unwrap().iter().map(|f| f.bytes).sum::<u64>();
        let padding = "x".repeat(200);
        let mut logged = 0;
        // Past a chunk (64 KiB) the flusher is woken; the logger itself writes nothing.
        while sink.lock().buffer.len() < 4 * CHUNK_BYTES {
            sink.log(1, &format!(",\"pad\":\"{padding}\""));
            logged += 1;
        }
        assert_eq!(written(), 0);
        // Past the cap (no flusher runs here) the logger writes, and memory stays bounded.
        while written() == 0 {
            sink.log(1, &format!(",\"pad\":\"{padding}\""));
            logged += 1;
            assert!(sink.lock().buffer.len() <= MAX_BUFFERED_BYTES + 1024);
        }
        sink.flush();
        assert_eq!(stamps(dir.path()).len(), logged);
    }

    fn sink_buffered(sink: &Sink) -> u64 {
        sink.lock().buffer.lines().count() as u64
    }
}
