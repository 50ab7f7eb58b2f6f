//! The load itself: `concurrency` workers, each with its own connection (or reqwest's pool for HTTPS and
//! HTTP/2), sending as fast as answers come or at the pacer's schedule, each keeping its own books and handing
//! them over in batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tarsier_plugin::tls_client::{client_config, ServerCheck};
use tarsier_plugin::{Cancel, CommandError};

use super::conn::{Connection, Failure, Template};
use super::metrics::HttpLoadMetrics;
use super::pace::{Claim, Schedule};
use super::plan::HttpLoadPlan;
use super::progress::Live;
use super::stages::{StageKind, Stages};
use super::stats::Tally;
use crate::alarm::{Alarm, Grid};
use crate::cmd_http_load::{Pacing, DEFAULT_DURATION};

/// How a request ended, as the `code` label of `tarsier_http_load_requests_total`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Status(u16),
    Connect,
    Timeout,
    Other,
}

impl Outcome {
    fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            Outcome::Status(status) => status.to_string().into(),
            Outcome::Connect => "connect_error".into(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Other => "error".into(),
        }
    }
}

/// What a worker has not yet handed over: to the progress line's [`Live`] and to the agent's Prometheus
/// metrics. Handed over every 250 ms, so the hot path touches no memory another worker writes (shared atomics
/// and the metrics' locks cost as much as the request itself at wrk's speed). The worker's own tally, its
/// exact books, takes each latency as it comes (`count`).
struct Batch {
    /// The latencies (µs) since the last hand-over, for the live histograms.
    // PERF(rate_matrix): a list, not a histogram: merging and clearing a 170 KiB histogram costs the same
    // whether it holds 2 latencies or 2,000, and at 500/s over 64 connections each worker hands over 2
    // requests at a time, four times a second: 64 x 4 x 680 KiB of histogram walked per second.
    latencies: Vec<u64>,
    sent: u64,
    completed: u64,
    errors: u64,
    ended: u64,
    latency_us: u64,
    outcomes: Vec<(Outcome, u64)>,
    metric_latency: prometheus::local::LocalHistogram,
    since: Instant,
}

/// How often a worker hands its batch over.
const HAND_OVER_EVERY: Duration = Duration::from_millis(250);
/// A batch is handed over sooner when it holds this many latencies (32 KiB), so it stays small at any rate.
const HAND_OVER_AT: usize = 4_096;

impl Batch {
    fn new(metrics: &HttpLoadMetrics) -> Self {
        Self {
            latencies: Vec::new(),
            sent: 0,
            completed: 0,
            errors: 0,
            ended: 0,
            latency_us: 0,
            outcomes: Vec::new(),
            metric_latency: metrics.latency.local(),
            since: Instant::now(),
        }
    }

    /// Counts one request in the batch; `now`: when it ended. True when the batch is due to be handed over.
    fn record(&mut self, outcome: Outcome, latency: Duration, now: Instant) -> bool {
        self.ended += 1;
        match outcome {
            Outcome::Status(status) => {
                self.completed += 1;
                self.latency_us += latency.as_micros() as u64;
                self.latencies.push(super::stats::latency_us(latency));
                self.metric_latency.observe(latency.as_secs_f64());
                if status >= 400 {
                    self.errors += 1;
                }
            }
            _ => self.errors += 1,
        }
        match self.outcomes.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, n)) => *n += 1,
            None => self.outcomes.push((outcome, 1)),
        }
        now.duration_since(self.since) >= HAND_OVER_EVERY || self.latencies.len() >= HAND_OVER_AT
    }

    fn hand_over(&mut self, live: &Live, metrics: &HttpLoadMetrics) {
        live.sent.fetch_add(std::mem::take(&mut self.sent), Ordering::Relaxed);
        live.completed.fetch_add(std::mem::take(&mut self.completed), Ordering::Relaxed);
        live.errors.fetch_add(std::mem::take(&mut self.errors), Ordering::Relaxed);
        live.ended.fetch_add(std::mem::take(&mut self.ended), Ordering::Relaxed);
        live.latency_us.fetch_add(std::mem::take(&mut self.latency_us), Ordering::Relaxed);
        for (outcome, n) in self.outcomes.drain(..) {
            metrics.requests.with_label_values(&[outcome.label().as_ref()]).inc_by(n);
        }
        self.metric_latency.flush();
        if !self.latencies.is_empty() {
            live.latencies.lock().unwrap_or_else(|p| p.into_inner()).add(&self.latencies);
            self.latencies.clear();
        }
        self.since = Instant::now();
    }
}

