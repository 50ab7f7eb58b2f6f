//! Results pushed to Prometheus' remote-write endpoint (remote write 1.0: protobuf, snappy-compressed), so a
//! run's req/s and p99 sit next to the service's own metrics in Grafana, as k6's Prometheus output does. A
//! scenario run (`--remote-write URL`) pushes its steps' outcomes, its loads' figures (stage by stage) and its
//! guards' readings; an agent with `remote_write:` pushes the figures of every `net/http_load` it ran. Used by
//! both sides; imports neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use prometheus_remote_write::{Label, Sample, TimeSeries, WriteRequest, LABEL_NAME};
use serde_json::Value;

/// Every series name pushed: they reach Prometheus by remote write, not by a scrape of `/metrics` (the
/// dashboard's test checks its queries against these and what an agent exports).
pub const SERIES: [&str; 13] = [
    "tarsier_load_requests_per_second",
    "tarsier_load_requests",
    "tarsier_load_dropped",
    "tarsier_load_errors",
    "tarsier_load_latency_seconds",
    "tarsier_load_stage_target_rate",
    "tarsier_load_stage_target_concurrency",
    "tarsier_scenario_step_passed",
    "tarsier_scenario_step_seconds",
    "tarsier_scenario_run_passed",
    "tarsier_scenario_run_seconds",
    "tarsier_guard_value",
    "tarsier_guard_tripped",
];

/// The longest a push may take: a Prometheus that hangs must not hold up the run.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest label value sent (a step's title, a guard's name); Prometheus' own default limit is far above.
const MAX_LABEL_VALUE: usize = 200;

/// Series to push, each with its samples (a time in Unix ms, a value).
#[derive(Debug, Default)]
pub struct Batch {
    series: Vec<TimeSeries>,
}

/// Now, in Unix milliseconds: a sample's time.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// One series with its samples; labels whose value is empty are left out, as Prometheus does.
    pub fn add(&mut self, name: &str, labels: &[(&str, &str)], samples: impl IntoIterator<Item = (i64, f64)>) {
        let mut all = vec![Label { name: LABEL_NAME.into(), value: name.into() }];
        for (label, value) in labels.iter().filter(|(_, v)| !v.is_empty()) {
            all.push(Label { name: (*label).into(), value: value.chars().take(MAX_LABEL_VALUE).collect() });
        }
        let samples: Vec<Sample> = samples
            .into_iter()
            .filter(|(_, value)| value.is_finite())
            .map(|(timestamp, value)| Sample { value, timestamp })
            .collect();
        if !samples.is_empty() {
            self.series.push(TimeSeries { labels: all, samples });
        }
    }

    /// The figures of a `net/http_load` result (its whole run as `stage="all"`, and each stage), dated at their
    /// ends: `ended_ms` is when the whole load ended.
    pub fn http_load(&mut self, result: &Value, labels: &[(&str, &str)], ended_ms: i64) {
        let seconds = result["seconds"].as_f64().unwrap_or(0.0);
        let started_ms = ended_ms - (seconds * 1000.0) as i64;
        self.load_figures(result, labels, "all", ended_ms);
        for stage in result["stages"].as_array().into_iter().flatten() {
            let end_s = stage["start_s"].as_f64().unwrap_or(0.0) + stage["duration_s"].as_f64().unwrap_or(0.0);
            let at = started_ms + (end_s * 1000.0) as i64;
            let index = stage["stage"].as_u64().map(|s| s.to_string()).unwrap_or_default();
            self.load_figures(stage, labels, &index, at.min(ended_ms));
            if let Some(target) = stage["to"].as_f64() {
                let name = match stage["of"].as_str() {
                    Some("concurrency") => "tarsier_load_stage_target_concurrency",
                    _ => "tarsier_load_stage_target_rate",
                };
                self.add(name, &with(labels, &[("stage", &index)]), [(at.min(ended_ms), target)]);
            }
        }
    }

    fn load_figures(&mut self, figures: &Value, labels: &[(&str, &str)], stage: &str, at: i64) {
        let labels = with(labels, &[("stage", stage)]);
        let number = |key: &str| figures[key].as_f64();
        if let Some(rate) = number("req_per_s") {
            self.add("tarsier_load_requests_per_second", &labels, [(at, rate)]);
        }
        for (name, key) in [("tarsier_load_requests", "requests_sent"), ("tarsier_load_dropped", "dropped")] {
            if let Some(n) = number(key) {
                self.add(name, &labels, [(at, n)]);
            }
        }
        let errors = &figures["errors"];
        let failed: f64 = ["connect", "timeout", "other", "status_4xx", "status_5xx"]
            .iter()
            .filter_map(|k| errors[*k].as_f64())
            .sum();
        self.add("tarsier_load_errors", &labels, [(at, failed)]);
        for (quantile, key) in [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999")] {
            if let Some(ms) = figures["latency_ms"][key].as_f64() {
                self.add(
                    "tarsier_load_latency_seconds",
                    &with(&labels, &[("quantile", quantile)]),
                    [(at, ms / 1000.0)],
                );
            }
        }
    }
}

