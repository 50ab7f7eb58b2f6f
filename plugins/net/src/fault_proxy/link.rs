//! One proxied connection: two pipes, the client's bytes to the upstream (`upstream` toxics) and the
//! upstream's back to the client (`downstream` toxics). Each pipe reads into a bounded queue (64 chunks of at
//! most 16 KiB: a slow toxic holds back the sender, it never buffers without limit) and writes what the toxics
//! in force let through, re-reading them when they change, so a toxic added or removed acts on open
//! connections too, as in Toxiproxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::toxic::{Effect, Stream, Toxic};
use crate::alarm::Alarm;

use super::metrics::Counters;

const CHUNK: usize = 16 * 1024;
const QUEUED_CHUNKS: usize = 64;

struct Chunk {
    data: Vec<u8>,
    arrived: Instant,
}

/// How a pipe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source closed; the close was passed on.
    Eof,
    /// A toxic closed the connection (`timeout`, `limit_data`, `down`).
    Close,
    /// A toxic reset it (`reset_peer`).
    Reset,
    /// The other pipe, the proxy or an abort stopped it.
    Stopped,
}

/// Runs the connection until both pipes end, a toxic closes or resets it, or `close` fires.
pub async fn run(
    client: TcpStream,
    upstream: TcpStream,
    toxics: watch::Receiver<Arc<Vec<Toxic>>>,
    close: CancellationToken,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let stop = close.child_token();
    let ends = Ends { stop: stop.clone(), reset: Arc::new(AtomicBool::new(false)) };
    let up = pipe(client_read, upstream_write, Stream::Upstream, toxics.clone(), ends.clone(), counters.clone());
    let down = pipe(upstream_read, client_write, Stream::Downstream, toxics, ends, counters);
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let end = tokio::select! {
            end = &mut up, if !up_done => { up_done = true; end }
            end = &mut down, if !down_done => { down_done = true; end }
        };
        if matches!(end, End::Close | End::Reset) {
            // The toxic's end is the connection's: the other pipe stops too (its halves dropped closes them).
            stop.cancel();
        }
    }
}

/// How relaying with no toxic in force stopped.
enum Relayed {
    Ended(End),
    /// The toxics changed (false: their sender is gone, no change will come).
    Changed(bool),
}

/// What the two pipes of a connection share: the stop of both, and whether the connection was reset (each pipe
/// then sets SO_LINGER 0 on the socket it writes to, so that dropping both sends RSTs, not FINs).
#[derive(Clone)]
struct Ends {
    stop: CancellationToken,
    reset: Arc<AtomicBool>,
}

/// A pipe's waits for its toxics (latency, bandwidth, slicer, slow_close) on an alarm of its own, made at the
/// first wait: tokio's 1 ms timer rang up to 2 ms late, and a 50 ms latency toxic read 51-53 ms at the median.
#[derive(Default)]
struct Waits {
    alarm: Option<Alarm>,
}

impl Waits {
    /// Waits until `until`; false when the pipe was stopped first.
    async fn until(&mut self, until: Instant, stop: &CancellationToken) -> bool {
        let alarm = self.alarm.get_or_insert_with(|| Alarm::new(None, Duration::ZERO));
        loop {
            let rang = tokio::select! {
                rang = alarm.until(until) => rang,
                _ = stop.cancelled() => return false,
            };
            if rang.is_ok() {
                return true;
            }
            // The timerfd failed (it never has here): this wait and the next on tokio's timer, which cannot fail.
            alarm.fall_back_to_tokio();
        }
    }
}

async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stream: Stream,
    mut toxics: watch::Receiver<Arc<Vec<Toxic>>>,
    ends: Ends,
    counters: Arc<Counters>,
) -> End {
    let stop = ends.stop.clone();
    let bytes = match stream {
        Stream::Upstream => &counters.bytes_upstream,
        Stream::Downstream => &counters.bytes_downstream,
    };
    let mut draws = Draws::default();
    let mut buffer = vec![0; CHUNK];
    let mut toxics_open = true;
    // Read again only when the toxics change, not for every chunk relayed.
    let mut effects = draws.in_force(&toxics.borrow_and_update(), stream);
    let end = loop {
        if !effects.is_empty() {
            let effects = std::mem::take(&mut effects);
            match toxic_pipe(&mut from, &mut to, stream, &mut toxics, &stop, bytes, &mut draws, effects).await {
                Piped::Ended(end) => break end,
                // No toxic in force any more and nothing queued: back to relaying as it comes.
                Piped::Clear => continue,
            }
        }
        // PERF(proxy): with no toxic in force a pipe reads and writes here, one buffer, no queue, no copy. The
        // waits for a stop and a toxic change are made once and kept across reads: made again per read, each
        // joined and left the proxy-wide waiter list under its lock (7 % of the relay's CPU in a profile).
        let relayed = {
            let stopped = stop.cancelled();
            let changed = toxics.changed();
            tokio::pin!(stopped, changed);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut stopped => break Relayed::Ended(End::Stopped),
                    changed = &mut changed, if toxics_open => break Relayed::Changed(changed.is_ok()),
                    read = from.read(&mut buffer) => match read {
                        Ok(0) | Err(_) => {
                            let _ = to.shutdown().await;
                            break Relayed::Ended(End::Eof);
                        }
                        Ok(n) => {
                            if to.write_all(&buffer[..n]).await.is_err() {
                                break Relayed::Ended(End::Close);
                            }
                            bytes.inc_by(n as u64);
                        }
                    },
                }
            }
        };
        match relayed {
            Relayed::Ended(end) => break end,
            Relayed::Changed(open) => {
                toxics_open = open;
                effects = draws.in_force(&toxics.borrow_and_update(), stream);
            }
        }
    };
    if end == End::Reset {
        ends.reset.store(true, Ordering::Relaxed);
    }
    if ends.reset.load(Ordering::Relaxed) {
        reset_on_close(&to);
        // Dropped, a write half would shut its direction down first (a FIN); forgotten, the socket closes with
        // its read half, and the RST is all the peer sees.
        to.forget();
    }
    end
}

