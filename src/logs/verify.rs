//! The verifier: reads records as a pipeline delivered them (a JetStream stream, or a file of JSON lines
//! another pipeline collected) and tells, per agent and boot, what arrived: the numbers expected (0 up to
//! the highest seen), those received, the holes with their ranges, duplicates, records that came out of
//! order, and how long they took (from the record's `ts_ms` to the broker's receipt, for a stream).
//!
//! A boot's last records lost together are not a hole: nothing says they existed. A hole is a number below
//! one that arrived.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::Stamp;

/// Numbers above this in one boot are not tracked (a bitmap of 16 MiB): a record claiming one is counted
/// as unreadable rather than allocating for it.
const MAX_SEQ: u64 = 128 * 1024 * 1024;
/// Hole ranges listed per boot (their count is always exact).
const MAX_RANGES: usize = 20;

#[derive(Default)]
struct Boot {
    seen: Vec<u64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    last_seq: Option<u64>,
    max_seq: u64,
    delays_ms: Vec<u64>,
}

impl Boot {
    fn add(&mut self, seq: u64, delay_ms: Option<u64>) {
        self.received += 1;
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
        } else {
            self.seen[word] |= 1 << bit;
        }
        if self.last_seq.is_some_and(|last| seq < last) {
            self.out_of_order += 1;
        }
        self.last_seq = Some(seq);
        self.max_seq = self.max_seq.max(seq);
        if let Some(delay) = delay_ms {
            self.delays_ms.push(delay);
        }
    }

    fn has(&self, seq: u64) -> bool {
        self.seen.get((seq / 64) as usize).is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

/// Collects records and gives the [`Verdict`].
#[derive(Default)]
pub struct Verifier {
    boots: BTreeMap<(String, String), Boot>,
    unreadable: u64,
}

impl Verifier {
    /// One delivered record (its line without the newline), and when the pipeline took it, if known.
    pub fn add(&mut self, line: &[u8], received_ms: Option<u64>) {
        match Stamp::of_line(line) {
            Ok(stamp) if stamp.seq < MAX_SEQ => {
                let delay = received_ms.map(|r| r.saturating_sub(stamp.ts_ms));
                self.boots.entry((stamp.agent, stamp.boot)).or_default().add(stamp.seq, delay);
            }
            _ => self.unreadable += 1,
        }
    }

    pub fn verdict(self) -> Verdict {
        let boots = self
            .boots
            .into_iter()
            .map(|((agent, boot), mut b)| {
                let expected = b.max_seq + 1;
                let mut holes = Vec::new();
                let mut missing = 0;
                let mut seq = 0;
                while seq < expected {
                    if b.has(seq) {
                        seq += 1;
                        continue;
                    }
                    let first = seq;
                    while seq < expected && !b.has(seq) {
                        seq += 1;
                    }
                    missing += seq - first;
                    if holes.len() < MAX_RANGES {
                        holes.push([first, seq - 1]);
                    }
                }
                b.delays_ms.sort_unstable();
                let at = |q: f64| -> Option<u64> {
                    let n = b.delays_ms.len();
                    (n > 0).then(|| b.delays_ms[((n as f64 * q).ceil() as usize).clamp(1, n) - 1])
                };
                BootVerdict {
                    agent,
                    boot,
                    expected,
                    received: b.received,
                    missing,
                    holes,
                    duplicates: b.duplicates,
                    out_of_order: b.out_of_order,
                    delay_ms_p50: at(0.5),
                    delay_ms_p99: at(0.99),
                    delay_ms_max: b.delays_ms.last().copied(),
                }
            })
            .collect();
        Verdict { boots, unreadable: self.unreadable }
    }
}

#[derive(Debug, Serialize)]
pub struct BootVerdict {
    pub agent: String,
    pub boot: String,
    /// 0 up to the highest number that arrived.
    pub expected: u64,
    /// Records that arrived, duplicates included.
    pub received: u64,
    /// Numbers below the highest that never arrived.
    pub missing: u64,
    /// Their ranges, inclusive (the first 20).
    pub holes: Vec<[u64; 2]>,
    pub duplicates: u64,
    /// Records that arrived after one with a higher number.
    pub out_of_order: u64,
    pub delay_ms_p50: Option<u64>,
    pub delay_ms_p99: Option<u64>,
    pub delay_ms_max: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub boots: Vec<BootVerdict>,
    /// Lines that are not records of this format.
    pub unreadable: u64,
}

impl Verdict {
    pub fn holes(&self) -> u64 {
        self.boots.iter().map(|b| b.missing).sum()
    }

    /// A table for a person: a row per agent and boot, and a closing line.
    pub fn table(&self) -> String {
        let ms = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
        let mut out = format!(
            "{:<24} {:<16} {:>10} {:>10} {:>8} {:>10} {:>9} {:>8} {:>8} {:>8}  holes\n",
            "agent", "boot", "expected", "received", "missing", "duplicates", "disorder", "p50 ms", "p99 ms", "max ms"
        );
        for b in &self.boots {
            let holes: Vec<String> =
                b.holes.iter().map(|[a, z]| if a == z { a.to_string() } else { format!("{a}-{z}") }).collect();
            out += &format!(
                "{:<24} {:<16} {:>10} {:>10} {:>8} {:>10} {:>9} {:>8} {:>8} {:>8}  {}\n",
                b.agent,
                b.boot,
                b.expected,
                b.received,
                b.missing,
                b.duplicates,
                b.out_of_order,
                ms(b.delay_ms_p50),
                ms(b.delay_ms_p99),
                ms(b.delay_ms_max),
                holes.join(",")
            );
        }
        let received: u64 = self.boots.iter().map(|b| b.received).sum();
        out += &format!(
            "{} boot(s), {received} record(s) received, {} missing, {} duplicate(s), {} unreadable line(s)\n",
            self.boots.len(),
            self.holes(),
            self.boots.iter().map(|b| b.duplicates).sum::<u64>(),
            self.unreadable
        );
        out
    }
}

/// Longest line read from a file (a record is a few hundred bytes; a longer line is counted unreadable).
const MAX_LINE: usize = 1024 * 1024;

/// Feeds every line of a JSON-lines file (another pipeline's output) to `verifier`.
pub fn read_file(path: &std::path::Path, verifier: &mut Verifier) -> std::io::Result<()> {
    use std::io::{BufRead as _, Read as _};
    let file = std::fs::File::open(path)?;
    check_regular(&file, path)?;
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(());
        }
        if line.len() > MAX_LINE {
            verifier.unreadable += 1;
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            reader.read_until(b'\n', &mut rest)?;
            continue;
        }
        let record = line.strip_suffix(b"\n").unwrap_or(&line);
        if !record.is_empty() {
            verifier.add(record, None);
        }
    }
}

