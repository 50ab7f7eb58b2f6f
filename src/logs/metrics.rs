//! The file log's figures in `/metrics`, read from its counters at each scrape.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge};

use super::sink::Sink;

pub struct FileLogCollector {
    sink: Arc<Sink>,
    records: IntCounter,
    bytes: IntCounter,
    lost: IntCounter,
    write_errors: IntCounter,
    rotations: IntCounter,
    deleted_files: IntCounter,
    dir_bytes: IntGauge,
    spool_full: IntGauge,
    shipped: IntCounter,
    duplicates: IntCounter,
    retries: IntCounter,
    rejected: IntCounter,
    pending_records: IntGauge,
    pending_bytes: IntGauge,
    oldest_pending: prometheus::Gauge,
}

impl FileLogCollector {
    pub fn new(sink: Arc<Sink>) -> prometheus::Result<Self> {
        Ok(Self {
            sink,
            records: IntCounter::new("tarsier_log_records_total", "Activity records numbered (written or buffered).")?,
            bytes: IntCounter::new("tarsier_log_written_bytes_total", "Bytes of activity records written to files.")?,
            lost: IntCounter::new(
                "tarsier_log_lost_records_total",
                "Activity records given up because the log directory refused them (full of unshipped files, or a disk error); each loss is named in a log_records_lost record.",
            )?,
            write_errors: IntCounter::new("tarsier_log_write_errors_total", "Chunks the log directory refused.")?,
            rotations: IntCounter::new("tarsier_log_rotations_total", "Activity log files closed (by size, age or stop).")?,
            deleted_files: IntCounter::new(
                "tarsier_log_deleted_files_total",
                "Activity log files deleted to keep the directory under logging.max_dir_size (only when not shipped).",
            )?,
            dir_bytes: IntGauge::new("tarsier_log_dir_bytes", "Bytes of this agent's activity log files in logging.dir.")?,
            spool_full: IntGauge::new(
                "tarsier_log_spool_full",
                "1 while the log directory refuses records (at logging.max_dir_size with files not yet shipped, or failing).",
            )?,
            shipped: IntCounter::new("tarsier_log_shipped_records_total", "Activity records JetStream acknowledged.")?,
            duplicates: IntCounter::new(
                "tarsier_log_ship_duplicates_total",
                "Records JetStream acknowledged as already stored (sent again after a failure; its dedupe kept one).",
            )?,
            retries: IntCounter::new("tarsier_log_ship_retries_total", "Shipping attempts that failed and were retried.")?,
            rejected: IntCounter::new(
                "tarsier_log_ship_rejected_total",
                "Lines larger than the broker's max payload, skipped (each logged).",
            )?,
            pending_records: IntGauge::new("tarsier_log_pending_records", "Records written and not yet acknowledged.")?,
            pending_bytes: IntGauge::new("tarsier_log_pending_bytes", "Bytes written and not yet acknowledged.")?,
            oldest_pending: prometheus::Gauge::new(
                "tarsier_log_oldest_pending_seconds",
                "Age of the oldest record not yet acknowledged (0 when none waits).",
            )?,
        })
    }
}

impl FileLogCollector {
    /// Every series, in the order `/metrics` shows them.
    fn series(&self) -> [&dyn Collector; 15] {
        [
            &self.records,
            &self.bytes,
            &self.lost,
            &self.write_errors,
            &self.rotations,
            &self.deleted_files,
            &self.dir_bytes,
            &self.spool_full,
            &self.shipped,
            &self.duplicates,
            &self.retries,
            &self.rejected,
            &self.pending_records,
            &self.pending_bytes,
            &self.oldest_pending,
        ]
    }
}

impl Collector for FileLogCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.series().into_iter().flat_map(|series| series.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let stats = &self.sink.stats;
        for (counter, value) in [
            (&self.records, &stats.records),
            (&self.bytes, &stats.bytes),
            (&self.lost, &stats.lost),
            (&self.write_errors, &stats.write_errors),
            (&self.rotations, &stats.rotations),
            (&self.deleted_files, &stats.deleted_files),
        ] {
            // The counters only grow: catch the Prometheus counter up with the atomic one.
            let now = value.load(Ordering::Relaxed);
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.dir_bytes.set(gauge(stats.dir_bytes.load(Ordering::Relaxed)));
        self.spool_full.set(i64::from(self.sink.refusing()));
        // The shipper starts after the agent is bound, so after this collector: read at each scrape.
        if let Some(ship) = super::shipping() {
            for (counter, value) in [
                (&self.shipped, &ship.shipped_records),
                (&self.duplicates, &ship.duplicates),
                (&self.retries, &ship.retries),
                (&self.rejected, &ship.rejected),
            ] {
                counter.inc_by(value.load(Ordering::Relaxed).saturating_sub(counter.get()));
            }
            self.pending_records.set(gauge(ship.pending_records.load(Ordering::Relaxed)));
            self.pending_bytes.set(gauge(ship.pending_bytes.load(Ordering::Relaxed)));
            self.oldest_pending.set(ship.oldest_pending_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        }
        self.series().into_iter().flat_map(|series| series.collect()).collect()
    }
}
