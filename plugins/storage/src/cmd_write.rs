use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{
    run_on_thread, ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture, Progress,
    Reservation,
};

use crate::files::CreateError;
use crate::io::{check_block, check_concurrency, join_workers, noise_block, throughput};
use crate::Files;

const MAX_FILES: u32 = 10_000;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WriteData {
    /// Bytes written to each file.
    pub amount: ByteSize,
    /// New files to create and write.
    pub files: u32,
    /// Writers in parallel (each writes whole files); defaults to `files`.
    #[serde(alias = "concurrent")]
    pub concurrency: Option<u32>,
    /// Size of each write call.
    pub block_size: ByteSize,
    /// fsync each file at the end, so the bytes are on the device and not only in the page cache.
    pub fsync: bool,
}

impl Default for WriteData {
    fn default() -> Self {
        Self { amount: ByteSize::mib(10), files: 1, concurrency: None, block_size: ByteSize::mib(1), fsync: true }
    }
}

/// A checked write: its data, writer count, and the disk it reserved (`limits.max_disk` and free space).
pub struct WritePlan {
    data: WriteData,
    writers: u32,
    disk: Reservation,
    space: Reservation,
}

pub struct Write(pub Arc<Files>);

impl Command for Write {
    type Data = WriteData;
    type Plan = WritePlan;
    const NAME: &'static str = "write";
    const DESCRIPTION: &'static str = "Writes `amount` to each of `files` new files in the storage dir with \
        `concurrency` writers, fsyncs them, and keeps them open. Answers bytes and MB/s.";

    fn check(&self, data: WriteData, ctx: &ExecContext) -> Result<WritePlan, DataError> {
        if data.files > MAX_FILES {
            return Err(DataError::field("files", format!("{} must be at most {MAX_FILES}", data.files)));
        }
        // Nothing to write (0 files or 0 bytes) is nothing done, as in the reference: no file is created.
        let nothing = data.files == 0 || data.amount.0 == 0;
        let writers = if nothing { 1 } else { data.concurrency.unwrap_or(data.files.min(256)) };
        check_concurrency(writers)?;
        check_block(data.block_size)?;
        let total = data.amount.0.saturating_mul(u64::from(data.files));
        let disk = ctx.budgets.disk.reserve("amount", total)?;
        let space = self.0.reserve_space("amount", total)?;
        Ok(WritePlan { writers: writers.min(data.files), data, disk, space })
    }

    fn execute(&self, plan: WritePlan, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        let cancel = ctx.cancel.clone();
        Box::pin(async move {
            let flag = ctx.cancel_flag();
            let writers = plan.writers;
            let started = Instant::now();
            if plan.data.files == 0 || plan.data.amount.0 == 0 {
                let mut answer = throughput(0, 0.0);
                answer["ids"] = json!([]);
                answer["writers"] = json!(0);
                return Ok(answer);
            }
            let progress = ctx.progress.clone();
            let (bytes, indexes) = run_on_thread("storage/write", &cancel, move || {
                let mut indexes = Vec::new();
                let outcome = create_and_write(&files, plan, &flag, &mut indexes, &progress);
                // A write that does not finish keeps nothing: its files go, and with them their reservations.
                if outcome.is_err() || flag.is_raised() {
                    files.discard(&indexes);
                    return Err(outcome.err().unwrap_or(CommandError::Cancelled));
                }
                outcome.map(|bytes| (bytes, indexes))
            })
            .await?;
            let mut answer = throughput(bytes, started.elapsed().as_secs_f64());
            answer["ids"] = json!(indexes);
            answer["writers"] = json!(writers);
            Ok(answer)
        })
    }
}

/// One file to write: its handle, its byte counter, and the free space promised to it.
struct Target {
    file: Arc<File>,
    written: Arc<AtomicU64>,
    space: Reservation,
}

/// Creates the files (held at once, so `/abort` deletes them even mid-write) and writes them; `indexes` gets
/// every file created, for the caller to discard if this does not finish.
fn create_and_write(
    files: &Files,
    mut plan: WritePlan,
    cancel: &CancelFlag,
    indexes: &mut Vec<u64>,
    progress: &Progress,
) -> Result<u64, CommandError> {
    let amount = plan.data.amount.0;
    let mut targets = Vec::with_capacity(plan.data.files as usize);
    for _ in 0..plan.data.files {
        let (index, file, written) =
            files.create("write", cancel, plan.disk.split(amount)).map_err(|err| match err {
                CreateError::Cancelled => CommandError::Cancelled,
                CreateError::Io(err) => {
                    CommandError::Refused(format!("cannot create a file in {}: {err}", files.dir.display()))
                }
            })?;
        indexes.push(index);
        targets.push(Target { file, written, space: plan.space.split(amount) });
    }
    write_all(targets, &plan.data, plan.writers, cancel, progress)
}

/// How often (in bytes written, over every writer) `storage/write` says how far it got.
const PROGRESS_EVERY_BYTES: u64 = 8 << 20;

/// `writers` threads take whole files from a shared queue; returns the bytes written.
fn write_all(
    targets: Vec<Target>,
    data: &WriteData,
    writers: u32,
    cancel: &CancelFlag,
    progress: &Progress,
) -> Result<u64, CommandError> {
    let all = data.amount.0.saturating_mul(targets.len() as u64);
    let done = AtomicU64::new(0);
    let queue = Mutex::new(targets);
    let block = noise_block(data.block_size.0 as usize, 0x07a5_51e5);
    let (amount, fsync) = (data.amount.0, data.fsync);
    let next = || queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<u64> {
                    let mut total = 0;
                    while let Some(mut target) = next() {
                        let mut left = amount;
                        while left > 0 && !cancel.is_raised() {
                            let n = left.min(block.len() as u64) as usize;
                            (&*target.file).write_all(&block[..n])?;
                            target.written.fetch_add(n as u64, Ordering::Relaxed);
                            left -= n as u64;
                            total += n as u64;
                            // How far all writers got (`GET /jobs`, the CLI's line), every 8 MiB.
                            let now = done.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
                            if now / PROGRESS_EVERY_BYTES != (now - n as u64) / PROGRESS_EVERY_BYTES || now == all {
                                progress.set(json!({ "written_bytes": now, "size_bytes": all }));
                            }
                            // What is on disk now shows in the free space itself.
                            target.space.shrink_to(left);
                        }
                        if fsync && !cancel.is_raised() {
                            target.file.sync_all()?;
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        join_workers(handles, "writer", CommandError::Refused)
    })
}