/// SO_LINGER 0: closing the socket sends a RST, not a FIN (and never blocks, as a longer linger would). Used by
/// `reset_peer` here and by the HTTP relay's `http_drop` with `reset`.
pub(super) fn reset_on_close(socket: &OwnedWriteHalf) {
    let reset = libc::linger { l_onoff: 1, l_linger: 0 };
    let _ = nix::sys::socket::setsockopt(socket.as_ref(), nix::sys::socket::sockopt::Linger, &reset);
}

/// A connection's draws against its toxics' toxicity, and when each came into force on it: kept for the
/// connection's life, whichever way its pipes relay.
#[derive(Default)]
struct Draws {
    applies: HashMap<String, bool>,
    since: HashMap<String, Instant>,
}

impl Draws {
    /// The effects in force on a pipe of `stream`, each toxic drawn once per connection against its toxicity.
    fn in_force(&mut self, toxics: &[Toxic], stream: Stream) -> Vec<(String, Effect)> {
        let mut effects = Vec::new();
        for toxic in toxics.iter().filter(|t| t.stream == stream || t.effect == Effect::Down) {
            let applies =
                *self.applies.entry(toxic.name.clone()).or_insert_with(|| rand::random::<f64>() < toxic.toxicity);
            if applies {
                self.since.entry(toxic.name.clone()).or_insert_with(Instant::now);
                effects.push((toxic.name.clone(), toxic.effect.clone()));
            }
        }
        self.since.retain(|name, _| effects.iter().any(|(n, _)| n == name));
        effects
    }
}

/// How relaying through toxics ended.
enum Piped {
    Ended(End),
    /// Every toxic went and the queue is empty.
    Clear,
}

