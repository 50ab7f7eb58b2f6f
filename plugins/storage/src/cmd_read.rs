use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{ByteSize, CancelFlag, Command, CommandError, DataError, ExecContext, JobFuture, Limits};

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
        if !path.exists() {
            return Err(DataError::field("file", format!("{} does not exist", path.display())));
        }
        if !self.0.contains(&path) || !path.is_file() {
            return Err(DataError::field(
                "file",
                format!(
                    "{file} is not a file inside the storage dir {} (nor one of {})",
                    self.0.dir.display(),
                    ALLOWED_DEVICES.join(", ")
                ),
            ));
        }
        Ok(path)
    }
}

impl Command for Read {
    type Data = ReadData;
    const NAME: &'static str = "read";
    const DESCRIPTION: &'static str = "Reads `amount` with each of `concurrency` readers from `file` \
        (/dev/urandom by default, or a file in the storage dir). Answers bytes and MB/s.";

    fn check(&self, data: &ReadData, _: &Limits) -> Result<(), DataError> {
        self.allowed_path(&data.file)?;
        if data.amount.0 == 0 || data.amount.0 > MAX_AMOUNT {
            return Err(DataError::field("amount", format!("{} must be between 1 byte and 1 TiB", data.amount)));
        }
        check_concurrency(data.concurrency)?;
        check_block(data.block_size)
    }

    fn execute(&self, data: ReadData, ctx: ExecContext) -> JobFuture {
        let path = self.allowed_path(&data.file);
        let cancel = ctx.cancel_flag();
        Box::pin(async move {
            let path = path?;
            let started = Instant::now();
            let shown = path.display().to_string();
            let bytes = tokio::task::spawn_blocking(move || read_all(&path, &data, &cancel))
                .await
                .map_err(|err| CommandError::Failed(format!("read worker died: {err}")))??;
            let mut answer = throughput(bytes, started.elapsed().as_secs_f64());
            answer["file"] = json!(shown);
            Ok(answer)
        })
    }
}

fn read_all(path: &Path, data: &ReadData, cancel: &CancelFlag) -> Result<u64, CommandError> {
    let handles: Vec<_> = (0..data.concurrency)
        .map(|_| {
            let (path, cancel) = (path.to_owned(), cancel.clone());
            let (amount, block) = (data.amount.0, data.block_size.0 as usize);
            std::thread::spawn(move || -> std::io::Result<u64> {
                let mut file = File::open(&path)?;
                let mut buf = vec![0u8; block];
                let mut total = 0;
                while total < amount && !cancel.is_raised() {
                    let want = (amount - total).min(block as u64) as usize;
                    match file.read(&mut buf[..want])? {
                        0 if total == 0 && file.stream_position()? == 0 => {
                            return Err(std::io::Error::other(format!("{} is empty", path.display())))
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
}
