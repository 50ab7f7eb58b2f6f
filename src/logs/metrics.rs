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
        })
    }
}

impl Collector for FileLogCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.records.desc(),
            self.bytes.desc(),
            self.lost.desc(),
            self.write_errors.desc(),
            self.rotations.desc(),
            self.deleted_files.desc(),
            self.dir_bytes.desc(),
        ]
        .concat()
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
        self.dir_bytes.set(i64::try_from(stats.dir_bytes.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
        [
            self.records.collect(),
            self.bytes.collect(),
            self.lost.collect(),
            self.write_errors.collect(),
            self.rotations.collect(),
            self.deleted_files.collect(),
            self.dir_bytes.collect(),
        ]
        .concat()
    }
}
