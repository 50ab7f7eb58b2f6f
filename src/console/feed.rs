//! What the console shows, gathered once per tick whoever watches: the swarm (`client::swarm_view`), the
//! history of every `http_load` it saw running (per agent, and per wave summed over the swarm), the reports
//! of the latest waves, and the scenario runs posted to it. Everything kept is bounded.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::client::swarm_view::{Surveyor, SwarmView};
pub use crate::scenario::report::LiveRun;

/// Points a series keeps (15 minutes at one a second); older ones go first.
const POINTS_KEPT: usize = 900;
/// Series kept, running or not; the oldest finished ones go first.
const SERIES_KEPT: usize = 48;
/// Wave reports kept and shown.
const WAVES_KEPT: usize = 12;
/// Wave reports fetched per tick at most.
const WAVE_FETCHES_PER_TICK: usize = 8;
/// Scenario runs kept.
pub const RUNS_KEPT: usize = 20;

/// One reading of a running load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the load started.
    pub t: f64,
    pub req_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Share of the requests that ended in the last window that failed, 0..1.
    pub error_rate: Option<f64>,
}

/// A load's history: one agent's job, or a wave's jobs summed over the swarm.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub key: String,
    /// For a person: `local-1 #7` or `swarm, wave 3be1…`.
    pub label: String,
    pub wave_id: String,
    pub agents: usize,
    pub running: bool,
    /// The stage it is in, as its progress says (`stage 2/3 (20000 req/s asked)`).
    pub stage: Option<String>,
    pub points: VecDeque<Point>,
    #[serde(skip)]
    last_seen: Option<Instant>,
}

/// What a page is sent each tick.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub tick: u64,
    pub taken_at: String,
    pub swarm: SwarmView,
    /// Keys, labels and last points of the load series (the charts are drawn at `/charts/load.svg`).
    pub loads: Vec<LoadLine>,
    pub waves: Vec<Value>,
    pub runs: Vec<RunLine>,
    /// The console has no token: anyone who reaches it may use it.
    pub open: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadLine {
    pub key: String,
    pub label: String,
    pub running: bool,
    pub agents: usize,
    pub stage: Option<String>,
    pub points: usize,
    pub last: Option<Point>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub id: String,
    pub name: String,
    pub finished: bool,
    pub steps: usize,
    pub ended: usize,
    pub failures: usize,
}

pub struct Feed {
    surveyor: Surveyor,
    entry: String,
    open: bool,
    snapshot: Mutex<Arc<Snapshot>>,
    series: Mutex<BTreeMap<String, Series>>,
    waves: Mutex<BTreeMap<String, Value>>,
    runs: Mutex<VecDeque<(String, LiveRun)>>,
    /// Bumped each tick and each posted run: the event stream sends a snapshot on every change.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Feed {
    pub fn new(surveyor: Surveyor, entry: String, open: bool) -> Arc<Self> {
        let empty = SwarmView { entry: entry.clone(), agents: Vec::new(), left_out: 0 };
        let snapshot = Snapshot {
            tick: 0,
            taken_at: String::new(),
            swarm: empty,
            loads: Vec::new(),
            waves: Vec::new(),
            runs: Vec::new(),
            open,
        };
        Arc::new(Self {
            surveyor,
            entry,
            open,
            snapshot: Mutex::new(Arc::new(snapshot)),
            series: Mutex::default(),
            waves: Mutex::default(),
            runs: Mutex::default(),
            changed: tokio::sync::watch::channel(0).0,
        })
    }