/// `labels` and `more`, as one list.
fn with<'a>(labels: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    labels.iter().chain(more).copied().collect()
}

/// Where results go, and how the pushes went.
pub struct RemoteWrite {
    client: reqwest::Client,
    url: reqwest::Url,
    pushed: AtomicU64,
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// How the pushes of a run went, for its summary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PushReport {
    pub url: String,
    pub pushed: u64,
    pub failed: u64,
    pub last_error: Option<String>,
}

impl RemoteWrite {
    /// An `http://` or `https://` URL of a remote-write receiver (`http://prometheus:9090/api/v1/write`). The
    /// client carries nothing of the swarm's: no token, no client certificate.
    pub fn new(url: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("remote write URL {url:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!("remote write URL {url}: http:// or https:// with a host"));
        }
        let client = crate::credentials::tls::with_system_roots(reqwest::Client::builder().timeout(PUSH_TIMEOUT))
            .build()
            .map_err(|e| format!("cannot build the remote write client: {e}"))?;
        Ok(Self { client, url, pushed: AtomicU64::new(0), failed: AtomicU64::new(0), last_error: Mutex::new(None) })
    }

    /// Sends `batch` (sorted as the spec asks); an error says what the receiver answered.
    pub async fn push(&self, batch: Batch) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let series = batch.len() as u64;
        let outcome = self.send(batch).await;
        match &outcome {
            Ok(()) => {
                self.pushed.fetch_add(series, Ordering::Relaxed);
            }
            Err(why) => {
                self.failed.fetch_add(series, Ordering::Relaxed);
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                tracing::warn!(url = %self.url, error = %why, "a remote write push failed");
            }
        }
        outcome
    }

    async fn send(&self, batch: Batch) -> Result<(), String> {
        let body = WriteRequest { timeseries: batch.series }
            .encode_compressed()
            .map_err(|e| format!("cannot compress the write request: {e}"))?;
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, prometheus_remote_write::CONTENT_TYPE)
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header(
                prometheus_remote_write::HEADER_NAME_REMOTE_WRITE_VERSION,
                prometheus_remote_write::REMOTE_WRITE_VERSION_01,
            )
            .header(reqwest::header::USER_AGENT, concat!("tarsier/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(format!("{} answered {status}: {}", self.url, text.trim().chars().take(300).collect::<String>()))
    }

    pub fn report(&self) -> PushReport {
        PushReport {
            url: self.url.to_string(),
            pushed: self.pushed.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_error: self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_result_gives_its_figures_for_the_whole_run_and_each_stage() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let result = serde_json::json!({
            "seconds": 4.0, "req_per_s": 150.0, "requests_sent": 600, "dropped": 0,
            "errors": {"connect": 1, "timeout": 0, "other": 0, "status_4xx": 0, "status_5xx": 2},
            "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 4.0, "p999": 8.0},
            "stages": [{"stage": 1, "of": "rate", "to": 100.0, "start_s": 0.0, "duration_s": 2.0, "req_per_s": 100.0,
                        "requests_sent": 200, "errors": {}, "latency_ms": {"p99": 3.0}}]
        });
        let mut batch = Batch::default();
        batch.http_load(&result, &[("run", "r"), ("step", "")], 10_000);
        let find = |name: &str, stage: &str| {
            batch.series.iter().find(|s| {
                s.labels.iter().any(|l| l.name == LABEL_NAME && l.value == name)
                    && s.labels.iter().any(|l| l.name == "stage" && l.value == stage)
            })
        };
        assert_eq!(find("tarsier_load_errors", "all").unwrap().samples[0].value, 3.0);
        let stage = find("tarsier_load_requests_per_second", "1").unwrap();
        assert_eq!((stage.samples[0].value, stage.samples[0].timestamp), (100.0, 8_000), "dated at the stage's end");
        assert!(stage.labels.iter().all(|l| l.name != "step"), "an empty label is left out");
        assert_eq!(find("tarsier_load_stage_target_rate", "1").unwrap().samples[0].value, 100.0);
        for series in &batch.series {
            let name = &series.labels[0].value;
            assert!(SERIES.contains(&name.as_str()), "{name} is pushed but not in SERIES");
        }
        assert!(RemoteWrite::new("ftp://x/").is_err() && RemoteWrite::new("http://127.0.0.1:9/api/v1/write").is_ok());
    }
}