/// Relaying while toxics are in force: a reader fills a bounded queue while the writer lets the chunks out as
/// the toxics say, re-reading them when they change.
#[allow(clippy::too_many_arguments)]
async fn toxic_pipe(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    stream: Stream,
    toxics: &mut watch::Receiver<Arc<Vec<Toxic>>>,
    stop: &CancellationToken,
    bytes: &prometheus::IntCounter,
    draws: &mut Draws,
    effects: Vec<(String, Effect)>,
) -> Piped {
    let (queue, mut queued) = mpsc::channel::<Chunk>(QUEUED_CHUNKS);
    // True while the reader waits for room in the queue with a chunk in hand: it must not be dropped then.
    let holding = AtomicBool::new(false);
    let holding = &holding;
    // `move`: the reader owns the queue's sender, so the writer sees the queue close when the reader ends.
    let reader = async move {
        // One buffer read into, each chunk copied out at its size (a fresh zeroed 16 KiB per read cost more
        // than the relaying).
        let mut buffer = vec![0; CHUNK];
        loop {
            match from.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Chunk { data: buffer[..n].to_vec(), arrived: Instant::now() };
                    holding.store(true, Ordering::Relaxed);
                    let sent = queue.send(chunk).await;
                    holding.store(false, Ordering::Relaxed);
                    if sent.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let writer = async {
        let mut waits = Waits::default();
        let mut effects = effects;
        let mut toxics_open = true;
        let (mut last_due, mut bandwidth_free, mut passed) = (Instant::now(), Instant::now(), 0u64);
        // A `limit_data` counts from when it came into force on this connection, as Toxiproxy's does.
        let mut limit_from: HashMap<String, u64> = HashMap::new();
        loop {
            // A `timeout` or `reset_peer` in force ends the connection at its time, data or not.
            let deadline = effects
                .iter()
                .filter_map(|(name, effect)| match effect {
                    Effect::Timeout { timeout } if !timeout.is_zero() => {
                        Some((draws.since[name] + *timeout, End::Close))
                    }
                    Effect::ResetPeer { timeout } => Some((draws.since[name] + *timeout, End::Reset)),
                    _ => None,
                })
                .min_by_key(|(at, _)| *at);
            if let Some((_, end)) = deadline.filter(|(at, _)| *at <= Instant::now()) {
                return Piped::Ended(end);
            }
            if effects.is_empty() && queued.is_empty() && !holding.load(Ordering::Relaxed) {
                return Piped::Clear;
            }
            let sleep_until = deadline.map_or(Instant::now() + Duration::from_secs(3600), |(at, _)| at);
            let chunk = tokio::select! {
                biased;
                _ = stop.cancelled() => return Piped::Ended(End::Stopped),
                _ = tokio::time::sleep_until(sleep_until.into()), if deadline.is_some() => {
                    return Piped::Ended(deadline.map_or(End::Close, |(_, end)| end));
                }
                chunk = queued.recv() => chunk,
                changed = toxics.changed(), if toxics_open => {
                    toxics_open = changed.is_ok();
                    if toxics_open {
                        effects = draws.in_force(&toxics.borrow_and_update(), stream);
                    }
                    continue;
                }
            };
            let Some(chunk) = chunk else {
                // The source closed: pass the close on, late with `slow_close`.
                for (_, effect) in &effects {
                    if let Effect::SlowClose { delay } = effect {
                        if !waits.until(Instant::now() + *delay, stop).await {
                            return Piped::Ended(End::Stopped);
                        }
                    }
                }
                let _ = to.shutdown().await;
                return Piped::Ended(End::Eof);
            };
            let mut data = &chunk.data[..];
            let mut cut = false;
            let mut slicer = None;
            let mut rate = None;
            for (name, effect) in &effects {
                match effect {
                    Effect::Down => return Piped::Ended(End::Close),
                    // Silence: what comes is dropped until the toxic goes (or its timeout closes).
                    Effect::Timeout { .. } => data = &[],
                    Effect::Latency { latency, jitter } => {
                        let spread = jitter.as_secs_f64() * (2.0 * rand::random::<f64>() - 1.0);
                        let delay = Duration::from_secs_f64((latency.as_secs_f64() + spread).max(0.0));
                        // Chunks keep their order: one never overtakes the one before.
                        last_due = last_due.max(chunk.arrived + delay);
                        if !waits.until(last_due, stop).await {
                            return Piped::Ended(End::Stopped);
                        }
                    }
                    Effect::LimitData { bytes } => {
                        let from = *limit_from.entry(name.clone()).or_insert(passed);
                        let left = bytes.saturating_sub(passed - from) as usize;
                        if data.len() >= left {
                            data = &data[..left];
                            cut = true;
                        }
                    }
                    Effect::Slicer { average_size, size_variation, delay } => {
                        slicer = Some((*average_size, *size_variation, *delay));
                    }
                    Effect::Bandwidth { rate_kb } => rate = Some(*rate_kb * 1000),
                    // An HTTP fault never reaches a byte pipe (a `tcp` proxy refuses them).
                    Effect::SlowClose { .. } | Effect::ResetPeer { .. } | Effect::Http(_) => {}
                }
            }
            while !data.is_empty() {
                let size = match (slicer, rate) {
                    (Some((average, variation, _)), _) => {
                        let spread = variation as f64 * (2.0 * rand::random::<f64>() - 1.0);
                        ((average as f64 + spread).round() as usize).clamp(1, data.len())
                    }
                    // Bandwidth: at most a tenth of a second's worth at once, so a slow rate stays smooth.
                    (None, Some(rate)) => ((rate / 10).max(1) as usize).min(data.len()),
                    (None, None) => data.len(),
                };
                let (piece, rest) = data.split_at(size);
                if let Some(rate) = rate {
                    bandwidth_free = bandwidth_free.max(Instant::now());
                    if !waits.until(bandwidth_free, stop).await {
                        return Piped::Ended(End::Stopped);
                    }
                    bandwidth_free += Duration::from_secs_f64(piece.len() as f64 / rate as f64);
                }
                if to.write_all(piece).await.is_err() {
                    return Piped::Ended(End::Close);
                }
                passed += piece.len() as u64;
                bytes.inc_by(piece.len() as u64);
                data = rest;
                let pause = slicer.map(|(_, _, delay)| delay).filter(|delay| !delay.is_zero() && !data.is_empty());
                if let Some(delay) = pause {
                    if !waits.until(Instant::now() + delay, stop).await {
                        return Piped::Ended(End::Stopped);
                    }
                }
            }
            if cut {
                return Piped::Ended(End::Close);
            }
        }
    };
    // Both at once on this task: the reader fills the queue while the writer lets it out. The reader is
    // dropped only waiting on a read (nothing read is lost) or once it ended.
    tokio::pin!(reader, writer);
    let mut read_all = false;
    loop {
        tokio::select! {
            () = &mut reader, if !read_all => read_all = true,
            piped = &mut writer => return piped,
        }
    }
}
