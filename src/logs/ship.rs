//! The shipper: delivers a log directory's records to NATS JetStream, at least once. The agent runs it
//! beside its own file log (`logging.ship`); `tarsier ship DIR` runs the same code as a sidecar for any
//! program that writes such files.
//!
//! Each pass reads the directory's files oldest first from their checkpoints, publishes every whole line
//! as one message with the record's `agent/boot/seq` as its message id (JetStream stores a message id once
//! within its duplicate window), waits for the acknowledgements (at most [`MAX_IN_FLIGHT`] outstanding),
//! and moves the checkpoint only over acknowledged lines. A finished file wholly acknowledged is deleted
//! once its `retention` has passed. When the broker is away, the files stay (the writer stops at its
//! directory cap, never deleting what was not delivered) and the shipper retries with backoff and jitter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use serde::Deserialize;
use tarsier_plugin::HumanDuration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::sync::CancellationToken;

use super::acks::{AckWindow, SendError};
use super::checkpoint::Checkpoints;
use super::files::{files_of, LogFile};
use super::record::{now_ms, Stamp, StampRef};

/// Publishes waiting for their acknowledgements at once. PERF(logship): 1,024 against 256 took 5 % less CPU
/// and 11 % less time to ship 200,000 records to a local nats-server (acknowledgements come back in bigger
/// batches: fewer reads and wakes per record); a shipper killed sends at most this many again.
const MAX_IN_FLIGHT: usize = 1024;
/// Bytes shipped from one file before the pass moves on (the checkpoint is saved, old files deleted).
const BYTES_PER_TURN: u64 = 8 * 1024 * 1024;
/// Bytes read from a file at once.
const READ_CHUNK: usize = 256 * 1024;
/// Acknowledgements between two saves of the checkpoint within a file.
const SAVE_EVERY: usize = 8192;
/// How often the directory is looked at for new records.
const POLL: Duration = Duration::from_millis(200);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The most a shipper told to stop spends on its last pass (what was written up to then).
pub const LAST_PASS: Duration = Duration::from_secs(3);
/// How often the backlog is counted while the servers refuse the stream.
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// How long an acknowledgement is waited for before the publish counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// `logging.ship` and `tarsier ship`'s flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipConfig {
    /// NATS servers, `nats://host:4222` (several: the members of a cluster).
    pub urls: Vec<String>,
    /// The JetStream stream; default `TARSIER_LOGS`.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The subject records are published on; default `tarsier.logs`.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// A NATS credentials file (`.creds`: a user JWT and its NKey seed).
    pub credentials: Option<PathBuf>,
    /// A file holding a NATS token.
    pub token_file: Option<PathBuf>,
    /// A CA certificate (PEM) the servers' TLS certificates are checked against; TLS is then required.
    pub ca: Option<PathBuf>,
    /// How long a delivered file is kept before it is deleted; default 0s.
    #[serde(default)]
    pub retention: HumanDuration,
    /// Create the stream (file storage, the subject, a 2 min duplicate window) when it does not exist.
    #[serde(default = "yes")]
    pub create_stream: bool,
    /// Copies of the stream a created stream keeps (a JetStream cluster: 3 survive a server's loss).
    #[serde(default = "one")]
    pub replicas: usize,
}

fn one() -> usize {
    1
}

fn default_stream() -> String {
    "TARSIER_LOGS".into()
}
fn default_subject() -> String {
    "tarsier.logs".into()
}
fn yes() -> bool {
    true
}

