//! Shared by `read` and `write`: block sizes, a buffer that does not compress, throughput.

use serde_json::{json, Value};
use tarsier_plugin::{ByteSize, CommandError, DataError};

pub const MIN_BLOCK: u64 = 512;
pub const MAX_BLOCK: u64 = 64 << 20;
pub const MAX_CONCURRENCY: u32 = 256;

pub fn check_block(block: ByteSize) -> Result<(), DataError> {
    if block.0 < MIN_BLOCK || block.0 > MAX_BLOCK {
        return Err(DataError::field(
            "block_size",
            format!("{block} must be between {} and {}", ByteSize(MIN_BLOCK), ByteSize(MAX_BLOCK)),
        ));
    }
    Ok(())
}

pub fn check_concurrency(concurrency: u32) -> Result<(), DataError> {
    if concurrency == 0 || concurrency > MAX_CONCURRENCY {
        return Err(DataError::field("concurrency", format!("{concurrency} must be between 1 and {MAX_CONCURRENCY}")));
    }
    Ok(())
}

/// A block of pseudo-random bytes, so a compressing or deduplicating filesystem cannot make writes free.
pub fn noise_block(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut block = Vec::with_capacity(len);
    while block.len() < len {
        // xorshift64: fast, and good enough to defeat compression.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block.truncate(len);
    block
}

pub fn throughput(bytes: u64, seconds: f64) -> Value {
    json!({
        "bytes": bytes,
        "seconds": seconds,
        "mb_per_s": bytes as f64 / 1e6 / seconds.max(f64::EPSILON),
    })
}

/// Joins reader or writer threads and adds up the bytes they moved; the first failure wins.
pub fn join_workers(
    workers: Vec<std::thread::ScopedJoinHandle<'_, std::io::Result<u64>>>,
    what: &str,
    on_error: fn(String) -> CommandError,
) -> Result<u64, CommandError> {
    let mut total = 0;
    for worker in workers {
        total += worker
            .join()
            .map_err(|_| CommandError::Failed(format!("a {what} thread panicked")))?
            .map_err(|err| on_error(format!("{what} failed: {err}")))?;
    }
    Ok(total)
}