/// A worker's books: its exact tally and its pending batch, handed over when the worker ends however it ends (a
/// cancelled load aborts its workers mid-request, and what they did still counts).
struct Books {
    tally: Tally,
    batch: Batch,
    /// With stages: the tally of the stage this worker is in, added to the stage's total when it moves on.
    stage: Option<(usize, Tally)>,
    shared: Arc<Shared>,
}

impl Books {
    fn hand_over(&mut self) {
        self.batch.hand_over(&self.shared.live, &self.shared.metrics);
    }

    /// The tally of stage `index`, the one before handed over if it was another.
    fn stage(&mut self, index: usize) -> &mut Tally {
        if self.stage.as_ref().is_some_and(|(current, _)| *current != index) {
            self.close_stage();
        }
        &mut self.stage.get_or_insert_with(|| (index, Tally::default())).1
    }

    fn close_stage(&mut self) {
        if let Some((index, tally)) = self.stage.take() {
            let mut totals = self.shared.stage_totals.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(total) = totals.get_mut(index) {
                total.add(&tally);
            }
        }
    }
}

impl Drop for Books {
    fn drop(&mut self) {
        self.hand_over();
        self.close_stage();
        self.shared.total.lock().unwrap_or_else(|p| p.into_inner()).add(&self.tally);
    }
}

/// What the workers of one load share and write rarely.
struct Shared {
    live: Arc<Live>,
    metrics: HttpLoadMetrics,
    /// Every worker's tally, added when it ends.
    total: std::sync::Mutex<Tally>,
    /// With stages: each stage's tally, added to as workers leave a stage or end.
    stage_totals: std::sync::Mutex<Vec<Tally>>,
}

/// What a load did: in all, and stage by stage (empty without stages).
pub(crate) struct LoadTally {
    pub(crate) total: Tally,
    pub(crate) stages: Vec<Tally>,
}

/// Counts a request's end in `tally`, with its latency when answered and how late it left (rate mode); how it
/// ended, for the metrics.
fn count(
    tally: &mut Tally,
    answer: &Result<(u16, u64), Failure>,
    straggler: bool,
    latency: Duration,
    late: Option<Duration>,
) -> Outcome {
    if let Some(late) = late {
        let _ = tally.late_us.record(super::stats::latency_us(late));
    }
    match answer {
        Ok((status, bytes)) => {
            tally.completed += 1;
            let _ = tally.latency_us.record(super::stats::latency_us(latency));
            // Answered after the window: in `completed`, not in `req_per_s` (so never more than it).
            if straggler {
                tally.stragglers += 1;
            }
            tally.bytes += bytes;
            *tally.status.entry(*status).or_default() += 1;
            match status {
                400..=499 => tally.errors.status_4xx += 1,
                500..=599 => tally.errors.status_5xx += 1,
                _ => {}
            }
            Outcome::Status(*status)
        }
        Err(Failure::Connect) => {
            tally.errors.connect += 1;
            Outcome::Connect
        }
        Err(Failure::Timeout) => {
            tally.errors.timeout += 1;
            Outcome::Timeout
        }
        Err(Failure::Other) => {
            tally.errors.other += 1;
            Outcome::Other
        }
    }
}

/// `pacing: ticks`: the grid rate mode's requests leave on, as oha's and wrk2's millisecond timers.
const TICK: Duration = Duration::from_millis(1);

