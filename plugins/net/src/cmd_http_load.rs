use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::tls_client::{client_config, ServerCheck};
use tarsier_plugin::{Cancel, Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture, Limits};

use crate::http1_conn::{Connection, Failure, Template};
use crate::http_metrics::HttpLoadMetrics;
use crate::http_stats::{merge, HttpLoadResult, LatencyCorrection, Tally};
use crate::targets::AllowList;

const MAX_CONCURRENCY: u32 = 10_000;
const MAX_RATE: f64 = 1_000_000.0;
/// Used when neither `requests` nor `duration` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

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

/// A checked request: the data and what `check` parsed out of it, so nothing is parsed twice.
pub struct HttpLoadPlan {
    data: HttpLoadData,
    url: reqwest::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
}

impl HttpLoad {
    fn parse_url(data: &HttpLoadData) -> Result<reqwest::Url, DataError> {
        if data.url.is_empty() {
            return Err(DataError::field("url", "is required, such as http://127.0.0.1:8080/"));
        }
        let url =
            reqwest::Url::parse(&data.url).map_err(|e| DataError::field("url", format!("`{}`: {e}", data.url)))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(DataError::field("url", format!("`{}` is not an http:// or https:// URL", data.url)));
        }
        Ok(url)
    }
}

impl Command for HttpLoad {
    type Data = HttpLoadData;
    type Plan = HttpLoadPlan;
    const NAME: &'static str = "http_load";
    const DESCRIPTION: &'static str = "HTTP load against `url` with `concurrency` keep-alive connections, for \
        `requests` or `duration`, optionally at a fixed `rate`. Answers counts, req/s, latency percentiles and \
        the HDR histogram, which a wave report merges across the swarm.";

    fn check(&self, data: HttpLoadData, ctx: &ExecContext) -> Result<HttpLoadPlan, DataError> {
        let limits = &ctx.limits;
        let url = Self::parse_url(&data)?;
        let allow = AllowList::from_limits(limits)?;
        if let Some(ip) = url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok()) {
            if !allow.allows_ip(ip) {
                return Err(allow.refusal(&ip.to_string()));
            }
        }
        let method = reqwest::Method::from_bytes(data.method.as_bytes())
            .map_err(|_| DataError::field("method", format!("`{}` is not an HTTP method", data.method)))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &data.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| DataError::field("headers", format!("`{name}` is not a header name")))?;
            if name == reqwest::header::CONTENT_LENGTH || name == reqwest::header::TRANSFER_ENCODING {
                return Err(DataError::field("headers", format!("`{name}` is set by http_load from `body`")));
            }
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| DataError::field("headers", format!("the value of `{name}` is not a header value")))?;
            headers.insert(name, value);
        }
        if data.concurrency == 0 || data.concurrency > MAX_CONCURRENCY {
            return Err(DataError::field(
                "concurrency",
                format!("{} must be between 1 and {MAX_CONCURRENCY}", data.concurrency),
            ));
        }
        match (data.requests, data.duration) {
            (Some(_), Some(_)) => return Err(DataError::field("requests", "give `requests` or `duration`, not both")),
            (Some(0), None) => return Err(DataError::field("requests", "must be at least 1")),
            (None, Some(d)) => limits.check_duration("duration", d)?,
            _ => {}
        }
        if let Some(rate) = data.rate {
            if !(rate > 0.0 && rate <= MAX_RATE) {
                return Err(DataError::field(
                    "rate",
                    format!("{rate} must be more than 0 and at most {MAX_RATE} requests/s"),
                ));
            }
        }
        if data.correct && data.rate.is_some() {
            return Err(DataError::field(
                "correct",
                "rate mode already counts latency from each request's schedule; `correct` is for closed mode",
            ));
        }
        limits.check_duration("timeout", data.timeout)?;
        Ok(HttpLoadPlan { data, url, method, headers })
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

