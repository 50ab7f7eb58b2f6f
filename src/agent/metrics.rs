//! The agent's Prometheus metrics (docs/operating.md: Metrics). Each agent owns its registry, so several agents can live in one
//! process (the local swarm) without mixing their numbers.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tarsier_plugin::Held;

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub connections_refused: IntCounterVec,
    pub commands: IntCounterVec,
    pub command_duration: HistogramVec,
    pub running_jobs: IntGauge,
    pub aborts: IntCounter,
    pub waves: WaveMetrics,
    peers: IntGauge,
    held: IntGaugeVec,
}

/// The wave code's own counters (it gets a copy; they are registered here with the rest).
#[derive(Clone)]
pub struct WaveMetrics {
    pub received: IntCounterVec,
    pub shed: IntCounter,
    pub forwarded: IntCounter,
    pub forward_errors: IntCounter,
    pub deduped: IntCounter,
    pub forward_seconds: Histogram,
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let metric = IntCounter::new(name, help)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

impl Metrics {
    /// The agent's metrics plus the plugins' own `collectors`.
    pub fn new(
        with_process_collector: bool,
        collectors: Vec<Box<dyn prometheus::core::Collector>>,
        limits: &tarsier_plugin::Limits,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let http_requests = counter_vec(
            &registry,
            "tarsier_http_requests_total",
            "HTTP requests answered, by listener (public or service), route and status code.",
            &["listener", "path", "code"],
        )?;
        let connections_refused = counter_vec(
            &registry,
            "tarsier_connections_refused_total",
            "Connections closed as soon as they were accepted because the listener was at its cap \
             (server.max_connections).",
            &["listener"],
        )?;
        let commands = counter_vec(
            &registry,
            "tarsier_commands_total",
            "Commands run, by canonical name and result (ok, cancelled, invalid, refused, unreachable, failed).",
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
        let aborts = counter(&registry, "tarsier_aborts_total", "Times /abort released everything here.")?;
        let waves_received = counter_vec(
            &registry,
            "tarsier_waves_received_total",
            "Wave copies taken from peers, by route (exec, abort); refused copies are not counted.",
            &["route"],
        )?;
        let waves_forwarded =
            counter(&registry, "tarsier_waves_forwarded_total", "Wave copies sent to peers and taken by them.")?;
        let wave_forward_errors = counter(
            &registry,
            "tarsier_wave_forward_errors_total",
            "Wave copies that no retry could deliver, or that a peer refused.",
        )?;
        // Both routes are exported from the start, at 0, so a dashboard has a series before the first copy.
        for route in ["exec", "abort"] {
            waves_received.with_label_values(&[route]);
        }
        let waves_shed = counter(
            &registry,
            "tarsier_waves_shed_total",
            "Wave copies refused (429) because this agent was forwarding as many hops as it allows at once.",
        )?;
        let waves_deduped = counter(
            &registry,
            "tarsier_waves_deduped_total",
            "Dedupe wave copies not run because this agent had run that wave already.",
        )?;
        let wave_forward_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "tarsier_wave_forward_seconds",
                "Time for a peer to take a wave copy, retries included.",
            )
            .buckets(exponential_buckets(0.0005, 2.0, 14)?),
        )?;
        registry.register(Box::new(wave_forward_seconds.clone()))?;
        let peers = IntGauge::new("tarsier_peers", "Healthy peers this agent knows now.")?;
        registry.register(Box::new(peers.clone()))?;
        let held = IntGaugeVec::new(
            Opts::new("tarsier_held", "What the agent holds now, by resource: ram_bytes, ram_regions, files, disk_bytes, connections, blocked_threads, busy_threads, net_faults, proxies."),
            &["resource"],
        )?;
        registry.register(Box::new(held.clone()))?;
        let limit = IntGaugeVec::new(
            Opts::new(
                "tarsier_limit",
                "The agent's configured limits, by resource: ram_bytes, disk_bytes, connections, blocked_threads \
                 (absent: no limit).",
            ),
            &["resource"],
        )?;
        registry.register(Box::new(limit.clone()))?;
        for (resource, value) in [
            ("ram_bytes", limits.max_ram.map(|b| b.0)),
            ("disk_bytes", limits.max_disk.map(|b| b.0)),
            ("connections", limits.max_connections),
            (
                "blocked_threads",
                Some(limits.max_blocked_threads.unwrap_or(tarsier_plugin::DEFAULT_MAX_BLOCKED_THREADS)),
            ),
        ] {
            if let Some(value) = value {
                limit.with_label_values(&[resource]).set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
        let build =
            IntGaugeVec::new(Opts::new("tarsier_build_info", "Always 1; the version is a label."), &["version"])?;
        registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        for collector in collectors {
            registry.register(collector)?;
        }
        if let Some(file_log) = crate::logs::file_log() {
            registry.register(Box::new(crate::logs::metrics::FileLogCollector::new(file_log.clone())?))?;
        }
        if with_process_collector {
            registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        }
        Ok(Self {
            registry,
            http_requests,
            connections_refused,
            commands,
            command_duration,
            running_jobs,
            aborts,
            waves: WaveMetrics {
                received: waves_received,
                shed: waves_shed,
                forwarded: waves_forwarded,
                forward_errors: wave_forward_errors,
                deduped: waves_deduped,
                forward_seconds: wave_forward_seconds,
            },
            peers,
            held,
        })
    }

    /// Sets the held-resource gauges from a fresh reading, then renders the text format.
    pub fn render(&self, held: &Held, running_jobs: usize, peers: usize) -> String {
        self.peers.set(peers as i64);
        for (resource, value) in [
            ("ram_bytes", held.ram_bytes),
            ("ram_regions", held.ram_regions),
            ("files", held.files),
            ("disk_bytes", held.disk_bytes),
            ("connections", held.connections),
            ("blocked_threads", held.blocked_threads),
            ("busy_threads", held.busy_threads),
            ("net_faults", held.net_faults),
            ("proxies", held.proxies),
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