/// Rate mode's alarms ring this much before a request's due time (with ticks, on the tick at or before that):
/// waking a thread that sleeps in epoll takes tens of microseconds (the timer's interrupt, the wake-up, the
/// runtime's turn), so an alarm set for the due time sends the request late by that much, and the lateness,
/// dated from the schedule, reads as the service's latency. A request that leaves before its time counts its
/// latency from when it left.
// PERF(rate_matrix): at 500/s on nginx the alarm rang 70-100 µs late at p90 (`late_ms`), which was most of
// rate mode's p90 over oha's (0.17-0.20 ms against 0.15 ms).
const SEND_AHEAD: Duration = Duration::from_micros(100);

/// Where a request's latency counts from. With a rate, its due time: a request sent late waited for a busy
/// connection or a slow generator, and that wait is latency too (coordinated omission). One that left before
/// its time (`SEND_AHEAD`, a tick's start) counts from when it left: its due time would hide part of the
/// answer's wait. Closed mode sends at once: both are the same.
fn dated_from(due: Instant, sent: Instant) -> Instant {
    due.min(sent)
}

/// Everything the workers share and only read.
pub(crate) struct Load {
    /// Plain HTTP/1.1: each worker's own connection (see `conn`); otherwise reqwest.
    fast: Option<Template>,
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    body: Option<String>,
    concurrency: u32,
    requests: Option<u64>,
    pub(crate) duration: Option<Duration>,
    rate: Option<f64>,
    pacing: Pacing,
    timeout: Duration,
    /// Rate or concurrency stages, run one after the other on the same connections.
    pub(crate) stages: Option<Arc<Stages>>,
}

