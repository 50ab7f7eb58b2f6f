use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture};

use crate::http_load::metrics::HttpLoadMetrics;
use crate::http_load::plan::{check_resolved, HttpLoadPlan};
use crate::http_load::progress::{Live, PROGRESS_EVERY};
use crate::http_load::stats::{merge, HttpLoadResult, LatencyCorrection};
use crate::http_load::worker::Load;

/// Used when neither `requests` nor `duration` is given.
pub(crate) const DEFAULT_DURATION: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLoadData {
    /// Target URL, http or https. Its host must be in limits.http_load_targets (loopback by default).
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Request body.
    pub body: Option<String>,
    /// Requests in flight at once (connections are kept alive and reused).
    pub concurrency: u32,
    /// Total requests to send; or give `duration`.
    pub requests: Option<u64>,
    /// How long to send for; default 10s when `requests` is not given either.
    pub duration: Option<HumanDuration>,
    /// Requests per second, on a fixed schedule (open model); latency counts from each request's scheduled
    /// time, so a slow server cannot hide its queueing (coordinated omission is corrected, like wrk2). With
    /// `duration` the load ends when it does: requests not sent by then are `dropped`.
    pub rate: Option<f64>,
    /// Closed mode (no `rate`): correct the latencies for coordinated omission as wrk does (HdrHistogram's
    /// expected-interval correction, the interval being the mean latency), so a server that stalls shows in
    /// the percentiles. The answer's `latency_correction` says which way latencies were taken.
    pub correct: bool,
    /// Per-request timeout.
    pub timeout: HumanDuration,
    /// Speak HTTP/2 (prior knowledge on http://; https negotiates it with ALPN anyway).
    pub http2: bool,
    /// Accept any TLS certificate (a self-signed target).
    pub insecure: bool,
}

impl Default for HttpLoadData {
    fn default() -> Self {
        Self {
            url: String::new(),
            method: "GET".into(),
            headers: BTreeMap::new(),
            body: None,
            concurrency: 10,
            requests: None,
            duration: None,
            rate: None,
            correct: false,
            timeout: HumanDuration::from_secs(10),
            http2: false,
            insecure: false,
        }
    }
}

pub struct HttpLoad {
    pub metrics: HttpLoadMetrics,
}

impl Command for HttpLoad {
    type Data = HttpLoadData;
    type Plan = HttpLoadPlan;
    const NAME: &'static str = "http_load";
    const DESCRIPTION: &'static str = "HTTP load against `url` with `concurrency` keep-alive connections, for \
        `requests` or `duration`, optionally at a fixed `rate`. Answers counts, req/s, latency percentiles and \
        the HDR histogram, which a wave report merges across the swarm.";

    fn check(&self, data: HttpLoadData, ctx: &ExecContext) -> Result<HttpLoadPlan, DataError> {
        HttpLoadPlan::new(data, &ctx.limits)
    }

    fn execute(&self, plan: HttpLoadPlan, ctx: ExecContext) -> JobFuture {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let addr = tokio::select! {
                addr = check_resolved(&plan.url, &ctx.limits) => addr?,
                _ = ctx.cancel.cancelled() => return Err(CommandError::Cancelled),
            };
            let (url, concurrency, rate) = (plan.data.url.clone(), plan.data.concurrency, plan.data.rate);
            let correct = plan.data.correct;
            let load = Load::new(plan, addr)?;
            let window = load.duration;
            let started = Instant::now();
            // Twice a second the job's progress says how far the load got (GET /jobs, the CLI's live line).
            let live = Arc::new(Live::default());
            let reporter = {
                let (live, progress) = (live.clone(), ctx.progress.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(PROGRESS_EVERY);
                    loop {
                        tick.tick().await;
                        progress.set(live.snapshot(started.elapsed()));
                    }
                })
            };
            let mut tally = load.run(&metrics, &ctx.cancel, &live).await?;
            reporter.abort();
            let seconds = started.elapsed().as_secs_f64();
            // Over a window, what was answered within it, like wrk; stragglers are reported apart.
            let req_per_s = match window {
                Some(window) => (tally.completed - tally.stragglers) as f64 / window.as_secs_f64().max(f64::EPSILON),
                None => tally.completed as f64 / seconds.max(f64::EPSILON),
            };
            let correction = match (rate, correct) {
                (Some(_), _) => LatencyCorrection::Schedule,
                (None, false) => LatencyCorrection::None,
                (None, true) => {
                    let interval = tally.latency_us.mean().round().max(1.0) as u64;
                    tally.latency_us = tally.latency_us.clone_correct(interval);
                    LatencyCorrection::ExpectedInterval
                }
            };
            let mut result = tally.result(seconds, req_per_s);
            result.latency_correction = Some(correction);
            result.url = Some(url);
            result.concurrency = Some(concurrency);
            result.rate = rate;
            serde_json::to_value(result).map_err(|err| CommandError::Failed(format!("cannot encode the result: {err}")))
        })
    }

    fn merge(&self, results: &[Value]) -> Option<Value> {
        let results: Vec<HttpLoadResult> =
            results.iter().filter_map(|r| serde_json::from_value(r.clone()).ok()).collect();
        serde_json::to_value(merge(&results)?).ok()
    }
}
