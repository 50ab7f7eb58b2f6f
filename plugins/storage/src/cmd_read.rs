use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture};

use crate::io::{check_block, check_concurrency, join_workers, throughput};
use crate::Files;

/// Devices anyone may read from; every other path must be inside the storage dir.
const ALLOWED_DEVICES: [&str; 2] = ["/dev/urandom", "/dev/zero"];
const MAX_AMOUNT: u64 = 1 << 40;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReadData {
    /// `/dev/urandom`, `/dev/zero`, or a file inside the storage dir (relative paths are taken from there).
    pub file: String,
    /// Bytes each reader reads (a short file is read again from its start).
    pub amount: ByteSize,
    /// Readers in parallel.
    #[serde(alias = "concurrent")]
    pub concurrency: u32,
    /// Size of each read call.
    pub block_size: ByteSize,
}

impl Default for ReadData {
    fn default() -> Self {
        Self { file: "/dev/urandom".into(), amount: ByteSize::mib(10), concurrency: 1, block_size: ByteSize::mib(1) }
    }
}

pub struct Read(pub Arc<Files>);

impl Read {
    /// The path to read, if it is allowed: a known device or a file inside the storage dir.
    fn allowed_path(&self, file: &str) -> Result<PathBuf, DataError> {
        if ALLOWED_DEVICES.contains(&file) {
            return Ok(PathBuf::from(file));
        }
        let path = self.0.dir.join(file);
        // One answer whether the file is missing, outside the dir, or not a regular file: a caller learns
        // nothing of what exists outside the storage dir, nor where the dir is.
        if !self.0.contains(&path) || !path.is_file() {
            return Err(outside(file));
        }
        Ok(path)
    }
}

fn outside(file: &str) -> DataError {
    let shown: String = file.chars().take(200).collect();
    DataError::field(
        "file",
        format!(
            "{shown:?} is not a regular file in the storage dir (paths are relative to it), nor one of {}",
            ALLOWED_DEVICES.join(", ")
        ),
    )
}

/// A checked read: the path that passed the check, and the data.
pub struct ReadPlan {
    path: PathBuf,
    data: ReadData,
}

impl Command for Read {
    type Data = ReadData;
    type Plan = ReadPlan;
    const NAME: &'static str = "read";
    const DESCRIPTION: &'static str = "Reads `amount` with each of `concurrency` readers from `file` \
        (/dev/urandom by default, or a file in the storage dir). Answers bytes and MB/s.";

    fn check(&self, data: ReadData, _: &ExecContext) -> Result<ReadPlan, DataError> {
        let path = self.allowed_path(&data.file)?;
        if data.amount.0 > MAX_AMOUNT {
            return Err(DataError::field("amount", format!("{} must be at most 1 TiB", data.amount)));
        }
        // 0 bytes or 0 readers read nothing, as in the reference.
        if data.concurrency != 0 {
            check_concurrency(data.concurrency)?;
        }
        check_block(data.block_size)?;
        Ok(ReadPlan { path, data })
    }

    fn execute(&self, plan: ReadPlan, ctx: ExecContext) -> JobFuture {
        let files = self.0.clone();
        let cancel = ctx.cancel.clone();
        Box::pin(async move {
            let flag = ctx.cancel_flag();
            let started = Instant::now();
            // As asked (relative to the storage dir): the answer does not say where the dir is.
            let shown = plan.data.file.clone();
            if plan.data.amount.0 == 0 || plan.data.concurrency == 0 {
                let mut answer = throughput(0, 0.0);
                answer["file"] = json!(shown);
                return Ok(answer);
            }
            let bytes = run_on_thread("storage/read", &cancel, move || {
                let file = open_confined(&plan.path, &plan.data.file, &files)?;
                read_all(&file, &plan.data, &flag)
            })
            .await?;
            let mut answer = throughput(bytes, started.elapsed().as_secs_f64());
            answer["file"] = json!(shown);
            Ok(answer)
        })
    }
}

/// Opens `path` without blocking and without following a final symlink, then checks what was really opened:
/// a regular file inside the storage dir, or one of the allowed devices. The check of the path in `check`
/// came earlier; a symlink or FIFO swapped in since is caught here, on the open file itself, and a FIFO's
/// open cannot hang (O_NONBLOCK).
fn open_confined(path: &Path, asked: &str, files: &Files) -> Result<File, CommandError> {
    let device = ALLOWED_DEVICES.contains(&asked);
    let flags = libc::O_NONBLOCK | if device { 0 } else { libc::O_NOFOLLOW };
    let file = File::options().read(true).custom_flags(flags).open(path).map_err(|_| outside(asked))?;
    let kind =
        file.metadata().map_err(|err| CommandError::Failed(format!("cannot stat {asked:?}: {err}")))?.file_type();
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap_or_default();
    let allowed = if device {
        kind.is_char_device() && opened == Path::new(asked)
    } else {
        kind.is_file() && opened.starts_with(&files.dir)
    };
    if !allowed {
        return Err(outside(asked).into());
    }
    Ok(file)
}

fn read_all(file: &File, data: &ReadData, cancel: &CancelFlag) -> Result<u64, CommandError> {
    // Each reader reopens the very file already checked (through /proc/self/fd, not its path), so it has an
    // offset of its own and nothing can be swapped in between.
    let reopen = format!("/proc/self/fd/{}", file.as_raw_fd());
    let (amount, block) = (data.amount.0, data.block_size.0 as usize);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..data.concurrency)
            .map(|_| {
                scope.spawn(|| -> std::io::Result<u64> {
                    let mut file = File::open(&reopen)?;
                    let mut buf = vec![0u8; block];
                    let mut total = 0;
                    while total < amount && !cancel.is_raised() {
                        let want = (amount - total).min(block as u64) as usize;
                        match file.read(&mut buf[..want])? {
                            0 if total == 0 && file.stream_position()? == 0 => {
                                return Err(std::io::Error::other("the file is empty"))
                            }
                            0 => {
                                file.seek(SeekFrom::Start(0))?;
                            }
                            n => total += n as u64,
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        join_workers(handles, "reader", CommandError::Failed)
    })
}