impl ShipConfig {
    /// Checks what the broker would refuse later, naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("logging.ship.urls: give at least one NATS server, such as nats://127.0.0.1:4222".into());
        }
        for url in &self.urls {
            let rest = ["nats://", "tls://"].iter().find_map(|s| url.strip_prefix(s)).unwrap_or(url);
            if rest.is_empty() || rest.contains(['/', ' ', '?', '#']) {
                return Err(format!("logging.ship.urls: `{url}` is not a NATS server's host:port"));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("logging.ship.replicas {}: from 1 to 5", self.replicas));
        }
        let name_ok = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !name_ok(&self.stream) {
            return Err(format!("logging.ship.stream `{}`: letters, digits, `_` and `-` only", self.stream));
        }
        let token_ok = |t: &str| name_ok(t);
        if self.subject.len() > 255 || !self.subject.split('.').all(token_ok) {
            return Err(format!(
                "logging.ship.subject `{}`: dot-separated tokens of letters, digits, `_` and `-` (no wildcards)",
                self.subject
            ));
        }
        Ok(())
    }
}

/// What the shipper has done, for `/metrics`, `/runtime` and `tarsier ship`'s lines.
#[derive(Debug, Default)]
pub struct ShipStats {
    pub shipped_records: AtomicU64,
    pub shipped_bytes: AtomicU64,
    /// Acknowledged as already stored (the broker's dedupe found a record sent twice).
    pub duplicates: AtomicU64,
    pub retries: AtomicU64,
    pub deleted_files: AtomicU64,
    /// Lines a broker can never take (larger than its max payload): skipped, each logged.
    pub rejected: AtomicU64,
    pub pending_records: AtomicU64,
    pub pending_bytes: AtomicU64,
    /// Age of the oldest record not yet acknowledged, ms (0 when none waits).
    pub oldest_pending_ms: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl ShipStats {
    pub fn runtime(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "shipped_records": get(&self.shipped_records),
            "shipped_bytes": get(&self.shipped_bytes),
            "duplicates": get(&self.duplicates),
            "retries": get(&self.retries),
            "deleted_files": get(&self.deleted_files),
            "rejected": get(&self.rejected),
            "pending_records": get(&self.pending_records),
            "pending_bytes": get(&self.pending_bytes),
            "oldest_pending_seconds": get(&self.oldest_pending_ms) as f64 / 1000.0,
            "last_error": self.last_error.lock().ok().and_then(|e| e.clone()),
        })
    }

    fn failed(&self, why: String) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %why, "log shipping: will retry");
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(why);
        }
    }
}

/// A JetStream context on the configured servers, with their credentials and TLS. It connects in the
/// background (and again after every loss): a broker that is away at start is not an error here.
pub async fn connect(config: &ShipConfig) -> anyhow::Result<jetstream::Context> {
    let mut options = async_nats::ConnectOptions::new()
        .name("tarsier-shipper")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5));
    if let Some(path) = &config.credentials {
        options = options.credentials_file(path).await?;
    }
    if let Some(path) = &config.token_file {
        let token = crate::sys::files::read_bounded(path, 64 * 1024, "NATS token file")?;
        options = options.token(token.text.trim().to_owned());
    }
    if let Some(ca) = &config.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let addresses: Vec<async_nats::ServerAddr> = config.urls.iter().map(|u| u.parse()).collect::<Result<_, _>>()?;
    let client = options.connect(addresses).await?;
    let mut context = jetstream::new(client);
    context.set_timeout(ACK_TIMEOUT);
    Ok(context)
}

/// Lines not yet acknowledged in a file: counted once, then kept up to date as the file grows and as lines
/// are acknowledged, so the backlog is known without reading it again every pass.
#[derive(Debug, Default, Clone, Copy)]
struct Pending {
    /// The file's length and the acknowledged offset this count is for.
    len: u64,
    acked: u64,
    lines: u64,
}

pub struct Shipper {
    config: ShipConfig,
    dir: PathBuf,
    /// Only the files of this name (the agent's own); every `.jsonl` file when empty.
    name: String,
    pub stats: Arc<ShipStats>,
    /// A stream the servers refuse for its settings ends the run (`tarsier ship`) instead of being asked
    /// for again (the agent, whose operator may mend the servers' side).
    stop_when_misconfigured: bool,
}

