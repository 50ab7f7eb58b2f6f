//! The progress a running load publishes twice a second (`GET /jobs`, the CLI's live line, a scenario's
//! guards): counters and latencies the workers hand over in batches, for the whole run so far and for the
//! last half second (`recent`), which is what a guard watching the load's error rate or p99 must see: a
//! p99 over the whole run turns minutes after the service did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

/// How often a running load publishes its progress.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What the workers have done so far, for the progress line: counters and latencies each worker hands over in
/// batches (the exact figures are each worker's own tally, summed at the end).
pub(crate) struct Live {
    pub(crate) sent: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) errors: AtomicU64,
    /// Requests that ended, answered or not: the error rate's denominator (`errors` counts both failed
    /// answers and requests that got none).
    pub(crate) ended: AtomicU64,
    pub(crate) latency_us: AtomicU64,
    pub(crate) latencies: Mutex<Latencies>,
    /// The counters at the previous snapshot, for the recent window.
    mark: Mutex<Mark>,
}

/// The latencies handed over: all of them, and those since the last snapshot.
pub(crate) struct Latencies {
    all: hdrhistogram::Histogram<u64>,
    recent: hdrhistogram::Histogram<u64>,
}

impl Latencies {
    /// Adds a worker's batch of latencies (µs).
    pub(crate) fn add(&mut self, batch: &[u64]) {
        for &us in batch {
            let _ = self.all.record(us);
            let _ = self.recent.record(us);
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Mark {
    elapsed: Duration,
    completed: u64,
    errors: u64,
    ended: u64,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            latencies: Mutex::new(Latencies {
                all: super::stats::new_histogram(),
                recent: super::stats::new_histogram(),
            }),
            mark: Mutex::new(Mark::default()),
        }
    }
}

fn quantile_ms(histogram: &hdrhistogram::Histogram<u64>, quantile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64 / 1000.0)
}

impl Live {
    /// The figures so far and, under `recent`, since the previous snapshot (one caller takes snapshots: the
    /// job's reporter).
    pub(crate) fn snapshot(&self, elapsed: Duration) -> serde_json::Value {
        let now = Mark {
            elapsed,
            completed: self.completed.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
        };
        let (p50_all, p99_all, p50_recent, p99_recent) = {
            let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            let (all, recent) = (&latencies.all, &latencies.recent);
            let figures =
                (quantile_ms(all, 0.5), quantile_ms(all, 0.99), quantile_ms(recent, 0.5), quantile_ms(recent, 0.99));
            latencies.recent.reset();
            figures
        };
        let before = std::mem::replace(&mut *self.mark.lock().unwrap_or_else(|p| p.into_inner()), now);
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        let window = elapsed.saturating_sub(before.elapsed).as_secs_f64().max(f64::EPSILON);
        let ended = now.ended - before.ended;
        json!({
            "elapsed_s": seconds,
            "sent": self.sent.load(Ordering::Relaxed),
            "completed": now.completed,
            "errors": now.errors,
            "req_per_s": now.completed as f64 / seconds,
            "mean_ms": self.latency_us.load(Ordering::Relaxed) as f64 / 1000.0 / now.completed.max(1) as f64,
            "p50_ms": p50_all,
            "p99_ms": p99_all,
            "recent": {
                "seconds": window,
                "req_per_s": (now.completed - before.completed) as f64 / window,
                // No request ended in the window: no rate to give (null), not 0 %.
                "error_rate": (ended > 0).then(|| (now.errors - before.errors) as f64 / ended as f64),
                "p50_ms": p50_recent,
                "p99_ms": p99_recent,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recent_window_counts_only_what_came_since_the_last_snapshot() {
        let live = Live::default();
        live.latencies.lock().unwrap().add(&[1_000]);
        live.completed.store(10, Ordering::Relaxed);
        live.ended.store(10, Ordering::Relaxed);
        let first = live.snapshot(Duration::from_secs(1));
        assert_eq!(first["recent"]["error_rate"], 0.0);
        assert_eq!(first["recent"]["p99_ms"], 1.0);
        live.latencies.lock().unwrap().add(&[500_000]);
        live.completed.store(12, Ordering::Relaxed);
        live.errors.store(2, Ordering::Relaxed);
        live.ended.store(14, Ordering::Relaxed);
        let second = live.snapshot(Duration::from_millis(1500));
        assert_eq!(second["recent"]["error_rate"], 0.5, "{second}");
        assert_eq!(second["recent"]["req_per_s"], 4.0, "{second}");
        assert!(second["recent"]["p99_ms"].as_f64().unwrap() > 400.0, "{second}");
        let idle = live.snapshot(Duration::from_secs(2));
        assert!(idle["recent"]["error_rate"].is_null() && idle["recent"]["p99_ms"].is_null(), "{idle}");
    }
}