impl Load {
    pub(crate) fn new(plan: HttpLoadPlan, addr: std::net::SocketAddr) -> Result<Self, CommandError> {
        let HttpLoadPlan { data, url, method, headers, stages } = plan;
        // The system's roots are loaded on the first handshake (an http:// load never needs them).
        let check = if data.insecure { ServerCheck::AcceptAny } else { ServerCheck::SystemRoots };
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(client_config(check))
            .pool_max_idle_per_host(data.concurrency as usize)
            .tcp_nodelay(true)
            // Like wrk: a redirect is an answer, counted by its status, never followed (it could lead
            // anywhere, past the allow-list).
            .redirect(reqwest::redirect::Policy::none());
        // Connect to the address that was checked, not whatever the name resolves to by the time of the load.
        if let Some(host) = url.host_str().filter(|h| h.parse::<std::net::IpAddr>().is_err()) {
            builder = builder.resolve(host, addr);
        }
        if data.http2 && url.scheme() == "http" {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|e| CommandError::Failed(format!("cannot build the HTTP client: {e}")))?;
        let fast = (url.scheme() == "http" && !data.http2).then(|| {
            let target = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            };
            let host = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            let body = data.body.as_deref().unwrap_or_default().as_bytes();
            Template::new(addr, &method, &target, &host, &headers, body)
        });
        Ok(Self {
            fast,
            client,
            method,
            url,
            headers,
            body: data.body,
            concurrency: data.concurrency,
            requests: data.requests,
            duration: match &stages {
                Some(stages) => Some(stages.total()),
                None => {
                    data.duration.map(|d| d.0).or(if data.requests.is_none() { Some(DEFAULT_DURATION) } else { None })
                }
            },
            rate: data.rate,
            pacing: data.pacing.unwrap_or_default(),
            timeout: data.timeout.0,
            stages: stages.map(Arc::new),
        })
    }

    /// Rate stages drive the schedule; concurrency stages decide which workers work.
    fn concurrency_stages(&self) -> Option<&Stages> {
        self.stages.as_deref().filter(|stages| stages.kind == StageKind::Concurrency)
    }

    pub(crate) fn is_open_model(&self) -> bool {
        self.rate.is_some() || self.stages.as_ref().is_some_and(|stages| stages.kind == StageKind::Rate)
    }

    pub(crate) async fn run(
        self,
        metrics: &HttpLoadMetrics,
        cancel: &Cancel,
        live: &Arc<Live>,
    ) -> Result<LoadTally, CommandError> {
        let plan = Arc::new(self);
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = plan.duration.map(|d| start + d);
        // Rate mode: each free worker claims the next request's due time from the schedule.
        let schedule = match (&plan.stages, plan.rate) {
            (Some(stages), _) if stages.kind == StageKind::Rate => {
                Some(Arc::new(Schedule::staged(start, stages.clone())))
            }
            (_, Some(rate)) => Some(Arc::new(Schedule::new(start, rate, plan.requests, end))),
            _ => None,
        };
        let stage_count = plan.stages.as_ref().map_or(0, |stages| stages.len());
        let shared = Arc::new(Shared {
            live: live.clone(),
            metrics: metrics.clone(),
            total: Default::default(),
            stage_totals: std::sync::Mutex::new((0..stage_count).map(|_| Tally::default()).collect()),
        });
        // Concurrency stages: as many workers as the most any moment asks for; the others wait their turn.
        let workers_needed =
            plan.concurrency_stages().map_or(plan.concurrency, |stages| stages.max_concurrency().max(1));
        let mut workers = tokio::task::JoinSet::new();
        for index in 0..workers_needed {
            let (plan, next, schedule) = (plan.clone(), next.clone(), schedule.clone());
            let books =
                Books { tally: Tally::default(), batch: Batch::new(metrics), stage: None, shared: shared.clone() };
            let worker = async move {
                // Made on the worker's own runtime: a timerfd registers with the reactor of the runtime it is
                // made on.
                let alarm = schedule.as_ref().map(|_| match plan.pacing {
                    Pacing::Exact => Alarm::new(None, SEND_AHEAD),
                    // PERF(rate_matrix): every request due within a 1 ms cell rings at its start, in one wake:
                    // at 20,000/s on nginx 88-108k requests per CPU-second where exact pacing spends one wake
                    // per request (46-51k) and oha 64-71k, same hold.
                    Pacing::Ticks => Alarm::new(Some(Grid { start, grain: TICK }), SEND_AHEAD),
                });
                plan.worker(index, start, &next, schedule.as_deref().zip(alarm), books).await
            };
            // PERF(rate_matrix): the workers run on the net plugin's single-threaded runtimes (`io_threads`),
            // so a request's wake-ups (its alarm, its answer) stay on the thread that waits in epoll and wake
            // no second worker of a work-stealing runtime. Rate 20,000/s on nginx, 64 connections, 3 rounds
            // interleaved: 25.0k -> 28.7k requests per CPU-second (500/s and 2,000/s: no change); closed mode
            // 94.7k -> 102k.
            match crate::io_threads::next() {
                Some(thread) => workers.spawn_on(worker, &thread),
                None => workers.spawn(worker),
            };
        }
        // One wait on the cancel for the whole load, not one per request: a cancel aborts the workers, whose
        // books hand over what they did as they are dropped.
        let mut cut = None;
        tokio::select! {
            _ = async { while workers.join_next().await.is_some() {} } => {}
            _ = cancel.cancelled() => {
                cut = Some(Instant::now());
                workers.abort_all();
                while workers.join_next().await.is_some() {}
            }
        }
        let mut total = std::mem::take(&mut *shared.total.lock().unwrap_or_else(|p| p.into_inner()));
        let mut stages = std::mem::take(&mut *shared.stage_totals.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(schedule) = schedule {
            let unclaimed = schedule.unclaimed_by_stage(cut);
            total.dropped += unclaimed.iter().sum::<u64>();
            for (stage, dropped) in stages.iter_mut().zip(unclaimed) {
                stage.dropped += dropped;
            }
        }
        Ok(LoadTally { total, stages })
    }

    /// Takes request numbers from the shared counter (or due times from the schedule, waiting for each on its
    /// own alarm) until the plan is done.
    async fn worker(
        &self,
        index: u32,
        start: Instant,
        next: &AtomicU64,
        paced: Option<(&Schedule, Alarm)>,
        mut books: Books,
    ) {
        let mut paced = paced;
        let mut connection = Connection::default();
        let end = self.duration.map(|d| start + d);
        let shared = books.shared.clone();
        let metrics = &shared.metrics;
        let open_model = self.is_open_model();
        let staged = self.stages.is_some();
        // Closed mode always has a request in flight on each working worker; rate mode only while it sends.
        let mut busy = (!open_model).then(|| InFlight::new(metrics));
        loop {
            // Two clock reads a request: when it was due (closed mode: now) and when it ended.
            let (scheduled, stage) = match &mut paced {
                // Rate mode: the next request's due time, waited for (a late one goes at once).
                Some((schedule, alarm)) => match schedule.claim(Instant::now()) {
                    Claim::Due(due, stage) => {
                        if alarm.until(due).await.is_err() {
                            // A timer that cannot be armed: the request goes now, still dated from its schedule.
                            tracing::debug!("http_load: a worker's timer failed; sending without waiting");
                        }
                        (due, stage)
                    }
                    Claim::Missed(stage) => {
                        books.tally.dropped += 1;
                        if staged {
                            books.stage(stage).dropped += 1;
                        }
                        continue;
                    }
                    Claim::Done => break,
                },
                None => {
                    let now = Instant::now();
                    let mut stage = 0;
                    if let Some(stages) = self.concurrency_stages() {
                        // Concurrency stages: this worker works while the target is above its number.
                        let offset = now.duration_since(start);
                        if !stages.active(index, offset) {
                            busy = None;
                            match stages.next_active(index, offset).filter(|at| *at < stages.total()) {
                                Some(at) => {
                                    tokio::time::sleep_until((start + at).into()).await;
                                    continue;
                                }
                                None => break,
                            }
                        }
                        busy.get_or_insert_with(|| InFlight::new(metrics));
                        stage = stages.stage_at(offset);
                    }
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if self.requests.is_some_and(|total| n >= total) {
                        break;
                    }
                    (now, stage)
                }
            };
            let sending = if open_model { Instant::now() } else { scheduled };
            // Closed mode stops with the window. Rate mode decided when the request was claimed: one claimed
            // in time goes even if its alarm rang a few microseconds past the end.
            if !open_model && end.is_some_and(|end| sending >= end) {
                break;
            }
            books.tally.sent += 1;
            books.batch.sent += 1;
            let answer = {
                let _sending = open_model.then(|| InFlight::new(metrics));
                self.send(&mut connection, sending).await
            };
            let ended = Instant::now();
            let latency = ended.duration_since(dated_from(scheduled, sending));
            let straggler = end.is_some_and(|end| ended > end);
            let late = open_model.then(|| sending.saturating_duration_since(scheduled));
            let outcome = count(&mut books.tally, &answer, straggler, latency, late);
            if staged {
                // A stage's own books: a ramp that outgrows the connections is late in the stage it happened in.
                let tally = books.stage(stage);
                tally.sent += 1;
                count(tally, &answer, straggler, latency, late);
            }
            if books.batch.record(outcome, latency, ended) {
                books.hand_over();
            }
        }
    }

    async fn send(&self, connection: &mut Connection, started: Instant) -> Result<(u16, u64), Failure> {
        if let Some(template) = &self.fast {
            return connection.send(template, self.timeout, started).await;
        }
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .timeout(self.timeout);
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.map_err(Failure::from)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(Failure::from)?;
        Ok((status, bytes.len() as u64))
    }
}

/// Counts one in `tarsier_http_load_in_flight` for as long as it lives (dropped with an aborted worker too).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a HttpLoadMetrics) -> Self {
        metrics.in_flight.inc();
        Self(&metrics.in_flight)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_counts_from_the_due_time_when_late_and_from_the_send_when_early() {
        let due = Instant::now() + Duration::from_millis(10);
        let late = due + Duration::from_millis(3);
        assert_eq!(dated_from(due, late), due, "the wait for the send is latency");
        let early = due - Duration::from_micros(400);
        assert_eq!(dated_from(due, early), early, "an early request's whole wait is counted");
    }
}