/// Why the stream could not be made.
#[derive(Debug, PartialEq, Eq)]
enum StreamTrouble {
    /// The servers may say yes later: away, electing, a cluster still forming, a timeout.
    Passing(String),
    /// The servers refuse the stream as configured, and will until a setting changes: what and which.
    Misconfigured(String),
}

impl StreamTrouble {
    fn of(err: &jetstream::context::CreateStreamError, config: &ShipConfig) -> Self {
        use jetstream::context::CreateStreamErrorKind as Kind;
        use jetstream::ErrorCode as Code;
        let (stream, subject, replicas) = (&config.stream, &config.subject, config.replicas);
        let setting = match err.kind() {
            Kind::EmptyStreamName | Kind::InvalidStreamName => Some("logging.ship.stream (tarsier ship --stream)"),
            Kind::JetStream(js) => match js.error_code() {
                Code::STREAM_SUBJECT_OVERLAP => Some("logging.ship.subject (--subject): another stream takes it"),
                Code::STREAM_NAME_EXIST => {
                    Some("logging.ship.stream (--stream): a stream of that name has other settings")
                }
                Code::STREAM_REPLICAS_NOT_SUPPORTED => Some(
                    "logging.ship.replicas (--replicas): more than the servers' cluster has, or a server not clustered",
                ),
                Code::NAME_NOT_MATCH_SUBJECT | Code::STREAM_INVALID_CONFIG | Code::BAD_REQUEST | Code::INVALID_JSON => {
                    Some("logging.ship.stream and subject (--stream, --subject)")
                }
                Code::JETSTREAM_NOT_ENABLED | Code::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT | Code::NO_ACCOUNT => {
                    Some("the servers' JetStream (not enabled for this account)")
                }
                _ => None,
            },
            _ => None,
        };
        match setting {
            Some(setting) => StreamTrouble::Misconfigured(format!(
                "the servers refuse the stream {stream:?} (subject {subject:?}, {replicas} replica(s)): {err}; \
                 change {setting}; or make the stream yourself and set logging.ship.create_stream: false"
            )),
            None => StreamTrouble::Passing(format!("the stream: {err}")),
        }
    }
}

/// How far a file is acknowledged, and the lines acknowledged to get there in this turn.
#[derive(Debug, Clone, Copy)]
struct Acked {
    offset: u64,
    lines: u64,
}

/// Why a file's shipping stopped short; what was acknowledged so far comes with it.
struct Stopped {
    done: Acked,
    why: String,
}

impl Shipper {
    pub fn new(config: ShipConfig, dir: PathBuf, name: String) -> Self {
        Self { config, dir, name, stats: Arc::new(ShipStats::default()), stop_when_misconfigured: false }
    }

    /// A stream the servers refuse for its settings ends the run with that error (`tarsier ship`: a
    /// sidecar that fails is seen, where one that retries forever is not).
    pub fn stop_when_misconfigured(mut self) -> Self {
        self.stop_when_misconfigured = true;
        self
    }

    async fn ensure_stream(&self, context: &jetstream::Context) -> Result<(), StreamTrouble> {
        if !self.config.create_stream {
            return Ok(());
        }
        let config = jetstream::stream::Config {
            name: self.config.stream.clone(),
            subjects: vec![self.config.subject.clone()],
            duplicate_window: Duration::from_secs(120),
            storage: jetstream::stream::StorageType::File,
            num_replicas: self.config.replicas,
            ..Default::default()
        };
        context.get_or_create_stream(config).await.map(|_| ()).map_err(|err| StreamTrouble::of(&err, &self.config))
    }

