//! `scenario run --console URL`: the run as it goes, posted to a `tarsier console` (`POST /api/runs/{id}`,
//! the swarm's token as Bearer) when a step starts or ends, at most twice a second, and once more whole at
//! the end. Each post is the whole run so far, so a lost one is mended by the next; a console that cannot be
//! reached is said once and never stops the run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::report::{LiveRun, RunReport};
use super::runner::Runner;

/// How often a changed run is posted at most.
const EVERY: Duration = Duration::from_millis(500);
/// How long one post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Publisher {
    client: reqwest::Client,
    url: String,
    /// The run's name, file, target and start; the steps come from the runner.
    template: Mutex<RunReport>,
    dirty: AtomicBool,
    warned: AtomicBool,
}

impl Publisher {
    /// `client` carries the swarm's token; `console` is the console's base URL.
    pub fn new(client: reqwest::Client, console: &str, template: RunReport) -> Arc<Self> {
        let started = humantime::format_rfc3339_millis(template.started_at).to_string();
        let id: String = format!("{}-{started}", template.name)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(64)
            .collect();
        let url = crate::client::endpoint(console, &format!("/api/runs/{id}"));
        Arc::new(Self {
            client,
            url,
            template: Mutex::new(template),
            dirty: AtomicBool::new(true),
            warned: AtomicBool::new(false),
        })
    }

    /// Something changed: the next tick posts.
    pub fn mark(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Posts the runner's state every [`EVERY`] while it changes, until `stop`.
    pub fn start(self: &Arc<Self>, runner: Arc<Runner>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = stop.cancelled() => return,
                }
                if me.dirty.swap(false, Ordering::Relaxed) {
                    let run = me.live(&runner);
                    me.post(&run).await;
                }
            }
        })
    }

    /// The run so far: the template with the runner's steps, figures and sweeps.
    fn live(&self, runner: &Runner) -> LiveRun {
        let mut report = self.template.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The runner's rows come after the template's (a steady state's check before the run).
        let offset = report.steps.len();
        report.steps.extend(runner.results.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned());
        report.figures = runner.figures.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.sweeps = runner.sweeps.lock().unwrap_or_else(|p| p.into_inner()).clone();
        report.guards = runner.guards.summaries();
        report.guard_trip = runner.guards.trip();
        let running =
            runner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|slot| slot + offset).collect();
        report.seconds = report.started_at.elapsed().map(|d| d.as_secs_f64()).unwrap_or(0.0);
        LiveRun { report, running, finished: false }
    }

    /// Rows the run adds before the steps (the steady state's check): they go in the template.
    pub fn set_template(&self, template: RunReport) {
        *self.template.lock().unwrap_or_else(|p| p.into_inner()) = template;
        self.mark();
    }

    /// The finished run, whole.
    pub async fn finish(&self, report: &RunReport) {
        self.post(&LiveRun { report: report.clone(), running: Vec::new(), finished: true }).await;
    }

    async fn post(&self, run: &LiveRun) {
        let sent = self.client.post(&self.url).json(run).timeout(POST_TIMEOUT).send().await;
        let problem = match sent {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!("it answered {}", answer.status())),
            Err(err) => Some(err.to_string()),
        };
        if let Some(why) = problem {
            if !self.warned.swap(true, Ordering::Relaxed) {
                crate::say_err!("   --console {}: {why} (the run goes on)", self.url);
            }
        }
    }
}