fn check_regular(file: &std::fs::File, path: &std::path::Path) -> std::io::Result<()> {
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} is not a regular file", path.display())))
    }
}

/// Feeds every message of a JetStream stream to `verifier`, from its first to the last it held when the
/// reading began; the delay is from each record's `ts_ms` to the broker's receipt.
pub async fn read_stream(
    config: &super::ship::ShipConfig,
    verifier: &mut Verifier,
    within: std::time::Duration,
) -> anyhow::Result<u64> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use futures_util::StreamExt as _;
    let context = super::ship::connect(config).await?;
    let mut stream = tokio::time::timeout(within, context.get_stream(&config.stream))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from the NATS servers within {within:?}"))??;
    let total = stream.info().await?.state.messages;
    if total == 0 {
        return Ok(0);
    }
    let consumer = stream.create_consumer(OrderedConfig::default()).await?;
    let mut messages = consumer.messages().await?;
    let deadline = tokio::time::Instant::now() + within;
    let mut read = 0;
    while read < total {
        let next = tokio::time::timeout_at(deadline, messages.next()).await;
        let message = match next {
            Ok(Some(message)) => message?,
            Ok(None) => break,
            Err(_) => anyhow::bail!("read {read} of the stream's {total} messages within {within:?}"),
        };
        let received_ms = message.info().ok().map(|info| (info.published.unix_timestamp_nanos() / 1_000_000) as u64);
        verifier.add(&message.payload, received_ms);
        read += 1;
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(agent: &str, boot: &str, seq: u64, ts: u64) -> Vec<u8> {
        format!(r#"{{"agent":"{agent}","boot":"{boot}","seq":{seq},"ts_ms":{ts}}}"#).into_bytes()
    }

    #[test]
    fn holes_duplicates_and_disorder_are_found_per_boot() {
        let mut verifier = Verifier::default();
        for seq in [0, 1, 2, 5, 4, 4, 9] {
            verifier.add(&line("a", "b1", seq, 1_000), Some(1_000 + seq));
        }
        for seq in 0..3 {
            verifier.add(&line("a", "b2", seq, 5), None);
        }
        verifier.add(b"not a record", None);
        let verdict = verifier.verdict();
        assert_eq!(verdict.unreadable, 1);
        assert_eq!(verdict.holes(), 4);
        let first = &verdict.boots[0];
        assert_eq!((first.expected, first.received, first.missing), (10, 7, 4));
        assert_eq!(first.holes, vec![[3, 3], [6, 8]]);
        assert_eq!((first.duplicates, first.out_of_order), (1, 1));
        assert_eq!((first.delay_ms_p50, first.delay_ms_max), (Some(4), Some(9)));
        let second = &verdict.boots[1];
        assert_eq!((second.expected, second.missing, second.delay_ms_p50), (3, 0, None));
    }
}