    /// [`Shipper::run`] on a thread of its own with a single-threaded runtime: the NATS connection's task
    /// and the publishing loop then take turns on one thread instead of waking each other across two
    /// (PERF(logship): a futex wake and a context switch per publish were 40 % of the shipper's CPU in a
    /// profile of `tarsier ship`), and shipping never takes a worker from the agent's requests. The
    /// receiver gets the outcome once it stops.
    pub fn run_on_own_thread(
        self,
        stop: CancellationToken,
        until_shipped: bool,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<anyhow::Result<()>>> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name("tarsier-ship".into()).spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(self.run(stop, until_shipped)),
                Err(err) => Err(anyhow::anyhow!("the shipper's runtime: {err}")),
            };
            let _ = done.send(result);
        })?;
        Ok(outcome)
    }

    /// Ships until `stop`, then makes one last pass (at most [`LAST_PASS`]); with `until_shipped`, returns
    /// once every finished file is delivered and no file is open (a batch run of `tarsier ship --once`).
    pub async fn run(&self, stop: CancellationToken, until_shipped: bool) -> anyhow::Result<()> {
        let mut checkpoints = Checkpoints::load(&self.dir)?;
        let context = connect(&self.config).await?;
        let mut stream_ready = false;
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut backoff = FIRST_BACKOFF;
        let mut said: Option<String> = None;
        loop {
            let outcome = if stream_ready {
                self.pass(&context, &mut checkpoints, &mut pending).await
            } else {
                let made = self.ensure_stream(&context).await;
                if made.is_err() {
                    // No stream takes records yet: what waits is counted all the same, so the backlog shows.
                    if let Err(why) = self.count_what_waits(&mut checkpoints, &mut pending).await {
                        tracing::warn!(error = %why, "log shipping: cannot count the backlog");
                    }
                }
                match made {
                    Ok(()) => {
                        stream_ready = true;
                        Ok(false)
                    }
                    Err(StreamTrouble::Passing(why)) => Err(why),
                    Err(StreamTrouble::Misconfigured(why)) if self.stop_when_misconfigured => {
                        anyhow::bail!(why)
                    }
                    Err(StreamTrouble::Misconfigured(why)) => {
                        backoff = MAX_BACKOFF;
                        if !self.wait_while_refused(why, &mut said, &stop, &mut checkpoints, &mut pending).await {
                            return Ok(());
                        }
                        continue;
                    }
                }
            };
            let pause = match outcome {
                Ok(done) => {
                    backoff = FIRST_BACKOFF;
                    if done && until_shipped {
                        return Ok(());
                    }
                    POLL
                }
                Err(why) => {
                    self.stats.failed(why);
                    let pause = jitter(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    pause
                }
            };
            tokio::select! {
                _ = stop.cancelled() => {
                    if stream_ready {
                        // One last pass over what was written until now: the process may not come back.
                        let last = self.pass(&context, &mut checkpoints, &mut pending);
                        if let Ok(Err(why)) = tokio::time::timeout(LAST_PASS, last).await {
                            tracing::warn!(error = %why, "log shipping: the last pass stopped short");
                        }
                    }
                    return Ok(());
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// The servers refuse the stream as configured: said once as an error (again only when the reason
    /// changes), kept as the last error, and asked again after the longest backoff, the backlog counted every
    /// second meanwhile (records keep coming). The records wait on disk, nothing is lost, and mending the
    /// servers' side needs no restart. False when `stop` came meanwhile.
    async fn wait_while_refused(
        &self,
        why: String,
        said: &mut Option<String>,
        stop: &CancellationToken,
        checkpoints: &mut Checkpoints,
        pending: &mut HashMap<String, Pending>,
    ) -> bool {
        if said.as_ref() != Some(&why) {
            tracing::error!(error = %why, "log shipping: the stream is refused");
            *said = Some(why.clone());
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.stats.last_error.lock() {
            *last = Some(why);
        }
        let until = tokio::time::Instant::now() + jitter(MAX_BACKOFF);
        while tokio::time::Instant::now() < until {
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(COUNT_EVERY.min(until - tokio::time::Instant::now())) => {}
            }
            if let Err(why) = self.count_what_waits(checkpoints, pending).await {
                tracing::warn!(error = %why, "log shipping: cannot count the backlog");
            }
        }
        true
    }

    /// One look at the directory: ships what is new, deletes what is delivered and old enough. `Ok(true)`
    /// when nothing is left to ship and no file is being written.
    async fn pass(
        &self,
        context: &jetstream::Context,
        checkpoints: &mut Checkpoints,
        pending: &mut HashMap<String, Pending>,
    ) -> Result<bool, String> {
        // The backlog first: a pass that then waits on an absent broker does not leave it stale.
        let files = self.count_what_waits(checkpoints, pending).await?;
        let mut result = Ok(());
        let mut all_done = true;
        for file in &files {
            let mut acked = checkpoints.acked(file.key()).min(file.bytes);
            if acked < file.bytes && result.is_ok() {
                let done = match self.ship_file(context, file, acked, checkpoints).await {
                    Ok(done) => done,
                    Err(stopped) => {
                        result = Err(format!("{}: {}", file.file_name, stopped.why));
                        stopped.done
                    }
                };
                acked_since_count(pending.get_mut(file.key()), acked, done);
                acked = done.offset;
                checkpoints.set(file.key(), acked);
            }
            all_done &= !file.open && acked == file.bytes;
            if !file.open && acked == file.bytes && self.retention_passed(&file.path) {
                if std::fs::remove_file(&file.path).is_ok() {
                    self.stats.deleted_files.fetch_add(1, Ordering::Relaxed);
                }
                pending.remove(file.key());
            }
        }
        checkpoints.save().map_err(|err| format!("the checkpoint file: {err}"))?;
        if result.is_ok() && all_done {
            // Everything acknowledged: the backlog counted before this pass's shipping is gone.
            self.stats.pending_records.store(0, Ordering::Relaxed);
            self.stats.pending_bytes.store(0, Ordering::Relaxed);
            self.stats.oldest_pending_ms.store(0, Ordering::Relaxed);
        }
        result.map(|()| all_done)
    }

    /// Lists the files and counts what in them waits for an acknowledgement into the stats (the backlog's
    /// records, bytes and oldest age), also while no stream takes records; the files, for a pass to ship.
    async fn count_what_waits(
        &self,
        checkpoints: &mut Checkpoints,
        pending: &mut HashMap<String, Pending>,
    ) -> Result<Vec<LogFile>, String> {
        let files = files_of(&self.dir, &self.name).map_err(|err| format!("{}: {err}", self.dir.display()))?;
        let names: Vec<String> = files.iter().map(|f| f.key().to_owned()).collect();
        checkpoints.keep_only(&names);
        pending.retain(|name, _| names.contains(name));
        for file in &files {
            self.count_pending(file, checkpoints.acked(file.key()).min(file.bytes), pending).await;
        }
        self.note_backlog(&files, checkpoints, pending).await;
        Ok(files)
    }

    fn retention_passed(&self, path: &Path) -> bool {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::now());
        modified.elapsed().unwrap_or_default() >= self.config.retention.0
    }

    /// Publishes `file`'s whole lines from `acked` on and waits for their acknowledgements; returns how far
    /// it is acknowledged (a line end) and how many lines that took.
    ///
    /// The checkpoint is saved every [`SAVE_EVERY`] acknowledgements too, so a shipper killed in the middle
    /// of a big file sends at most that many again.
    async fn ship_file(
        &self,
        context: &jetstream::Context,
        file: &LogFile,
        acked: u64,
        checkpoints: &mut Checkpoints,
    ) -> Result<Acked, Stopped> {
        let mut done = Acked { offset: acked, lines: 0 };
        let stop = |done: Acked, why: String| Stopped { done, why };
        let mut reader = match tokio::fs::File::open(&file.path).await {
            Ok(reader) => reader,
            // Renamed (rotated) or deleted since the directory was listed: the next pass finds it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(done),
            Err(err) => return Err(stop(done, err.to_string())),
        };
        reader.seek(std::io::SeekFrom::Start(acked)).await.map_err(|e| stop(done, e.to_string()))?;
        let mut reader = reader.take(BYTES_PER_TURN);
        // Read in chunks; each record is a slice of its chunk, so its payload is never copied before
        // async-nats writes it out (PERF(logship): a line buffer and a copy per record were 4 % of the CPU).
        let mut buffer = bytes::BytesMut::new();
        let mut window = AckWindow::open(&context.client(), ACK_TIMEOUT).await.map_err(|why| stop(done, why))?;
        let mut sent_to = acked;
        let mut since_saved = 0;
        // Made once: a clone is a reference count, where the configured String would be copied per record.
        let subject = async_nats::Subject::from(self.config.subject.as_str());
        loop {
            let Some(last_end) = memchr::memrchr(b'\n', &buffer) else {
                buffer.reserve(READ_CHUNK);
                match reader.read_buf(&mut buffer).await {
                    Ok(0) => break, // the end, or a line still being written: it goes next pass, whole
                    Ok(_) => continue,
                    Err(err) => return Err(stop(done, err.to_string())),
                }
            };
            let lines = buffer.split_to(last_end + 1).freeze();
            let mut at = 0;
            while at < lines.len() {
                let newline = at + memchr::memchr(b'\n', &lines[at..]).unwrap_or(lines.len() - 1 - at);
                let read = (newline + 1 - at) as u64;
                let (start, end) = (sent_to, sent_to + read);
                sent_to = end;
                let record = lines.slice(at..newline);
                at = newline + 1;
                let id = match StampRef::of_line(&record) {
                    Ok(stamp) => stamp.message_id(),
                    // A line of another format (the sidecar form): its place in its file identifies it.
                    Err(_) => format!("{}@{start}", file.key()),
                };
                match window.publish(&subject, &id, record, end, read).await {
                    Ok(()) => {}
                    Err(SendError::TooLarge) => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(file = %file.file_name, offset = start, bytes = read, "log shipping: a line larger than the broker's max payload is skipped");
                        window.skip(end);
                    }
                    Err(SendError::Other(why)) => {
                        self.settle(&mut window, &mut done).await;
                        return Err(stop(done, why));
                    }
                }
                if window.len() >= MAX_IN_FLIGHT {
                    // A missing acknowledgement: the later ones cannot move the checkpoint past it, so they
                    // are not waited for (each would wait its own timeout).
                    if let Err(why) = self.settle_one(&mut window, &mut done).await {
                        return Err(stop(done, why));
                    }
                    since_saved += 1;
                    if since_saved >= SAVE_EVERY {
                        since_saved = 0;
                        checkpoints.set(file.key(), done.offset);
                        checkpoints.save().map_err(|err| stop(done, format!("the checkpoint file: {err}")))?;
                    }
                }
            }
        }
        while !window.is_empty() {
            if let Err(why) = self.settle_one(&mut window, &mut done).await {
                return Err(stop(done, why));
            }
        }
        Ok(done)
    }

    /// Waits for the oldest publish's acknowledgement; the checkpoint moves over its line.
    async fn settle_one(&self, window: &mut AckWindow, done: &mut Acked) -> Result<(), String> {
        let Some(settled) = window.settle_first().await? else { return Ok(()) };
        if settled.stored {
            self.stats.shipped_records.fetch_add(1, Ordering::Relaxed);
            self.stats.shipped_bytes.fetch_add(settled.bytes, Ordering::Relaxed);
            if settled.duplicate {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        done.offset = settled.end;
        done.lines += 1;
        Ok(())
    }

    /// After a publish could not be sent: the acknowledgements of those sent before still move the
    /// checkpoint, in order, up to the first that does not come; the rest are sent again next time.
    async fn settle(&self, window: &mut AckWindow, done: &mut Acked) {
        while !window.is_empty() {
            if self.settle_one(window, done).await.is_err() {
                return;
            }
        }
    }

    /// Keeps the count of lines not yet acknowledged in `file` current, reading only what it has not read:
    /// the lines added since the last count, less those acknowledged since. A file that cannot be read now
    /// (renamed by a rotation since the listing) keeps its last count until the next pass.
    async fn count_pending(&self, file: &LogFile, acked: u64, pending: &mut HashMap<String, Pending>) {
        let known = pending.get(file.key()).copied();
        // Listed while being written, finished since (a pass that waited on the broker takes seconds).
        let renamed = file.path.with_file_name(file.key());
        let file = &LogFile { path: if file.path.exists() { file.path.clone() } else { renamed }, ..file.clone() };
        let counted = match known {
            Some(p) if p.acked <= acked && p.len <= file.bytes => {
                let shipped = count_lines(&file.path, p.acked, acked.min(p.len)).await;
                let grown = count_lines(&file.path, p.len.max(acked), file.bytes).await;
                match (shipped, grown) {
                    (Some(shipped), Some(grown)) => {
                        Pending { len: file.bytes, acked, lines: (p.lines + grown).saturating_sub(shipped) }
                    }
                    _ => return,
                }
            }
            _ => match count_lines(&file.path, acked, file.bytes).await {
                Some(lines) => Pending { len: file.bytes, acked, lines },
                None => return,
            },
        };
        pending.insert(file.key().to_owned(), counted);
    }

    async fn note_backlog(&self, files: &[LogFile], checkpoints: &Checkpoints, pending: &HashMap<String, Pending>) {
        let (lines, bytes) =
            pending.values().fold((0, 0), |(l, b), p| (l + p.lines, b + p.len.saturating_sub(p.acked)));
        self.stats.pending_records.store(lines, Ordering::Relaxed);
        self.stats.pending_bytes.store(bytes, Ordering::Relaxed);
        let oldest = files.iter().find(|f| checkpoints.acked(f.key()) < f.bytes && f.path.exists());
        let age = match oldest {
            Some(file) => first_stamp(&file.path, checkpoints.acked(file.key()))
                .await
                .map_or(0, |stamp| now_ms().saturating_sub(stamp.ts_ms)),
            None => 0,
        };
        self.stats.oldest_pending_ms.store(age, Ordering::Relaxed);
    }
}

/// Takes the lines just acknowledged off a file's pending count, so the next count need not read them
/// again (PERF(logship): counting them by reading was 3.5 % of the shipper's CPU).
fn acked_since_count(counted: Option<&mut Pending>, from: u64, done: Acked) {
    let Some(counted) = counted else { return };
    if counted.acked != from {
        return; // counted at another offset: the next count reads what it needs
    }
    *counted = if done.offset <= counted.len {
        Pending { acked: done.offset, lines: counted.lines.saturating_sub(done.lines), ..*counted }
    } else {
        // Shipped past what was counted (the file grew since): nothing counted is left.
        Pending { len: done.offset, acked: done.offset, lines: 0 }
    };
}

/// Lines ending in `[from, to)` of a file; `None` when it cannot be read.
async fn count_lines(path: &Path, from: u64, to: u64) -> Option<u64> {
    if to <= from {
        return Some(0);
    }
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(from)).await.ok()?;
    let mut reader = file.take(to - from);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = 0;
    loop {
        let read = reader.read(&mut buffer).await.ok()?;
        if read == 0 {
            return Some(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buffer[..read]).count() as u64;
    }
}

/// The stamp of the record at `offset` of a file, when it is one.
async fn first_stamp(path: &Path, offset: u64) -> Option<Stamp> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(offset)).await.ok()?;
    let mut reader = tokio::io::BufReader::new(file.take(64 * 1024));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await.ok()?;
    Stamp::of_line(line.strip_suffix(b"\n").unwrap_or(&line)).ok()
}

/// Between half and all of `pause`: shippers that lost one broker do not all come back at the same instant.
fn jitter(pause: Duration) -> Duration {
    pause.mul_f64(0.5 + rand::random::<f64>() * 0.5)
}
