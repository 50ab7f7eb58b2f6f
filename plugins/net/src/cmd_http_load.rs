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
use crate::http_load::stages::Ramp;
use crate::http_load::stats::{merge, HttpLoadResult, LatencyCorrection, StageResult};
use crate::http_load::worker::{Load, LoadTally};

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
    /// Stages run one after the other on the same connections, instead of `duration`: each `{duration,
    /// rate}` (open model; the first ramps from `rate`, or from 0) or each `{duration, concurrency}` (closed
    /// model; the first ramps from 1), with `ramp: linear` (default, from the previous target) or `step`. The
    /// answer has each stage's figures under `stages`.
    pub stages: Vec<StageData>,
    /// Rate mode: how requests wait for their time. `ticks` (default): on 1 ms ticks, every request due within
    /// a tick leaving together at its start (one wake-up for them all, as oha's and wrk2's millisecond timers):
    /// each up to 1 ms early, its latency counted from when it left. `exact`: each at its own due time, on a
    /// high-resolution timer per connection (a wake-up per request, at most 100 µs early): arrivals spread
    /// evenly, at twice the CPU per request at high rates. `coarse` and `precise` are their former names.
    /// Unset: `ticks`; given in closed mode: an error.
    pub pacing: Option<Pacing>,
}

/// How rate mode's requests wait for their due time (see `pacing`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pacing {
    #[default]
    #[serde(alias = "coarse")]
    Ticks,
    #[serde(alias = "precise")]
    Exact,
}

/// One load stage (see `stages`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageData {
    /// How long the stage lasts.
    pub duration: HumanDuration,
    /// The rate (requests/s) it ramps to; or give `concurrency`.
    #[serde(default)]
    pub rate: Option<f64>,
    /// The requests in flight it ramps to; or give `rate`.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// `linear` from the previous stage's target, or `step` to this one at the stage's start.
    #[serde(default)]
    pub ramp: Ramp,
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
            stages: Vec::new(),
            pacing: None,
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
            let stages = load.stages.clone();
            let open_model = load.is_open_model();
            let started = Instant::now();
            // Twice a second the job's progress says how far the load got (GET /jobs, the CLI's live line),
            // and in which stage.
            let live = Arc::new(Live::default());
            let reporter = {
                let (live, progress, stages) = (live.clone(), ctx.progress.clone(), stages.clone());
                // What was asked, beside what was done: `7.2 s / 30 s`, `812 of 1000 req/s`.
                let asked = serde_json::json!({
                    "duration_s": window.map(|w| w.as_secs_f64()),
                    "rate": rate,
                    "concurrency": concurrency,
                });
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(PROGRESS_EVERY);
                    loop {
                        tick.tick().await;
                        let elapsed = started.elapsed();
                        let mut snapshot = live.snapshot(elapsed);
                        snapshot["asked"] = asked.clone();
                        if let Some(stages) = &stages {
                            let info = stages.info(stages.stage_at(elapsed));
                            snapshot["stage"] = serde_json::json!({
                                "stage": info.stage, "stages": stages.len(), "of": info.of,
                                "target": stages.target_at(elapsed),
                            });
                        }
                        progress.set(snapshot);
                    }
                })
            };
            let LoadTally { total: mut tally, stages: stage_tallies } = load.run(&metrics, &ctx.cancel, &live).await?;
            reporter.abort();
            let seconds = started.elapsed().as_secs_f64();
            // Over a window, what was answered within it, like wrk; stragglers are reported apart.
            let req_per_s = match window {
                Some(window) => (tally.completed - tally.stragglers) as f64 / window.as_secs_f64().max(f64::EPSILON),
                None => tally.completed as f64 / seconds.max(f64::EPSILON),
            };
            let correction = match (open_model, correct) {
                (true, _) => LatencyCorrection::Schedule,
                (false, false) => LatencyCorrection::None,
                (false, true) => {
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
            if let Some(stages) = &stages {
                let per_stage = stage_tallies.iter().enumerate().map(|(i, stage)| {
                    let info = stages.info(i);
                    let mut figures =
                        stage.result(info.duration_s, stage.completed as f64 / info.duration_s.max(f64::EPSILON));
                    figures.latency_correction = Some(correction);
                    StageResult { info, figures: Box::new(figures) }
                });
                result.stages = Some(per_stage.collect());
            }
            serde_json::to_value(result).map_err(|err| CommandError::Failed(format!("cannot encode the result: {err}")))
        })
    }

    fn merge(&self, results: &[Value]) -> Option<Value> {
        let results: Vec<HttpLoadResult> =
            results.iter().filter_map(|r| serde_json::from_value(r.clone()).ok()).collect();
        serde_json::to_value(merge(&results)?).ok()
    }
}
