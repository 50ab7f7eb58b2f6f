//! The progress a running load publishes twice a second (`GET /jobs`, the CLI's live line): counters and
//! latencies the workers hand over in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often a running load publishes its progress.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What the workers have done so far, for the progress line: counters and latencies each worker hands over in
/// batches (the exact figures are each worker's own tally, summed at the end).
pub(crate) struct Live {
    pub(crate) sent: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) latency_us: AtomicU64,
    pub(crate) latencies: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            latencies: std::sync::Mutex::new(super::stats::new_histogram()),
        }
    }
}

impl Live {
    pub(crate) fn snapshot(&self, elapsed: Duration) -> serde_json::Value {
        let completed = self.completed.load(Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
        let p99_ms = {
            let latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            (!latencies.is_empty()).then(|| latencies.value_at_quantile(0.99) as f64 / 1000.0)
        };
        serde_json::json!({
            "elapsed_s": elapsed.as_secs_f64(),
            "sent": self.sent.load(Ordering::Relaxed),
            "completed": completed,
            "errors": self.errors.load(Ordering::Relaxed),
            "req_per_s": completed as f64 / seconds,
            "mean_ms": self.latency_us.load(Ordering::Relaxed) as f64 / 1000.0 / completed.max(1) as f64,
            "p99_ms": p99_ms,
        })
    }
}
