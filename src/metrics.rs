//! The agent's Prometheus metrics (DESIGN 5). Each agent owns its registry, so several agents can live in one
//! process (the local swarm) without mixing their numbers.

use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tarsier_plugin::Held;

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub commands: IntCounterVec,
    pub command_duration: HistogramVec,
    pub running_jobs: IntGauge,
    pub aborts: IntCounter,
    held: IntGaugeVec,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    pub fn new(with_process_collector: bool) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http_requests = counter_vec(
            &registry,
            "tarsier_http_requests_total",
            "HTTP requests answered, by listener (public or service), route and status code.",
            &["listener", "path", "code"],
        )?;
        let commands = counter_vec(
            &registry,
            "tarsier_commands_total",
            "Commands run, by canonical name and result (ok, cancelled, invalid, refused, failed).",
            &["command", "result"],
        )?;
        let command_duration = HistogramVec::new(
            HistogramOpts::new("tarsier_command_duration_seconds", "How long commands ran, by command.")
                .buckets(exponential_buckets(0.001, 4.0, 11)?),
            &["command"],
        )?;
        registry.register(Box::new(command_duration.clone()))?;
        let running_jobs = IntGauge::new("tarsier_running_jobs", "Jobs running now (waiting and detached).")?;
        registry.register(Box::new(running_jobs.clone()))?;
        let aborts = IntCounter::new("tarsier_aborts_total", "Times /abort (or shutdown) released everything.")?;
        registry.register(Box::new(aborts.clone()))?;
        let held = IntGaugeVec::new(
            Opts::new("tarsier_held", "What the agent holds now, by resource: ram_bytes, ram_regions, files, disk_bytes, connections, blocked_threads, busy_threads."),
            &["resource"],
        )?;
        registry.register(Box::new(held.clone()))?;
        let build =
            IntGaugeVec::new(Opts::new("tarsier_build_info", "Always 1; the version is a label."), &["version"])?;
        registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        if with_process_collector {
            registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        }
        Ok(Self { registry, http_requests, commands, command_duration, running_jobs, aborts, held })
    }

    /// Sets the held-resource gauges from a fresh reading, then renders the text format.
    pub fn render(&self, held: &Held, running_jobs: usize) -> String {
        for (resource, value) in [
            ("ram_bytes", held.ram_bytes),
            ("ram_regions", held.ram_regions),
            ("files", held.files),
            ("disk_bytes", held.disk_bytes),
            ("connections", held.connections),
            ("blocked_threads", held.blocked_threads),
            ("busy_threads", held.busy_threads),
        ] {
            self.held.with_label_values(&[resource]).set(value as i64);
        }
        self.running_jobs.set(running_jobs as i64);
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%err, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}
