use std::fs::File;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture, Limits};

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

pub struct Write(pub Arc<Files>);

impl Command for Write {
    type Data = WriteData;
    const NAME: &'static str = "write";
    const DESCRIPTION: &'static str = "Writes `amount` to each of `files` new files in the storage dir with \
        `concurrency` writers, fsyncs them, and keeps them open. Answers bytes and MB/s.";

    fn check(&self, data: &WriteData, limits: &Limits) -> Result<(), DataError> {
        if data.amount.0 == 0 {
            return Err(DataError::field("amount", "must be more than 0 bytes"));
        }
        if data.files == 0 || data.files > MAX_FILES {
            return Err(DataError::field("files", format!("{} must be between 1 and {MAX_FILES}", data.files)));
        }
        check_concurrency(data.concurrency.unwrap_or(data.files.min(256)))?;
        check_block(data.block_size)?;
        let total = data.amount.0.saturating_mul(u64::from(data.files));
        let free = free_bytes(&self.0.dir);
        if total > free {
            return Err(DataError::field(
                "amount",
                format!(
                    "{} × {} files needs {}, but {} has only {} free",
                    data.amount,
                    data.files,
                    ByteSize(total),
                    self.0.dir.display(),
                    ByteSize(free)
                ),
            ));
        }
        let (_, held) = self.0.totals();
        Limits::check_budget("amount", "disk", "limits.max_disk", limits.max_disk.map(|m| m.0), held, total, |b| {
            ByteSize(b).to_string()
        })
    }

    fn execute(&self, data: WriteData, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        let cancel = ctx.cancel_flag();
        Box::pin(async move {
            let mut targets = Vec::with_capacity(data.files as usize);
            for _ in 0..data.files {
                let (index, file, written) = files.create("write").map_err(|err| {
                    CommandError::Refused(format!("cannot create a file in {}: {err}", files.dir.display()))
                })?;
                targets.push((index, file, written));
            }
            let indexes: Vec<u64> = targets.iter().map(|t| t.0).collect();
            let writers = data.concurrency.unwrap_or(data.files.min(256)).min(data.files);
            let started = Instant::now();
            let bytes = tokio::task::spawn_blocking(move || write_all(targets, &data, writers, &cancel))
                .await
                .map_err(|err| CommandError::Failed(format!("write worker died: {err}")))??;
            let mut answer = throughput(bytes, started.elapsed().as_secs_f64());
            answer["files"] = json!(indexes);
            answer["writers"] = json!(writers);
            Ok(answer)
        })
    }
}

type Target = (u64, Arc<File>, Arc<AtomicU64>);

/// `writers` threads take files from a shared cursor and write each whole; returns the bytes written.
fn write_all(targets: Vec<Target>, data: &WriteData, writers: u32, cancel: &CancelFlag) -> Result<u64, CommandError> {
    let targets = Arc::new(targets);
    let next = Arc::new(AtomicUsize::new(0));
    let block = Arc::new(noise_block(data.block_size.0 as usize, 0x07a5_51e5));
    let (amount, fsync) = (data.amount.0, data.fsync);
    let handles: Vec<_> = (0..writers)
        .map(|_| {
            let (targets, next, block, cancel) = (targets.clone(), next.clone(), block.clone(), cancel.clone());
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut total = 0;
                while let Some((_, file, written)) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut left = amount;
                    while left > 0 && !cancel.is_raised() {
                        let n = left.min(block.len() as u64) as usize;
                        (&**file).write_all(&block[..n])?;
                        written.fetch_add(n as u64, Ordering::Relaxed);
                        left -= n as u64;
                        total += n as u64;
                    }
                    if fsync {
                        file.sync_all()?;
                    }
                }
                Ok(total)
            })
        })
        .collect();
    join_workers(handles, "writer", CommandError::Refused)
}

fn free_bytes(dir: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(dir).map(|s| s.blocks_available().saturating_mul(s.fragment_size())).unwrap_or(u64::MAX)
}
