//! The last bytes of a stream, however much it says: a `run:` command's output is kept this way, so a
//! command that prints a gigabyte costs the runner a bounded buffer, not the gigabyte.

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// How much of each of a `run:` command's streams is kept: its last MiB.
pub const KEPT: usize = 1 << 20;

/// The end of a stream and how much came before it.
#[derive(Debug, Default)]
pub struct Tail {
    /// The last [`KEPT`] bytes at most.
    pub bytes: Vec<u8>,
    /// Every byte the stream carried, kept or not.
    pub total: u64,
}

/// Reads `stream` to its end, keeping its last `keep` bytes. The buffer grows to at most twice `keep`
/// before its front is dropped, so each byte is moved at most once on average.
pub async fn read_tail(mut stream: impl AsyncRead + Unpin, keep: usize) -> std::io::Result<Tail> {
    let mut tail = Tail::default();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        tail.total += read as u64;
        tail.bytes.extend_from_slice(&chunk[..read]);
        if tail.bytes.len() > keep.saturating_mul(2) {
            let cut = tail.bytes.len() - keep;
            tail.bytes.drain(..cut);
        }
    }
    if tail.bytes.len() > keep {
        let cut = tail.bytes.len() - keep;
        tail.bytes.drain(..cut);
    }
    Ok(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_stream_leaves_its_last_bytes_and_its_count() {
        let text: Vec<u8> = (0..10_000u32).flat_map(|i| format!("{i}\n").into_bytes()).collect();
        let tail = read_tail(&text[..], 100).await.unwrap();
        assert_eq!(tail.total, text.len() as u64);
        assert_eq!(tail.bytes, &text[text.len() - 100..]);
        let short = read_tail(&b"hi\n"[..], 100).await.unwrap();
        assert_eq!((short.bytes.as_slice(), short.total), (&b"hi\n"[..], 3));
    }
}