    pub fn surveyor(&self) -> &Surveyor {
        &self.surveyor
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Asks the swarm every `every` until `stop`.
    pub async fn poll(self: Arc<Self>, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let mut tick = 0u64;
        loop {
            tick += 1;
            let view = tokio::select! {
                view = self.surveyor.survey(&self.entry) => view,
                _ = stop.cancelled() => return,
            };
            self.note_loads(&view);
            self.fetch_waves(&view).await;
            self.publish(tick, view);
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    fn publish(&self, tick: u64, swarm: SwarmView) {
        let loads = self.series.lock().unwrap_or_else(|p| p.into_inner()).values().rev().map(load_line).collect();
        let mut waves: Vec<Value> = self.waves.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        waves.sort_by_key(|w| std::cmp::Reverse(w["started_at_ms"].as_u64().unwrap_or(0)));
        let snapshot = Snapshot {
            tick,
            taken_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            swarm,
            loads,
            waves,
            runs: self.run_lines(),
            open: self.open,
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        self.changed.send_modify(|n| *n += 1);
    }

    /// Adds a point to the series of every `http_load` running, per agent and per wave.
    fn note_loads(&self, view: &SwarmView) {
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        series.values_mut().for_each(|s| s.running = false);
        let mut per_wave: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        let mut stages: BTreeMap<String, String> = BTreeMap::new();
        for (_, status) in view.up() {
            for job in status.running.iter().filter(|j| j.command.ends_with("http_load")) {
                let Some(progress) = &job.progress else { continue };
                let point = point_of(job.elapsed_ms, progress);
                let stage = stage_of(progress);
                let key = format!("{}#{}", status.address, job.id);
                let entry = series.entry(key.clone()).or_insert_with(|| Series {
                    key: key.clone(),
                    label: format!("{} #{}", status.agent, job.id),
                    wave_id: job.wave_id.clone(),
                    agents: 1,
                    running: true,
                    stage: None,
                    points: VecDeque::new(),
                    last_seen: None,
                });
                push(entry, point, stage.clone(), now);
                per_wave.entry(job.wave_id.clone()).or_default().push(point);
                if let Some(stage) = stage {
                    stages.insert(job.wave_id.clone(), stage);
                }
            }
        }
        for (wave_id, points) in per_wave {
            let key = format!("wave:{wave_id}");
            let short: String = wave_id.chars().take(8).collect();
            let entry = series.entry(key.clone()).or_insert_with(|| Series {
                key: key.clone(),
                label: format!("swarm, wave {short}…"),
                wave_id: wave_id.clone(),
                agents: 0,
                running: true,
                stage: None,
                points: VecDeque::new(),
                last_seen: None,
            });
            entry.agents = entry.agents.max(points.len());
            push(entry, summed(&points), stages.get(&wave_id).cloned(), now);
        }
        while series.len() > SERIES_KEPT {
            let oldest = series
                .values()
                .filter(|s| !s.running)
                .min_by_key(|s| s.last_seen)
                .or_else(|| series.values().min_by_key(|s| s.last_seen))
                .map(|s| s.key.clone());
            match oldest {
                Some(key) => series.remove(&key),
                None => break,
            };
        }
    }

    /// The reports of the latest waves the agents keep (the origin of a wave keeps its report).
    async fn fetch_waves(&self, view: &SwarmView) {
        let mut wanted: Vec<(String, String)> = Vec::new();
        for (address, status) in view.up() {
            for id in status.waves.iter().rev().take(3) {
                wanted.push((address.to_owned(), id.clone()));
            }
        }
        // `view.entry` is `host:port`; the scheme is the one of the URL the console was given.
        let scheme = crate::client::swarm_view::scheme_of(&self.entry);
        let done: Vec<String> = {
            let waves = self.waves.lock().unwrap_or_else(|p| p.into_inner());
            waves.iter().filter(|(_, w)| w["complete"] == true).map(|(id, _)| id.clone()).collect()
        };
        for (address, id) in wanted.into_iter().filter(|(_, id)| !done.contains(id)).take(WAVE_FETCHES_PER_TICK) {
            let url = format!("{scheme}://{address}/waves/{id}");
            let Ok(response) = self.surveyor.trusted_client().get(&url).send().await else { continue };
            let Ok(mut summary) = response.json::<Value>().await else { continue };
            if summary.get("wave_id").is_none() {
                continue;
            }
            summary["origin"] = Value::String(address.clone());
            let mut waves = self.waves.lock().unwrap_or_else(|p| p.into_inner());
            waves.insert(id, summary);
            while waves.len() > WAVES_KEPT {
                let oldest = waves
                    .iter()
                    .min_by_key(|(_, w)| w["started_at_ms"].as_u64().unwrap_or(0))
                    .map(|(id, _)| id.clone());
                if let Some(id) = oldest {
                    waves.remove(&id);
                }
            }
        }
    }

    /// A run posted by `scenario run --console`: kept (the latest [`RUNS_KEPT`]) and shown at once.
    pub fn post_run(&self, id: String, run: LiveRun) {
        {
            let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
            match runs.iter_mut().find(|(known, _)| *known == id) {
                Some(slot) => slot.1 = run,
                None => {
                    if runs.len() == RUNS_KEPT {
                        runs.pop_front();
                    }
                    runs.push_back((id, run));
                }
            }
        }
        let mut snapshot = (*self.snapshot()).clone();
        snapshot.runs = self.run_lines();
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
        self.changed.send_modify(|n| *n += 1);
    }

    pub fn live_run(&self, id: &str) -> Option<LiveRun> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.iter().find(|(known, _)| known == id).map(|(_, run)| run.clone())
    }

    fn run_lines(&self) -> Vec<RunLine> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.iter()
            .rev()
            .map(|(id, run)| RunLine {
                id: id.clone(),
                name: run.report.name.clone(),
                finished: run.finished,
                steps: run.report.steps.len(),
                ended: run.report.steps.len().saturating_sub(run.running.len()),
                failures: run.report.failures(),
            })
            .collect()
    }

    pub fn series(&self, key: &str) -> Option<Series> {
        self.series.lock().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }
}

fn load_line(series: &Series) -> LoadLine {
    LoadLine {
        key: series.key.clone(),
        label: series.label.clone(),
        running: series.running,
        agents: series.agents,
        stage: series.stage.clone(),
        points: series.points.len(),
        last: series.points.back().copied(),
    }
}

fn push(series: &mut Series, point: Point, stage: Option<String>, now: Instant) {
    series.running = true;
    series.last_seen = Some(now);
    series.stage = stage;
    // The same reading twice (the agent publishes twice a second, the console may ask faster) adds nothing.
    if series.points.back().is_some_and(|last| (last.t - point.t).abs() < 1e-6) {
        return;
    }
    if series.points.len() == POINTS_KEPT {
        series.points.pop_front();
    }
    series.points.push_back(point);
}

/// A point from an `http_load` progress: the recent window's figures where it has them.
fn point_of(elapsed_ms: u64, progress: &Value) -> Point {
    let recent = &progress["recent"];
    Point {
        t: progress["elapsed_s"].as_f64().unwrap_or(elapsed_ms as f64 / 1000.0),
        req_per_s: recent["req_per_s"].as_f64().or_else(|| progress["req_per_s"].as_f64()).unwrap_or(0.0),
        p50_ms: recent["p50_ms"].as_f64().or_else(|| progress["p50_ms"].as_f64()),
        p99_ms: recent["p99_ms"].as_f64().or_else(|| progress["p99_ms"].as_f64()),
        error_rate: recent["error_rate"].as_f64(),
    }
}

fn stage_of(progress: &Value) -> Option<String> {
    let stage = &progress["stage"];
    let (at, of) = (stage["stage"].as_u64()?, stage["stages"].as_u64()?);
    Some(format!("stage {at}/{of}"))
}

/// The swarm's point from its agents': rates add up, the latencies are the worst agent's (a bound: agents'
/// percentiles cannot be merged without their histograms), errors weighted by rate.
fn summed(points: &[Point]) -> Point {
    let req_per_s: f64 = points.iter().map(|p| p.req_per_s).sum();
    let worst = |pick: fn(&Point) -> Option<f64>| points.iter().filter_map(pick).reduce(f64::max);
    let errors: f64 = points.iter().filter_map(|p| p.error_rate.map(|e| e * p.req_per_s)).sum();
    Point {
        t: points.iter().map(|p| p.t).fold(0.0, f64::max),
        req_per_s,
        p50_ms: worst(|p| p.p50_ms),
        p99_ms: worst(|p| p.p99_ms),
        error_rate: points.iter().any(|p| p.error_rate.is_some()).then(|| errors / req_per_s.max(f64::EPSILON)),
    }
}
