//! `logs/emit`: `count` numbered JSON records of `size` bytes at `rate` a second (or as fast as possible),
//! to the agent's stdout (what Docker's log driver or a Kubernetes node agent collects) or to rotated files in
//! `plugins.logs.dir` (what a file collector or `tarsier ship` reads). Each run is a boot of its own: the
//! verifier (`tarsier logs verify`) counts what the pipeline lost of it.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::logfiles::{valid_name, FileSettings, RotatingFiles, WriteError};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{
    run_on_thread, ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture,
    Progress, Reservation,
};

use crate::LogsConfig;

const MAX_COUNT: u64 = 100_000_000;
const MIN_SIZE: u64 = 128;
const MAX_SIZE: u64 = 64 * 1024;
const MAX_RATE: u64 = 10_000_000;
/// Records are written in chunks of about this much (one `write` each).
const CHUNK: usize = 64 * 1024;
/// How often the job says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// The agent's standard output.
    Stdout,
    /// Rotated files in `plugins.logs.dir`, named `NAME.RUN.FIRST_SEQ.jsonl` (`.open` while written).
    Dir,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EmitData {
    /// Records to write, numbered 0, 1, 2, ... (at most 100,000,000).
    pub count: u64,
    /// Bytes per record, its newline included (a `pad` field fills it): 128 B to 64 KiB.
    pub size: ByteSize,
    /// Records a second; 0 writes as fast as possible.
    pub rate: u64,
    /// `stdout` or `dir` (files in the agent's `plugins.logs.dir`; a body never names a path).
    pub to: Output,
    /// The files' name with `to: dir` (letters, digits, `.`, `_`, `-`).
    pub name: String,
    /// With `to: dir`, a file is closed and the next begun past this size.
    pub max_file_size: ByteSize,
}

impl Default for EmitData {
    fn default() -> Self {
        Self {
            count: 1000,
            size: ByteSize(256),
            rate: 0,
            to: Output::Stdout,
            name: "emit".into(),
            max_file_size: ByteSize::mib(16),
        }
    }
}

pub struct EmitPlan {
    data: EmitData,
    dir: PathBuf,
    max_dir_bytes: u64,
    /// The disk budget the files take (`to: dir`).
    _disk: Option<Reservation>,
}

pub struct Emit(pub Arc<LogsConfig>);

impl Command for Emit {
    type Data = EmitData;
    type Plan = EmitPlan;
    const NAME: &'static str = "emit";
    const DESCRIPTION: &'static str = "Writes `count` numbered JSON log records of `size` bytes at `rate` a second to stdout or to rotated files, for a log pipeline to carry and `tarsier logs verify` to count.";

    fn check(&self, data: EmitData, ctx: &ExecContext) -> Result<EmitPlan, DataError> {
        if data.count > MAX_COUNT {
            return Err(DataError::field("count", format!("{} must be at most {MAX_COUNT}", data.count)));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&data.size.0) {
            return Err(DataError::field("size", format!("{} must be from 128 B to 64 KiB", data.size)));
        }
        if data.rate > MAX_RATE {
            return Err(DataError::field("rate", format!("{} must be at most {MAX_RATE} a second", data.rate)));
        }
        if data.rate > 0 {
            let seconds = data.count.div_ceil(data.rate);
            ctx.limits.check_duration("rate", HumanDuration::from_secs(seconds))?;
        }
        let mut disk = None;
        if data.to == Output::Dir {
            if !valid_name(&data.name) {
                return Err(DataError::field(
                    "name",
                    "letters, digits, `.`, `_` and `-` only, at most 64, not starting with `.`",
                ));
            }
            if !(4096..=1 << 30).contains(&data.max_file_size.0) {
                return Err(DataError::field("max_file_size", "must be from 4 KiB to 1 GiB"));
            }
            disk = Some(ctx.budgets.disk.reserve("count", data.count.saturating_mul(data.size.0))?);
        }
        Ok(EmitPlan { data, dir: self.0.dir.clone(), max_dir_bytes: self.0.max_dir_size.0, _disk: disk })
    }

    fn execute(&self, plan: EmitPlan, ctx: ExecContext) -> JobFuture {
        Box::pin(async move {
            let (flag, progress) = (ctx.cancel_flag(), ctx.progress.clone());
            run_on_thread("logs/emit", &ctx.cancel, move || emit(plan, &flag, &progress)).await
        })
    }
}

/// Where the chunks go.
enum Sink {
    Stdout,
    Files(Box<RotatingFiles>),
}

