//! The process's logs: lines for a person on stderr (text or JSON), and, for an agent with `logging.dir`,
//! the activity log: numbered JSON records in rotated files that a shipper can deliver and a reader can
//! check for holes (docs/logs.md).
//!
//! - [`record`]: one record's line and the stamp every record carries (agent, boot, sequence, time).
//! - [`files`]: the rotated files and the directory's cap.
//! - [`sink`]: numbering and buffered writing; [`layer`]: the tracing layer in front of it; [`metrics`]: its
//!   figures for `/metrics`.

mod acks;
pub mod checkpoint;
pub mod files;
mod layer;
pub mod metrics;
pub mod record;
pub mod ship;
pub mod sink;
pub mod verify;

use std::sync::{Arc, OnceLock};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

pub use files::FileSettings;
pub use record::Identity;
pub use sink::{FileLogStats, Sink};

/// The target of the activity events that would crowd stderr (every command started, every wave copy sent
/// or taken): the file log writes them; stderr shows them only when `TARSIER_LOG` names this target.
pub const ACTIVITY: &str = "tarsier::activity";

/// stderr's filter when `TARSIER_LOG` is not set.
const STDERR_DEFAULT: &str = "info,tarsier::activity=warn";

/// How stderr's lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StderrFormat {
    Text,
    Json,
}

/// The activity log of this process, once installed.
static FILE_LOG: OnceLock<Arc<Sink>> = OnceLock::new();

/// The shipper's figures, when this process ships its file log.
static SHIPPING: OnceLock<Arc<ship::ShipStats>> = OnceLock::new();

pub fn shipping() -> Option<&'static Arc<ship::ShipStats>> {
    SHIPPING.get()
}

/// Ships this process's file log from now on, on a thread of its own, until [`Shipping::finish`].
pub fn start_shipping(config: ship::ShipConfig) -> Option<Shipping> {
    let sink = FILE_LOG.get()?;
    let (dir, name) = sink.dir_and_name();
    let shipper = ship::Shipper::new(config, dir, name);
    let _ = SHIPPING.set(shipper.stats.clone());
    let stop = tokio_util::sync::CancellationToken::new();
    match shipper.run_on_own_thread(stop.clone(), false) {
        Ok(outcome) => {
            // Said when it happens (a shipper that cannot start stops at once), not only at the agent's end.
            let ended = tokio::spawn(async move {
                if let Ok(Err(err)) = outcome.await {
                    tracing::error!(error = %format!("{err:#}"), "log shipping stopped");
                }
            });
            Some(Shipping { stop, ended })
        }
        Err(err) => {
            tracing::error!(error = %err, "log shipping cannot start: no thread for it");
            None
        }
    }
}

/// The agent's shipper, running.
pub struct Shipping {
    stop: tokio_util::sync::CancellationToken,
    ended: tokio::task::JoinHandle<()>,
}

impl Shipping {
    /// At the agent's end, once it no longer serves: what the log holds is written out, the shipper makes
    /// its last pass (bounded by [`ship::LAST_PASS`]) and stops. Without it, the records of the last moments
    /// would wait on disk for the next start, and be lost with a container's disk.
    pub async fn finish(self) {
        if let Some(sink) = FILE_LOG.get() {
            sink.flush();
        }
        self.stop.cancel();
        match tokio::time::timeout(ship::LAST_PASS + std::time::Duration::from_secs(1), self.ended).await {
            Ok(_) => {}
            Err(_) => {
                tracing::warn!("log shipping: the last pass did not end in time; the rest goes at the next start")
            }
        }
    }
}

/// The file log, when this process writes one.
pub fn file_log() -> Option<&'static Arc<Sink>> {
    FILE_LOG.get()
}

/// Keeps the logs going: dropping it (at the end of `main`) writes what is queued for stderr (for at most
/// about a second) and closes the activity log's file.
pub struct LogGuard {
    _stderr: tracing_appender::non_blocking::WorkerGuard,
    flusher: Option<(Arc<Sink>, std::thread::JoinHandle<()>)>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((sink, flusher)) = self.flusher.take() {
            sink.stop();
            let _ = flusher.join();
        }
    }
}

/// Installs the process's logging: stderr at `TARSIER_LOG`'s filter (default `info`), and with `file` the
/// activity log at `file_level` whatever stderr's filter says. Records logged before
/// [`Sink::set_identity`] wait for it.
pub fn install(format: StderrFormat, file: Option<(FileSettings, tracing::Level)>) -> std::io::Result<LogGuard> {
    let filter = EnvFilter::try_from_env("TARSIER_LOG").unwrap_or_else(|_| EnvFilter::new(STDERR_DEFAULT));
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        // The queue is allocated up front: the default 128,000 lines cost 4 MiB of an idle agent's RSS.
        .buffered_lines_limit(8_192)
        .thread_name("tarsier-log")
        .finish(std::io::stderr());
    let stderr = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi).log_internal_errors(false);
    let stderr = match format {
        StderrFormat::Text => stderr.with_filter(filter).boxed(),
        StderrFormat::Json => stderr.json().with_filter(filter).boxed(),
    };
    let mut flusher = None;
    let file_layer = match file {
        Some((settings, level)) => {
            let sink = Sink::new(settings);
            let thread = std::thread::Builder::new().name("tarsier-logfile".into()).spawn({
                let sink = sink.clone();
                move || sink.run_flusher()
            })?;
            let _ = FILE_LOG.set(sink.clone());
            flusher = Some((sink.clone(), thread));
            Some(layer::FileLayer { sink }.with_filter(tracing_subscriber::filter::LevelFilter::from_level(level)))
        }
        None => None,
    };
    // A second install in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(stderr).with(file_layer).try_init();
    Ok(LogGuard { _stderr: guard, flusher })
}
