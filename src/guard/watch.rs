//! Guards at work: a task per guard reads it every `interval` while the run goes on. When one has read broken
//! for its whole `for:` grace, the watch trips: the first trip is kept, whoever waits on [`Watch::tripped`] is
//! woken (the running step stops), and the swarm is aborted from here at once, so everything the run started
//! is released without waiting for the step to unwind.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::check::Check;
use super::read::{Reading, Sources};

/// The guards of one run.
pub struct Watch {
    /// Fired by [`Watch::stop`]: every guard stops reading.
    stop: CancellationToken,
    /// Fired by the first guard that trips.
    tripped: CancellationToken,
    trip: Mutex<Option<Trip>>,
    summaries: Mutex<Vec<GuardSummary>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
    /// Every guard's readings that gave a number: (Unix ms, value), the most recent [`HISTORY`].
    history: Mutex<Vec<std::collections::VecDeque<(i64, f64)>>>,
}

/// Readings kept per guard for the run's results: an hour at the default interval.
const HISTORY: usize = 3600;

/// The guard that stopped a run, and why.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Trip {
    pub guard: String,
    /// The number it read last, when it reads one (a probe's is its latency in ms).
    pub value: Option<f64>,
    /// What it had to hold.
    pub threshold: String,
    /// Its last reading, for a person.
    pub reading: String,
    /// When it tripped, in seconds from the start of the watch.
    pub at_s: f64,
    /// How long it had read broken when it tripped.
    pub broken_for_s: f64,
}

impl Trip {
    pub fn message(&self) -> String {
        format!(
            "stopped by guard `{}`: {}, want {}; broken for {:.1}s",
            self.guard, self.reading, self.threshold, self.broken_for_s
        )
    }
}

/// What a guard saw over the run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GuardSummary {
    pub name: String,
    pub threshold: String,
    pub interval_s: f64,
    pub grace_s: f64,
    pub readings: u64,
    pub broken_readings: u64,
    pub last_reading: Option<String>,
    pub last_value: Option<f64>,
    pub tripped: bool,
}

impl Watch {
    /// A watch with no guards: it never trips.
    pub fn idle() -> Arc<Self> {
        Self::start(Vec::new(), None)
    }

    /// Starts reading `checks` (none without `sources`).
    pub fn start(checks: Vec<Check>, sources: Option<Arc<Sources>>) -> Arc<Self> {
        let summaries = checks
            .iter()
            .map(|check| GuardSummary {
                name: check.name.clone(),
                threshold: check.threshold(),
                interval_s: check.interval.as_secs_f64(),
                grace_s: check.grace.as_secs_f64(),
                readings: 0,
                broken_readings: 0,
                last_reading: None,
                last_value: None,
                tripped: false,
            })
            .collect();
        let watch = Arc::new(Self {
            stop: CancellationToken::new(),
            tripped: CancellationToken::new(),
            trip: Mutex::new(None),
            summaries: Mutex::new(summaries),
            tasks: Mutex::new(Vec::new()),
            started: Instant::now(),
            history: Mutex::new(vec![Default::default(); checks.len()]),
        });
        if let Some(sources) = sources {
            let tasks = checks
                .into_iter()
                .enumerate()
                .map(|(index, check)| tokio::spawn(guard(watch.clone(), index, check, sources.clone())))
                .collect();
            *watch.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        }
        watch
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Fired when a guard trips.
    pub fn tripped(&self) -> &CancellationToken {
        &self.tripped
    }

    /// The trip, once a guard tripped.
    pub fn trip(&self) -> Option<Trip> {
        self.trip.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops every guard (a trip in progress finishes its abort first) and says what each saw.
    pub async fn stop(&self) -> Vec<GuardSummary> {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
        self.summaries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What each guard has seen so far, while it goes on reading.
    pub fn summaries(&self) -> Vec<GuardSummary> {
        self.summaries.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Each guard's name and its readings that gave a number (Unix ms, value).
    pub fn history(&self) -> Vec<(String, Vec<(i64, f64)>)> {
        let summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        summaries.iter().zip(history.iter()).map(|(s, h)| (s.name.clone(), h.iter().copied().collect())).collect()
    }

    fn note(&self, index: usize, reading: &Reading) {
        if let Some(value) = reading.value() {
            let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(kept) = history.get_mut(index) {
                if kept.len() == HISTORY {
                    kept.pop_front();
                }
                kept.push_back((crate::remote_write::now_ms(), value));
            }
        }
        let mut summaries = self.summaries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(summary) = summaries.get_mut(index) {
            summary.readings += 1;
            summary.broken_readings += u64::from(matches!(reading, Reading::Breaks { .. }));
            summary.last_reading = Some(reading.shown().to_owned());
            summary.last_value = reading.value();
        }
    }

    /// Keeps the first trip and wakes whoever waits; false when another guard tripped first.
    fn keep_trip(&self, index: usize, trip: Trip) -> bool {
        {
            let mut kept = self.trip.lock().unwrap_or_else(|p| p.into_inner());
            if kept.is_some() {
                return false;
            }
            *kept = Some(trip);
        }
        if let Some(summary) = self.summaries.lock().unwrap_or_else(|p| p.into_inner()).get_mut(index) {
            summary.tripped = true;
        }
        self.tripped.cancel();
        true
    }
}

/// One guard's loop: read, every `interval`, until the watch stops or some guard trips.
async fn guard(watch: Arc<Watch>, index: usize, check: Check, sources: Arc<Sources>) {
    let mut broken_since: Option<Instant> = None;
    let mut next = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = watch.stop.cancelled() => return,
            _ = watch.tripped.cancelled() => return,
        }
        let taken = Instant::now();
        // A reading that takes longer than the interval delays the next one rather than piling them up.
        next = (next + check.interval).max(taken);
        let reading = tokio::select! {
            reading = sources.read(&check) => reading,
            _ = watch.stop.cancelled() => return,
            _ = watch.tripped.cancelled() => return,
        };
        watch.note(index, &reading);
        let Reading::Breaks { value, shown } = reading else {
            broken_since = None;
            continue;
        };
        let since = *broken_since.get_or_insert(taken);
        let broken_for = since.elapsed();
        if broken_for < check.grace {
            continue;
        }
        let trip = Trip {
            guard: check.name.clone(),
            value,
            threshold: check.threshold(),
            reading: shown,
            at_s: watch.started.elapsed().as_secs_f64(),
            broken_for_s: broken_for.as_secs_f64(),
        };
        if watch.keep_trip(index, trip) {
            tracing::warn!(guard = check.name, "a guard broke: aborting the swarm");
            // The abort is this task's last work; `stop` waits for it, so the run's teardown comes after.
            match tokio::time::timeout(Duration::from_secs(30), sources.abort_swarm()).await {
                Ok(Ok(_)) => {}
                Ok(Err(why)) => crate::say_err!("guard `{}` broke, and the abort failed: {why}", check.name),
                Err(_) => crate::say_err!("guard `{}` broke, and the abort took over 30 s", check.name),
            }
        }
        return;
    }
}