/// The address the load goes to: the URL's host resolved once and checked (see `AllowList::resolve`).
async fn check_resolved(url: &reqwest::Url, limits: &Limits) -> Result<std::net::SocketAddr, CommandError> {
    let allow = AllowList::from_limits(limits)?;
    let host = url.host_str().unwrap_or_default();
    Ok(allow.resolve(host, url.port_or_known_default().unwrap_or(80)).await?)
}

/// How often a running load publishes its progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What the workers have done so far, for the progress line: counters and latencies each worker hands over in
/// batches (the exact figures are each worker's own tally, summed at the end).
struct Live {
    sent: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
    latencies: std::sync::Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            latencies: std::sync::Mutex::new(crate::http_stats::new_histogram()),
        }
    }
}

impl Live {
    fn snapshot(&self, elapsed: Duration) -> serde_json::Value {
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

/// What a worker has not yet handed over: to its own tally's histogram, to the progress line's [`Live`] and to
/// the agent's Prometheus metrics. Handed over every 250 ms, so the hot path records each latency once and
/// touches no memory another worker writes (shared atomics and the metrics' locks cost as much as the request
/// itself at wrk's speed).
struct Batch {
    latencies: hdrhistogram::Histogram<u64>,
    sent: u64,
    completed: u64,
    errors: u64,
    latency_us: u64,
    outcomes: Vec<(Outcome, u64)>,
    metric_latency: prometheus::local::LocalHistogram,
    since: Instant,
}

/// How often a worker hands its batch over.
const HAND_OVER_EVERY: Duration = Duration::from_millis(250);

impl Batch {
    fn new(metrics: &HttpLoadMetrics) -> Self {
        Self {
            latencies: crate::http_stats::new_histogram(),
            sent: 0,
            completed: 0,
            errors: 0,
            latency_us: 0,
            outcomes: Vec::new(),
            metric_latency: metrics.latency.local(),
            since: Instant::now(),
        }
    }

    /// Counts one request; `now` is when it ended.
    fn record(&mut self, outcome: Outcome, latency: Duration, now: Instant) -> bool {
        match outcome {
            Outcome::Status(status) => {
                self.completed += 1;
                self.latency_us += latency.as_micros() as u64;
                let _ = self.latencies.record(crate::http_stats::latency_us(latency));
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
        now.duration_since(self.since) >= HAND_OVER_EVERY
    }

    fn hand_over(&mut self, tally: &mut Tally, live: &Live, metrics: &HttpLoadMetrics) {
        live.sent.fetch_add(std::mem::take(&mut self.sent), Ordering::Relaxed);
        live.completed.fetch_add(std::mem::take(&mut self.completed), Ordering::Relaxed);
        live.errors.fetch_add(std::mem::take(&mut self.errors), Ordering::Relaxed);
        live.latency_us.fetch_add(std::mem::take(&mut self.latency_us), Ordering::Relaxed);
        for (outcome, n) in self.outcomes.drain(..) {
            metrics.requests.with_label_values(&[outcome.label().as_ref()]).inc_by(n);
        }
        self.metric_latency.flush();
        if !self.latencies.is_empty() {
            let _ = tally.latency_us.add(&self.latencies);
            let mut shared = live.latencies.lock().unwrap_or_else(|p| p.into_inner());
            let _ = shared.add(&self.latencies);
            drop(shared);
            self.latencies.reset();
        }
        self.since = Instant::now();
    }
}

/// A worker's books: its exact tally and its pending batch, handed over when the worker ends however it ends (a
/// cancelled load aborts its workers mid-request, and what they did still counts).
struct Books {
    tally: Tally,
    batch: Batch,
    shared: Arc<Shared>,
}

impl Books {
    fn hand_over(&mut self) {
        self.batch.hand_over(&mut self.tally, &self.shared.live, &self.shared.metrics);
    }
}

impl Drop for Books {
    fn drop(&mut self) {
        self.hand_over();
        self.shared.total.lock().unwrap_or_else(|p| p.into_inner()).add(&self.tally);
    }
}

/// What the workers of one load share and write rarely.
struct Shared {
    live: Arc<Live>,
    metrics: HttpLoadMetrics,
    /// Every worker's tally, added when it ends.
    total: std::sync::Mutex<Tally>,
}

/// Everything the workers share and only read.
struct Load {
    /// Plain HTTP/1.1: each worker's own connection (see `http1_conn`); otherwise reqwest.
    fast: Option<Template>,
    client: reqwest::Client,
    method: reqwest::Method,
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    body: Option<String>,
    concurrency: u32,
    requests: Option<u64>,
    duration: Option<Duration>,
    rate: Option<f64>,
    timeout: Duration,
}

impl Load {
    fn new(plan: HttpLoadPlan, addr: std::net::SocketAddr) -> Result<Self, CommandError> {
        let HttpLoadPlan { data, url, method, headers } = plan;
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
            duration: data.duration.map(|d| d.0).or(if data.requests.is_none() {
                Some(DEFAULT_DURATION)
            } else {
                None
            }),
            rate: data.rate,
            timeout: data.timeout.0,
        })
    }

    async fn run(self, metrics: &HttpLoadMetrics, cancel: &Cancel, live: &Arc<Live>) -> Result<Tally, CommandError> {
        let plan = Arc::new(self);
        let next = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let end = plan.duration.map(|d| start + d);
        // Rate mode: a pacer thread hands out request numbers at their due times.
        let unreleased = Arc::new(AtomicU64::new(0));
        let tickets = match plan.rate {
            Some(rate) => {
                let pacer = Pacer {
                    start,
                    rate,
                    total: plan.requests,
                    end,
                    cancel: cancel.flag(),
                    unreleased: unreleased.clone(),
                };
                Some(Arc::new(tokio::sync::Mutex::new(pacer.start(plan.concurrency as usize)?)))
            }
            None => None,
        };
        let shared = Arc::new(Shared { live: live.clone(), metrics: metrics.clone(), total: Default::default() });
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..plan.concurrency {
            let (plan, next, tickets) = (plan.clone(), next.clone(), tickets.clone());
            let books = Books { tally: Tally::default(), batch: Batch::new(metrics), shared: shared.clone() };
            workers.spawn(async move { plan.worker(start, &next, tickets.as_deref(), books).await });
        }
        // One wait on the cancel for the whole load, not one per request: a cancel aborts the workers, whose
        // books hand over what they did as they are dropped.
        tokio::select! {
            _ = async { while workers.join_next().await.is_some() {} } => {}
            _ = cancel.cancelled() => {
                workers.abort_all();
                while workers.join_next().await.is_some() {}
            }
        }
        drop(tickets);
        let mut total = std::mem::take(&mut *shared.total.lock().unwrap_or_else(|p| p.into_inner()));
        total.dropped += unreleased.load(Ordering::Relaxed);
        Ok(total)
    }

    /// Takes request numbers from the shared counter (or due times from the pacer) until the plan is done.
    async fn worker(&self, start: Instant, next: &AtomicU64, tickets: Option<&Tickets>, mut books: Books) {
        let mut connection = Connection::default();
        let end = self.duration.map(|d| start + d);
        let shared = books.shared.clone();
        let metrics = &shared.metrics;
        // Closed mode always has a request in flight on each worker; rate mode only while it sends.
        let _busy = self.rate.is_none().then(|| InFlight::new(metrics));
        loop {
            // Two clock reads a request: when it was due (closed mode: now) and when it ended.
            let scheduled = match tickets {
                // Rate mode: the next request's due time, handed out by the pacer then (or at once when late).
                Some(tickets) => {
                    let Some(due) = tickets.lock().await.recv().await else { break };
                    due
                }
                None => {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if self.requests.is_some_and(|total| n >= total) {
                        break;
                    }
                    Instant::now()
                }
            };
            let sending = if self.rate.is_some() { Instant::now() } else { scheduled };
            if end.is_some_and(|end| sending >= end) {
                // The window closed before this request could go: rate mode counts it as dropped (and drains
                // the rest the same way); closed mode simply stops.
                if self.rate.is_some() {
                    books.tally.dropped += 1;
                    continue;
                }
                break;
            }
            books.tally.sent += 1;
            books.batch.sent += 1;
            let outcome = {
                let _sending = self.rate.is_some().then(|| InFlight::new(metrics));
                self.send(&mut connection, sending).await
            };
            let ended = Instant::now();
            // With a rate, latency counts from the scheduled time: waiting for a busy connection is latency too.
            let latency = ended.duration_since(scheduled);
            let tally = &mut books.tally;
            let outcome = match outcome {
                Ok((status, bytes)) => {
                    tally.completed += 1;
                    // Answered after the window: in `completed`, not in `req_per_s` (so never more than it).
                    if end.is_some_and(|end| ended > end) {
                        tally.stragglers += 1;
                    }
                    tally.bytes += bytes;
                    *tally.status.entry(status).or_default() += 1;
                    match status {
                        400..=499 => tally.errors.status_4xx += 1,
                        500..=599 => tally.errors.status_5xx += 1,
                        _ => {}
                    }
                    Outcome::Status(status)
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
            };
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

/// The due times of a rate-mode load's requests, each handed out when it comes.
type Tickets = tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>;

/// Hands out the requests' due times (`start + n / rate`) from a thread of its own: a thread's
/// sleep with a 1 ns timer slack wakes within tens of microseconds, where tokio's timer has a 1 ms grain that
/// would add up to a millisecond to every latency. A worker picks a ticket up when it is free; one that waited
/// counts the wait as latency (the schedule is the start). Stops at `total`, at the window's end, on cancel,
/// or when every worker is gone. The channel holds a few tickets per worker, so a load that cannot keep up
/// queues nothing unbounded: what was due but not handed out when the window closed is `unreleased`.
struct Pacer {
    start: Instant,
    rate: f64,
    total: Option<u64>,
    end: Option<Instant>,
    cancel: tarsier_plugin::CancelFlag,
    unreleased: Arc<AtomicU64>,
}

impl Pacer {
    fn start(self, workers: usize) -> Result<tokio::sync::mpsc::Receiver<Instant>, CommandError> {
        let (sender, receiver) = tokio::sync::mpsc::channel(workers.clamp(1, 1024) * 2);
        std::thread::Builder::new()
            .name("http-load-pacer".into())
            .spawn(move || self.pace(&sender))
            .map_err(|e| CommandError::Failed(format!("cannot start the pacing thread: {e}")))?;
        Ok(receiver)
    }

    fn pace(self, sender: &tokio::sync::mpsc::Sender<Instant>) {
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and changes only this thread's timer slack.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        let mut n: u64 = 0;
        while !self.cancel.is_raised() && !sender.is_closed() && self.total.is_none_or(|total| n < total) {
            let due = self.start + Duration::from_secs_f64(n as f64 / self.rate);
            if let Some(end) = self.end {
                if due >= end {
                    break;
                }
                if Instant::now() >= end {
                    // The window closed with requests still due in it: never handed out, dropped.
                    let due_in_window = ((end - self.start).as_secs_f64() * self.rate).ceil() as u64;
                    let planned = self.total.map_or(due_in_window, |total| total.min(due_in_window));
                    self.unreleased.store(planned.saturating_sub(n), Ordering::Relaxed);
                    break;
                }
            }
            let now = Instant::now();
            if due > now {
                // In slices, so a cancel is seen within 10 ms.
                std::thread::sleep((due - now).min(Duration::from_millis(10)));
                continue;
            }
            // Waits while every worker is busy and the channel full: the load is behind its schedule.
            if sender.blocking_send(due).is_err() {
                break;
            }
            n += 1;
        }
    }
}