impl Sink {
    fn write(&mut self, chunk: &[u8], first_seq: u64) -> Result<(), CommandError> {
        match self {
            // One locked write per chunk: records of another writer to stdout never land inside one.
            Sink::Stdout => std::io::stdout()
                .lock()
                .write_all(chunk)
                .map_err(|err| CommandError::Refused(format!("cannot write to stdout: {err}"))),
            Sink::Files(files) => files.write(chunk, first_seq).map_err(|(_, err)| match err {
                WriteError::Full { .. } => CommandError::Refused(format!("plugins.logs.dir is full: {err}")),
                WriteError::Io(err) => CommandError::Refused(format!("cannot write to plugins.logs.dir: {err}")),
            }),
        }
    }
}

fn emit(plan: EmitPlan, cancel: &CancelFlag, progress: &Progress) -> Result<serde_json::Value, CommandError> {
    let data = &plan.data;
    let run = format!("{:016x}", rand::random::<u64>());
    let agent = hostname();
    let mut sink = match data.to {
        Output::Stdout => Sink::Stdout,
        Output::Dir => {
            std::fs::create_dir_all(&plan.dir).map_err(|err| {
                CommandError::Refused(format!("cannot create plugins.logs.dir {}: {err}", plan.dir.display()))
            })?;
            let settings = FileSettings {
                dir: plan.dir.clone(),
                name: data.name.clone(),
                max_file_bytes: data.max_file_size.0,
                max_file_age: None,
                max_dir_bytes: plan.max_dir_bytes,
                // The collector deletes what it took; emit never deletes a record it wrote.
                keep_unshipped: true,
            };
            let files = RotatingFiles::open(settings, &run)
                .map_err(|err| CommandError::Refused(format!("cannot open plugins.logs.dir: {err}")))?;
            Sink::Files(Box::new(files))
        }
    };
    let size = data.size.0 as usize;
    let started = Instant::now();
    let mut chunk = Vec::with_capacity(CHUNK + size);
    let (mut chunk_first, mut reported) = (0u64, Instant::now());
    let mut seq = 0;
    while seq < data.count && !cancel.is_raised() {
        if data.rate > 0 {
            let due = started + Duration::from_secs_f64(seq as f64 / data.rate as f64);
            let now = Instant::now();
            if due > now {
                // Ahead of the schedule: what is written so far goes out, then a short wait (the flag is
                // looked at again within 10 ms).
                if !chunk.is_empty() {
                    sink.write(&chunk, chunk_first)?;
                    chunk.clear();
                }
                std::thread::sleep((due - now).min(Duration::from_millis(10)));
                continue;
            }
        }
        if chunk.is_empty() {
            chunk_first = seq;
        }
        push_record(&mut chunk, &agent, &run, seq, size);
        seq += 1;
        if chunk.len() >= CHUNK {
            sink.write(&chunk, chunk_first)?;
            chunk.clear();
        }
        if reported.elapsed() >= PROGRESS_EVERY {
            reported = Instant::now();
            progress.set(json!({ "emitted": seq, "count": data.count }));
        }
    }
    if !chunk.is_empty() {
        sink.write(&chunk, chunk_first)?;
    }
    drop(sink);
    let seconds = started.elapsed().as_secs_f64();
    if cancel.is_raised() && seq < data.count {
        return Err(CommandError::Cancelled);
    }
    Ok(json!({
        "agent": agent,
        "run": run,
        "emitted": seq,
        "bytes": seq * size as u64,
        "seconds": seconds,
        "records_per_s": if seconds > 0.0 { seq as f64 / seconds } else { 0.0 },
        "to": data.to,
        "dir": (data.to == Output::Dir).then(|| plan.dir.display().to_string()),
    }))
}

/// One record of exactly `size` bytes: the stamp the verifier reads, then padding, then the newline.
fn push_record(chunk: &mut Vec<u8>, agent: &str, run: &str, seq: u64, size: usize) {
    let ts_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let start = chunk.len();
    let _ = write!(
        chunk,
        "{{\"agent\":{agent:?},\"boot\":\"{run}\",\"seq\":{seq},\"ts_ms\":{ts_ms},\"msg\":\"logs/emit\",\"pad\":\""
    );
    let used = chunk.len() - start + 3;
    chunk.resize(chunk.len() + size.saturating_sub(used), b'x');
    chunk.extend_from_slice(b"\"}\n");
}

/// The host's name (the records' `agent`: a plugin does not know the agent's), or `localhost`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_has_its_size_and_reads_as_json() {
        let mut chunk = Vec::new();
        push_record(&mut chunk, "host-1", "00ff", 42, 200);
        assert_eq!(chunk.len(), 200);
        assert_eq!(chunk.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&chunk).unwrap();
        assert_eq!((value["agent"].as_str(), value["seq"].as_u64()), (Some("host-1"), Some(42)));
    }
}
